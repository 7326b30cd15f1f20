# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/replicas.py
"""Read replicas: ``factory.replica()`` runs system-of-record reads on streaming standbys.

A replica is a hot standby fed by streaming replication (``Settings.replica_urls``). Its
data trails the primary by the replication lag, so a read there may not see a write that
just committed on the primary; ``factory.replica(read_your_writes=True)`` makes each call
check first that the replica has replayed the primary's current WAL position, and run on
the primary when it has not (after waiting up to ``Settings.replica_catch_up_wait``).

Only reads of the system-of-record tables go to replicas. The cache tables and the
rate-limit buckets are UNLOGGED: they are not replicated, a standby has them empty and
refuses to read them, so ``factory.replica().cache`` / ``.rate_limits`` raise
``ConfigurationError`` — use ``factory.cache`` and ``factory.rate_limits`` (the primary).

A replica that cannot be reached is skipped for ``Settings.replica_retry_after`` seconds;
the read runs on another replica, else on the primary (``replica_fallback="primary"``,
the default) or raises ``DatabaseUnavailableError`` (``"raise"``). Replicas are read
round-robin.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from digitwin_db._sync.database import Database
from digitwin_db._sync.repositories.ai_models import FaceModelRepository, VoiceModelRepository
from digitwin_db._sync.repositories.audit_logs import AuditLogRepository
from digitwin_db._sync.repositories.base import Repository
from digitwin_db._sync.repositories.documents import KnowledgeDocumentRepository
from digitwin_db._sync.repositories.sessions import ConversationSessionRepository
from digitwin_db._sync.repositories.users import UserRepository
from digitwin_db.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DigitwinDBError,
    QueryError,
)
from digitwin_db.models.replicas import ReplicaStatus
from digitwin_db.replica_policy import (
    PRIMARY_ONLY_MESSAGE,
    READ_METHODS,
    RoutingCounters,
    read_only_message,
)
from digitwin_db.settings import redact_url
from digitwin_db.sql import replicas as q

__all__ = ["ReadOnlyRepository", "ReplicaRouter", "ReplicaView", "RepositorySet"]

# How often a read-your-writes call looks again whether a lagging replica caught up.
CATCH_UP_POLL_INTERVAL = 0.01


class RepositorySet:
    """The read-capable repositories over one server (a replica, or the primary)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.repositories: dict[str, Repository] = {
            "users": UserRepository(db),
            "voice_models": VoiceModelRepository(db),
            "face_models": FaceModelRepository(db),
            "sessions": ConversationSessionRepository(db),
            "documents": KnowledgeDocumentRepository(db),
            "audit_logs": AuditLogRepository(db),
        }
        # Until this time.monotonic() the server is skipped (it failed recently).
        self.down_until = 0.0


