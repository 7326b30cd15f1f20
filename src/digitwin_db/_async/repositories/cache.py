"""The L2 cache in PostgreSQL: embeddings, vector-search results, LLM responses, and the
generic key/value store (``cache.kv``, ``cache.namespace(name)`` in ``cache_kv.py``).

Two layers, as in Solid Cache: ``digitwin_db.sql.cache`` owns every statement; this class
owns the cache semantics — key hashing and validation (``digitwin_db.cache_codec``) and expiry
cleanup. Counters, fail-open reads, default TTLs and caps live in the internal core
(``cache_core.py``) that this class and every namespace view share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from psycopg import sql

from digitwin_db._async.cache_core import AsyncCacheCore
from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.repositories.base import AsyncRepository
from digitwin_db._async.repositories.cache_kv import AsyncKVNamespace
from digitwin_db._async.repositories.cache_lock import AsyncCacheLock
from digitwin_db.cache_codec import (
    EMBEDDING_PERSON,
    LLM_PERSON,
    SEARCH_PERSON,
    Seconds,
    canonical_json,
    canonical_params,
    check_hits,
    check_mapping_items,
    check_name,
    check_positive_seconds,
    check_text,
    check_ttl,
    encode_text,
    hash_key,
    llm_response,
    llm_value,
    pack_embedding,
    unpack_embedding,
)
from digitwin_db.cache_registry import CACHE_NAMES, CACHE_TABLES, STATS_TABLE, cache_spec
from digitwin_db.errors import (
    DigitwinDBError,
    QueryError,
    TransientError,
    ValidationError,
)
from digitwin_db.key_hash import PrefixHasher
from digitwin_db.models.cache import (
    CacheCounts,
    CachedLLMResponse,
    CacheStats,
    CleanupReport,
    SearchHit,
)
from digitwin_db.models.common import RepositoryCheck
from digitwin_db.sql import cache as q
from digitwin_db.sql import near_cache as nq
from digitwin_db.validation import check_int_range

__all__ = ["DEFAULT_NAMESPACE", "AsyncCacheRepository"]

logger = logging.getLogger("digitwin_db.cache")

#: Namespace of ``cache.kv``.
DEFAULT_NAMESPACE = "default"

_EMB = "embedding"
_SEARCH = "vector_search"
_LLM = "llm_response"


class AsyncCacheRepository(AsyncRepository):
    """``factory.cache``: the embedding, vector-search and LLM-response caches, and the
    key/value store ``kv`` (plus :meth:`namespace` views).

    Reads never write: hit/miss counts and LLM hit counts are aggregated in this process
    and flushed in one statement every ``Settings.cache_stats_flush_interval`` seconds
    (piggy-backed on calls, only when a pooled connection is free at once: a read never
    waits for a flush), on :meth:`flush_stats` and on :meth:`close` (exact after those).
    ``get_*`` reads are fail-open (``Settings.cache_fail_open``): a transient database
    error is a logged miss; writes always raise.
    """

    name: ClassVar[str] = "cache"
    tables: ClassVar[tuple[str, ...]] = (*CACHE_TABLES, STATS_TABLE, "cache_locks")

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        self._core = AsyncCacheCore(db)
        self._ttl = self._core.default_ttl
        #: The near cache (``Settings.near_cache``): memory in front of these tables.
        self.near = self._core.near
        self.kv = AsyncKVNamespace(self._core, DEFAULT_NAMESPACE)

    def namespace(
        self, name: str, *, serializer: object = "json", near: bool = True
    ) -> AsyncKVNamespace:
        """A key/value view on another namespace (``cache.kv`` is ``"default"``) whose
        values go through ``serializer``: ``"json"`` (default), ``"pickle"`` (trusted data
        only) or an object with ``dumps``/``loads`` (see ``digitwin_db.kv_codec``).
        ``near=False`` keeps this view out of the near cache (every read goes to the
        table)."""
        return AsyncKVNamespace(self._core, name, serializer=serializer, near=near)

    # ------------------------------------------------------------------ embeddings
    async def get_embedding(self, text: str, *, model: str) -> list[float] | None:
        """The cached vector of ``text`` under ``model`` (float32 precision), or None."""
        if type(text) is not str or type(model) is not str or "\x00" in text:
            check_text(text, "text")
            check_name(model, "model")
        data = encode_text(model, "model") + b"\x00" + encode_text(text, "text")
        params = {"key_hash": hash_key(EMBEDDING_PERSON, data), "model": model, "text": text}
        if self.near is not None:
            return await self.near.get_embedding(params)
        row = await self._core.read("cache.get_embedding", q.EMBEDDING_GET, params)
        await self._core.counted(_EMB, hits=row is not None, misses=row is None)
        return None if row is None else unpack_embedding(row[0])

    async def get_embeddings(self, texts: Sequence[str], *, model: str) -> list[list[float] | None]:
        """The cached vectors of ``texts`` (None where missing), in order, in one round trip.
        An empty list returns ``[]`` without a query."""
        model = check_name(model, "model")
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise ValidationError("texts must be a list of strings")
        texts = [check_text(t, "text") for t in texts]
        if not texts:
            return []
        if self.near is not None:
            return await self.near.get_embeddings(texts, model=model)
        hashes = PrefixHasher(EMBEDDING_PERSON, model.encode() + b"\x00").array(texts)
        params = {"key_hashes": hashes, "model": model}
        rows = await self._core.read(
            "cache.get_embeddings", q.EMBEDDING_GET_MANY, params, many=True
        )
        found = {text: data for text, data, _ in rows}
        result: list[list[float] | None] = [
            unpack_embedding(found[t]) if t in found else None for t in texts
        ]
        hits = sum(vector is not None for vector in result)
        await self._core.counted(_EMB, hits=hits, misses=len(texts) - hits)
        return result

    async def set_embedding(
        self, text: str, embedding: Sequence[float], *, model: str, ttl: Seconds | None = None
    ) -> None:
        """Cache ``embedding`` (stored as float32) for ``text`` under ``model``.

        ``ValidationError`` (and nothing stored) for an empty vector, NaN/inf or non-numeric
        values, or a dimension other than that of the model's live cached embeddings.
        """
        text = check_text(text, "text")
        model = check_name(model, "model")
        packed = pack_embedding(embedding)
        await self._store_embeddings("cache.set_embedding", model, [text], [packed], ttl)

    async def set_embeddings(
        self,
        mapping: Mapping[str, Sequence[float]],
        *,
        model: str,
        ttl: Seconds | None = None,
    ) -> None:
        """Cache several embeddings of one model in one statement (all or none); every
        vector must have the same dimension. Same checks as :meth:`set_embedding`. An empty
        mapping does nothing."""
        model = check_name(model, "model")
        if isinstance(mapping, Mapping) and not mapping:
            return
        items = check_mapping_items(mapping, "mapping")
        texts: list[str] = []
        packed: list[bytes] = []
        for text, vector in items:
            texts.append(check_text(text, "text"))
            packed.append(pack_embedding(vector, f"embedding of {str(text)[:50]!r}"))
        if any(len(p) != len(packed[0]) for p in packed):
            raise ValidationError(
                "all embeddings of one set_embeddings call must have one dimension"
            )
        await self._store_embeddings("cache.set_embeddings", model, texts, packed, ttl)

    async def _store_embeddings(
        self, op: str, model: str, texts: list[str], packed: list[bytes], ttl: object
    ) -> None:
        """Store checked embeddings (one dimension) of ``model`` in one statement, unless
        the model's live embeddings have another dimension (``ValidationError``)."""
        dimensions = len(packed[0]) // 4
        prefix = model.encode() + b"\x00"
        hashes = [hash_key(EMBEDDING_PERSON, prefix + t.encode()) for t in texts]
        params = {
            "key_hashes": hashes,
            "texts": texts,
            "embeddings": packed,
            "byte_sizes": [len(p) + len(t) for p, t in zip(packed, texts, strict=True)],
            "model": model,
            "dimensions": dimensions,
            "ttl": check_ttl(ttl, self._ttl[_EMB]),
        }
        row = await self._core.write(op, q.EMBEDDING_SET, params, _EMB, hashes)
        if row is None:
            raise QueryError("cache: the embedding upsert returned no row")
        if row[0] is not None:
            raise ValidationError(
                f"embedding has {dimensions} dimensions but model {model[:100]!r} already has "
                f"embeddings of {row[0]} dimensions in the cache"
            )
        await self._core.wrote(_EMB, len(texts))

    # ------------------------------------------------------------------ vector search
    def _search_params(self, query: object, index: object, params: object) -> dict[str, Any]:
        query = check_text(query, "query")
        index = check_name(index, "index")
        params_json = canonical_params(params)
        data = b"\x00".join((index.encode(), query.encode(), params_json.encode()))
        return {
            "key_hash": hash_key(SEARCH_PERSON, data),
            "index_name": index,
            "query": query,
            "params": params_json,
        }

    async def get_search_results(
        self, query: str, *, index: str, params: Mapping[str, Any] | None = None
    ) -> list[SearchHit] | None:
        """The cached ranked hits of ``query`` on ``index`` with ``params``, or None."""
        key = self._search_params(query, index, params)
        if self.near is not None:
            return await self.near.get_search_results(key)
        row = await self._core.read("cache.get_search_results", q.SEARCH_GET, key)
        await self._core.counted(_SEARCH, hits=row is not None, misses=row is None)
        if row is None:
            return None
        # Validated when stored: build the models without validating again.
        return [SearchHit.model_construct(**hit) for hit in row[0]]

    async def set_search_results(
        self,
        query: str,
        hits: Sequence[SearchHit | Mapping[str, Any] | tuple[Any, ...]],
        *,
        index: str,
        params: Mapping[str, Any] | None = None,
        ttl: Seconds | None = None,
    ) -> None:
        """Cache the ranked ``hits`` (SearchHit, mappings or (id, score[, payload]) tuples)
        of ``query`` on ``index``; their order is kept. An empty list is a valid result."""
        key = self._search_params(query, index, params)
        checked = check_hits(hits)
        hits_json = canonical_json([h.model_dump() for h in checked], "hits")
        key.update(
            hits=hits_json,
            byte_size=len(hits_json.encode()),
            ttl=check_ttl(ttl, self._ttl[_SEARCH]),
        )
        await self._core.write(
            "cache.set_search_results", q.SEARCH_SET, key, _SEARCH, [key["key_hash"]]
        )
        await self._core.wrote(_SEARCH)

    # ------------------------------------------------------------------ LLM responses
    def _llm_params(self, prompt: object, model: object, params: object) -> dict[str, Any]:
        prompt = check_text(prompt, "prompt")
        model = check_name(model, "model")
        params_json = canonical_params(params)
        data = b"\x00".join((model.encode(), prompt.encode(), params_json.encode()))
        return {
            "key_hash": hash_key(LLM_PERSON, data),
            "model": model,
            "prompt": prompt,
            "params": params_json,
        }

    async def get_llm_response(
        self, prompt: str, *, model: str, params: Mapping[str, Any] | None = None
    ) -> CachedLLMResponse | None:
        """The cached response of ``model`` to ``prompt`` with these generation ``params``
        (temperature, max_tokens, stop…: other params are another entry), or None.

        A hit is counted in process (``hit_count`` includes it and the hits not yet
        flushed); the stored count is exact after :meth:`flush_stats`.
        """
        key = self._llm_params(prompt, model, params)
        if self.near is not None:
            return await self.near.get_llm_response(key, params)
        row = await self._core.read("cache.get_llm_response", q.LLM_GET, key)
        if row is None:
            await self._core.counted(_LLM, misses=1)
            return None
        pending, due = self._core.counters.llm_hit(key["key_hash"])
        result = llm_response(key, params, row, pending)
        if due:
            await self._core.try_flush()
        return result

    async def set_llm_response(
        self,
        prompt: str,
        response: str,
        *,
        model: str,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: Seconds | None = None,
    ) -> None:
        """Cache ``response`` (text) with JSON ``metadata`` (e.g. token usage); replacing
        an entry resets its hit count."""
        key = llm_value(self._llm_params(prompt, model, params), response, metadata)
        key["ttl"] = check_ttl(ttl, self._ttl[_LLM])
        await self._core.write("cache.set_llm_response", q.LLM_SET, key, _LLM, [key["key_hash"]])
        await self._core.wrote(_LLM)

    # ------------------------------------------------------------------ statistics
    async def flush_stats(self) -> None:
        """Write this process's hit/miss counters and LLM hit counts in one statement.
        On failure the counts are kept for the next flush and the error is raised."""
        await self._core.flush()

    def _near_fields(self, name: str, flushed: list[int] | None) -> dict[str, int]:
        """near_* of one cache: flushed counters of all processes, this process's copies."""
        hits, misses, invalidations, evictions = flushed or (0, 0, 0, 0)
        return {
            "near_hits": hits,
            "near_misses": misses,
            "near_invalidations": invalidations,
            "near_evictions": evictions,
            "near_entries": 0 if self.near is None else self.near.tier.entries_of(name),
        }

    async def stats(self) -> CacheStats:
        """Per cache: hits, misses, hit_rate (all processes, after flushing this one's
        counters), live entries and their bytes. Counts every live row: an operator call,
        not for hot paths."""
        await self.flush_stats()
        async with self.db.connection("cache.stats") as conn:
            cur = await conn.execute(q.STATS_COUNTERS)
            counters = {name: (hits, misses) for name, hits, misses in await cur.fetchall()}
            cur = await conn.execute(q.STATS_SIZES)
            sizes = {name: (entries, size) for name, entries, size in await cur.fetchall()}
            cur = await conn.execute(nq.COUNTS)
            near = {name: counts for name, *counts in await cur.fetchall()}
        per_cache = {
            name: CacheCounts(
                name=name,
                hits=counters.get(name, (0, 0))[0],
                misses=counters.get(name, (0, 0))[1],
                entries=sizes.get(name, (0, 0))[0],
                bytes=sizes.get(name, (0, 0))[1],
                **self._near_fields(name, near.get(name)),
            )
            for name in CACHE_NAMES
        }
        return CacheStats(**per_cache, collected_at=datetime.now(UTC))

    # ------------------------------------------------------------------ expiry and caps
    async def cleanup_expired(
        self, *, batch_size: int = 5000, should_stop: Callable[[], bool] | None = None
    ) -> CleanupReport:
        """Delete every expired row of the four cache tables, ``batch_size`` rows per
        statement in expiry-index order with ``FOR UPDATE SKIP LOCKED``: several cleaners
        can run at once (each row is deleted by exactly one of them) and readers are never
        blocked. Returns the rows removed per table.

        ``should_stop`` is polled after every batch; when it returns true the cleanup ends
        there (the cleanup job passes its SIGTERM flag, so a stop never waits for a long
        purge to finish)."""
        check_int_range(batch_size, "batch_size", 1, 1_000_000)
        start = time.perf_counter()
        removed: dict[str, int] = {}
        batches = 0
        for table in CACHE_TABLES:
            statement = q.CLEANUP_BATCH.format(table=sql.Identifier(table))
            removed[table] = 0
            while True:
                async with self.db.connection("cache.cleanup_expired") as conn:
                    cur = await conn.execute(statement, {"batch_size": batch_size})
                    deleted = cur.rowcount
                batches += 1
                removed[table] += deleted
                if should_stop is not None and should_stop():
                    return self._cleanup_report(removed, batches, start)
                if deleted < batch_size:
                    break
        return self._cleanup_report(removed, batches, start)

    @staticmethod
    def _cleanup_report(removed: dict[str, int], batches: int, start: float) -> CleanupReport:
        return CleanupReport(
            removed=removed,
            batches=batches,
            elapsed_ms=round((time.perf_counter() - start) * 1000.0, 3),
        )

    async def enforce_caps(self) -> dict[str, int]:
        """Evict the oldest entries of every capped cache down to its caps now (writes do
        this every ``Settings.cache_cap_check_writes`` writes). Returns rows evicted per
        cache."""
        return {cache: await self._core.evict(cache) for cache in self._core.caps}

    # ------------------------------------------------------------------ lifecycle
    async def check_health(self) -> RepositoryCheck:
        """The tables' probe, plus the near cache listener's state when it is on."""
        check = await super().check_health()
        if self.near is None:
            return check
        # Just started (e.g. the health command): give the listener its first connection.
        # Polled: the state belongs to the listener's thread, not to this event loop.
        deadline = time.monotonic() + self.db.settings.connect_timeout
        while self.near.listener.state == "starting" and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        details = {**check.details, "near_cache": self.near.health()}
        return check.model_copy(update={"details": details})

    async def close(self) -> None:
        """Flush the in-process statistics (a failure is logged, not raised); stop the
        near cache's listener."""
        try:
            await self.flush_stats()
        except DigitwinDBError as exc:
            logger.warning("cache statistics lost at close: %s", exc)
        if self.near is not None:
            self.near.close()

    # ------------------------------------------------------------------ locks, deletes
    def lock(self, name: str, *, ttl: Seconds, timeout: Seconds | None = None) -> AsyncCacheLock:
        """A distributed lock named ``name`` (``async with cache.lock("job", ttl=30):``):
        an owner-token row with an expiry, safe behind PgBouncer in transaction mode,
        released only by its owner and taken over by another after ``ttl`` seconds.
        ``timeout``: how long entering the block waits (None: for ever)."""
        return AsyncCacheLock(self.db, name, ttl=ttl, timeout=timeout)

    async def delete_llm_response(
        self, prompt: str, *, model: str, params: Mapping[str, Any] | None = None
    ) -> bool:
        """Remove the cached response of ``model`` to ``prompt`` with ``params``; True when
        a live entry was removed."""
        key = self._llm_params(prompt, model, params)
        row = await self._core.write(
            "cache.delete_llm_response", q.LLM_DELETE, key, _LLM, [key["key_hash"]]
        )
        return bool(row and row[0])

    async def clear(self, kind: str) -> int:
        """Remove every entry of one cache — ``"embedding"``, ``"search"``, ``"llm"`` or
        ``"kv"`` (every namespace) — and return how many live entries were removed."""
        name = _CLEAR_KINDS.get(kind) if isinstance(kind, str) else None
        if name is None:
            raise ValidationError(
                f"kind must be one of {', '.join(sorted(_CLEAR_KINDS))}, got {str(kind)[:50]!r}"
            )
        statement = q.CLEAR_TABLE.format(table=sql.Identifier(cache_spec(name).table))
        row = await self._core.write("cache.clear", statement, {}, name, None)
        return int(row[0]) if row else 0

    async def get_or_set_llm_response(
        self,
        prompt: str,
        generate: Callable[[], Any],
        *,
        model: str,
        params: Mapping[str, Any] | None = None,
        ttl: Seconds | None = None,
        lock_timeout: Seconds = 30.0,
    ) -> CachedLLMResponse:
        """The cached response of ``model`` to ``prompt`` with ``params``, else
        ``generate()``'s — single-flight: N concurrent misses of one key (threads, tasks,
        processes, hosts) call ``generate`` once; the others wait at most ``lock_timeout``
        seconds and get its stored response. The same mechanism as ``kv.get_or_set`` (a
        transaction-scoped advisory lock on the key: PgBouncer-safe). ``generate`` returns
        the response text, or ``(text, metadata)``; it may return an awaitable (asyncio API).
        If it raises, nothing is cached and the error propagates. After a timed-out wait the
        caller generates and stores the response itself."""
        key = self._llm_params(prompt, model, params)
        ttl_seconds = check_ttl(ttl, self._ttl[_LLM])
        wait = check_positive_seconds(lock_timeout, "lock_timeout")
        if not callable(generate):
            raise ValidationError("generate must be callable")
        found = await self.get_llm_response(prompt, model=model, params=params)
        if found is not None:
            return found
        locked = False
        try:
            async with self.db.transaction("cache.get_or_set_llm_response") as conn:
                await self._core.lock_key(conn, key["key_hash"], wait)
                locked = True
                cur = await conn.execute(q.LLM_GET, key, binary=True)
                row = await cur.fetchone()
                if row is None:
                    stored = await self._generated(key, generate, ttl_seconds)
                    await conn.execute(q.LLM_SET, stored)
                    cur = await conn.execute(q.LLM_GET, key, binary=True)
                    row = await cur.fetchone()
        except TransientError:
            if locked:
                raise
            logger.warning(
                "cache.get_or_set_llm_response: lock wait exceeded %.3gs; generating anyway", wait
            )
            found = await self.get_llm_response(prompt, model=model, params=params)
            if found is not None:
                return found
            stored = await self._generated(key, generate, ttl_seconds)
            async with self.db.connection("cache.set_llm_response") as conn:
                await conn.execute(q.LLM_SET, stored)
                cur = await conn.execute(q.LLM_GET, key, binary=True)
                row = await cur.fetchone()
        if row is None:  # stored in this transaction, or found under the lock
            raise QueryError("cache.get_or_set_llm_response: the stored response is not there")
        self._core.dropped(_LLM, [key["key_hash"]])
        await self._core.wrote(_LLM)
        return llm_response(key, params, row)

    async def _generated(
        self, key: dict[str, Any], generate: Callable[[], Any], ttl: float | None
    ) -> dict[str, Any]:
        """The LLM_SET parameters of ``generate()``'s result (validated)."""
        result = await self.kv._load(generate)
        metadata: object = None
        if isinstance(result, tuple) and len(result) == 2:
            result, metadata = result
        return {**llm_value(key, result, metadata), "ttl": ttl}


#: ``cache.clear(kind)``: the cache of the registry each kind names.
_CLEAR_KINDS = {
    "embedding": "embedding",
    "search": "vector_search",
    "llm": "llm_response",
    "kv": "kv",
}
