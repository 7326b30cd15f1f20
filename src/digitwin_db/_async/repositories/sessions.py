"""Conversation sessions and their turns: ``factory.sessions``.

A session belongs to a live user and may name one of that user's voice and face models.
``add_turn`` numbers turns 1..n per session without gaps or duplicates, also under
concurrent callers, and moves the session's counters (turn count, token totals, latency
sums) in the same statement. Ending is idempotent: ``end`` on an ended session returns it
unchanged (its first ``ended_at`` is kept); a turn on an ended session is a
``ValidationError``. Sessions have no soft delete: they go away with their user
(hard delete / GDPR erasure).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import sql
from psycopg.rows import class_row, dict_row

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.repositories.base import AsyncRepository
from digitwin_db.errors import NotFoundError, QueryError, ValidationError
from digitwin_db.models.common import Page
from digitwin_db.models.sessions import (
    SESSION_STATUSES,
    TURN_ROLES,
    ConversationSession,
    ConversationTurn,
    SessionStatistics,
    SessionWithTurns,
    StageLatency,
)
from digitwin_db.rules.sessions import (
    CONTENT_MAX,
    STAGES,
    check_latency,
    check_tokens,
    raise_start_failure,
)
from digitwin_db.sql import sessions as q
from digitwin_db.sql.common import OWNED_BY, STATUS_IS
from digitwin_db.validation import (
    check_aware_datetime,
    check_choice,
    check_optional_int,
    check_text,
    json_param,
    optional_uuid,
    parse_uuid,
)

__all__ = ["AsyncConversationSessionRepository"]


class AsyncConversationSessionRepository(AsyncRepository):
    """Conversation sessions (``conversation_sessions``) and turns (``conversation_turns``)."""

    name: ClassVar[str] = "sessions"
    tables: ClassVar[tuple[str, ...]] = ("conversation_sessions", "conversation_turns")

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        columns = sql.SQL(", ").join(map(sql.Identifier, ConversationSession.model_fields))
        where: list[sql.Composable] = [OWNED_BY, STATUS_IS]
        self._q_list = self._listing("conversation_sessions", columns, where, "started_at")

    # ------------------------------------------------------------------ writes
    async def start(
        self,
        *,
        user_id: UUID | str,
        voice_model_id: UUID | str | None = None,
        face_model_id: UUID | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ConversationSession:
        """Start an active session for a live user.

        Raises ``NotFoundError`` when the user or a given model does not exist or is
        soft-deleted, ``ValidationError`` when a model belongs to another user or an
        argument is malformed. The checks and the insert are one statement.
        """
        params = {
            "user_id": parse_uuid(user_id, "user_id"),
            "voice_model_id": optional_uuid(voice_model_id, "voice_model_id"),
            "face_model_id": optional_uuid(face_model_id, "face_model_id"),
            "metadata": json_param(metadata, "metadata"),
        }
        async with self.db.connection("sessions.start") as conn:
            cur = conn.cursor(row_factory=class_row(ConversationSession))
            await cur.execute(q.START, params)
            session = await cur.fetchone()
            if session is not None:
                return session
            dcur = conn.cursor(row_factory=dict_row)
            await dcur.execute(q.START_DIAGNOSE, params)
            state = await dcur.fetchone()
        if state is None:
            raise QueryError("sessions: the statement returned no row")
        raise_start_failure(params, state)

    async def add_turn(
        self,
        session_id: UUID | str,
        *,
        role: str,
        content: str,
        asr_ms: int | None = None,
        llm_ms: int | None = None,
        tts_ms: int | None = None,
        total_ms: int | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ConversationTurn:
        """Append the next turn (number = previous + 1) to an active session.

        Latencies are integer milliseconds (0..3,600,000), tokens integers (0..10,000,000),
        ``None`` when the stage did not run. The session's ``turn_count``, token totals and
        ``*_ms_total`` sums move in the same statement, which holds the session's row lock:
        concurrent callers get consecutive numbers. ``NotFoundError`` for an unknown
        session, ``ValidationError`` for an ended one or bad input.
        """
        sid = parse_uuid(session_id, "session_id")
        params = {
            "session_id": sid,
            "role": check_choice(role, "role", TURN_ROLES),
            "content": check_text(content, "content", max_length=CONTENT_MAX, strip=False),
            "asr_ms": check_latency(asr_ms, "asr_ms"),
            "llm_ms": check_latency(llm_ms, "llm_ms"),
            "tts_ms": check_latency(tts_ms, "tts_ms"),
            "total_ms": check_latency(total_ms, "total_ms"),
            "tokens_in": check_tokens(tokens_in, "tokens_in"),
            "tokens_out": check_tokens(tokens_out, "tokens_out"),
            "metadata": json_param(metadata, "metadata"),
        }
        async with self.db.connection("sessions.add_turn") as conn:
            cur = conn.cursor(row_factory=class_row(ConversationTurn))
            await cur.execute(q.ADD_TURN, params)
            turn = await cur.fetchone()
            if turn is not None:
                return turn
            state = await conn.execute(q.SESSION_STATE, {"id": sid})
            row = await state.fetchone()
        if row is None:
            raise NotFoundError(f"session {sid} does not exist")
        if not row[1]:
            raise NotFoundError(f"session {sid} belongs to a deleted user")
        raise ValidationError(f"session {sid} has ended: no turn can be added")

    async def end(self, session_id: UUID | str) -> ConversationSession:
        """End a session and return it. Idempotent: ending an ended session returns it
        unchanged (``ended_at`` stays the first end). ``NotFoundError`` if absent."""
        sid = parse_uuid(session_id, "session_id")
        async with self.db.connection("sessions.end") as conn:
            cur = conn.cursor(row_factory=class_row(ConversationSession))
            await cur.execute(q.END, {"id": sid})
            session = await cur.fetchone()
            if session is None:
                await cur.execute(q.GET, {"id": sid})
                session = await cur.fetchone()
        if session is None:
            raise NotFoundError(f"session {sid} does not exist")
        return session

    # ------------------------------------------------------------------ reads
    async def find(self, session_id: UUID | str) -> ConversationSession | None:
        """The session, or ``None`` if there is none with this id."""
        sid = parse_uuid(session_id, "session_id")
        async with self.db.connection("sessions.find") as conn:
            cur = conn.cursor(row_factory=class_row(ConversationSession))
            await cur.execute(q.GET, {"id": sid})
            return await cur.fetchone()

    async def get(self, session_id: UUID | str) -> ConversationSession:
        """The session; ``NotFoundError`` if there is none with this id."""
        session = await self.find(session_id)
        if session is None:
            raise NotFoundError(f"session {session_id} does not exist")
        return session

    async def get_with_turns(
        self, session_id: UUID | str, *, limit: int | None = None
    ) -> SessionWithTurns:
        """The session and its turns in turn order, read from one snapshot (the counters
        agree with the turns). With ``limit``, only the latest ``limit`` turns (still in
        turn order), e.g. the context window of the next LLM call."""
        sid = parse_uuid(session_id, "session_id")
        count = check_optional_int(limit, "limit", minimum=0)
        async with self.db.transaction("sessions.get_with_turns") as conn:
            await conn.execute(q.SNAPSHOT)
            scur = conn.cursor(row_factory=class_row(ConversationSession))
            await scur.execute(q.GET, {"id": sid})
            session = await scur.fetchone()
            if session is None:
                raise NotFoundError(f"session {sid} does not exist")
            tcur = conn.cursor(row_factory=class_row(ConversationTurn))
            await tcur.execute(q.TURNS, {"id": sid, "limit": count})
            turns = await tcur.fetchall()
        return SessionWithTurns(session=session, turns=turns)

    async def list_for_user(
        self,
        user_id: UUID | str,
        *,
        limit: int = 50,
        offset: int = 0,
        status: str | None = None,
    ) -> Page[ConversationSession]:
        """A page of the user's sessions, newest first, optionally only ``active`` or
        ``ended`` ones. ``NotFoundError`` if the user does not exist or is deleted."""
        uid = parse_uuid(user_id, "user_id")
        if status is not None:
            check_choice(status, "status", SESSION_STATUSES, " or None")
        params = {"user_id": uid, "status": status}
        return await self._list_page(
            "sessions.list_for_user",
            ConversationSession,
            self._q_list,
            params,
            limit,
            offset,
            owner=uid,
        )

    async def statistics(
        self, user_id: UUID | str, *, since: datetime | None = None
    ) -> SessionStatistics:
        """Counts, tokens and per-stage latency (average, median, p95, max; computed in SQL)
        over the user's sessions started at or after ``since`` and their turns.
        ``NotFoundError`` if the user does not exist or is deleted."""
        uid = parse_uuid(user_id, "user_id")
        start = check_aware_datetime(since, "since")
        async with self.db.connection("sessions.statistics") as conn:
            await self._require_user(conn, uid)
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q.STATISTICS, {"user_id": uid, "since": start})
            row = await cur.fetchone()
        if row is None:
            raise QueryError("sessions: the statement returned no row")
        stages = {
            stage: StageLatency(
                count=row[f"{stage}_count"],
                avg_ms=row[f"{stage}_avg"],
                p50_ms=row[f"{stage}_p50"],
                p95_ms=row[f"{stage}_p95"],
                max_ms=row[f"{stage}_max"],
            )
            for stage in STAGES
        }
        return SessionStatistics(
            user_id=uid,
            since=start,
            sessions=row["sessions"],
            active_sessions=row["active_sessions"],
            ended_sessions=row["sessions"] - row["active_sessions"],
            turns=row["turns"],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            **stages,
        )
