"""How ``cache.kv`` values become stored bytes and back (pure Python, no I/O).

Each namespace has one serializer (``cache.namespace(name, serializer=...)``):

``"json"`` (the default)
    A value is stored as JSON text in ``kv_cache.value_json`` (PostgreSQL ``json``: the
    text is kept exactly as written, so ``1e16`` stays a float and dict order is kept) and
    decoded with orjson on the read path. ``bytes``/``bytearray``/``memoryview`` values are
    stored raw in ``value_bytes`` and come back as ``bytes``. What JSON does to other types
    (encoding is one-way: a read gives the JSON form back):

    - ``tuple`` → list; ``str``/``int`` enums → their value; dataclasses → objects;
    - ``uuid.UUID`` → its string; ``datetime``/``date``/``time`` → ISO 8601 strings
      (an aware datetime keeps its offset);
    - ``decimal.Decimal`` → its exact string (``Decimal("1.10")`` → ``"1.10"``);
    - a pydantic model → ``model.model_dump(mode="json")``;
    - dict keys that are not strings (int, float, bool, None, UUID, enum, datetime) → their
      JSON string form (``{1: "a"}`` → ``{"1": "a"}``; two keys with one string form keep
      the last);
    - floats keep their type (``1e16`` → ``1e16``, ``1.0`` → ``1.0``);
    - refused with ``ValidationError`` (nothing stored): NaN and ±inf, integers outside
      ``-2**63 .. 2**64-1``, lone surrogates in any string, sets, other objects, nesting
      deeper than ~900 levels.

``"pickle"`` (opt-in)
    Any picklable object round-trips exactly. **Risk**: unpickling runs code chosen by
    whoever wrote the row; use it only when every writer of the namespace — everyone who
    can write ``kv_cache`` — is trusted.

any object with ``dumps(value) -> bytes | str`` and ``loads(bytes) -> value``
    e.g. ``msgpack``, or your own. Its output is stored in ``value_bytes``; its errors
    become ``ValidationError``.

Whatever the serializer, a row written as JSON (by a ``"json"`` namespace, or by
``incr``/``decr``) is read as JSON.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import orjson

from digitwin_db.errors import ValidationError

__all__ = [
    "JSON",
    "PICKLE",
    "KVCodec",
    "Serializer",
    "decode_json",
    "encode_json",
    "resolve_codec",
    "values_equal",
]

#: orjson options of a stored value: dict keys that are not strings become their JSON
#: string form; dict order is kept (no sorting: nothing compares stored texts).
_OPTIONS = orjson.OPT_NON_STR_KEYS

#: Range of integers orjson writes and reads back exactly (outside it, it reads floats).
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


@runtime_checkable
class Serializer(Protocol):
    """Anything with ``dumps`` and ``loads`` (``pickle``, ``msgpack``, your own)."""

    def dumps(self, value: Any, /) -> Any: ...

    def loads(self, data: Any, /) -> Any: ...


def _default(value: Any) -> Any:
    """Types orjson does not know: Decimal and pydantic models (anything else: TypeError)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("Decimal NaN/infinity is not JSON")
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _stdlib_default(value: Any) -> Any:
    """The fallback encoder's hook: orjson's native extras plus :func:`_default`."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    return _default(value)


def _bad_number(value: Any) -> str | None:
    """Why ``value`` (walked iteratively, no recursion limit) cannot be stored as JSON
    exactly: a non-finite float or an integer out of range; None when it can."""
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if isinstance(item, float):
            if not math.isfinite(item):
                return "NaN and infinity are not JSON"
        elif isinstance(item, int) and not isinstance(item, bool):
            if not _INT_MIN <= item <= _INT_MAX:
                return "integers must lie in -2**63 .. 2**64-1"
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def encode_json(value: object, what: str = "value") -> bytes:
    """UTF-8 JSON of a value (see the module docstring for what each type becomes);
    ``ValidationError`` for anything that would not be stored faithfully."""
    try:
        data = orjson.dumps(value, default=_default, option=_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        reason = str(exc)
        if "Recursion limit" not in reason:
            if "64-bit" in reason:
                reason = "integers must lie in -2**63 .. 2**64-1"
            raise ValidationError(f"{what} is not JSON-serialisable: {reason[:200]}") from None
        # orjson stops at 254 levels; the standard library goes deeper (to ~900).
        data = _encode_deep(value, what)
    # orjson writes NaN and infinity as null: look for them only when a null is there.
    if b"null" in data:
        problem = _bad_number(value)
        if problem:
            raise ValidationError(f"{what} is not JSON-serialisable: {problem}")
    return data


def _encode_deep(value: object, what: str) -> bytes:
    try:
        text = json.dumps(
            value,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
            default=_stdlib_default,
        )
        data = text.encode()
    except UnicodeEncodeError:
        raise ValidationError(f"{what} contains a lone surrogate (not valid Unicode)") from None
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise ValidationError(f"{what} is not JSON-serialisable: {reason}") from None
    problem = _bad_number(value)
    if problem:
        raise ValidationError(f"{what} is not JSON-serialisable: {problem}")
    return data


def decode_json(text: str | bytes) -> Any:
    """A stored JSON value (orjson; the standard library past orjson's nesting limit)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


@dataclass(frozen=True, slots=True)
class KVCodec:
    """The encode/decode pair of one namespace. ``serializer`` None means ``"json"``."""

    name: str
    serializer: Serializer | None = None

    def encode(self, value: object) -> tuple[str | None, bytes | None, int]:
        """(JSON text, bytes, stored size) of a value: exactly one of the first two is set."""
        if self.serializer is None:
            if isinstance(value, bytes | bytearray | memoryview):
                raw = bytes(value)
                return None, raw, len(raw)
            data = encode_json(value)
            return data.decode(), None, len(data)
        try:
            out = self.serializer.dumps(value)
        except Exception as exc:
            raise ValidationError(
                f"value cannot be serialised by the {self.name!r} serializer: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        if isinstance(out, str):
            try:
                out = out.encode()
            except UnicodeEncodeError:
                raise ValidationError(
                    "value contains a lone surrogate (not valid Unicode)"
                ) from None
        if not isinstance(out, bytes | bytearray | memoryview):
            raise ValidationError(
                f"the {self.name!r} serializer's dumps() returned {type(out).__name__}, "
                "not bytes or str"
            )
        raw = bytes(out)
        return None, raw, len(raw)

    def normalize(self, value: object) -> Any:
        """``value`` as a read would return it after storing it (``"json"``: a tuple
        becomes a list, a UUID its string…); compare_and_set compares in this form."""
        if self.serializer is not None:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        return decode_json(encode_json(value, "expected"))

    def decode(self, value_json: str | None, value_bytes: bytes | None) -> Any:
        """The value of a stored row (``value_json`` as text, or ``value_bytes``)."""
        if value_json is not None:
            return decode_json(value_json)
        if self.serializer is None:
            return value_bytes
        try:
            return self.serializer.loads(value_bytes)
        except Exception as exc:
            raise ValidationError(
                f"a stored value cannot be read by the {self.name!r} serializer "
                f"({type(exc).__name__}); was it written with another one?"
            ) from None


class _Pickle:
    """``pickle`` at the highest protocol (trusted data only: loading runs code)."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        return pickle.loads(data)  # opt-in, documented as trusted-only


JSON = KVCodec("json")
PICKLE = KVCodec("pickle", _Pickle())

_BY_NAME: dict[str, KVCodec] = {"json": JSON, "pickle": PICKLE}


def resolve_codec(serializer: object) -> KVCodec:
    """The codec of ``serializer``: ``"json"``, ``"pickle"`` or an object with callable
    ``dumps`` and ``loads``; anything else is a ``ValidationError``."""
    if isinstance(serializer, str):
        try:
            return _BY_NAME[serializer]
        except KeyError:
            raise ValidationError(
                f"serializer must be 'json', 'pickle' or an object with dumps/loads, "
                f"got {serializer[:50]!r}"
            ) from None
    dumps: Callable[..., Any] | None = getattr(serializer, "dumps", None)
    loads: Callable[..., Any] | None = getattr(serializer, "loads", None)
    if not callable(dumps) or not callable(loads):
        raise ValidationError(
            f"serializer must be 'json', 'pickle' or an object with dumps/loads, "
            f"got {type(serializer).__name__}"
        )
    label = getattr(serializer, "__name__", type(serializer).__name__)
    return KVCodec(str(label)[:50], serializer)  # type: ignore[arg-type]


def values_equal(stored: Any, expected: Any) -> bool:
    """``stored == expected`` for compare_and_set / delete_if, where a comparison that
    raises counts as unequal."""
    try:
        return bool(stored == expected)
    except Exception:
        return False
