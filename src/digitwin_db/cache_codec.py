"""Keys, values and input checks of the L2 cache (pure Python, no I/O).

Keys are hashed in Python to a signed 64-bit ``key_hash`` (blake2b, 8 bytes, with a
per-cache personalisation) so that every lookup is a primary-key probe; the full key is
stored beside it and compared on read. kv values are encoded by ``digitwin_db.kv_codec``.
Embeddings are float32 little-endian bytes.
"""

from __future__ import annotations

import json
import math
import sys
from array import array
from collections.abc import Iterable, Mapping
from datetime import timedelta
from hashlib import blake2b
from typing import Any

from digitwin_db.errors import ValidationError
from digitwin_db.models.cache import CachedLLMResponse, SearchHit

__all__ = [
    "EMBEDDING_PERSON",
    "KV_PERSON",
    "LLM_PERSON",
    "MAX_DIMENSIONS",
    "MAX_SECONDS",
    "SEARCH_PERSON",
    "Seconds",
    "advisory_lock_ids",
    "bigint_array",
    "canonical_json",
    "canonical_params",
    "check_hits",
    "check_key",
    "check_keys",
    "check_mapping_items",
    "check_name",
    "check_positive_seconds",
    "check_tags",
    "check_text",
    "check_ttl",
    "encode_text",
    "hash_key",
    "is_empty_batch",
    "like_prefix_pattern",
    "llm_response",
    "llm_value",
    "pack_embedding",
    "unpack_embedding",
]

# blake2b personalisation per cache: the same strings in two caches hash differently.
EMBEDDING_PERSON = b"digitwin.emb"
SEARCH_PERSON = b"digitwin.search"
LLM_PERSON = b"digitwin.llm"
KV_PERSON = b"digitwin.kv"

#: Upper bound of an embedding's dimension (the table's CHECK says the same).
MAX_DIMENSIONS = 65536
#: Longest model / index / namespace name.
MAX_NAME_LENGTH = 200
#: Class id of the get_or_set advisory locks ("dtwc"): keeps them apart from other users.
ADVISORY_CLASS_ID = 0x64747763

#: A duration: seconds (int or float) or a timedelta.
Seconds = float | timedelta

_SWAP = sys.byteorder == "big"  # the stored format is little-endian float32
_SEP = b"\x00"  # PostgreSQL text cannot hold NUL, so it separates key parts unambiguously


def hash_key(person: bytes, data: bytes) -> int:
    """Signed 64-bit hash of ``data`` (fits ``bigint``)."""
    return int.from_bytes(blake2b(data, digest_size=8, person=person).digest(), "big", signed=True)


def bigint_array(values: Iterable[int]) -> str:
    """A ``bigint[]`` parameter in PostgreSQL's array text form (bind it with a
    ``::bigint[]`` cast). psycopg's list adapter inspects every element to choose a type —
    ~1.5 µs a key, most of a 100-key ``get_many`` — while this string costs ~5 ns a key."""
    return "{" + ",".join(map(str, values)) + "}"


def advisory_lock_ids(key_hash: int) -> tuple[int, int]:
    """(class id, object id) for ``pg_advisory_xact_lock(int4, int4)`` of a key. Two keys
    sharing an object id only serialise their loaders, never mix values."""
    folded = (key_hash ^ (key_hash >> 32)) & 0xFFFFFFFF
    return ADVISORY_CLASS_ID, folded - (1 << 32) if folded >= (1 << 31) else folded


def encode_text(value: str, what: str) -> bytes:
    """UTF-8 bytes of a key part; NUL characters and lone surrogates are refused."""
    if "\x00" in value:
        raise ValidationError(f"{what} must not contain NUL characters")
    try:
        return value.encode()
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} is not valid Unicode text ({exc.reason})") from None


def check_key(value: object, what: str = "key") -> str:
    """A key of any length and content (a string without NUL). A ``str`` subclass (a
    ``str`` enum member…) is accepted as its plain string value."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
        value = str.__str__(value)
    encode_text(value, what)
    return value


def check_text(value: object, what: str) -> str:
    """A text to cache (embedding text, query, prompt): any string without NUL."""
    return check_key(value, what)


def check_name(value: object, what: str) -> str:
    """A model, index or namespace name: 1..200 characters, no NUL."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(f"{what} is too long ({len(value)} > {MAX_NAME_LENGTH})")
    encode_text(value, what)
    return str.__str__(value)


def check_keys(keys: object, what: str = "keys") -> list[str]:
    """A non-empty list of keys (a single string is refused: it is not a list of keys)."""
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise ValidationError(f"{what} must be a list of strings, got {type(keys).__name__}")
    result = [check_key(k, "key") for k in keys]
    if not result:
        raise ValidationError(f"{what} must not be empty")
    return result


# Longest TTL / timeout accepted (100 years): longer makes no sense for a cache, and far
# longer overflows PostgreSQL's interval arithmetic.
MAX_SECONDS = 100 * 365.25 * 86400


def check_positive_seconds(value: object, what: str) -> float:
    """A finite number of seconds > 0 (int, float or timedelta)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) > MAX_SECONDS:
            raise ValidationError(f"{what} must be at most {MAX_SECONDS:g} seconds")
        seconds = float(value)
    else:
        raise ValidationError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValidationError(f"{what} must be a finite number of seconds > 0, got {value!r}")
    if seconds > MAX_SECONDS:
        raise ValidationError(f"{what} must be at most {MAX_SECONDS:g} seconds (use no TTL)")
    return seconds


def check_ttl(ttl: object, default: float | None) -> float | None:
    """The TTL in seconds: ``ttl`` if given (> 0, finite), else ``default`` (None: never)."""
    if ttl is None:
        return default
    return check_positive_seconds(ttl, "ttl")


def canonical_json(value: object, what: str) -> str:
    """Compact JSON with sorted keys (equal data, equal text); NaN/inf and non-JSON types
    are ``ValidationError``."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"{what} is not JSON-serialisable: {exc}") from None


