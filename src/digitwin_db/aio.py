"""The asyncio API of digitwin-db: same names as :mod:`digitwin_db`, classes prefixed ``Async``."""

from digitwin_db import _public
from digitwin_db._async.cleanup import AsyncCleanupJob
from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.maintenance import AsyncMaintenance
from digitwin_db._async.replicas import AsyncReplicaView
from digitwin_db._async.repositories.ai_models import (
    AsyncFaceModelRepository,
    AsyncVoiceModelRepository,
)
from digitwin_db._async.repositories.audit_logs import AsyncAuditLogRepository
from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.repositories.cache_kv import AsyncKVNamespace
from digitwin_db._async.repositories.cache_lock import AsyncCacheLock
from digitwin_db._async.repositories.documents import AsyncKnowledgeDocumentRepository
from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db._async.repositories.sessions import AsyncConversationSessionRepository
from digitwin_db._async.repositories.users import AsyncUserRepository
from digitwin_db._public import *  # noqa: F403  (the names both APIs share)

__all__ = [
    "AsyncAuditLogRepository",
    "AsyncCacheLock",
    "AsyncCacheRepository",
    "AsyncCleanupJob",
    "AsyncConversationSessionRepository",
    "AsyncDatabase",
    "AsyncFaceModelRepository",
    "AsyncKVNamespace",
    "AsyncKnowledgeDocumentRepository",
    "AsyncMaintenance",
    "AsyncRateLimitRepository",
    "AsyncReplicaView",
    "AsyncRepositoryFactory",
    "AsyncUserRepository",
    "AsyncVoiceModelRepository",
]
__all__ += _public.__all__
