"""``factory.cache`` over several servers (``Settings.cache_shard_urls``; SPEC §2.13).

A routing façade with the public API of :class:`AsyncCacheRepository` (the Solid Cache
shape: one small class that picks a shard): every call on one key goes to the shard that
holds the key (``digitwin_db.sharding``: rendezvous hashing of the key's slot, the CRC-32
of the bytes its ``key_hash`` digests); calls on many keys (``get_many``, ``set_many``,
``delete_many``, ``get_embeddings``, ``set_embeddings``) group the keys by shard and run
one statement per shard, the shards concurrently; calls on a whole cache (``clear``,
``delete_prefix``, ``invalidate_tags``, ``cleanup_expired``, ``enforce_caps``,
``flush_stats``) run on every shard. Each shard is a full cache repository over its own
pool, so fail-open reads, the statistics, caps (per shard) and the near cache (a listener
per shard) behave per shard exactly as with one server.

Multi-shard writes are all-or-none *per shard*: ``set_many`` over three shards is three
statements, and a shard that is down fails its part (``DatabaseUnavailableError``) while
the others' parts stand. ``set_embeddings`` checks the dimension of the live embeddings
of the model on each shard it writes to.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence, Sized
from datetime import UTC, datetime
from functools import partial
from typing import Any

from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.repositories.cache_kv import AsyncKVNamespace
from digitwin_db._async.repositories.cache_lock import AsyncCacheLock
from digitwin_db._async.shards import AsyncCacheShard, AsyncCacheShards
from digitwin_db.cache_codec import (
    Seconds,
    canonical_params,
    check_key,
    check_keys,
    check_mapping_items,
    check_name,
    check_tags,
    check_text,
    is_empty_batch,
)
from digitwin_db.cache_registry import CACHE_NAMES
from digitwin_db.errors import DigitwinDBError, ValidationError
from digitwin_db.models.cache import (
    CacheCounts,
    CachedLLMResponse,
    CacheStats,
    CleanupReport,
    SearchHit,
)
from digitwin_db.models.common import DatabaseHealth, RepositoryCheck
from digitwin_db.sharding import LOCK_SEED, key_seed, key_text_bytes

__all__ = ["AsyncShardLock", "AsyncShardedCache", "AsyncShardedKVNamespace"]

logger = logging.getLogger("digitwin_db.sharding")


_UNSET: Any = object()


class AsyncShardLock(AsyncCacheLock):
    """A :class:`AsyncCacheLock` on one shard that opens the shards' pools first (a lock
    may be the first thing a process uses)."""

    def __init__(
        self,
        shards: AsyncCacheShards,
        shard: AsyncCacheShard,
        name: str,
        *,
        ttl: Seconds,
        timeout: Seconds | None = None,
    ) -> None:
        super().__init__(shard.db, name, ttl=ttl, timeout=timeout)
        self._shards = shards

    async def acquire(self, *, blocking: bool = True, timeout: object = _UNSET) -> bool:
        await self._shards.ensure_open()
        if timeout is _UNSET:
            return await super().acquire(blocking=blocking)
        return await super().acquire(blocking=blocking, timeout=timeout)

    async def locked(self) -> bool:
        await self._shards.ensure_open()
        return await super().locked()

    async def owned(self) -> bool:
        await self._shards.ensure_open()
        return await super().owned()


class AsyncShardedKVNamespace(AsyncKVNamespace):
    """One key/value namespace over every shard: the same API as ``cache.kv``."""

    def __init__(
        self,
        shards: AsyncCacheShards,
        name: str,
        *,
        serializer: object = "json",
        near: bool = True,
        default: bool = False,
    ) -> None:
        # The base class's __init__ is not called: this view holds no core of its own, only the
        # namespace view of each shard.
        self.name = check_name(name, "namespace")
        self._shards = shards
        self._views = [
            s.cache.kv if default else s.cache.namespace(name, serializer=serializer, near=near)
            for s in shards.shards
        ]
        self.codec = self._views[0].codec
        self._seed = key_seed(self.name.encode() + b"\x00")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} over {len(self._views)} shards>"

    # ------------------------------------------------------------------ placement
    async def _view(self, key: object) -> AsyncKVNamespace:
        """The shard's view holding ``key`` (validated)."""
        await self._shards.ensure_open()
        if type(key) is not str or "\x00" in key:
            key = check_key(key)
        try:
            data = key.encode()
        except UnicodeEncodeError:
            check_key(key)
            raise
        return self._views[self._shards.ring.shard_of(data, self._seed)]

    async def _grouped(self, keys: list[str]) -> list[tuple[AsyncKVNamespace, list[str]]]:
        """``keys`` (validated) grouped by the shard view that holds them."""
        await self._shards.ensure_open()
        groups = self._shards.ring.group(keys, self._seed)
        return [(self._views[i], [keys[p] for p in positions]) for i, positions in groups.items()]

    async def _everywhere(self, call: Callable[[AsyncKVNamespace], Any]) -> list[Any]:
        await self._shards.ensure_open()
        return await self._shards.run([partial(call, v) for v in self._views])

    # ------------------------------------------------------------------ reads
    async def get(self, key: str, default: Any = None) -> Any:
        """The value of a live key, else ``default`` (fail-open per shard)."""
        return await (await self._view(key)).get(key, default)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The live keys among ``keys`` with their values: one statement per shard that
        holds some of them, the shards concurrently. A shard that is down contributes
        misses (fail-open, counted) and the others answer."""
        if is_empty_batch(keys):
            return {}
        groups = await self._grouped(check_keys(keys))
        parts = await self._shards.run([partial(v.get_many, g) for v, g in groups])
        found: dict[str, Any] = {}
        for part in parts:
            found.update(part)
        return found

    async def exists(self, key: str) -> bool:
        return await (await self._view(key)).exists(key)

    async def ttl(self, key: str) -> float | None:
        return await (await self._view(key)).ttl(key)

    # ------------------------------------------------------------------ writes
    async def set(
        self, key: str, value: Any, *, ttl: Seconds | None = None, tags: Iterable[str] = ()
    ) -> None:
        await (await self._view(key)).set(key, value, ttl=ttl, tags=tags)

    async def add(
        self, key: str, value: Any, *, ttl: Seconds | None = None, tags: Iterable[str] = ()
    ) -> bool:
        return await (await self._view(key)).add(key, value, ttl=ttl, tags=tags)

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        *,
        ttl: Seconds | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Store several values: one statement per shard (all or none per shard), the
        shards concurrently."""
        if not isinstance(mapping, Mapping):
            raise ValidationError(f"mapping must be a mapping, got {type(mapping).__name__}")
        if not mapping:
            return
        tags = check_tags(tags)  # once: an iterator must reach every shard
        keys = check_keys(list(mapping))
        values = list(mapping.values())
        index = {k: i for i, k in enumerate(keys)}
        groups = await self._grouped(keys)
        await self._shards.run(
            [
                partial(v.set_many, {k: values[index[k]] for k in g}, ttl=ttl, tags=tags)
                for v, g in groups
            ]
        )

    async def delete(self, key: str) -> bool:
        return await (await self._view(key)).delete(key)

    async def delete_many(self, keys: Iterable[str]) -> int:
        if is_empty_batch(keys):
            return 0
        groups = await self._grouped(check_keys(keys))
        return sum(await self._shards.run([partial(v.delete_many, g) for v, g in groups]))

    async def expire(self, key: str, ttl: Seconds) -> bool:
        return await (await self._view(key)).expire(key, ttl)

    async def persist(self, key: str) -> bool:
        return await (await self._view(key)).persist(key)

    async def incr(self, key: str, amount: int = 1, *, ttl: Seconds | None = None) -> int:
        return await (await self._view(key)).incr(key, amount, ttl=ttl)

    async def decr(self, key: str, amount: int = 1, *, ttl: Seconds | None = None) -> int:
        return await (await self._view(key)).decr(key, amount, ttl=ttl)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` on every shard."""
        check_key(prefix, "prefix")
        return sum(await self._everywhere(lambda v: v.delete_prefix(prefix)))

    async def invalidate_tags(self, *tags: str) -> int:
        return sum(await self._everywhere(lambda v: v.invalidate_tags(*tags)))

    async def clear(self) -> int:
        return sum(await self._everywhere(lambda v: v.clear()))

    async def get_or_set(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        ttl: Seconds | None = None,
        lock_timeout: Seconds = 5.0,
    ) -> Any:
        """As ``cache.kv.get_or_set``, on the key's shard (its advisory lock is there)."""
        view = await self._view(key)
        return await view.get_or_set(key, loader, ttl=ttl, lock_timeout=lock_timeout)

    async def keys(self, prefix: str = "", *, page_size: int = 1000) -> AsyncIterator[str]:
        """The live keys starting with ``prefix``, one shard after the other."""
        await self._shards.ensure_open()
        for view in self._views:
            async for key in view.keys(prefix, page_size=page_size):  # noqa: UP028, RUF100 (sync)
                yield key

    async def compare_and_set(
        self, key: str, expected: Any, new: Any, *, ttl: Seconds | None = None
    ) -> bool:
        return await (await self._view(key)).compare_and_set(key, expected, new, ttl=ttl)

    async def delete_if(self, key: str, expected: Any) -> bool:
        return await (await self._view(key)).delete_if(key, expected)


class AsyncShardedCache(AsyncCacheRepository):
    """``factory.cache`` when ``Settings.cache_shard_urls`` is set: the same API, each
    entry on the shard its key hashes to. See the module docstring.

    ``near`` is None here: with the near cache on, each shard has its own tier and
    listener (``cache.shards.shards[i].cache.near``); ``check_health`` reports them."""

    def __init__(self, shards: AsyncCacheShards) -> None:
        # The base class's __init__ is not called: the state lives in each shard's repository.
        self.db = shards.shards[0].db
        self.shards = shards
        self.near = None
        self.kv = AsyncShardedKVNamespace(shards, "default", default=True)

    def namespace(
        self, name: str, *, serializer: object = "json", near: bool = True
    ) -> AsyncKVNamespace:
        """A key/value view on another namespace, over every shard (see
        :meth:`AsyncCacheRepository.namespace`)."""
        return AsyncShardedKVNamespace(self.shards, name, serializer=serializer, near=near)

    # ------------------------------------------------------------------ placement
    async def _on(self, data: bytes) -> AsyncCacheRepository:
        await self.shards.ensure_open()
        return self.shards.shard_of(data).cache

    @staticmethod
    def _embedding_key(text: object, model: object) -> bytes:
        return key_text_bytes(model, "model") + b"\x00" + key_text_bytes(text, "text")

    @staticmethod
    def _search_key(query: object, index: object, params: object) -> bytes:
        return b"\x00".join(
            (
                key_text_bytes(index, "index"),
                key_text_bytes(query, "query"),
                canonical_params(params).encode(),
            )
        )

    @staticmethod
    def _llm_key(prompt: object, model: object, params: object) -> bytes:
        return b"\x00".join(
            (
                key_text_bytes(model, "model"),
                key_text_bytes(prompt, "prompt"),
                canonical_params(params).encode(),
            )
        )

    async def _each(self, call: Callable[[AsyncCacheShard], Any]) -> list[Any]:
        await self.shards.ensure_open()
        return await self.shards.run([partial(call, s) for s in self.shards.shards])

    # ------------------------------------------------------------------ embeddings
    async def get_embedding(self, text: str, *, model: str) -> list[float] | None:
        shard = await self._on(self._embedding_key(text, model))
        return await shard.get_embedding(text, model=model)

    async def get_embeddings(self, texts: Sequence[str], *, model: str) -> list[list[float] | None]:
        """The cached vectors of ``texts`` in order: one statement per shard, concurrently."""
        model = check_name(model, "model")
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise ValidationError("texts must be a list of strings")
        texts = [check_text(t, "text") for t in texts]
        if not texts:
            return []
        await self.shards.ensure_open()
        groups = self.shards.ring.group(texts, key_seed(model.encode() + b"\x00"))
        shards = self.shards.shards
        parts = await self.shards.run(
            [
                partial(shards[i].cache.get_embeddings, [texts[j] for j in p], model=model)
                for i, p in groups.items()
            ]
        )
        result: list[list[float] | None] = [None] * len(texts)
        for positions, vectors in zip(groups.values(), parts, strict=True):
            for position, vector in zip(positions, vectors, strict=True):
                result[position] = vector
        return result

    async def set_embedding(
        self, text: str, embedding: Sequence[float], *, model: str, ttl: Seconds | None = None
    ) -> None:
        shard = await self._on(self._embedding_key(text, model))
        await shard.set_embedding(text, embedding, model=model, ttl=ttl)

    async def set_embeddings(
        self,
        mapping: Mapping[str, Sequence[float]],
        *,
        model: str,
        ttl: Seconds | None = None,
    ) -> None:
        """Cache several embeddings of one model: one statement per shard (all or none per
        shard), the shards concurrently. Every vector must have the same dimension (checked
        before anything is written)."""
        model = check_name(model, "model")
        if isinstance(mapping, Mapping) and not mapping:
            return
        items = check_mapping_items(mapping, "mapping")
        texts = [check_text(text, "text") for text, _ in items]
        sizes = {len(vector) for _, vector in items if isinstance(vector, Sized)}
        if len(sizes) > 1:
            raise ValidationError(
                "all embeddings of one set_embeddings call must have one dimension"
            )
        await self.shards.ensure_open()
        groups = self.shards.ring.group(texts, key_seed(model.encode() + b"\x00"))
        shards = self.shards.shards
        await self.shards.run(
            [
                partial(
                    shards[i].cache.set_embeddings,
                    {texts[j]: items[j][1] for j in p},
                    model=model,
                    ttl=ttl,
                )
                for i, p in groups.items()
            ]
        )

    # ------------------------------------------------------------------ vector search
    async def get_search_results(
        self, query: str, *, index: str, params: Mapping[str, Any] | None = None
    ) -> list[SearchHit] | None:
        shard = await self._on(self._search_key(query, index, params))
        return await shard.get_search_results(query, index=index, params=params)

    async def set_search_results(
        self,
        query: str,
        hits: Sequence[SearchHit | Mapping[str, Any] | tuple[Any, ...]],
        *,
        index: str,
        params: Mapping[str, Any] | None = None,
        ttl: Seconds | None = None,
    ) -> None:
        shard = await self._on(self._search_key(query, index, params))
        await shard.set_search_results(query, hits, index=index, params=params, ttl=ttl)

    # ------------------------------------------------------------------ LLM responses
    async def get_llm_response(
        self, prompt: str, *, model: str, params: Mapping[str, Any] | None = None
    ) -> CachedLLMResponse | None:
        shard = await self._on(self._llm_key(prompt, model, params))
        return await shard.get_llm_response(prompt, model=model, params=params)

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
        shard = await self._on(self._llm_key(prompt, model, params))
        await shard.set_llm_response(
            prompt, response, model=model, params=params, metadata=metadata, ttl=ttl
        )

    async def delete_llm_response(
        self, prompt: str, *, model: str, params: Mapping[str, Any] | None = None
    ) -> bool:
        shard = await self._on(self._llm_key(prompt, model, params))
        return await shard.delete_llm_response(prompt, model=model, params=params)

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
        """As on one server, on the key's shard (single-flight there)."""
        shard = await self._on(self._llm_key(prompt, model, params))
        return await shard.get_or_set_llm_response(
            prompt, generate, model=model, params=params, ttl=ttl, lock_timeout=lock_timeout
        )

    # ------------------------------------------------------------------ whole caches
    async def clear(self, kind: str) -> int:
        """Remove every entry of one cache on every shard."""
        return sum(await self._each(lambda s: s.cache.clear(kind)))

    async def cleanup_expired(
        self, *, batch_size: int = 5000, should_stop: Callable[[], bool] | None = None
    ) -> CleanupReport:
        """Delete the expired rows on every shard (concurrently); rows removed per table
        are summed. A shard that fails is logged, the others finish, then its error is
        raised."""
        reports = await self._each(
            lambda s: s.cache.cleanup_expired(batch_size=batch_size, should_stop=should_stop)
        )
        removed: dict[str, int] = {}
        for report in reports:
            for table, count in report.removed.items():
                removed[table] = removed.get(table, 0) + count
        return CleanupReport(
            removed=removed,
            batches=sum(r.batches for r in reports),
            elapsed_ms=max(r.elapsed_ms for r in reports),
        )

    async def enforce_caps(self) -> dict[str, int]:
        """Evict above the caps on every shard (caps apply per shard)."""
        evicted: dict[str, int] = {}
        for part in await self._each(lambda s: s.cache.enforce_caps()):
            for cache, count in part.items():
                evicted[cache] = evicted.get(cache, 0) + count
        return evicted

    # ------------------------------------------------------------------ statistics
    async def flush_stats(self) -> None:
        """Flush each shard's counters to that shard."""
        await self._each(lambda s: s.cache.flush_stats())

    async def shard_stats(self) -> dict[str, CacheStats | None]:
        """``stats()`` of every shard by its identity (``host:port/dbname``); None for a
        shard that cannot be reached."""

        async def one(shard: AsyncCacheShard) -> CacheStats | None:
            try:
                return await shard.cache.stats()
            except DigitwinDBError as exc:
                logger.warning("cache shard %s: no statistics (%s)", shard.name, exc)
                return None

        stats = await self._each(one)
        return {s.name: st for s, st in zip(self.shards.shards, stats, strict=True)}

    async def stats(self) -> CacheStats:
        """The statistics summed over every reachable shard (``shard_stats()`` gives each
        shard's; an unreachable shard is logged and left out)."""
        per_shard = [st for st in (await self.shard_stats()).values() if st is not None]
        totals: dict[str, CacheCounts] = {}
        for name in CACHE_NAMES:
            counts = [st[name] for st in per_shard]
            fields = (
                "hits",
                "misses",
                "entries",
                "bytes",
                "near_hits",
                "near_misses",
                "near_invalidations",
                "near_evictions",
                "near_entries",
            )
            totals[name] = CacheCounts(
                name=name, **{f: sum(getattr(c, f) for c in counts) for f in fields}
            )
        return CacheStats(**totals, collected_at=datetime.now(UTC))

    # ------------------------------------------------------------------ lifecycle
    async def check_health(self) -> RepositoryCheck:
        """ok when every shard answers with no pending migration and its cache tables
        answer; ``details["shards"]`` has each shard's check, its database health (latency,
        pending migrations, pool) and its near cache listener when the near cache is on."""

        async def one(shard: AsyncCacheShard) -> tuple[RepositoryCheck, DatabaseHealth]:
            return await shard.cache.check_health(), await shard.db.health_check()

        results = await self._each(one)
        shards = self.shards.shards
        details = {
            "shards": {
                s.name: {
                    **check.model_dump(mode="json", exclude={"name"}),
                    "database": database.model_dump(mode="json"),
                }
                for s, (check, database) in zip(shards, results, strict=True)
            }
        }
        checks = [check for check, _ in results]
        down = [
            s.name
            for s, (check, database) in zip(shards, results, strict=True)
            if not (check.ok and database.ok)
        ]
        latencies = [c.latency_ms for c in checks if c.latency_ms is not None]
        return RepositoryCheck(
            name=self.name,
            ok=not down,
            latency_ms=max(latencies) if latencies else None,
            error=f"cache shards down: {', '.join(down)}" if down else None,
            details=details,
        )

    async def close(self) -> None:
        """Nothing here: the factory closes the shards (each flushes its statistics and
        stops its near cache listener, then its pool closes)."""

    # ------------------------------------------------------------------ locks
    def lock(self, name: str, *, ttl: Seconds, timeout: Seconds | None = None) -> AsyncCacheLock:
        """A distributed lock on the shard its name hashes to (see
        :meth:`AsyncCacheRepository.lock`)."""
        shard = self.shards.shards[0]  # a name that is not text: its lock refuses it
        if type(name) is str:
            # "surrogatepass": any string has a shard; the lock itself validates the name.
            shard = self.shards.shard_of(name.encode("utf-8", "surrogatepass"), LOCK_SEED)
        return AsyncShardLock(self.shards, shard, name, ttl=ttl, timeout=timeout)
