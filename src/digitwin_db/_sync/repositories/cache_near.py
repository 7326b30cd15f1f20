# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/repositories/cache_near.py
"""The near cache's read paths: memory first, then the L2 table (and a guarded fill).

Each read here is the L2 read of ``cache.py`` / ``cache_kv.py`` with the in-process tier
(``digitwin_db.near_cache``) in front: a copy is served when present and live; otherwise
the row is read with the time it has left and installed, unless an invalidation of that key
arrived while it was being read (``NearCache.begin``/``fill``). Hit/miss statistics and
fail-open behave as in the L2 reads; a near hit is a cache hit (counted in ``hits``) and a
``near_hits`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, LiteralString, Protocol

from digitwin_db._sync.database import Database
from digitwin_db.cache_codec import (
    EMBEDDING_PERSON,
    KV_PERSON,
    bigint_array,
    check_keys,
    hash_key,
    llm_response,
    unpack_embedding,
)
from digitwin_db.cache_counters import CacheCounters
from digitwin_db.cache_registry import CACHE_NAMES
from digitwin_db.errors import DatabaseUnavailableError
from digitwin_db.kv_codec import KVCodec
from digitwin_db.models.cache import CachedLLMResponse, SearchHit
from digitwin_db.near_cache import FillToken, NearCache, freeze, thaw
from digitwin_db.near_listener import NearListener
from digitwin_db.sql import cache as q
from digitwin_db.sql import near_cache as nq

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["NearReads"]

_KV = "kv"
_EMB = "embedding"
_SEARCH = "vector_search"
_LLM = "llm_response"
_CACHE_OF = {"k": _KV, "e": _EMB}


class KVView(Protocol):
    """What the kv reads use of a namespace view (``cache_kv.KVNamespace``)."""

    name: str
    codec: KVCodec

    def _params(self, key: str) -> dict[str, Any]: ...


class CoreServices(Protocol):
    """What the near reads use of the cache core (``cache_core.CacheCore``, which
    builds them: a protocol, so that this module does not import the core back)."""

    db: Database
    counters: CacheCounters

    def read(
        self, op: str, statement: LiteralString, params: Mapping[str, Any], *, many: bool = False
    ) -> Any: ...

    def counted(self, cache: str, *, hits: int = 0, misses: int = 0) -> None: ...

    def try_flush(self) -> None: ...


class NearReads:
    """The tier, its listener, and the reads that use them (one per cache repository)."""

    def __init__(self, core: CoreServices) -> None:
        settings = core.db.settings
        self._core = core
        self._db = core.db
        self.tier = NearCache(
            max_entries=settings.near_cache_max_entries,
            max_bytes=settings.near_cache_max_bytes,
            max_age=settings.near_cache_max_age,
            flush_interval=settings.cache_stats_flush_interval,
        )
        self.listener = NearListener(
            self.tier,
            settings.near_listen_url,
            connect_timeout=settings.connect_timeout,
            application_name=settings.application_name,
        )
        self.listener.start()

    def close(self) -> None:
        self.listener.close()

    # ------------------------------------------------------------------ kv
    def kv_get(self, ns: KVView, key: str, default: Any, *, count: bool = True) -> Any:
        """The live value of a kv key (``default`` when absent). A hit needs no hashing:
        copies are found by their full key; the key is checked and hashed on a miss.
        ``count=False``: the caller counts the hit or miss (``get_or_set``)."""
        tier = self.tier
        if type(key) is str:
            entry = tier.lookup(("k", ns.name, key), counted=not count)
            if entry is not None:
                if tier.flush_due:
                    self._core.try_flush()
                return ns.codec.decode(*entry.stored)  # type: ignore[misc]
        params = ns._params(key)
        token = tier.begin(_KV, params["key_hash"])
        row = self._read_one("cache.kv.get", q.KV_GET, params, token)
        if row is None:
            if count and self._core.counters.miss(_KV):
                self._core.try_flush()
            return default
        # The stored form (JSON text or bytes: immutable) is kept and decoded on every hit
        # by the view's codec, exactly as a read from the table is.
        stored = (row[0], row[1])
        value = ns.codec.decode(row[0], row[1])
        if token is not None:
            size = len(row[0] if row[1] is None else row[1]) + len(key)
            tier.fill(token, ("k", ns.name, key), stored, size, row[2], ns.name)
        if count and self._core.counters.hit(_KV):
            self._core.try_flush()
        return value

    def kv_get_many(self, ns: KVView, keys: Iterable[str]) -> dict[str, Any]:
        """The live keys among ``keys`` with their values (``kv.get_many``)."""
        checked = check_keys(keys)
        name = ns.name
        prefix = name.encode() + b"\x00"
        found, missing = self._lookup_many(
            [("k", name, key) for key in checked],
            lambda key: hash_key(KV_PERSON, prefix + key.encode()),
        )
        decode = ns.codec.decode
        found = {key: decode(*stored) for key, stored in found.items()}  # type: ignore[misc]

        def value_of(row: Any) -> tuple[Any, object, int]:
            key, value_json, value_bytes = row[0], row[1], row[2]
            size = len(value_json if value_bytes is None else value_bytes) + len(key)
            return decode(value_json, value_bytes), (value_json, value_bytes), size

        params = {"key_hashes": bigint_array(missing.values()), "namespace": name}
        found.update(
            self._read_many(
                "cache.kv.get_many", q.KV_GET_MANY, params, missing, ("k", name), value_of
            )
        )
        wanted = len(set(checked))
        self._core.counted(_KV, hits=len(found), misses=wanted - len(found))
        return found

    # ------------------------------------------------------------------ embeddings
    def get_embedding(self, params: dict[str, Any]) -> list[float] | None:
        tier = self.tier
        ident = ("e", params["model"], params["text"])
        entry = tier.lookup(ident)
        if entry is not None:
            if tier.flush_due:
                self._core.try_flush()
            return unpack_embedding(entry.stored)  # type: ignore[arg-type]
        token = tier.begin(_EMB, params["key_hash"])
        row = self._read_one("cache.get_embedding", q.EMBEDDING_GET, params, token)
        if row is not None and token is not None:
            data: bytes = row[0]
            size = len(data) + len(params["text"]) + len(params["model"])
            tier.fill(token, ident, data, size, row[1])
        self._core.counted(_EMB, hits=row is not None, misses=row is None)
        return None if row is None else unpack_embedding(row[0])

    def get_embeddings(self, texts: list[str], *, model: str) -> list[list[float] | None]:
        """``get_embeddings`` of checked ``texts`` (a non-empty list) and ``model``."""
        prefix = model.encode() + b"\x00"
        found, missing = self._lookup_many(
            [("e", model, text) for text in texts],
            lambda text: hash_key(EMBEDDING_PERSON, prefix + text.encode()),
        )

        def value_of(row: Any) -> tuple[Any, object, int]:
            text, data = row[0], row[1]
            return data, data, len(data) + len(text) + len(model)

        params = {"key_hashes": bigint_array(missing.values()), "model": model}
        found.update(
            self._read_many(
                "cache.get_embeddings",
                q.EMBEDDING_GET_MANY,
                params,
                missing,
                ("e", model),
                value_of,
            )
        )
        result: list[list[float] | None] = [
            unpack_embedding(found[t]) if t in found else None  # type: ignore[arg-type]
            for t in texts
        ]
        hits = sum(vector is not None for vector in result)
        self._core.counted(_EMB, hits=hits, misses=len(texts) - hits)
        return result

    # ------------------------------------------------------------------ vector search
    def get_search_results(self, key: dict[str, Any]) -> list[SearchHit] | None:
        tier = self.tier
        ident = ("s", key["index_name"], key["query"], key["params"])
        entry = tier.lookup(ident)
        if entry is not None:
            if tier.flush_due:
                self._core.try_flush()
            return [SearchHit.model_construct(**hit) for hit in thaw(entry.stored)]
        token = tier.begin(_SEARCH, key["key_hash"])
        row = self._read_one("cache.get_search_results", q.SEARCH_GET, key, token)
        if row is not None and token is not None:
            stored, size = freeze(row[0])
            size += len(key["query"]) + len(key["params"])
            tier.fill(token, ident, stored, size, row[1])
        self._core.counted(_SEARCH, hits=row is not None, misses=row is None)
        if row is None:
            return None
        return [SearchHit.model_construct(**hit) for hit in row[0]]

    # ------------------------------------------------------------------ LLM responses
    def get_llm_response(
        self, key: dict[str, Any], params: Mapping[str, Any] | None
    ) -> CachedLLMResponse | None:
        """From a copy, ``hit_count`` is the count when the copy was made plus this
        process's hits of it since (the stored count stays exact: every hit is counted
        for the flush)."""
        tier = self.tier
        counters = self._core.counters
        ident = ("l", key["model"], key["prompt"], key["params"])
        entry = tier.lookup(ident, counted=True)
        if entry is not None:
            _, due = counters.llm_hit(key["key_hash"])
            copy: tuple[str, object, int, Any, Any] = entry.stored  # type: ignore[assignment]
            response, metadata, base, created_at, expires_at = copy
            hit_count = base + entry.hits
            if due:
                self._core.try_flush()
        else:
            token = tier.begin(_LLM, key["key_hash"])
            row = self._read_one("cache.get_llm_response", q.LLM_GET, key, token)
            if row is None:
                self._core.counted(_LLM, misses=1)
                return None
            pending, due = counters.llm_hit(key["key_hash"])
            response, metadata_value, stored_count, created_at, expires_at, ttl_left = row
            hit_count = stored_count + pending
            metadata, size = freeze(metadata_value)
            if token is not None:
                stored = (response, metadata, hit_count, created_at, expires_at)
                size += len(response) + len(key["prompt"]) + len(key["params"])
                tier.fill(token, ident, stored, size, ttl_left)
            if due:
                self._core.try_flush()
        return llm_response(
            key, params, (response, thaw(metadata), hit_count, created_at, expires_at)
        )

    # ------------------------------------------------------------------ shared
    def _lookup_many(
        self, keys: list[tuple[str, str, str]], hash_of: Callable[[str], int]
    ) -> tuple[dict[str, object], dict[str, int]]:
        """({item: stored form} found in memory, {item: key_hash} missing) for the keys
        of a batch read (the item is the key's last part: the kv key, the text)."""
        found: dict[str, object] = {}
        missing: dict[str, int] = {}
        for key in keys:
            item = key[-1]
            if item in found or item in missing:
                continue
            entry = self.tier.lookup(key, counted=True)
            if entry is None:
                missing[item] = hash_of(item)
            else:
                found[item] = entry.stored
        return found, missing

    def _read_many(
        self,
        op: str,
        statement: Any,
        params: dict[str, Any],
        missing: dict[str, int],
        prefix: tuple[str, str],
        value_of: Callable[[Any], tuple[Any, object, int]],
    ) -> dict[str, Any]:
        """Read the ``missing`` items in one statement (rows start with the item and end
        with the time left) and fill a copy of each, guarded like :meth:`_read_one`.
        ``value_of(row)`` gives (the value handed out, its stored form, its size)."""
        if not missing:
            return {}
        tier = self.tier
        scope = prefix[1] if prefix[0] == "k" else None
        tokens = {item: tier.begin(_CACHE_OF[prefix[0]], h) for item, h in missing.items()}
        try:
            rows = self._core.read(op, statement, params, many=True)
        except BaseException:
            for token in tokens.values():
                tier.abort(token)
            raise
        found: dict[str, Any] = {}
        for row in rows:
            item = row[0]
            token = tokens.pop(item, None)
            if item not in missing:
                continue  # a row whose key merely shares a hash
            value, stored, size = value_of(row)
            found[item] = value
            if token is not None:
                tier.fill(token, (*prefix, item), stored, size, row[-1], scope)
        for token in tokens.values():
            tier.abort(token)
        return found

    def _read_one(
        self, op: str, statement: Any, params: dict[str, Any], token: FillToken | None
    ) -> Any:
        """One row (or None) of a fill's read; fail-open like the L2 reads. The token is
        released here when there is nothing to fill."""
        try:
            row = self._core.read(op, statement, params)
        except BaseException:
            self.tier.abort(token)
            raise
        if row is None:
            self.tier.abort(token)
        return row

    def flush_counts(self, timeout: float | None) -> bool:
        """Add the tier's counters to ``cache_stats`` (part of the core's flush, same
        rules: with a ``timeout`` only when a connection comes that fast, else False;
        without one a failure is raised). True when written or nothing was pending;
        failed counts are kept."""
        taken = self.tier.take_counts()
        names = [n for n in CACHE_NAMES if any(vars(taken[n]).values())]
        if not names:
            return True
        params = {
            "names": names,
            "add_hits": [taken[n].hits - taken[n].counted for n in names],
            "hits": [taken[n].hits for n in names],
            "misses": [taken[n].misses for n in names],
            "invalidations": [taken[n].invalidations for n in names],
            "evictions": [taken[n].evictions for n in names],
        }
        try:
            with self._db.connection("cache.flush_stats", timeout=timeout) as conn:
                conn.execute(nq.FLUSH_COUNTS, params)
        except DatabaseUnavailableError:
            self.tier.restore_counts(taken)
            if timeout is None:
                raise
            return False
        except BaseException:
            self.tier.restore_counts(taken)
            raise
        return True

    def wrote(self, cache: str, key_hashes: Iterable[Any]) -> None:
        """This process changed these keys: drop its copies now (read-your-writes without
        waiting for its own notification)."""
        self.tier.invalidate(cache, key_hashes)

    def wrote_scope(self, cache: str, scope: str | None = None) -> None:
        """This process changed many keys of a cache (or kv namespace): drop them now."""
        self.tier.drop(cache, scope)

    def health(self) -> dict[str, Any]:
        return {
            **self.listener.describe(),
            "entries": len(self.tier),
            "bytes": self.tier.bytes,
        }
