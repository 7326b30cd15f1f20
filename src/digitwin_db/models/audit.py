"""Audit log rows and reports, plus the operator-side reports (table statistics, cleanup)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from digitwin_db.models.common import Row

__all__ = [
    "AUDIT_RESULTS",
    "AuditEntry",
    "AuditResult",
    "AuditStatistics",
    "AuditUserCount",
    "CleanupJobReport",
    "TableStats",
]

AuditResult = Literal["success", "failure", "denied"]
#: The values of ``audit_logs.result`` (the table's CHECK constraint says the same).
AUDIT_RESULTS: tuple[str, ...] = ("success", "failure", "denied")


class AuditEntry(Row):
    """One row of ``audit_logs``: who did what to which resource, with what result."""

    id: int
    user_id: UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    result: AuditResult
    #: Text form of the ``inet`` value (e.g. ``"10.0.0.1"``, ``"2001:db8::1"``).
    ip_address: str | None
    user_agent: str | None
    metadata: dict[str, Any]
    created_at: datetime


class AuditUserCount(BaseModel):
    """One of the most active users in :class:`AuditStatistics`."""

    model_config = ConfigDict(frozen=True)

    user_id: UUID
    count: int


class AuditStatistics(BaseModel):
    """Aggregates over the audit entries of a time range (computed in SQL).

    ``failure_rate`` is the share of entries whose result is ``failure`` and
    ``denied_rate`` the share that are ``denied`` (both 0.0 when there are no entries).
    """

    model_config = ConfigDict(frozen=True)

    since: datetime | None
    until: datetime | None
    total: int
    by_action: dict[str, int]
    by_result: dict[str, int]
    failure_rate: float
    denied_rate: float
    top_users: list[AuditUserCount]


class TableStats(BaseModel):
    """Size and dead-tuple figures of one table (from ``pg_stat_user_tables``).

    Tuple counts are the statistics collector's estimates; ``dead_ratio`` is
    ``dead_tuples / (live_tuples + dead_tuples)`` (0.0 for an empty table).
    """

    model_config = ConfigDict(frozen=True)

    table: str
    unlogged: bool
    total_bytes: int
    table_bytes: int
    index_bytes: int
    live_tuples: int
    dead_tuples: int
    dead_ratio: float
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None


class CleanupJobReport(BaseModel):
    """What one pass of the cleanup job removed (rows per table) and what it skipped."""

    model_config = ConfigDict(frozen=True)

    removed: dict[str, int] = Field(default_factory=dict)
    #: Steps that did not run, with the reason (e.g. the partitions step before migration 0013).
    skipped: dict[str, str] = Field(default_factory=dict)
    #: Steps that failed, with the error message (the other steps still ran).
    errors: dict[str, str] = Field(default_factory=dict)
    #: True when a stop was requested and the pass ended early (after a whole batch).
    stopped: bool = False
    duration_ms: float = 0.0
    #: GDPR erasures queued by the application role whose audit rows this pass anonymised.
    audit_erasures: int = 0

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())


class AuditChainHead(BaseModel):
    """The newest link of the audit hash chain: keep ``seq`` and ``row_hash`` elsewhere
    (``digitwin-db audit head``) to detect a rewrite of the whole chain later."""

    model_config = ConfigDict(frozen=True)

    seq: int
    #: Hex sha256 of the row with chain_seq = seq.
    row_hash: str
    updated_at: datetime | None = None


class AuditChainReport(BaseModel):
    """What ``audit_logs.verify_chain()`` found: ``ok``, or the first broken row."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    #: Rows checked before the first break (all of them when ok).
    rows_checked: int
    head: AuditChainHead | None = None
    #: Purged runs the chain links across.
    anchors: int = 0
    #: The first broken row (None: the head or the tail is at fault, or nothing is).
    broken_id: int | None = None
    broken_seq: int | None = None
    reason: str | None = None