def canonical_storable_json(value: object, what: str) -> str:
    """:func:`canonical_json` that PostgreSQL can store: a lone surrogate ("\\ud800", in a
    key or a value, at any depth) is a ``ValidationError`` before any SQL, not a driver
    error."""
    text = canonical_json(value, what)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid Unicode (lone surrogate)") from None
    return text


def canonical_params(params: object, what: str = "params") -> str:
    """Generation / search params as canonical JSON (None is ``{}``)."""
    if params is None:
        return "{}"
    if not isinstance(params, Mapping):
        raise ValidationError(f"{what} must be a mapping, got {type(params).__name__}")
    if not all(isinstance(k, str) for k in params):
        raise ValidationError(f"{what} keys must be strings")
    return canonical_storable_json(dict(params), what)


def llm_value(key: dict[str, Any], response: object, metadata: object) -> dict[str, Any]:
    """The LLM entry's ``key`` parameters with its checked ``response`` text, its
    ``metadata`` (a mapping or None) as JSON and their size: what LLM_SET stores."""
    text = check_text(response, "response")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata must be a mapping, got {type(metadata).__name__}")
    metadata_json = canonical_storable_json(dict(metadata or {}), "metadata")
    size = len(text.encode()) + len(metadata_json.encode())
    return {**key, "response": text, "metadata": metadata_json, "byte_size": size}


def llm_response(
    key: dict[str, Any], params: Mapping[str, Any] | None, row: Any, pending: int = 0
) -> CachedLLMResponse:
    """The response of an LLM_GET row (validated when stored: built without validating),
    its ``hit_count`` plus ``pending`` hits this process has not flushed yet."""
    response, metadata, hit_count, created_at, expires_at = row[:5]
    return CachedLLMResponse.model_construct(
        model=key["model"],
        prompt=key["prompt"],
        params=dict(params or {}),
        response=response,
        metadata=metadata,
        hit_count=hit_count + pending,
        created_at=created_at,
        expires_at=expires_at,
    )


def pack_embedding(values: object, what: str = "embedding") -> bytes:
    """float32 little-endian bytes of a non-empty vector of finite numbers."""
    if isinstance(values, str | bytes | bytearray | Mapping) or not isinstance(values, Iterable):
        raise ValidationError(f"{what} must be a sequence of numbers, got {type(values).__name__}")
    try:
        items = list(values)
        if any(isinstance(v, bool) for v in items):
            raise TypeError("booleans are not numbers")
        vector = array("f", items)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(f"{what} must contain only numbers ({exc})") from None
    if not vector:
        raise ValidationError(f"{what} must not be empty")
    if len(vector) > MAX_DIMENSIONS:
        raise ValidationError(f"{what} has {len(vector)} dimensions (at most {MAX_DIMENSIONS})")
    # A sum of float32 values cannot overflow a double, so it is finite exactly when every
    # element is (values beyond float32's range became inf above).
    if not math.isfinite(sum(vector)):
        raise ValidationError(f"{what} contains NaN or infinite values")
    if _SWAP:
        vector.byteswap()
    return vector.tobytes()


def unpack_embedding(data: bytes) -> list[float]:
    """The floats of stored float32 little-endian bytes."""
    vector = array("f", data)
    if _SWAP:
        vector.byteswap()
    return vector.tolist()


def like_prefix_pattern(prefix: str) -> str:
    """A LIKE pattern on ``left(key, 256)`` matching keys that start with ``prefix``
    (``%``, ``_`` and ``\\`` escaped: compared literally)."""
    head = prefix[:256].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return head + "%"


def is_empty_batch(keys: object) -> bool:
    """An empty batch (list, tuple, set, dict…): batch methods do nothing for it."""
    return isinstance(keys, list | tuple | set | frozenset | Mapping) and not keys


def check_mapping_items(mapping: object, what: str) -> list[tuple[Any, Any]]:
    """The items of a non-empty mapping."""
    if not isinstance(mapping, Mapping):
        raise ValidationError(f"{what} must be a mapping, got {type(mapping).__name__}")
    items = list(mapping.items())
    if not items:
        raise ValidationError(f"{what} must not be empty")
    return items


def check_hits(hits: object) -> list[SearchHit]:
    """Search hits given as SearchHit, mappings or (id, score[, payload]) tuples."""
    if isinstance(hits, str | bytes | Mapping) or not isinstance(hits, Iterable):
        raise ValidationError(f"hits must be a list, got {type(hits).__name__}")
    result: list[SearchHit] = []
    for hit in hits:
        if isinstance(hit, SearchHit):
            result.append(hit)
            continue
        try:
            if isinstance(hit, Mapping):
                result.append(SearchHit.model_validate(dict(hit)))
            elif isinstance(hit, tuple | list) and 2 <= len(hit) <= 3:
                result.append(SearchHit(**dict(zip(("id", "score", "payload"), hit, strict=False))))
            else:
                raise ValidationError(
                    f"each hit must be a SearchHit, a mapping or an (id, score[, payload]) "
                    f"tuple, got {type(hit).__name__}"
                )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"invalid search hit: {exc}") from None
    return result


def check_tags(tags: object) -> list[str]:
    """Tags of a key/value entry: a list of names, returned sorted without duplicates."""
    if isinstance(tags, str):
        raise ValidationError("tags must be a list of strings, not one string")
    if not isinstance(tags, Iterable):
        raise ValidationError(f"tags must be a list of strings, got {type(tags).__name__}")
    return sorted({check_name(t, "tag") for t in tags})
