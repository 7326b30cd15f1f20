# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/factory.py
"""The process-wide entry point: one factory, one pool, every repository."""

from __future__ import annotations

import threading
from typing import ClassVar
from uuid import UUID

from digitwin_db._sync.database import Database
from digitwin_db._sync.maintenance import Maintenance
from digitwin_db._sync.partitions import Partitions
from digitwin_db._sync.replicas import ReplicaRouter, ReplicaView
from digitwin_db._sync.repositories.ai_models import FaceModelRepository, VoiceModelRepository
from digitwin_db._sync.repositories.audit_logs import AuditLogRepository
from digitwin_db._sync.repositories.base import Repository
from digitwin_db._sync.repositories.cache import CacheRepository
from digitwin_db._sync.repositories.documents import KnowledgeDocumentRepository
from digitwin_db._sync.repositories.rate_limits import RateLimitRepository
from digitwin_db._sync.repositories.sessions import ConversationSessionRepository
from digitwin_db._sync.repositories.users import UserRepository
from digitwin_db._sync.sharded_cache import ShardedCache
from digitwin_db._sync.sharded_rate_limits import ShardedRateLimits
from digitwin_db._sync.shards import CacheShards
from digitwin_db._sync.tenant import UserScope
from digitwin_db.errors import ConfigurationError
from digitwin_db.models.common import HealthReport
from digitwin_db.models.replicas import ReplicaStatus
from digitwin_db.observability import OperationStats
from digitwin_db.validation import parse_uuid


class RepositoryFactory:
    """Holds the database and one instance of every repository.

    Use :meth:`instance` for the process-wide singleton; build one directly only in tests
    or when a process really needs two databases.
    """

    _instance: ClassVar[RepositoryFactory | None] = None
    # Guards creation of the singleton. A thread lock: it is never held while waiting for
    # I/O, and the singleton is shared by every thread of the process.
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, db: Database) -> None:
        self.db = db
        self._open_lock = threading.Lock()
        self._closed = False
        self._repositories: list[Repository] = []
        # Repositories are built here, in this order, and registered for health/close.
        # (domain repositories)
        self.users = UserRepository(db)
        self._register(self.users)
        self.voice_models = VoiceModelRepository(db)
        self._register(self.voice_models)
        self.face_models = FaceModelRepository(db)
        self._register(self.face_models)
        self.sessions = ConversationSessionRepository(db)
        self._register(self.sessions)
        self.documents = KnowledgeDocumentRepository(db)
        self._register(self.documents)
        # (cache shards: Settings.cache_shard_urls; None without them, nothing changes)
        self.shards = CacheShards(db) if db.settings.cache_shard_urls else None
        # (cache)
        self.cache = CacheRepository(db) if self.shards is None else ShardedCache(self.shards)
        self._register(self.cache)
        # (rate limits)
        self.rate_limits = (
            RateLimitRepository(db) if self.shards is None else ShardedRateLimits(self.shards)
        )
        self._register(self.rate_limits)
        # (audit log)
        self.audit_logs = AuditLogRepository(db)
        self._register(self.audit_logs)
        self.maintenance = Maintenance(db)
        self.partitions = Partitions(db)
        # (read replicas: pools opened on first use of factory.replica())
        self._replica_router: ReplicaRouter | None = None

    def for_user(self, user_id: UUID | str) -> UserScope:
        """Repositories scoped to one user (SPEC §2.12): their statements run in a
        transaction with ``set_config('digitwin.user_id', …, true)``, and row-level
        security hides every other user's rows, even from raw SQL on that connection.
        ``ValidationError`` when ``user_id`` is not a UUID."""
        return UserScope(self.db, parse_uuid(user_id, "user_id"))

    def _register(self, repository: Repository) -> None:
        self._repositories.append(repository)

    @property
    def repositories(self) -> list[Repository]:
        return list(self._repositories)

    # ------------------------------------------------------------------ singleton
    @classmethod
    def instance(cls, db: Database | None = None) -> RepositoryFactory:
        """The process-wide factory, created (and its database opened) on first call.

        Without ``db`` the first call builds ``Database(Settings())``. Passing a
        different database once the singleton exists raises ``ConfigurationError``.
        """
        if db is not None and not isinstance(db, Database):
            raise ConfigurationError(
                f"instance() takes a {Database.__name__} (or nothing), got {type(db).__name__}"
            )
        with cls._instance_lock:
            factory = cls._instance
            if factory is None:
                factory = cls._instance = cls(db if db is not None else Database())
            elif db is not None and db is not factory.db:
                raise ConfigurationError(
                    "RepositoryFactory.instance() already holds another Database; "
                    "call reset() first"
                )
        factory._ensure_open()
        return factory

    @classmethod
    def reset(cls) -> None:
        """Close and forget the singleton (tests, shutdown). A no-op when there is none."""
        with cls._instance_lock:
            factory, cls._instance = cls._instance, None
        if factory is not None:
            factory.close()

    def _ensure_open(self) -> None:
        if self.db.is_open:
            return
        with self._open_lock:
            if not self.db.is_open:
                self.db.open()
        if self.shards is not None:
            self.shards.ensure_open()

    # ------------------------------------------------------------------ read replicas
    @property
    def replica_router(self) -> ReplicaRouter:
        """The replica pools and routing counters behind :meth:`replica`."""
        if self._replica_router is None:
            self._replica_router = ReplicaRouter(self.db)
        return self._replica_router

    def replica(self, *, read_your_writes: bool = False) -> ReplicaView:
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
        return ReplicaView(self.replica_router, read_your_writes=read_your_writes)

    def replica_status(self) -> list[ReplicaStatus]:
        """Per replica: reachable, a standby, and its lag behind the primary."""
        return self.replica_router.status()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Flush what repositories buffer, then close the database's pool."""
        if self._closed:
            return
        self._closed = True
        for repository in self._repositories:
            repository.close()
        if self._replica_router is not None:
            self._replica_router.close()
        if self.shards is not None:
            self.shards.close()
        self.db.close()
        with self._instance_lock:
            if type(self)._instance is self:
                type(self)._instance = None

    def health(self) -> HealthReport:
        """Database round trip, pool statistics, pending migrations and per-repository checks."""
        database = self.db.health_check()
        checks = [r.check_health() for r in self._repositories] if database.ok else []
        return HealthReport(
            ok=database.ok and all(c.ok for c in checks), database=database, repositories=checks
        )

    def stats(self) -> list[OperationStats]:
        """Per-operation call counts and latencies (min/avg/p95/max) since start."""
        return self.db.stats.snapshot()
