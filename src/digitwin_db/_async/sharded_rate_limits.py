"""``factory.rate_limits`` over several servers (``Settings.cache_shard_urls``; SPEC §2.13).

Buckets are placed by **subject** (``user_id``, in its canonical form), not by
``(subject, endpoint)``: every bucket of one subject lives on one shard, so
``check_many`` (several buckets of one subject, all or nothing) stays one atomic statement
on one server, and each bucket is exact under any concurrency (its row lock is on that
server). A shard that is down answers for its subjects only, per
``Settings.rate_limit_on_error``; the other shards decide as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db._async.shards import AsyncCacheShards
from digitwin_db.models.common import RepositoryCheck
from digitwin_db.models.rate_limits import EndpointUsage, Limit, RateLimitResult
from digitwin_db.ratelimit_policy import check_user_id
from digitwin_db.sharding import SUBJECT_SEED

__all__ = ["AsyncShardedRateLimits"]


class AsyncShardedRateLimits(AsyncRateLimitRepository):
    """The token buckets, each subject's on the shard its canonical id hashes to."""

    def __init__(self, shards: AsyncCacheShards) -> None:
        # The base class's __init__ is not called: each shard has its own repository.
        self.db = shards.shards[0].db
        self.shards = shards

    async def _on(self, user_id: Any) -> AsyncRateLimitRepository:
        """The repository of the shard holding ``user_id``'s buckets (``ValidationError``
        for a malformed subject, before any I/O)."""
        subject = check_user_id(user_id)
        await self.shards.ensure_open()
        return self.shards.shard_of(subject.encode(), SUBJECT_SEED).rate_limits

    def shard_name(self, user_id: Any) -> str:
        """Identity (``host:port/dbname``) of the shard holding ``user_id``'s buckets."""
        return self.shards.shard_of(check_user_id(user_id).encode(), SUBJECT_SEED).name

    async def check_and_consume(
        self,
        user_id: Any,
        endpoint: str,
        *,
        capacity: int,
        refill_rate: float | None = None,
        window_seconds: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        repository = await self._on(user_id)
        return await repository.check_and_consume(
            user_id,
            endpoint,
            capacity=capacity,
            refill_rate=refill_rate,
            window_seconds=window_seconds,
            cost=cost,
        )

    async def check_and_increment(
        self, user_id: Any, endpoint: str, limit: int, window_seconds: float
    ) -> RateLimitResult:
        repository = await self._on(user_id)
        return await repository.check_and_increment(user_id, endpoint, limit, window_seconds)

    async def check_many(self, user_id: Any, limits: Sequence[Limit]) -> RateLimitResult:
        """All-or-nothing over several buckets of one subject: one statement on its shard."""
        repository = await self._on(user_id)
        return await repository.check_many(user_id, limits)

    async def peek(
        self,
        user_id: Any,
        endpoint: str,
        *,
        capacity: int,
        refill_rate: float | None = None,
        window_seconds: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        repository = await self._on(user_id)
        return await repository.peek(
            user_id,
            endpoint,
            capacity=capacity,
            refill_rate=refill_rate,
            window_seconds=window_seconds,
            cost=cost,
        )

    async def reset(self, user_id: Any, endpoint: str | None = None) -> int:
        repository = await self._on(user_id)
        return await repository.reset(user_id, endpoint)

    async def usage(self, user_id: Any, *, since: datetime | None = None) -> list[EndpointUsage]:
        repository = await self._on(user_id)
        return await repository.usage(user_id, since=since)

    async def cleanup_idle(self, *, older_than: timedelta | float | None = None) -> int:
        """Delete idle full buckets on every shard (concurrently); returns the total."""
        await self.shards.ensure_open()
        counts = await self.shards.run(
            [partial(s.rate_limits.cleanup_idle, older_than=older_than) for s in self.shards.shards]
        )
        return sum(counts)

    async def check_health(self) -> RepositoryCheck:
        """ok when every shard's ``rate_limits`` table answers; per shard in ``details``."""
        await self.shards.ensure_open()
        shards = self.shards.shards
        checks = await self.shards.run([s.rate_limits.check_health for s in shards])
        down = [s.name for s, c in zip(shards, checks, strict=True) if not c.ok]
        latencies = [c.latency_ms for c in checks if c.latency_ms is not None]
        return RepositoryCheck(
            name=self.name,
            ok=not down,
            latency_ms=max(latencies) if latencies else None,
            error=f"rate-limit shards down: {', '.join(down)}" if down else None,
            details={
                "shards": {
                    s.name: c.model_dump(mode="json", exclude={"name"})
                    for s, c in zip(shards, checks, strict=True)
                }
            },
        )

    async def close(self) -> None:
        """Nothing buffered here; the factory closes the shard pools."""
