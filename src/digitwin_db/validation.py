"""Input checks shared by the repositories: each raises ``ValidationError`` with a message
that names the argument, before any SQL runs."""

from __future__ import annotations

import json
import math
import reprlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from digitwin_db.errors import ValidationError

__all__ = [
    "MAX_PAGE_SIZE",
    "check_aware_datetime",
    "check_choice",
    "check_fields",
    "check_int_range",
    "check_json_object",
    "check_number",
    "check_optional_int",
    "check_page",
    "check_text",
    "json_param",
    "optional_uuid",
    "parse_uuid",
    "shown",
]

# Largest JSON document we accept in a jsonb column (bytes of its compact encoding).
MAX_JSON_BYTES = 1_000_000
# Integers at least this large cannot become a float (OverflowError): always refused.
MAX_INT_MAGNITUDE = 2**1023
# Largest page a list/query method returns.
MAX_PAGE_SIZE = 1000


_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40
for _name in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _name, 4)


def shown(value: object, limit: int = 80) -> str:
    """A short ``repr`` of ``value`` for an error message, whatever it is: bounded in length
    and depth (a 3000-level nested list costs nothing and raises no ``RecursionError``), and
    a ``__repr__`` that fails shows as the type's name."""
    try:
        text = _REPR.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_encodable(text: str, what: str) -> None:
    """PostgreSQL stores UTF-8: a lone surrogate ("\\ud800") cannot be sent at all."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid Unicode (lone surrogate)") from None


def parse_uuid(value: object, what: str = "id") -> uuid.UUID:
    """Accept a ``uuid.UUID`` or its string form; anything else is a ``ValidationError``."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(f"{what} must be a UUID, got {shown(value)}")


def check_text(
    value: object,
    what: str,
    *,
    min_length: int = 1,
    max_length: int,
    strip: bool = True,
) -> str:
    """A string of ``min_length``..``max_length`` characters (after stripping, if asked),
    without NUL characters (PostgreSQL text cannot hold them)."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    text = value.strip() if strip else value
    if len(text) < min_length:
        raise ValidationError(
            f"{what} must not be empty"
            if min_length == 1
            else f"{what} must have at least {min_length} characters"
        )
    if len(text) > max_length:
        raise ValidationError(f"{what} is too long ({len(text)} > {max_length} characters)")
    if "\x00" in text:
        raise ValidationError(f"{what} must not contain NUL characters")
    _check_encodable(text, what)
    return text


def check_choice(value: object, what: str, choices: Sequence[str], note: str = "") -> str:
    """One of ``choices`` (a fixed set of column values: statuses, roles, tiers...)."""
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(
            f"{what} must be one of {', '.join(choices)}{note}, got {shown(value)}"
        )
    return value


def check_number(
    value: object,
    what: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> float:
    """A finite real number (bools refused) within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number, got {type(value).__name__}")
    if integer and not isinstance(value, int):
        raise ValidationError(f"{what} must be an integer, got {shown(value)}")
    if isinstance(value, int):
        # math.isfinite() would raise OverflowError past float range: refuse such ints.
        if abs(value) >= MAX_INT_MAGNITUDE:
            raise ValidationError(f"{what} is out of range")
    elif not math.isfinite(value):
        raise ValidationError(f"{what} must be finite, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise ValidationError(f"{what} must be >= {minimum:g}, got {shown(value)}")
    if maximum is not None and value > maximum:
        raise ValidationError(f"{what} must be <= {maximum:g}, got {shown(value)}")
    return value


def check_optional_int(
    value: object, what: str, *, minimum: int = 0, maximum: int = 2**31 - 1
) -> int | None:
    """``None`` or an integer within bounds."""
    if value is None:
        return None
    return int(check_number(value, what, minimum=minimum, maximum=maximum, integer=True))


def check_json_object(value: object, what: str) -> dict[str, Any]:
    """``None`` (→ ``{}``) or a JSON-serialisable mapping with string keys, finite numbers
    and at most ``MAX_JSON_BYTES`` encoded."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a JSON object (dict), got {type(value).__name__}")
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise ValidationError(f"{what} is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} is not JSON-serialisable: {exc}") from None
    if len(encoded) > MAX_JSON_BYTES:
        raise ValidationError(f"{what} is too large ({len(encoded)} bytes > {MAX_JSON_BYTES})")
    if "\\u0000" in encoded:
        raise ValidationError(f"{what} must not contain NUL characters")
    if "\\ud" in encoded:  # a surrogate escape: valid pairs re-encode, lone ones do not
        _check_encodable(json.dumps(value, ensure_ascii=False), what)
    result: dict[str, Any] = json.loads(encoded)
    return result


def check_page(limit: object, offset: object) -> tuple[int, int]:
    """``limit`` in 1..``MAX_PAGE_SIZE`` and ``offset`` >= 0, both integers."""
    size = int(check_number(limit, "limit", minimum=1, maximum=MAX_PAGE_SIZE, integer=True))
    start = int(check_number(offset, "offset", minimum=0, maximum=2**62, integer=True))
    return size, start


def check_aware_datetime(value: object, what: str) -> datetime | None:
    """``None`` or a timezone-aware ``datetime`` (a naive one is ambiguous: refused)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{what} must be a datetime (timezone-aware), got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what} must be timezone-aware (e.g. datetime.now(UTC))")
    return value


def check_fields(
    fields: Iterable[str], allowed: Iterable[str], entity: str, *, note: str = ""
) -> None:
    """``ValidationError`` naming every field of ``fields`` not in ``allowed`` (the
    whitelist of an ``update(**changes)``)."""
    permitted = set(allowed)
    unknown = sorted(set(fields) - permitted)
    if unknown:
        raise ValidationError(
            f"cannot update {', '.join(unknown)} of a {entity}; "
            f"updatable: {', '.join(sorted(permitted))}{note}"
        )


def optional_uuid(value: object, what: str) -> uuid.UUID | None:
    """``None`` or :func:`parse_uuid`."""
    return None if value is None else parse_uuid(value, what)


def json_param(value: object, what: str) -> Jsonb:
    """:func:`check_json_object` (``None`` → ``{}``) as a jsonb query parameter."""
    return Jsonb(check_json_object(value, what))


def check_int_range(value: object, field: str, low: int, high: int) -> int:
    """An integer (bools refused) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"{field} must be an integer from {low} to {high}, got {shown(value)}"
        )
    return value
