# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/repositories/rate_limits.py
"""Token-bucket rate limiter in PostgreSQL: ``factory.rate_limits``.

Every check is ONE atomic SQL statement (see :mod:`digitwin_db.sql.rate_limits`): the
server does the refill arithmetic on the row's own columns with its own clock, under the
row lock of the upsert, so N concurrent callers on a bucket of capacity C get exactly C
admissions. Python only validates the input and turns the returned row into a
:class:`~digitwin_db.models.rate_limits.RateLimitResult`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from digitwin_db._sync.repositories.base import Repository
from digitwin_db.batching import ArrayCombiner
from digitwin_db.cache_codec import check_positive_seconds
from digitwin_db.errors import (
    DatabaseUnavailableError,
    QueryError,
    RateLimitUnavailableError,
    TransientError,
    ValidationError,
)
from digitwin_db.models.rate_limits import EndpointUsage, Limit, RateLimitResult
from digitwin_db.ratelimit_policy import (
    BucketConfig,
    check_endpoint,
    check_request,
    check_user_id,
)
from digitwin_db.sql import rate_limits as q
from digitwin_db.validation import check_aware_datetime

__all__ = ["RateLimitRepository"]

logger = logging.getLogger("digitwin_db")

#: Heap blocks per cleanup statement: about 50 buckets fit in a block at fillfactor 70,
#: so a batch deletes at most a few thousand rows and holds their locks for milliseconds.
CLEANUP_BLOCKS_PER_BATCH = 64
#: At most this many buckets in one check_many call.
MAX_LIMITS_PER_CHECK = 32
#: check_many retries after creating missing buckets; a retry is needed again only if
#: a concurrent reset/cleanup deleted a bucket in between, so a few attempts suffice.
_CHECK_MANY_ATTEMPTS = 4
#: Concurrent check_and_consume calls run as one CHECK_AND_CONSUME_MANY (group commit).
_CHECKS = ArrayCombiner(
    q.CHECK_AND_CONSUME_MANY,
    (
        ("user_id", "user_ids"),
        ("endpoint", "endpoints"),
        ("capacity", "capacities"),
        ("refill_rate", "refill_rates"),
        ("cost", "costs"),
    ),
)


# Every database failure the limiter may meet: unreachable, timed out / deadlocked, or a
# statement the server refused (e.g. prepared statements behind PgBouncer in transaction
# mode, a missing privilege). Each follows Settings.rate_limit_on_error.
_DATABASE_FAILURES = (DatabaseUnavailableError, TransientError, QueryError)


class RateLimitRepository(Repository):
    """Per-(user, endpoint) token buckets: ``capacity`` tokens refilled continuously at
    ``refill_rate`` tokens/s (or ``capacity`` per ``window_seconds``).

    Buckets are created on first use (full) and take the configuration of the latest
    call, so a changed limit applies at once (tokens clamped to the new capacity).
    """

    name = "rate_limits"
    tables = ("rate_limits",)

    # ------------------------------------------------------------------ checks
    def check_and_consume(
        self,
        user_id: Any,
        endpoint: str,
        *,
        capacity: int,
        refill_rate: float | None = None,
        window_seconds: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        """Take ``cost`` tokens from the bucket if it has them; one round trip, one statement.

        A denied request consumes nothing. Raises ``ValidationError`` (before any SQL) for
        a malformed user id or endpoint, ``capacity``/``cost`` not whole numbers with
        ``1 <= cost <= capacity``, non-finite or non-positive rates, or both/neither of
        ``refill_rate``/``window_seconds``. When the database cannot answer, follows
        ``Settings.rate_limit_on_error``: ``RateLimitUnavailableError`` ("raise"), or a
        ``degraded`` result allowing ("allow") or denying ("deny") the request.
        """
        config, params = check_request(
            user_id, endpoint, capacity, refill_rate, window_seconds, cost
        )
        try:
            # Group commit: concurrent checks share one statement and one commit.
            row = self.db.batcher("rate_limits.check_and_consume", _CHECKS).execute(
                q.CHECK_AND_CONSUME, params, (params["user_id"], endpoint)
            )
        except _DATABASE_FAILURES as exc:
            return self._undecided("check_and_consume", exc, config, endpoint)
        if row is None:  # the statement always returns one row
            raise QueryError("rate_limits.check_and_consume: no row returned")
        return RateLimitResult.from_bucket(row[0], row[1], row[2], config, endpoint)

    def check_and_increment(
        self, user_id: Any, endpoint: str, limit: int, window_seconds: float
    ) -> RateLimitResult:
        """The original system's call: at most ``limit`` requests per ``window_seconds``
        (a bucket of ``limit`` tokens refilled at ``limit / window_seconds`` per second).
        Same behaviour and errors as :meth:`check_and_consume` with ``cost=1``."""
        return self.check_and_consume(
            user_id, endpoint, capacity=limit, window_seconds=window_seconds
        )

    def check_many(self, user_id: Any, limits: Sequence[Limit]) -> RateLimitResult:
        """Consume from several buckets of one user all-or-nothing (e.g. 10/s and 1000/day).

        Allowed only if every bucket has its ``cost``; otherwise nothing is consumed from
        any of them. Buckets are locked in endpoint order, so concurrent calls naming
        overlapping buckets in any order never deadlock. The result describes the bucket
        that decided: when denied, the one whose tokens come back last (``retry_after`` is
        when the whole request can pass); when allowed, the one with the fewest tokens left.
        One statement (one round trip) once the buckets exist; the first call for a new
        bucket adds one statement that creates it full. Raises ``ValidationError`` for an
        empty list, non-``Limit`` items, or the same endpoint twice.
        """
        user = check_user_id(user_id)
        if isinstance(limits, Limit):
            limits = [limits]
        if not isinstance(limits, Sequence) or isinstance(limits, str | bytes):
            raise ValidationError("limits must be a list of digitwin_db.Limit")
        if not 0 < len(limits) <= MAX_LIMITS_PER_CHECK:
            raise ValidationError(
                f"check_many takes 1 to {MAX_LIMITS_PER_CHECK} limits, not {len(limits)}"
            )
        by_endpoint: dict[str, Limit] = {}
        for limit in limits:
            if not isinstance(limit, Limit):
                raise ValidationError(
                    f"limits must hold digitwin_db.Limit items, not {type(limit).__name__}"
                )
            if limit.endpoint in by_endpoint:
                raise ValidationError(f"endpoint {limit.endpoint!r} appears twice in limits")
            by_endpoint[limit.endpoint] = limit
        params = {
            "user_id": user,
            "endpoints": [lim.endpoint for lim in limits],
            "capacities": [lim.config.capacity for lim in limits],
            "refill_rates": [lim.config.refill_rate for lim in limits],
            "costs": [lim.config.cost for lim in limits],
        }
        try:
            with self.db.connection("rate_limits.check_many") as conn:
                for _ in range(_CHECK_MANY_ATTEMPTS):
                    cur = conn.execute(q.CHECK_MANY, params)
                    rows = cur.fetchall()
                    if rows and rows[0][0]:  # complete: every bucket existed and was locked
                        break
                    conn.execute(q.CREATE_MISSING_BUCKETS, params)
                else:
                    raise TransientError(
                        "rate_limits.check_many: buckets kept disappearing (concurrent reset?)"
                    )
        except _DATABASE_FAILURES as exc:
            decider = min(limits, key=lambda lim: lim.config.capacity / lim.config.refill_rate)
            return self._undecided("check_many", exc, decider.config, decider.endpoint)
        allowed = bool(rows[0][1])
        results = []
        for _complete, _ok, endpoint, tokens, lag in rows:
            config = by_endpoint[endpoint].config
            results.append(RateLimitResult.from_bucket(allowed, tokens, lag, config, endpoint))
        if allowed:
            return min(results, key=lambda r: (r.remaining, r.limit))
        return max(results, key=lambda r: r.retry_after)

    def peek(
        self,
        user_id: Any,
        endpoint: str,
        *,
        capacity: int,
        refill_rate: float | None = None,
        window_seconds: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        """What :meth:`check_and_consume` would answer now, consuming and writing nothing
        (``allowed``: the bucket holds ``cost`` tokens). Same validation and on-error
        behaviour; a bucket never used is full."""
        config, params = check_request(
            user_id, endpoint, capacity, refill_rate, window_seconds, cost
        )
        try:
            with self.db.connection("rate_limits.peek") as conn:
                cur = conn.execute(q.PEEK, params)
                row = cur.fetchone()
        except _DATABASE_FAILURES as exc:
            return self._undecided("peek", exc, config, endpoint)
        if row is None:
            raise QueryError("rate_limits.peek: no row returned")
        tokens, lag = row
        return RateLimitResult.from_bucket(tokens >= config.cost, tokens, lag, config, endpoint)

    def _undecided(
        self,
        op: str,
        exc: DatabaseUnavailableError | TransientError | QueryError,
        config: BucketConfig,
        endpoint: str,
    ) -> RateLimitResult:
        """Apply ``Settings.rate_limit_on_error`` when the database could not decide."""
        policy = self.db.settings.rate_limit_on_error
        if policy == "raise":
            raise RateLimitUnavailableError(
                f"rate_limits.{op}: cannot decide, the database failed ({exc})"
            ) from exc
        logger.warning(
            "rate_limits.%s: database failed (%s); rate_limit_on_error=%s",
            op,
            type(exc).__name__,
            policy,
        )
        return RateLimitResult.undecided(policy == "allow", config, endpoint)

    # ------------------------------------------------------------------ maintenance
    def reset(self, user_id: Any, endpoint: str | None = None) -> int:
        """Delete one bucket of the user, or all of them when ``endpoint`` is None; the
        next check starts full with zeroed counters. Returns the number of buckets deleted."""
        user = check_user_id(user_id)
        if endpoint is not None:
            check_endpoint(endpoint)
        with self.db.connection("rate_limits.reset") as conn:
            cur = conn.execute(q.RESET, {"user_id": user, "endpoint": endpoint})
            return cur.rowcount

    def usage(self, user_id: Any, *, since: datetime | None = None) -> list[EndpointUsage]:
        """Allowed and denied counts per endpoint of the user, ordered by endpoint.

        Counts run from the bucket's creation or last :meth:`reset` (``first_seen``);
        ``since`` (timezone-aware) keeps only buckets checked at or after it. Buckets
        removed by :meth:`cleanup_idle` take their counts with them.
        """
        user = check_user_id(user_id)
        since = check_aware_datetime(since, "since")
        with self.db.connection("rate_limits.usage") as conn:
            cur = conn.execute(q.USAGE, {"user_id": user, "since": since})
            rows = cur.fetchall()
        return [
            EndpointUsage(endpoint=e, allowed=a, denied=d, first_seen=f, last_seen=s)
            for e, a, d, f, s in rows
        ]

    def cleanup_idle(self, *, older_than: timedelta | float | None = None) -> int:
        """Delete buckets not checked for ``older_than`` (a timedelta or seconds; default
        ``Settings.rate_limit_idle_seconds``) that have refilled to capacity, so deleting
        one changes no future decision. Returns the number deleted.

        Safe while services run and from several hosts at once: it walks the table in
        small heap-block batches (one short statement each, ``SKIP LOCKED``), so no check
        waits on it for long and cleaners never wait on each other.
        """
        if older_than is None:
            seconds = self.db.settings.rate_limit_idle_seconds
        else:
            seconds = check_positive_seconds(older_than, "older_than")
        deleted = 0
        with self.db.connection("rate_limits.cleanup_idle") as conn:
            cur = conn.execute(q.HEAP_BLOCKS)
            row = cur.fetchone()
            blocks = row[0] if row is not None else 0
            for lo in range(0, blocks, CLEANUP_BLOCKS_PER_BATCH):
                cur = conn.execute(
                    q.DELETE_IDLE_BATCH,
                    {
                        "lo": f"({lo},0)",
                        "hi": f"({lo + CLEANUP_BLOCKS_PER_BATCH},0)",
                        "idle_seconds": seconds,
                    },
                )
                deleted += cur.rowcount
        return deleted
