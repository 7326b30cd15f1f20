# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/sharded_rate_limits.py
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

from digitwin_db._sync.repositories.rate_limits import RateLimitRepository
from digitwin_db._sync.shards import CacheShards
from digitwin_db.models.common import RepositoryCheck
from digitwin_db.models.rate_limits import EndpointUsage, Limit, RateLimitResult
from digitwin_db.ratelimit_policy import check_user_id
from digitwin_db.sharding import SUBJECT_SEED

__all__ = ["ShardedRateLimits"]


class ShardedRateLimits(RateLimitRepository):
    """The token buckets, each subject's on the shard its canonical id hashes to."""

    def __init__(self, shards: CacheShards) -> None:
        # The base class's __init__ is not called: each shard has its own repository.
        self.db = shards.shards[0].db
        self.shards = shards

    def _on(self, user_id: Any) -> RateLimitRepository:
        """The repository of the shard holding ``user_id``'s buckets (``ValidationError``
        for a malformed subject, before any I/O)."""
        subject = check_user_id(user_id)
        self.shards.ensure_open()
        return self.shards.shard_of(subject.encode(), SUBJECT_SEED).rate_limits

    def shard_name(self, user_id: Any) -> str:
        """Identity (``host:port/dbname``) of the shard holding ``user_id``'s buckets."""
        return self.shards.shard_of(check_user_id(user_id).encode(), SUBJECT_SEED).name

    def check_and_consume(
        self,
        user_id: Any,
        endpoint: str,
        *,
        capacity: int,
        refill_rate: float | None = None,
        window_seconds: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        repository = self._on(user_id)
        return repository.check_and_consume(
            user_id,
            endpoint,
            capacity=capacity,
            refill_rate=refill_rate,
            window_seconds=window_seconds,
            cost=cost,
        )

    def check_and_increment(
        self, user_id: Any, endpoint: str, limit: int, window_seconds: float
    ) -> RateLimitResult:
        repository = self._on(user_id)
        return repository.check_and_increment(user_id, endpoint, limit, window_seconds)

    def check_many(self, user_id: Any, limits: Sequence[Limit]) -> RateLimitResult:
        """All-or-nothing over several buckets of one subject: one statement on its shard."""
        repository = self._on(user_id)
        return repository.check_many(user_id, limits)

    def peek(
        self,
        user_id: Any,
        endpoint: str,
        *,
        capacity: int,
        refill_rate: float | None = None,
        window_seconds: float | None = None,
        cost: int = 1,
    ) -> RateLimitResult:
        repository = self._on(user_id)
        return repository.peek(
            user_id,
            endpoint,
            capacity=capacity,
            refill_rate=refill_rate,
            window_seconds=window_seconds,
            cost=cost,
        )

    def reset(self, user_id: Any, endpoint: str | None = None) -> int:
        repository = self._on(user_id)
        return repository.reset(user_id, endpoint)

    def usage(self, user_id: Any, *, since: datetime | None = None) -> list[EndpointUsage]:
        repository = self._on(user_id)
        return repository.usage(user_id, since=since)

    def cleanup_idle(self, *, older_than: timedelta | float | None = None) -> int:
        """Delete idle full buckets on every shard (concurrently); returns the total."""
        self.shards.ensure_open()
        counts = self.shards.run(
            [partial(s.rate_limits.cleanup_idle, older_than=older_than) for s in self.shards.shards]
        )
        return sum(counts)

    def check_health(self) -> RepositoryCheck:
        """ok when every shard's ``rate_limits`` table answers; per shard in ``details``."""
        self.shards.ensure_open()
        shards = self.shards.shards
        checks = self.shards.run([s.rate_limits.check_health for s in shards])
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

    def close(self) -> None:
        """Nothing buffered here; the factory closes the shard pools."""
