"""The cache shards (``Settings.cache_shard_urls``): one pool per server, with the cache
and rate-limit repositories over it, and the placement of keys (``digitwin_db.sharding``).

Built by the factory only when shards are configured; without them nothing here runs.
Each shard is a plain :class:`AsyncDatabase` with the factory's settings and the shard's
URL, so every per-server policy applies per shard unchanged: fail-open cache reads
(``cache_fail_open``), ``rate_limit_on_error``, the circuit breaker, the near cache (each
shard has its own listener on its own server). Waiting for a connection to a shard is
bounded by ``connect_timeout``, so a shard that is down costs its callers at most that
long, and nothing once its circuit breaker is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.maintenance import AsyncMaintenance
from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db.circuit import CLOSED
from digitwin_db.errors import DatabaseUnavailableError
from digitwin_db.sharding import ShardRing, shard_identity

__all__ = ["AsyncCacheShard", "AsyncCacheShards"]

logger = logging.getLogger("digitwin_db.sharding")


class AsyncCacheShard:
    """One shard: its identity (``host:port/dbname``), pool and repositories."""

    def __init__(self, name: str, db: AsyncDatabase) -> None:
        self.name = name
        self.db = db
        self.cache = AsyncCacheRepository(db)
        self.rate_limits = AsyncRateLimitRepository(db)
        #: VACUUM and table statistics of this shard (``factory.maintenance`` is the primary's).
        self.maintenance = AsyncMaintenance(db)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class AsyncCacheShards:
    """The shards of ``Settings.cache_shard_urls`` and the ring that places keys on them."""

    def __init__(self, primary: AsyncDatabase) -> None:
        settings = primary.settings
        urls = [secret.get_secret_value() for secret in settings.cache_shard_urls]
        names = [shard_identity(url) for url in urls]
        self.ring = ShardRing(names)
        count = len(urls)
        self.shards: list[AsyncCacheShard] = []
        for name, url in zip(names, urls, strict=True):
            db = AsyncDatabase(
                settings,
                url=url,
                # A shard that is down holds a caller at most connect_timeout.
                pool_timeout=min(settings.pool_timeout, settings.connect_timeout),
                # The near cache listens on each shard itself; its memory budget is split.
                listen_url=None,
                near_cache_max_entries=max(1, settings.near_cache_max_entries // count),
                near_cache_max_bytes=max(1024, settings.near_cache_max_bytes // count),
                cache_shard_urls=[],
                replica_urls=[],
            )
            self.shards.append(AsyncCacheShard(name, db))
        self._open = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        if True:  # ASYNC
            pass
        else:
            # The sync API runs the per-shard statements of one call on these threads (the
            # calling thread takes one shard itself). Threads are started only when needed,
            # up to one per pooled connection of every shard: calls from many threads at
            # once are not funnelled through a few workers.
            self._executor = ThreadPoolExecutor(
                max_workers=count * settings.pool_max_size, thread_name_prefix="digitwin-db-shard"
            )

    def __len__(self) -> int:
        return len(self.shards)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {[s.name for s in self.shards]!r}>"

    def shard_of(self, data: bytes, seed: int = 0) -> AsyncCacheShard:
        """The shard holding the key ``data`` (behind the prefix of ``seed``: see
        ``digitwin_db.sharding.key_seed``)."""
        return self.shards[self.ring.shard_of(data, seed)]

    # ------------------------------------------------------------------ lifecycle
    async def ensure_open(self) -> None:
        """Open every shard's pool (once). A shard that does not answer is logged and left
        to connect in the background: its reads are misses meanwhile, never an error at
        start-up for the other shards."""
        if self._open:
            return
        async with self._open_lock:
            if self._open:
                return
            for shard in self.shards:
                if shard.db.is_open:
                    continue
                try:
                    await shard.db.open()
                except DatabaseUnavailableError as exc:
                    logger.warning(
                        "cache shard %s is unreachable (%s); it is retried in the background",
                        shard.name,
                        exc,
                    )
                    await shard.db.open(wait=False)
                    # Its first calls fail fast instead of each waiting for the pool.
                    shard.db.breaker.record_failure("unreachable when the shards were opened")
            self._open = True

    async def close(self) -> None:
        """Flush and close every shard (the repositories first, then the pools)."""
        if self._closed:
            return
        self._closed = True
        for shard in self.shards:
            await shard.cache.close()
            await shard.rate_limits.close()
            # A shard known to be down has nothing to wait for (its pool would keep
            # trying to connect until the close timeout).
            down = shard.db.breaker.state != CLOSED
            await shard.db.close(timeout=0.0 if down else None)
        if True:  # ASYNC
            pass
        else:
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ fan-out
    async def run(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run one call per shard concurrently (asyncio tasks; the sync API: the calling
        thread and pool threads) and return their results in order. Every call runs to its
        end; then the first error, if any, is raised."""
        if len(calls) == 1:
            return [await calls[0]()]
        results: list[Any]
        if True:  # ASYNC
            from asyncio import gather  # here: the sync code has no asyncio

            results = list(await gather(*(c() for c in calls), return_exceptions=True))
        else:
            futures = [self._executor.submit(c) for c in calls[1:]]
            results = []
            try:
                results.append(calls[0]())
            except BaseException as exc:
                results.append(exc)
            for future in futures:
                try:
                    results.append(future.result())
                except BaseException as exc:
                    results.append(exc)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results
