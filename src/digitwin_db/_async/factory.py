"""The process-wide entry point: one factory, one pool, every repository."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar
from uuid import UUID

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.maintenance import AsyncMaintenance
from digitwin_db._async.partitions import AsyncPartitions
from digitwin_db._async.replicas import AsyncReplicaRouter, AsyncReplicaView
from digitwin_db._async.repositories.ai_models import (
    AsyncFaceModelRepository,
    AsyncVoiceModelRepository,
)
from digitwin_db._async.repositories.audit_logs import AsyncAuditLogRepository
from digitwin_db._async.repositories.base import AsyncRepository
from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.repositories.documents import AsyncKnowledgeDocumentRepository
from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db._async.repositories.sessions import AsyncConversationSessionRepository
from digitwin_db._async.repositories.users import AsyncUserRepository
from digitwin_db._async.sharded_cache import AsyncShardedCache
from digitwin_db._async.sharded_rate_limits import AsyncShardedRateLimits
from digitwin_db._async.shards import AsyncCacheShards
from digitwin_db._async.tenant import AsyncUserScope
from digitwin_db.errors import ConfigurationError
from digitwin_db.models.common import HealthReport
from digitwin_db.models.replicas import ReplicaStatus
from digitwin_db.observability import OperationStats
from digitwin_db.validation import parse_uuid


class AsyncRepositoryFactory:
    """Holds the database and one instance of every repository.

    Use :meth:`instance` for the process-wide singleton; build one directly only in tests
    or when a process really needs two databases.
    """

    _instance: ClassVar[AsyncRepositoryFactory | None] = None
    # Guards creation of the singleton. A thread lock: it is never held while waiting for
    # I/O, and the singleton is shared by every thread of the process.
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._repositories: list[AsyncRepository] = []
        # Repositories are built here, in this order, and registered for health/close.
        # (domain repositories)
        self.users = AsyncUserRepository(db)
        self._register(self.users)
        self.voice_models = AsyncVoiceModelRepository(db)
        self._register(self.voice_models)
        self.face_models = AsyncFaceModelRepository(db)
        self._register(self.face_models)
        self.sessions = AsyncConversationSessionRepository(db)
        self._register(self.sessions)
        self.documents = AsyncKnowledgeDocumentRepository(db)
        self._register(self.documents)
        # (cache shards: Settings.cache_shard_urls; None without them, nothing changes)
        self.shards = AsyncCacheShards(db) if db.settings.cache_shard_urls else None
        # (cache)
        self.cache = (
            AsyncCacheRepository(db) if self.shards is None else AsyncShardedCache(self.shards)
        )
        self._register(self.cache)
        # (rate limits)
        self.rate_limits = (
            AsyncRateLimitRepository(db)
            if self.shards is None
            else AsyncShardedRateLimits(self.shards)
        )
        self._register(self.rate_limits)
        # (audit log)
        self.audit_logs = AsyncAuditLogRepository(db)
        self._register(self.audit_logs)
        self.maintenance = AsyncMaintenance(db)
        self.partitions = AsyncPartitions(db)
        # (read replicas: pools opened on first use of factory.replica())
        self._replica_router: AsyncReplicaRouter | None = None

    def for_user(self, user_id: UUID | str) -> AsyncUserScope:
        """Repositories scoped to one user (SPEC §2.12): their statements run in a
        transaction with ``set_config('digitwin.user_id', …, true)``, and row-level
        security hides every other user's rows, even from raw SQL on that connection.
        ``ValidationError`` when ``user_id`` is not a UUID."""
        return AsyncUserScope(self.db, parse_uuid(user_id, "user_id"))

    def _register(self, repository: AsyncRepository) -> None:
        self._repositories.append(repository)

    @property
    def repositories(self) -> list[AsyncRepository]:
        return list(self._repositories)

    # ------------------------------------------------------------------ singleton
    @classmethod
    async def instance(cls, db: AsyncDatabase | None = None) -> AsyncRepositoryFactory:
        """The process-wide factory, created (and its database opened) on first call.

        Without ``db`` the first call builds ``AsyncDatabase(Settings())``. Passing a
        different database once the singleton exists raises ``ConfigurationError``.
        """
        if db is not None and not isinstance(db, AsyncDatabase):
            raise ConfigurationError(
                f"instance() takes a {AsyncDatabase.__name__} (or nothing), got {type(db).__name__}"
            )
        with cls._instance_lock:
            factory = cls._instance
            if factory is None:
                factory = cls._instance = cls(db if db is not None else AsyncDatabase())
            elif db is not None and db is not factory.db:
                raise ConfigurationError(
                    "RepositoryFactory.instance() already holds another Database; "
                    "call reset() first"
                )
        await factory._ensure_open()
        return factory

    @classmethod
    async def reset(cls) -> None:
        """Close and forget the singleton (tests, shutdown). A no-op when there is none."""
        with cls._instance_lock:
            factory, cls._instance = cls._instance, None
        if factory is not None:
            await factory.close()

    async def _ensure_open(self) -> None:
        if self.db.is_open:
            return
        async with self._open_lock:
            if not self.db.is_open:
                await self.db.open()
        if self.shards is not None:
            await self.shards.ensure_open()

    # ------------------------------------------------------------------ read replicas
    @property
    def replica_router(self) -> AsyncReplicaRouter:
        """The replica pools and routing counters behind :meth:`replica`."""
        if self._replica_router is None:
            self._replica_router = AsyncReplicaRouter(self.db)
        return self._replica_router

    def replica(self, *, read_your_writes: bool = False) -> AsyncReplicaView:
        """Read-only repositories whose reads run on a read replica (``REPLICA_URLS``).

        ``users``, ``voice_models``, ``face_models``, ``sessions``, ``documents`` and
        ``audit_logs`` offer their read methods; a write method raises
        ``ConfigurationError``, and so do ``cache`` / ``rate_limits`` (always the primary).
        A replica lags the primary: with ``read_your_writes=True`` each call first checks
        that the replica has replayed the primary's current WAL position and otherwise
        runs on the primary. An unreachable replica is skipped; with none left the read
        runs on the primary (``REPLICA_FALLBACK=primary``) or raises
        ``DatabaseUnavailableError`` (``raise``). Without replicas, reads use the primary.
        """
        return AsyncReplicaView(self.replica_router, read_your_writes=read_your_writes)

    async def replica_status(self) -> list[ReplicaStatus]:
        """Per replica: reachable, a standby, and its lag behind the primary."""
        return await self.replica_router.status()

    # ------------------------------------------------------------------ lifecycle
    async def close(self) -> None:
        """Flush what repositories buffer, then close the database's pool."""
        if self._closed:
            return
        self._closed = True
        for repository in self._repositories:
            await repository.close()
        if self._replica_router is not None:
            await self._replica_router.close()
        if self.shards is not None:
            await self.shards.close()
        await self.db.close()
        with self._instance_lock:
            if type(self)._instance is self:
                type(self)._instance = None

    async def health(self) -> HealthReport:
        """Database round trip, pool statistics, pending migrations and per-repository checks."""
        database = await self.db.health_check()
        checks = [await r.check_health() for r in self._repositories] if database.ok else []
        return HealthReport(
            ok=database.ok and all(c.ok for c in checks), database=database, repositories=checks
        )

    def stats(self) -> list[OperationStats]:
        """Per-operation call counts and latencies (min/avg/p95/max) since start."""
        return self.db.stats.snapshot()
