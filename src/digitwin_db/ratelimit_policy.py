"""Token-bucket rules that need no database: input validation and time arithmetic.

Kept apart from the repository (as ``limits`` keeps its strategies apart from storage) so
that the rules are read, and tested, in one place. Everything here is cheap plain Python:
it runs before every check, and a check must stay close to a bare upsert in speed.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any, NamedTuple

from digitwin_db.errors import ValidationError

__all__ = [
    "MAX_CAPACITY",
    "MAX_ENDPOINT_LENGTH",
    "MAX_REFILL_RATE",
    "MAX_SUBJECT_LENGTH",
    "MIN_REFILL_RATE",
    "bucket_config",
    "ceil_microseconds",
    "check_endpoint",
    "check_user_id",
    "sf_integer",
    "sf_string",
]

#: Largest bucket. Token counts stay exact in a double far beyond it.
MAX_CAPACITY = 1_000_000_000
#: ``rate_limits.endpoint`` holds at most this many characters (CHECK in the migration).
MAX_ENDPOINT_LENGTH = 500
#: ``rate_limits.user_id`` (the subject) holds at most this many characters (CHECK in the
#: migration): room for an IPv6 address, an API-key id or a tenant name.
MAX_SUBJECT_LENGTH = 200
#: Slowest refill accepted, in tokens per second (one token in about 32 years): slower
#: rates would make ``retry_after`` astronomically large.
MIN_REFILL_RATE = 1e-9
#: Fastest refill accepted, in tokens per second.
MAX_REFILL_RATE = 1e9
#: Structured-field integers have at most 15 digits (RFC 8941 §3.3.1).
_SF_INTEGER_MAX = 999_999_999_999_999


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: A UUID already in canonical text form: accepted as is, without building a UUID object
#: (the common case: ids come from our own tables).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_user_id(user_id: object) -> str:
    """The canonical text form of a rate-limit subject: a ``uuid.UUID`` or any non-empty
    string (a user id, an IP address, an API-key id, a tenant).

    A string that spells a UUID (any case, braces, ``urn:uuid:``) becomes the canonical
    lower-case form, so the same user always maps to the same bucket whatever spelling the
    caller used; any other string is the subject as is. Raises ``ValidationError`` for a
    non-string, an empty string, more than :data:`MAX_SUBJECT_LENGTH` characters, or control
    characters, NUL or lone surrogates (nothing is written).
    """
    if type(user_id) is str:
        if _CANONICAL_UUID.fullmatch(user_id):
            return user_id
        if not 0 < len(user_id) <= MAX_SUBJECT_LENGTH:
            raise ValidationError(
                f"user_id (the subject) must have 1 to {MAX_SUBJECT_LENGTH} characters, "
                f"not {len(user_id)}"
            )
        if not user_id.isprintable():
            raise ValidationError(f"user_id has control characters: {_short(user_id)}")
        try:
            return str(uuid.UUID(user_id))
        except ValueError:
            return user_id
    if isinstance(user_id, uuid.UUID):
        return str(user_id)
    raise ValidationError(
        f"user_id must be a uuid.UUID or a non-empty string, not {type(user_id).__name__}"
    )


def check_endpoint(endpoint: object) -> str:
    """``endpoint`` if it is a printable string of 1 to 500 characters."""
    if type(endpoint) is not str:
        raise ValidationError(f"endpoint must be a str, not {type(endpoint).__name__}")
    if not 0 < len(endpoint) <= MAX_ENDPOINT_LENGTH:
        raise ValidationError(
            f"endpoint must have 1 to {MAX_ENDPOINT_LENGTH} characters, not {len(endpoint)}"
        )
    if not endpoint.isprintable():
        raise ValidationError(f"endpoint has control characters: {_short(endpoint)}")
    return endpoint


def _whole(name: str, value: object, upper: int) -> float:
    """A whole number of tokens in [1, upper], as a float (an integral float is accepted)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a whole number (int), not {_short(value)}")
    if isinstance(value, float) and not value.is_integer():  # also NaN and infinities
        raise ValidationError(f"{name} must be a whole number (int), not {_short(value)}")
    if not 1 <= value <= upper:
        raise ValidationError(f"{name} must be between 1 and {upper}, not {_short(value)}")
    return float(value)


