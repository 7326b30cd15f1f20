"""The asyncio API of digitwin-db: same names as :mod:`digitwin_db`, classes prefixed ``Async``."""

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
from digitwin_db.cache_lock_policy import LockError, LockNotOwnedError, LockTimeoutError
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
    "AuditEntry",
    "AuditStatistics",
    "AuditUserCount",
    "CacheCounts",
    "CacheStats",
    "CachedLLMResponse",
    "CleanupJobReport",
    "CleanupReport",
    "ConfigurationError",
    "ConflictError",
    "ConversationSession",
    "ConversationTurn",
    "DatabaseHealth",
    "DatabaseUnavailableError",
    "DigitwinDBError",
    "DocumentSearchHit",
    "EndpointUsage",
    "FaceModel",
    "HealthReport",
    "KnowledgeDocument",
    "Limit",
    "LockError",
    "LockNotOwnedError",
    "LockTimeoutError",
    "NotFoundError",
    "OperationStats",
    "Page",
    "QueryError",
    "RateLimitResult",
    "RateLimitUnavailableError",
    "ReplicaStatus",
    "RepositoryCheck",
    "SearchHit",
    "SessionStatistics",
    "SessionWithTurns",
    "Settings",
    "StageLatency",
    "TableStats",
    "TransientError",
    "User",
    "ValidationError",
    "VoiceModel",
]
