"""Rate limiter models: a bucket's ``Limit``, a check's ``RateLimitResult``, usage rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from digitwin_db.models.common import Row
from digitwin_db.ratelimit_policy import (
    BucketConfig,
    bucket_config,
    ceil_microseconds,
    check_endpoint,
    reset_after,
    retry_after,
    sf_integer,
    sf_string,
)

__all__ = ["EndpointUsage", "Limit", "RateLimitResult"]


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket of a :meth:`check_many` call: ``capacity`` tokens for ``endpoint``,
    refilled at ``refill_rate`` tokens/s or ``capacity`` per ``window_seconds`` (exactly one
    of the two), a request taking ``cost`` tokens.

    Validated when built: raises ``digitwin_db.ValidationError`` for a bad endpoint,
    ``capacity``/``cost`` that are not whole numbers with ``1 <= cost <= capacity``,
    non-finite or non-positive rates, or both/neither of ``refill_rate``/``window_seconds``.
    """

    endpoint: str
    capacity: int
    refill_rate: float | None = None
    window_seconds: float | None = None
    cost: int = 1

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        bucket_config(self.capacity, self.refill_rate, self.window_seconds, self.cost)

    @property
    def config(self) -> BucketConfig:
        """``(capacity, refill_rate, cost)`` as floats (validated; cached by arguments)."""
        return bucket_config(self.capacity, self.refill_rate, self.window_seconds, self.cost)


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The decision of a check. A plain dataclass: web frameworks serialise it as a JSON
    object with these named fields.

    ``remaining`` is the whole tokens left (floor); ``retry_after`` the seconds until the
    request's ``cost`` is available (0 when allowed; never earlier than the real moment);
    ``reset_after`` the seconds until the bucket is full again; ``window`` the seconds a
    full refill takes (``limit / refill_rate``). ``policy`` names the bucket (its endpoint;
    for ``check_many`` the one that decided). ``degraded`` is true when the database could
    not answer and ``Settings.rate_limit_on_error`` ("allow"/"deny") made the decision.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float
    window: float
    policy: str = "default"
    degraded: bool = False

    @classmethod
    def from_bucket(
        cls, allowed: bool, tokens: float, lag: float, config: BucketConfig, policy: str
    ) -> RateLimitResult:
        """The decision, from the bucket's state as the check's statement left it
        (``tokens`` after it, ``lag``: see :func:`~digitwin_db.ratelimit_policy.retry_after`)."""
        tokens = min(tokens, config.capacity)  # defensive: the table's CHECK forbids more
        return cls(
            allowed=allowed,
            limit=int(config.capacity),
            remaining=math.floor(tokens),
            retry_after=0.0 if allowed else retry_after(tokens, lag, config),
            reset_after=reset_after(tokens, lag, config),
            window=config.capacity / config.refill_rate,
            policy=policy,
        )

    @classmethod
    def undecided(cls, allow: bool, config: BucketConfig, policy: str) -> RateLimitResult:
        """The ``degraded`` decision taken when the database could not answer: allow (as
        if ``cost`` was taken from a full bucket) or deny (come back after ``cost`` tokens
        take to refill)."""
        capacity, rate, cost = config
        if allow:
            return cls(
                allowed=True,
                limit=int(capacity),
                remaining=int(capacity - cost),
                retry_after=0.0,
                reset_after=0.0,
                window=capacity / rate,
                policy=policy,
                degraded=True,
            )
        return cls(
            allowed=False,
            limit=int(capacity),
            remaining=0,
            retry_after=ceil_microseconds(cost / rate),
            reset_after=ceil_microseconds(capacity / rate),
            window=capacity / rate,
            policy=policy,
            degraded=True,
        )

    def headers(self) -> dict[str, str]:
        """HTTP response header fields describing this result.

        * ``X-RateLimit-Limit`` / ``-Remaining``: capacity and whole tokens left;
          ``X-RateLimit-Reset``: seconds (delta, rounded up) until the bucket is full.
        * ``Retry-After`` (only when denied): ``retry_after`` rounded UP to whole seconds,
          at least 1, so a client that obeys it is never early.
        * ``RateLimit-Policy`` / ``RateLimit`` in the syntax of
          draft-ietf-httpapi-ratelimit-headers-08 ("RateLimit header fields for HTTP"):
          ``RateLimit-Policy: "<policy>";q=<capacity>;w=<seconds for a full refill>`` and
          ``RateLimit: "<policy>";r=<remaining>;t=<seconds until full>``, the policy name
          an RFC 8941 string (``"default"`` when the endpoint is not printable ASCII).
        """
        name = sf_string(self.policy)
        reset = sf_integer(self.reset_after)
        fields = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{name};q={self.limit};w={max(1, sf_integer(self.window))}",
            "RateLimit": f"{name};r={self.remaining};t={reset}",
        }
        if not self.allowed:
            fields["Retry-After"] = str(max(1, sf_integer(self.retry_after)))
        return fields


class EndpointUsage(Row):
    """Counters of one bucket of a user: checks ``allowed`` and ``denied`` since
    ``first_seen`` (bucket creation or last reset); ``last_seen`` is its latest check."""

    endpoint: str
    allowed: int
    denied: int
    first_seen: datetime
    last_seen: datetime
