"""The generic TTL key/value store: ``cache.kv`` and ``cache.namespace(name)``.

One namespace is a view on ``kv_cache`` rows of that namespace. Values go through the
namespace's serializer (``digitwin_db.kv_codec``: JSON by default, bytes kept raw); keys are
strings (``str`` subclasses such as a ``str`` enum included) of any length and content.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, LiteralString

from digitwin_db._async.cache_core import AsyncCacheCore
from digitwin_db.batching import HashProbe
from digitwin_db.cache_codec import (
    KV_PERSON,
    Seconds,
    check_key,
    check_keys,
    check_name,
    check_positive_seconds,
    check_tags,
    check_ttl,
    is_empty_batch,
    like_prefix_pattern,
)
from digitwin_db.errors import (
    TRANSIENT_ERRORS,
    QueryError,
    TransientError,
    ValidationError,
)
from digitwin_db.key_hash import PrefixHasher
from digitwin_db.kv_codec import resolve_codec, values_equal
from digitwin_db.sql import cache as q
from digitwin_db.validation import check_int_range

__all__ = ["AsyncKVNamespace"]

logger = logging.getLogger("digitwin_db.cache")

_MISSING: Any = object()
_CACHE = "kv"
#: Concurrent kv.get calls run as one `= ANY` probe (group commit of reads).
_GETS = HashProbe(q.KV_GET_BY_HASH, q.KV_GET_BY_HASHES)


class AsyncKVNamespace:
    """Key/value operations on one namespace of ``kv_cache``.

    TTLs are seconds (int, float or timedelta) > 0; ``ttl=None`` means
    ``Settings.kv_default_ttl`` (itself None by default: no expiry). An expired key is
    absent for every method, even before cleanup removes its row.
    """

    def __init__(
        self, core: AsyncCacheCore, name: str, *, serializer: object = "json", near: bool = True
    ) -> None:
        self.name = check_name(name, "namespace")
        #: Encodes and decodes this namespace's values (``digitwin_db.kv_codec``).
        self.codec = resolve_codec(serializer)
        self._core = core
        self._near = core.near if near else None
        self._db = core.db
        self._counters = core.counters
        self._prefix = self.name.encode() + b"\x00"
        self._hash = PrefixHasher(KV_PERSON, self._prefix)
        self._default_ttl = core.default_ttl[_CACHE]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # ------------------------------------------------------------------ keys
    def _key_hash(self, key: str) -> int:
        """The key's hash (validated: a string without NUL or lone surrogates)."""
        if type(key) is not str or "\x00" in key:
            key = check_key(key)
        try:
            data = key.encode()
        except UnicodeEncodeError:
            check_key(key)
            raise
        return self._hash(data)

    def _params(self, key: str) -> dict[str, Any]:
        if type(key) is not str:
            key = check_key(key)  # a str subclass (a str enum…) as its plain value
        return {"key_hash": self._key_hash(key), "namespace": self.name, "key": key}

    def _many(self, keys: object) -> dict[str, Any]:
        checked = check_keys(keys)
        hashes = [self._hash(k.encode()) for k in checked]
        return {"key_hashes": hashes, "keys": checked, "namespace": self.name}

    def _get_many_params(self, keys: object) -> tuple[set[str], dict[str, Any]]:
        """The requested keys, and the parameters of ``KV_GET_MANY``."""
        checked = check_keys(keys)
        return set(checked), {"key_hashes": self._hash.array(checked), "namespace": self.name}

    def _value_params(
        self,
        key: str,
        value: object,
        ttl: object,
        tags: object,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = self._params(key) if params is None else dict(params)
        value_json, value_bytes, size = self.codec.encode(value)
        params.update(
            value_json=value_json,
            value_bytes=value_bytes,
            byte_size=size + len(params["key"]),
            tags=check_tags(tags),
            ttl=check_ttl(ttl, self._default_ttl),
        )
        return params

    async def _write(
        self, op: str, statement: LiteralString, params: dict[str, Any], key_hashes: Any
    ) -> Any:
        """Run one write of this namespace, then drop this process's near copies of
        ``key_hashes`` (one hash, a list, or None: the whole namespace) so that a read after
        it sees it (``AsyncCacheCore.dropped``); its first row, or None."""
        hashes = [key_hashes] if isinstance(key_hashes, int) else key_hashes
        return await self._core.write(op, statement, params, _CACHE, hashes, self.name)

    # ------------------------------------------------------------------ reads
    async def get(self, key: str, default: Any = None) -> Any:
        """The value of a live key, else ``default``. One primary-key probe.

        With ``Settings.cache_fail_open`` a transient database error is a logged miss.
        """
        if type(key) is not str:
            key = check_key(key)  # a str subclass (a str enum…) as its plain value
        if self._near is not None:
            return await self._near.kv_get(self, key, default)
        probe = (self._key_hash(key),)
        try:
            # Concurrent gets share one probe statement (the batcher); alone, it runs at once.
            row = await self._db.batcher("cache.kv.get", _GETS).execute(
                q.KV_GET_BY_HASH, probe, (self.name, key)
            )
        except TRANSIENT_ERRORS as exc:
            self._core.read_failed("cache.kv.get", exc)
            row = None
        if row is None:
            await self._core.counted(_CACHE, misses=1)
            return default
        await self._core.counted(_CACHE, hits=1)
        return self.codec.decode(row[0], row[1])

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The live keys among ``keys`` with their values (absent keys are left out), in one
        round trip. An empty list returns ``{}`` without a query."""
        if is_empty_batch(keys):
            return {}
        if self._near is not None:
            return await self._near.kv_get_many(self, keys)
        wanted, params = self._get_many_params(keys)
        rows = await self._core.read("cache.kv.get_many", q.KV_GET_MANY, params, many=True)
        # The full key is compared here: a row whose key merely shares a hash is dropped.
        decode = self.codec.decode
        found = {key: decode(vj, vb) for key, vj, vb, _ in rows if key in wanted}
        await self._core.counted(_CACHE, hits=len(found), misses=len(wanted) - len(found))
        return found

    async def exists(self, key: str) -> bool:
        """True when the key is present and not expired."""
        return await self._ttl_row("cache.kv.exists", key) is not None

    async def ttl(self, key: str) -> float | None:
        """Seconds until the key expires; None when it never expires or is absent."""
        row = await self._ttl_row("cache.kv.ttl", key)
        return None if row is None or row[0] is None else float(row[0])

    async def _ttl_row(self, op: str, key: str) -> Any:
        """The (seconds left,) of a live key, or None when it has none."""
        async with self._db.connection(op) as conn:
            cur = await conn.execute(q.KV_TTL, self._params(key))
            return await cur.fetchone()

    # ------------------------------------------------------------------ writes
    async def set(
        self, key: str, value: Any, *, ttl: Seconds | None = None, tags: Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` (encoded by the namespace's serializer; bytes are kept
        raw by ``"json"``), replacing any value.

        ``tags`` label the entry for :meth:`invalidate_tags`.
        """
        params = self._value_params(key, value, ttl, tags)
        await self._write("cache.kv.set", q.KV_SET, params, params["key_hash"])
        await self._core.wrote(_CACHE)

    async def add(
        self, key: str, value: Any, *, ttl: Seconds | None = None, tags: Iterable[str] = ()
    ) -> bool:
        """Store ``value`` only if the key is absent (or expired); True when stored."""
        params = self._value_params(key, value, ttl, tags)
        stored = await self._write("cache.kv.add", q.KV_ADD, params, params["key_hash"]) is not None
        if stored:
            await self._core.wrote(_CACHE)
        return stored

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        *,
        ttl: Seconds | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Store several values in one statement (all or none). An empty mapping does
        nothing."""
        if not isinstance(mapping, Mapping):
            raise ValidationError(f"mapping must be a mapping, got {type(mapping).__name__}")
        if not mapping:
            return
        params = self._many(list(mapping))
        values_json: list[str | None] = []
        values_bytes: list[bytes | None] = []
        sizes: list[int] = []
        for key, value in zip(params["keys"], mapping.values(), strict=True):
            value_json, value_bytes, size = self.codec.encode(value)
            values_json.append(value_json)
            values_bytes.append(value_bytes)
            sizes.append(size + len(key))
        params.update(
            values_json=values_json,
            values_bytes=values_bytes,
            byte_sizes=sizes,
            tags=check_tags(tags),
            ttl=check_ttl(ttl, self._default_ttl),
        )
        await self._write("cache.kv.set_many", q.KV_SET_MANY, params, params["key_hashes"])
        await self._core.wrote(_CACHE, len(sizes))

    async def delete(self, key: str) -> bool:
        """Remove the key; True when a live value was removed."""
        params = self._params(key)
        row = await self._write("cache.kv.delete", q.KV_DELETE, params, params["key_hash"])
        return bool(row and row[0])

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Remove several keys in one statement; returns how many live values were removed.
        An empty list returns 0 without a query."""
        if is_empty_batch(keys):
            return 0
        params = self._many(keys)
        row = await self._write(
            "cache.kv.delete_many", q.KV_DELETE_MANY, params, params["key_hashes"]
        )
        return int(row[0]) if row else 0

    async def expire(self, key: str, ttl: Seconds) -> bool:
        """Give a live key a new TTL (seconds from now); False when it is absent."""
        params = self._params(key)
        params["ttl"] = check_positive_seconds(ttl, "ttl")
        return (
            await self._write("cache.kv.expire", q.KV_EXPIRE, params, params["key_hash"])
            is not None
        )

    async def persist(self, key: str) -> bool:
        """Remove a live key's expiry; False when it is absent."""
        params = self._params(key)
        return (
            await self._write("cache.kv.persist", q.KV_PERSIST, params, params["key_hash"])
            is not None
        )

    async def incr(self, key: str, amount: int = 1, *, ttl: Seconds | None = None) -> int:
        """Add ``amount`` atomically (one upsert) and return the new value; an absent or
        expired key starts at 0. ``ttl`` applies only when this call creates the key (in the
        same statement: a fixed-window counter created right after its key expired gets its
        expiry); a live key keeps its TTL. A live non-integer value (a float included) is a
        ``ValidationError``."""
        if type(amount) is not int:
            raise ValidationError(f"amount must be an integer, got {type(amount).__name__}")
        params = self._params(key)
        params.update(amount=amount, ttl=check_ttl(ttl, self._default_ttl))
        try:
            row = await self._write("cache.kv.incr", q.KV_INCR, params, params["key_hash"])
        except ValidationError as exc:
            if exc.constraint == "kv_cache_one_value":
                raise ValidationError(
                    f"cache.kv.incr: the value of {key[:100]!r} is not an integer"
                ) from exc
            raise
        if row is None:  # an upsert with RETURNING always returns its row
            raise QueryError("cache.kv.incr: the upsert returned no row")
        return int(row[0])

    async def decr(self, key: str, amount: int = 1, *, ttl: Seconds | None = None) -> int:
        """Subtract ``amount`` atomically; same rules as :meth:`incr`."""
        if type(amount) is not int:
            raise ValidationError(f"amount must be an integer, got {type(amount).__name__}")
        return await self.incr(key, -amount, ttl=ttl)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (compared literally: ``%`` and ``_``
        are plain characters). Returns how many live values were removed."""
        prefix = check_key(prefix, "prefix")
        if not prefix:
            raise ValidationError("prefix must not be empty (use clear() to empty a namespace)")
        params = {"namespace": self.name, "prefix": prefix, "pattern": like_prefix_pattern(prefix)}
        row = await self._write("cache.kv.delete_prefix", q.KV_DELETE_PREFIX, params, None)
        return int(row[0]) if row else 0

    async def invalidate_tags(self, *tags: str) -> int:
        """Remove every key carrying any of ``tags``; returns how many live values were
        removed. No tags is a ``ValidationError``."""
        checked = check_tags(tags)
        if not checked:
            raise ValidationError("invalidate_tags needs at least one tag")
        params = {"namespace": self.name, "tags": checked}
        row = await self._write("cache.kv.invalidate_tags", q.KV_INVALIDATE_TAGS, params, None)
        return int(row[0]) if row else 0

    async def clear(self) -> int:
        """Remove every key of this namespace; returns how many live values were removed."""
        row = await self._write("cache.kv.clear", q.KV_CLEAR, {"namespace": self.name}, None)
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ cache-aside
    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        ttl: Seconds | None = None,
        lock_timeout: Seconds = 5.0,
    ) -> Any:
        """The cached value of ``key``, else ``loader()``'s result, stored and returned.

        Stampede protection: on a miss the caller takes a transaction-scoped advisory lock
        on the key (``pg_advisory_xact_lock``, so it works behind PgBouncer in transaction
        mode), checks again, and only then runs the loader and stores its value in the same
        transaction. N concurrent callers run the loader once; the others wait (at most
        ``lock_timeout`` seconds) and return the stored value. After a timed-out wait the
        caller loads and stores the value itself. In the asyncio API ``loader`` may be a
        coroutine function. If it raises, nothing is cached and the error propagates. A miss
        returns the loaded value as a hit will return it (decoded from what was stored: with
        ``"json"`` a tuple comes back as a list either way).

        Each waiting caller holds a pooled connection (in its transaction) until the lock is
        granted, and the loader runs while its caller holds one: size the pool for the
        expected concurrency, and remember that a loader reading the database needs a
        second connection.
        """
        params = self._params(key)
        ttl_seconds = check_ttl(ttl, self._default_ttl)
        wait = check_positive_seconds(lock_timeout, "lock_timeout")
        if not callable(loader):
            raise ValidationError("loader must be callable")
        found = await self._lookup(params)
        if found is not _MISSING:
            await self._core.counted(_CACHE, hits=1)
            return found
        locked = False
        try:
            async with self._db.transaction("cache.kv.get_or_set") as conn:
                await self._core.lock_key(conn, params["key_hash"], wait)
                locked = True
                cur = await conn.execute(q.KV_GET, params, binary=True)
                row = await cur.fetchone()
                if row is not None:
                    self._counters.hit(_CACHE)
                    return self.codec.decode(row[0], row[1])
                self._counters.miss(_CACHE)
                value = await self._load(loader)
                stored = self._value_params(key, value, ttl_seconds, (), params)
                await conn.execute(q.KV_SET, stored)
                # Return what a hit will return (``"json"``: a tuple as a list...).
                value = self.codec.decode(stored["value_json"], stored["value_bytes"])
        except TransientError:
            if locked:
                raise
            # The lock holder's loader is slower than lock_timeout: use its value if it is
            # there by now, else load and store it ourselves (never silently drop it).
            logger.warning(
                "cache.kv.get_or_set: lock wait exceeded %.3gs for a key of %r; loading anyway",
                wait,
                self.name,
            )
            found = await self._lookup(params)
            if found is not _MISSING:
                self._counters.hit(_CACHE)
                return found
            self._counters.miss(_CACHE)
            value = await self._load(loader)
            await self.set(key, value, ttl=ttl_seconds)
            return self.codec.normalize(value)
        self._core.dropped(_CACHE, [params["key_hash"]])  # after COMMIT
        await self._core.wrote(_CACHE)
        return value

    async def _load(self, loader: Callable[[], Any]) -> Any:
        value = loader()
        if True:  # ASYNC
            if inspect.isawaitable(value):
                value = await value
        else:
            if inspect.isawaitable(value):
                # Nothing here can run a coroutine: close it (no "never run" warning).
                close = getattr(value, "close", None)
                if callable(close):
                    close()
                raise ValidationError("loader returned an awaitable: use the asyncio API for it")
        return value

    async def _lookup(self, params: dict[str, Any]) -> Any:
        """The live value, or ``_MISSING`` (a stored None is a value). Fail-open."""
        if self._near is not None:
            return await self._near.kv_get(self, params["key"], _MISSING, count=False)
        row = await self._core.read("cache.kv.get", q.KV_GET, params)
        if row is None:
            return _MISSING
        return self.codec.decode(row[0], row[1])

    # ------------------------------------------------------------------ listing
    async def keys(self, prefix: str = "", *, page_size: int = 1000) -> AsyncIterator[str]:
        """The live keys of this namespace starting with ``prefix`` (all keys by default),
        in no particular order, fetched ``page_size`` at a time (asyncio API: an
        asynchronous iterator). Each page is one statement: no connection is held between
        pages. A key live for the whole walk is listed exactly once; one written or deleted
        meanwhile may or may not be."""
        prefix = check_key(prefix, "prefix")
        check_int_range(page_size, "page_size", 1, 100_000)
        params: dict[str, Any] = {
            "namespace": self.name,
            "prefix": prefix,
            "pattern": like_prefix_pattern(prefix),
            "page_size": page_size,
            "after": -(2**63) - 1,
        }
        while True:
            async with self._db.connection("cache.kv.keys") as conn:
                cur = await conn.execute(q.KV_KEYS_PAGE, params)
                rows = await cur.fetchall()
            for _, key in rows:
                yield key
            if len(rows) < page_size:
                return
            params["after"] = rows[-1][0]

    # ------------------------------------------------------------------ compare-and-X
    async def compare_and_set(
        self, key: str, expected: Any, new: Any, *, ttl: Seconds | None = None
    ) -> bool:
        """Replace the value of ``key`` with ``new`` only if its live value equals
        ``expected`` (Python ``==`` between the stored value as read and ``expected`` as it
        would be read back: with ``"json"`` a tuple matches the stored list); True when
        replaced. An absent or expired key is never replaced (use :meth:`add` to create
        one). ``ttl`` sets a new expiry; None keeps the key's current one. Atomic: the row
        is locked while compared, so among concurrent callers with the same ``expected``
        exactly one wins."""
        params = self._params(key)
        expected = self.codec.normalize(expected)
        value_json, value_bytes, size = self.codec.encode(new)
        params.update(
            value_json=value_json,
            value_bytes=value_bytes,
            byte_size=size + len(params["key"]),
            ttl=None if ttl is None else check_positive_seconds(ttl, "ttl"),
        )
        if not await self._if_equal(
            "cache.kv.compare_and_set", q.KV_REPLACE_VALUE, params, expected
        ):
            return False
        await self._core.wrote(_CACHE)
        return True

    async def delete_if(self, key: str, expected: Any) -> bool:
        """Delete ``key`` only if its live value equals ``expected`` (Python ``==``);
        True when deleted. Atomic like :meth:`compare_and_set`."""
        params = self._params(key)
        expected = self.codec.normalize(expected)
        return await self._if_equal("cache.kv.delete_if", q.KV_DELETE_LOCKED, params, expected)

    async def _if_equal(
        self, op: str, statement: LiteralString, params: dict[str, Any], expected: Any
    ) -> bool:
        """Run ``statement`` if the key's live value equals ``expected``, in one transaction
        holding the row lock from the read to the write; True when it ran."""
        async with self._db.transaction(op) as conn:
            cur = await conn.execute(q.KV_GET_FOR_UPDATE, params, binary=True)
            row = await cur.fetchone()
            if row is None or not values_equal(self.codec.decode(row[0], row[1]), expected):
                return False
            await conn.execute(statement, params)
        self._core.dropped(_CACHE, [params["key_hash"]])  # after COMMIT
        return True
