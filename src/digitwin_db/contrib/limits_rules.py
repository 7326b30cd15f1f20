"""Rules of the ``limits`` storage that need no database (shared by its sync and async twins).

Input checks (keys, amounts, expiries, storage options), the sliding-window arithmetic on a
row the server returned, and what ``Settings.rate_limit_on_error`` answers when the database
cannot. Importing this module does not import ``limits``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import pydantic

from digitwin_db.errors import (
    ConfigurationError,
    QueryError,
    RateLimitUnavailableError,
    ValidationError,
)
from digitwin_db.settings import Settings, describe_settings_error, redact_url
from digitwin_db.validation import check_text

__all__ = [
    "ASYNC_STORAGE_SCHEMES",
    "DENY_COUNT",
    "MAX_AMOUNT",
    "MAX_EXPIRY_SECONDS",
    "MAX_KEY_LENGTH",
    "STORAGE_SCHEMES",
    "acquire_params",
    "check_amount",
    "check_expiry",
    "check_key",
    "check_limit",
    "on_error",
    "sliding_window",
    "storage_settings",
]

logger = logging.getLogger("digitwin_db")

#: URI schemes of the sync storage (``limits.storage``) and of the async one.
STORAGE_SCHEMES = ["postgresql"]
ASYNC_STORAGE_SCHEMES = ["async+postgresql"]
#: Longest key (characters): limits' keys hold the caller's identifiers (IP address, API-key
#: id, route), so the bound is generous; the tables' CHECK constraints hold the same number.
MAX_KEY_LENGTH = 1024
#: Largest amount (cost) or limit: fits a bigint with room for sums of many acquisitions.
MAX_AMOUNT = 10**15
#: Longest window accepted: about 317 years (limits' "N per year" times a large multiple).
MAX_EXPIRY_SECONDS = 1e10
#: What a read answers under ``rate_limit_on_error="deny"``: a count above any limit.
DENY_COUNT = MAX_AMOUNT


def check_key(key: object) -> str:
    """A limits key: a non-empty ``str`` of at most :data:`MAX_KEY_LENGTH` characters with
    no NUL and no lone surrogate. Raises ``ValidationError`` otherwise."""
    return check_text(key, "limits key", max_length=MAX_KEY_LENGTH, strip=False)


def _integer(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an int, not {type(value).__name__}")
    if not minimum <= value <= MAX_AMOUNT:
        shown = str(value) if abs(value) < 10**30 else f"{str(value)[:20]}..."
        raise ValidationError(f"{what} must be between {minimum} and {MAX_AMOUNT}, not {shown}")
    return value


def check_amount(amount: object) -> int:
    """The cost of a hit: an int in [0, MAX_AMOUNT]."""
    return _integer(amount, "amount", 0)


def check_limit(limit: object) -> int:
    """The size of a window: an int in [0, MAX_AMOUNT]."""
    return _integer(limit, "limit", 0)


def check_expiry(expiry: object) -> float:
    """A window length in seconds: a finite number in (0, MAX_EXPIRY_SECONDS]."""
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        raise ValidationError(f"expiry must be a number of seconds, not {type(expiry).__name__}")
    seconds = float(expiry) if abs(expiry) <= MAX_EXPIRY_SECONDS else math.inf
    if not (0 < seconds <= MAX_EXPIRY_SECONDS):  # NaN fails too
        raise ValidationError(
            f"expiry must be > 0 and at most {MAX_EXPIRY_SECONDS:g} seconds, not {expiry!r}"
        )
    return seconds


def acquire_params(key: object, limit: object, expiry: object, amount: object) -> dict[str, Any]:
    """The checked parameters of an acquiring statement (moving or sliding window)."""
    return {
        "key": check_key(key),
        "limit": check_limit(limit),
        "expiry": check_expiry(expiry),
        "amount": check_amount(amount),
    }


def storage_settings(uri: str | None, options: dict[str, Any]) -> Settings:
    """``Settings`` for a storage built from ``uri`` and limits' storage options.

    ``uri`` is ``postgresql://…`` or ``async+postgresql://…`` (the ``async+`` prefix is
    dropped); ``None`` or a bare scheme (``postgresql://``) keeps ``DATABASE_URL`` from the
    environment. Every option must name a ``Settings`` field (``pool_max_size``,
    ``rate_limit_on_error``, …); anything else is a ``ConfigurationError``, as is an invalid
    value. Messages never show the password.
    """
    unknown = sorted(set(options) - set(Settings.model_fields) - {"database_url"})
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) for the postgresql limits storage: {', '.join(unknown)} "
            "(options are digitwin_db.Settings fields, e.g. pool_max_size, rate_limit_on_error)"
        )
    values = dict(options)
    if uri is not None:
        url = uri.removeprefix("async+")
        if not url.startswith("postgresql://"):
            raise ConfigurationError(f"not a postgresql:// storage URI: {redact_url(url)[:80]!r}")
        if url != "postgresql://":
            values["database_url"] = url
    try:
        return Settings(**values)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(
            f"invalid postgresql limits storage settings: {describe_settings_error(exc)}"
        ) from None


def on_error(policy: Literal["raise", "allow", "deny"], op: str, exc: Exception) -> bool:
    """Apply ``Settings.rate_limit_on_error`` when the database could not answer ``op``.

    Raises ``RateLimitUnavailableError`` for ``"raise"``; otherwise logs a warning and returns
    True for ``"allow"`` (the storage answers as if the window were empty) and False for
    ``"deny"`` (as if it were full).
    """
    if policy == "raise":
        raise RateLimitUnavailableError(
            f"limits storage {op}: cannot decide, the database did not answer ({exc})"
        ) from exc
    logger.warning(
        "limits storage %s: database did not answer (%s); rate_limit_on_error=%s",
        op,
        type(exc).__name__,
        policy,
    )
    return policy == "allow"


def sliding_window(row: tuple[Any, ...] | None, expiry: float) -> tuple[int, float, int, float]:
    """limits' ``(previous count, previous TTL, current count, current TTL)`` from the row
    ``(window_no, previous_count, current_count, now)`` of ``GET_SLIDING_WINDOW``.

    Windows are aligned on multiples of ``expiry`` seconds of the server's epoch, as
    limits' own timestamp-keyed storages do: the previous window weighs what is left of the
    current one, ``previous TTL = (1 - frac(now / expiry)) * expiry`` (0 when it is empty),
    and the current count lives one more window, ``current TTL = previous TTL + expiry``.
    """
    if row is None:
        raise QueryError("limits sliding window: no row returned")  # the statement always does
    stored_window, previous, current, now = row
    window = math.floor(now / expiry)
    left = (1.0 - (now / expiry - window)) * expiry
    if stored_window is None:
        return 0, 0.0, 0, left + expiry
    effective = max(stored_window, window)
    if stored_window == effective:
        prev_count, cur_count = int(previous), int(current)
    elif stored_window == effective - 1:
        prev_count, cur_count = int(current), 0
    else:
        prev_count, cur_count = 0, 0
    return prev_count, (left if prev_count else 0.0), cur_count, left + expiry