def _positive(name: str, value: object) -> float:
    """A finite number > 0 (int or float; bool, NaN and infinities refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, not {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValidationError(f"{name} is too large: {_short(value)}") from None
    if not (number > 0 and math.isfinite(number)):  # NaN fails "number > 0"
        raise ValidationError(f"{name} must be a finite number > 0, not {_short(value)}")
    return number


#: Validated configurations, keyed by the arguments AND their types (so that ``True`` never
#: hits the entry of ``1``). Services use a handful of limits, so this stays tiny; it is
#: emptied if it ever grows past _CONFIG_CACHE_SIZE. Only valid configurations are stored.
_config_cache: dict[tuple[Any, ...], BucketConfig] = {}
_CONFIG_CACHE_SIZE = 1024


class BucketConfig(NamedTuple):
    """A validated bucket configuration, as floats."""

    capacity: float
    refill_rate: float
    cost: float


def bucket_config(capacity: Any, refill_rate: Any, window_seconds: Any, cost: Any) -> BucketConfig:
    """Validate a bucket's configuration: ``(capacity, refill_rate, cost)`` as floats.

    ``capacity`` and ``cost`` are whole numbers with ``1 <= cost <= capacity``; exactly one
    of ``refill_rate`` (tokens per second) or ``window_seconds`` (``capacity`` tokens per
    window) is given, finite and positive. Raises ``ValidationError`` otherwise.
    """
    key = (
        capacity,
        refill_rate,
        window_seconds,
        cost,
        type(capacity),
        type(refill_rate),
        type(window_seconds),
        type(cost),
    )
    try:
        return _config_cache[key]
    except KeyError:
        pass
    except TypeError:  # unhashable input: validation below names the problem
        return _validate_config(capacity, refill_rate, window_seconds, cost)
    config = _validate_config(capacity, refill_rate, window_seconds, cost)
    if len(_config_cache) >= _CONFIG_CACHE_SIZE:
        _config_cache.clear()
    _config_cache[key] = config
    return config


def _validate_config(
    capacity: Any, refill_rate: Any, window_seconds: Any, cost: Any
) -> BucketConfig:
    cap = _whole("capacity", capacity, MAX_CAPACITY)
    cst = _whole("cost", cost, MAX_CAPACITY)
    if cst > cap:
        raise ValidationError(
            f"cost ({cst:g}) exceeds capacity ({cap:g}): such a request could never be admitted"
        )
    if refill_rate is None:
        if window_seconds is None:
            raise ValidationError("give refill_rate or window_seconds (neither was given)")
        rate = cap / _positive("window_seconds", window_seconds)
    elif window_seconds is not None:
        raise ValidationError("give refill_rate or window_seconds, not both")
    else:
        rate = _positive("refill_rate", refill_rate)
    if not MIN_REFILL_RATE <= rate <= MAX_REFILL_RATE:
        raise ValidationError(
            f"refill rate {rate:g} tokens/s is outside [{MIN_REFILL_RATE:g}, {MAX_REFILL_RATE:g}]"
        )
    return BucketConfig(cap, rate, cst)


def check_request(
    user_id: object,
    endpoint: object,
    capacity: Any,
    refill_rate: Any,
    window_seconds: Any,
    cost: Any,
) -> tuple[BucketConfig, dict[str, Any]]:
    """Validate one check of one bucket: its configuration and the statement parameters
    (``user_id``, ``endpoint``, ``capacity``, ``refill_rate``, ``cost``)."""
    user = check_user_id(user_id)
    check_endpoint(endpoint)
    config = bucket_config(capacity, refill_rate, window_seconds, cost)
    params = {
        "user_id": user,
        "endpoint": endpoint,
        "capacity": config.capacity,
        "refill_rate": config.refill_rate,
        "cost": config.cost,
    }
    return config, params


def retry_after(tokens: float, lag: float, config: BucketConfig) -> float:
    """Seconds until a denied request's ``cost`` is available, never early.

    ``lag`` (>= 0) is how far the bucket's ``refilled_at`` lies past the statement's own
    time; waits count from the statement's time, which precedes the caller's receipt of
    the answer, so a caller that waits this long is never early. One microsecond is added
    against floating-point rounding."""
    return ceil_microseconds(lag + (config.cost - tokens) / config.refill_rate) + 1e-6


def reset_after(tokens: float, lag: float, config: BucketConfig) -> float:
    """Seconds until the bucket is full again."""
    return ceil_microseconds(lag + (config.capacity - tokens) / config.refill_rate)


def ceil_microseconds(seconds: float) -> float:
    """``seconds`` rounded up to the next microsecond (the server clock's resolution)."""
    return math.ceil(seconds * 1e6) / 1e6 if seconds > 0 else 0.0


def sf_integer(value: float) -> int:
    """``value`` rounded up, as an RFC 8941 structured-field integer (at most 15 digits)."""
    return min(math.ceil(value), _SF_INTEGER_MAX) if value > 0 else 0


def sf_string(name: str) -> str:
    """``name`` as an RFC 8941 sf-string; ``"default"`` when it is not printable ASCII."""
    if name.isascii() and name.isprintable():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"default"'
