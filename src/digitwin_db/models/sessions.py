"""Conversation sessions, their turns, and the per-user latency/token statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from digitwin_db.models.common import Row

__all__ = [
    "SESSION_STATUSES",
    "TURN_ROLES",
    "ConversationSession",
    "ConversationTurn",
    "SessionStatistics",
    "SessionStatus",
    "SessionWithTurns",
    "StageLatency",
    "TurnRole",
]

SessionStatus = Literal["active", "ended"]
TurnRole = Literal["user", "assistant", "system"]
#: The values of ``conversation_sessions.status`` (the table's CHECK says the same).
SESSION_STATUSES: tuple[str, ...] = ("active", "ended")
#: The values of ``conversation_turns.role`` (the table's CHECK says the same).
TURN_ROLES: tuple[str, ...] = ("user", "assistant", "system")


class ConversationSession(Row):
    """One row of ``conversation_sessions``.

    The counters (``turn_count``, token totals, ``*_ms_total`` latency sums) are maintained
    by ``add_turn`` in the same transaction as the turn insert, so they always agree with
    the turns.
    """

    id: UUID
    user_id: UUID
    voice_model_id: UUID | None
    face_model_id: UUID | None
    status: SessionStatus
    started_at: datetime
    ended_at: datetime | None
    turn_count: int
    tokens_in: int
    tokens_out: int
    asr_ms_total: int
    llm_ms_total: int
    tts_ms_total: int
    total_ms_total: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class ConversationTurn(Row):
    """One row of ``conversation_turns``: an exchange numbered 1..n within its session,
    with the latency of each pipeline stage in milliseconds (``None`` = stage not run)."""

    id: UUID
    session_id: UUID
    turn_number: int
    role: TurnRole
    content: str
    asr_ms: int | None
    llm_ms: int | None
    tts_ms: int | None
    total_ms: int | None
    tokens_in: int | None
    tokens_out: int | None
    metadata: dict[str, Any]
    created_at: datetime


class SessionWithTurns(BaseModel):
    """A session and (some of) its turns, in turn order, read from one snapshot."""

    model_config = ConfigDict(frozen=True)

    session: ConversationSession
    turns: list[ConversationTurn]


class StageLatency(BaseModel):
    """Latency of one pipeline stage over the turns that ran it (``count`` of them).

    ``avg_ms``/``p50_ms``/``p95_ms``/``max_ms`` are ``None`` when no turn has the stage.
    Percentiles are continuous (``percentile_cont``: interpolated between turns).
    """

    model_config = ConfigDict(frozen=True)

    count: int
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: int | None


class SessionStatistics(BaseModel):
    """Aggregates over a user's sessions started at or after ``since`` (all when ``None``),
    and the turns of those sessions; computed in SQL."""

    model_config = ConfigDict(frozen=True)

    user_id: UUID
    since: datetime | None
    sessions: int
    active_sessions: int
    ended_sessions: int
    turns: int
    tokens_in: int
    tokens_out: int
    asr: StageLatency
    llm: StageLatency
    tts: StageLatency
    total: StageLatency

    @property
    def avg_turns_per_session(self) -> float:
        return self.turns / self.sessions if self.sessions else 0.0
