"""digitwin-db: the PostgreSQL-only data layer of the digital-twin system (sync API).

The asyncio API has the same names with an ``Async`` prefix, in :mod:`digitwin_db.aio`.
"""

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
from digitwin_db.cache_lock_policy import LockError, LockNotOwnedError, LockTimeoutError
from digitwin_db.cached import cached
from digitwin_db.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DigitwinDBError,
    NotFoundError,
    QueryError,
    RateLimitUnavailableError,
    TransientError,
    ValidationError,
)
from digitwin_db.models.ai_models import FaceModel, VoiceModel
from digitwin_db.models.audit import (
    AuditEntry,
    AuditStatistics,
    AuditUserCount,
    CleanupJobReport,
    TableStats,
)
from digitwin_db.models.cache import (
    CacheCounts,
    CachedLLMResponse,
    CacheStats,
    CleanupReport,
    SearchHit,
)
from digitwin_db.models.common import DatabaseHealth, HealthReport, Page, RepositoryCheck
from digitwin_db.models.documents import DocumentSearchHit, KnowledgeDocument
from digitwin_db.models.rate_limits import EndpointUsage, Limit, RateLimitResult
from digitwin_db.models.replicas import ReplicaStatus
from digitwin_db.models.sessions import (
    ConversationSession,
    ConversationTurn,
    SessionStatistics,
    SessionWithTurns,
    StageLatency,
)
from digitwin_db.models.users import User
from digitwin_db.observability import OperationStats
from digitwin_db.settings import Settings

__all__ = [
    "AuditEntry",
    "AuditLogRepository",
    "AuditStatistics",
    "AuditUserCount",
    "CacheCounts",
    "CacheLock",
    "CacheRepository",
    "CacheStats",
    "CachedLLMResponse",
    "CleanupJob",
    "CleanupJobReport",
    "CleanupReport",
    "ConfigurationError",
    "ConflictError",
    "ConversationSession",
    "ConversationSessionRepository",
    "ConversationTurn",
    "Database",
    "DatabaseHealth",
    "DatabaseUnavailableError",
    "DigitwinDBError",
    "DocumentSearchHit",
    "EndpointUsage",
    "FaceModel",
    "FaceModelRepository",
    "HealthReport",
    "KVNamespace",
    "KnowledgeDocument",
    "KnowledgeDocumentRepository",
    "Limit",
    "LockError",
    "LockNotOwnedError",
    "LockTimeoutError",
    "Maintenance",
    "NotFoundError",
    "OperationStats",
    "Page",
    "QueryError",
    "RateLimitRepository",
    "RateLimitResult",
    "RateLimitUnavailableError",
    "ReplicaStatus",
    "ReplicaView",
    "RepositoryCheck",
    "RepositoryFactory",
    "SearchHit",
    "SessionStatistics",
    "SessionWithTurns",
    "Settings",
    "StageLatency",
    "TableStats",
    "TransientError",
    "User",
    "UserRepository",
    "ValidationError",
    "VoiceModel",
    "VoiceModelRepository",
    "__version__",
    "cached",
]