class ReplicaRouter:
    """Owns one pool per replica and decides, per call, which server runs a read."""

    def __init__(self, primary: Database) -> None:
        settings = primary.settings
        self.settings = settings
        self.primary = RepositorySet(primary)
        self.replicas: list[RepositorySet] = []
        for secret in settings.replica_urls:
            # A replica that is down must not hold a caller for the whole pool timeout:
            # waiting for a connection is bounded by the connect timeout.
            db = Database(
                settings,
                url=secret.get_secret_value(),
                pool_timeout=min(settings.pool_timeout, settings.connect_timeout),
            )
            self.replicas.append(RepositorySet(db))
        self.counters = RoutingCounters()
        self._next = 0
        self._open_lock = threading.Lock()

    def _ensure_open(self, target: RepositorySet) -> None:
        if target.db.is_open:
            return
        with self._open_lock:
            if not target.db.is_open:
                target.db.open()

    def _candidates(self) -> list[RepositorySet]:
        """Replicas not known to be down, round-robin from the next one."""
        now = time.monotonic()
        count = len(self.replicas)
        start = self._next
        self._next = (self._next + 1) % max(count, 1)
        ordered = [self.replicas[(start + i) % count] for i in range(count)]
        return [r for r in ordered if r.down_until <= now]

    def _mark_down(self, target: RepositorySet) -> None:
        """Skip ``target`` for ``replica_retry_after`` seconds and close its pool: the next
        try opens a fresh one and fails fast if the replica is still down (a pool left
        open would keep retrying in the background with growing back-off, and could make
        the first read after the replica is back wait past its timeout)."""
        target.down_until = time.monotonic() + self.settings.replica_retry_after
        target.db.close(timeout=0)

    def _primary_position(self) -> str:
        with self.primary.db.connection("replica.primary_position") as conn:
            cur = conn.execute(q.PRIMARY_POSITION)
            row = cur.fetchone()
        if row is None:
            raise QueryError("pg_current_wal_insert_lsn() returned no row")
        return str(row[0])

    def _has_replayed(self, target: RepositorySet, position: str) -> bool:
        deadline = time.monotonic() + self.settings.replica_catch_up_wait
        with target.db.connection("replica.replayed") as conn:
            while True:
                cur = conn.execute(q.REPLAYED, (position,))
                row = cur.fetchone()
                if row is not None and row[0]:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(CATCH_UP_POLL_INTERVAL)

    def run(
        self,
        repository: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        read_your_writes: bool,
    ) -> Any:
        """Run ``repository.method(*args, **kwargs)`` on a replica, or on the primary when
        no replica may serve it (see the module docstring)."""
        position = self._primary_position() if read_your_writes else None
        candidates = self._candidates()
        lagging = False
        for target in candidates:
            try:
                self._ensure_open(target)
                if position is not None and not self._has_replayed(target, position):
                    lagging = True
                    break  # behind: the other replicas are most likely behind as well
                result = getattr(target.repositories[repository], method)(*args, **kwargs)
            except DatabaseUnavailableError:
                # Reads are idempotent: running the same call elsewhere is safe.
                self._mark_down(target)
                continue
            except DigitwinDBError:
                self.counters.replica += 1  # answered by the replica (e.g. NotFoundError)
                raise
            self.counters.replica += 1
            return result
        if lagging:
            self.counters.primary_lagging += 1
        elif not self.replicas:
            self.counters.primary_no_replica += 1
        else:  # every replica is down (now, or recently enough to be skipped)
            if self.settings.replica_fallback == "raise":
                self.counters.refused += 1
                raise DatabaseUnavailableError(
                    f"{repository}.{method}: no read replica is reachable (REPLICA_FALLBACK=raise)"
                )
            self.counters.primary_replica_down += 1
        return getattr(self.primary.repositories[repository], method)(*args, **kwargs)

    def status(self) -> list[ReplicaStatus]:
        """Per replica: reachable, in recovery, bytes and seconds behind the primary.

        Never raises for a replica problem (the entry says ``ok=False`` and why).
        """
        statuses: list[ReplicaStatus] = []
        position: str | None = None
        try:
            position = self._primary_position()
        except DigitwinDBError:
            position = None
        for target in self.replicas:
            where = redact_url(target.db.settings.url)
            try:
                self._ensure_open(target)
                with target.db.connection("replica.status") as conn:
                    cur = conn.execute(q.REPLICA_STATE)
                    row = cur.fetchone()
                    if row is None:
                        raise QueryError("the replica state query returned no row")
                    in_recovery, replayed, delay = row
                    lag_bytes: int | None = None
                    if position is not None and replayed is not None:
                        cur = conn.execute(q.LAG_BYTES, (position, replayed))
                        lag = cur.fetchone()
                        lag_bytes = None if lag is None else max(0, int(lag[0]))
            except DigitwinDBError as exc:
                statuses.append(ReplicaStatus(target=where, ok=False, error=str(exc)))
                continue
            statuses.append(
                ReplicaStatus(
                    target=where,
                    ok=bool(in_recovery),
                    in_recovery=bool(in_recovery),
                    lag_bytes=lag_bytes,
                    replay_delay_seconds=None if delay is None else round(float(delay), 3),
                    error=None if in_recovery else "not a standby (pg_is_in_recovery() is false)",
                )
            )
        return statuses

    def close(self) -> None:
        for target in self.replicas:
            target.db.close()


class ReadOnlyRepository:
    """A repository of a replica view: its read methods, routed by the router; its write
    methods refused with ``ConfigurationError``."""

    def __init__(self, router: ReplicaRouter, name: str, read_your_writes: bool) -> None:
        self._router = router
        self._name = name
        self._read_your_writes = read_your_writes

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        if method not in READ_METHODS[self._name]:
            raise ConfigurationError(read_only_message(self._name, method))
        router, name, fresh = self._router, self._name, self._read_your_writes

        def call(*args: Any, **kwargs: Any) -> Any:
            return router.run(name, method, args, kwargs, read_your_writes=fresh)

        call.__name__ = method
        return call


class ReplicaView:
    """What ``factory.replica()`` returns: read-only ``users``, ``voice_models``,
    ``face_models``, ``sessions``, ``documents`` and ``audit_logs``."""

    PRIMARY_ONLY: ClassVar[tuple[str, ...]] = ("cache", "rate_limits")

    def __init__(self, router: ReplicaRouter, *, read_your_writes: bool = False) -> None:
        self.read_your_writes = read_your_writes
        self.users = ReadOnlyRepository(router, "users", read_your_writes)
        self.voice_models = ReadOnlyRepository(router, "voice_models", read_your_writes)
        self.face_models = ReadOnlyRepository(router, "face_models", read_your_writes)
        self.sessions = ReadOnlyRepository(router, "sessions", read_your_writes)
        self.documents = ReadOnlyRepository(router, "documents", read_your_writes)
        self.audit_logs = ReadOnlyRepository(router, "audit_logs", read_your_writes)

    def __getattr__(self, name: str) -> Any:
        if name in self.PRIMARY_ONLY:
            raise ConfigurationError(PRIMARY_ONLY_MESSAGE.format(name=name))
        raise AttributeError(name)
