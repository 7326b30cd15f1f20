"""digitwin-db: the PostgreSQL-only data layer of the digital-twin system (sync API).

The asyncio API has the same names with an ``Async`` prefix, in :mod:`digitwin_db.aio`.
"""

from digitwin_db import _public
from digitwin_db._public import *  # noqa: F403  (the names both APIs share)
from digitwin_db._sync.cleanup import CleanupJob
from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db._sync.maintenance import Maintenance
from digitwin_db._sync.replicas import ReplicaView
from digitwin_db._sync.repositories.ai_models import FaceModelRepository, VoiceModelRepository
from digitwin_db._sync.repositories.audit_logs import AuditLogRepository
from digitwin_db._sync.repositories.cache import CacheRepository
from digitwin_db._sync.repositories.cache_kv import KVNamespace
from digitwin_db._sync.repositories.cache_lock import CacheLock
from digitwin_db._sync.repositories.documents import KnowledgeDocumentRepository
from digitwin_db._sync.repositories.rate_limits import RateLimitRepository
from digitwin_db._sync.repositories.sessions import ConversationSessionRepository
from digitwin_db._sync.repositories.users import UserRepository
from digitwin_db._version import __version__
from digitwin_db.cached import cached

__all__ = [
    "AuditLogRepository",
    "CacheLock",
    "CacheRepository",
    "CleanupJob",
    "ConversationSessionRepository",
    "Database",
    "FaceModelRepository",
    "KVNamespace",
    "KnowledgeDocumentRepository",
    "Maintenance",
    "RateLimitRepository",
    "ReplicaView",
    "RepositoryFactory",
    "UserRepository",
    "VoiceModelRepository",
    "__version__",
    "cached",
]
__all__ += _public.__all__
