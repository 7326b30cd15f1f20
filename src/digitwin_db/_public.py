"""The public names the sync API (:mod:`digitwin_db`) and the asyncio API
(:mod:`digitwin_db.aio`) share: errors, row and report models, settings, lock errors.

Declared once here; both modules re-export all of them beside their own classes.
"""

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
