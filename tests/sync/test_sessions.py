# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_sessions.py
"""Conversation sessions and turns: start, add_turn, end, reads, listing, statistics.

Concurrent add_turn (real threads) is in tests/test_sessions_concurrency.py.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import DigitwinDBError, NotFoundError, ValidationError
from digitwin_db.models.sessions import ConversationSession
from tests.helpers import insert_user

# ---------------------------------------------------------------------------- helpers


def insert_model(
    raw_conn: psycopg.Connection, table: str, user_id: uuid.UUID, *, deleted: bool = False
) -> uuid.UUID:
    assert table in ("voice_models", "face_models")
    row = raw_conn.execute(
        psycopg.sql.SQL(
            "INSERT INTO {} (user_id, name, provider, model_ref, status, deleted_at) "
            "VALUES (%s, 'model', 'provider', 'ref://model', 'ready', %s) RETURNING id"
        ).format(psycopg.sql.Identifier(table)),
        (user_id, datetime.now(UTC) if deleted else None),
    ).fetchone()
    assert row is not None
    new_id: uuid.UUID = row[0]
    return new_id


def snapshot(raw_conn: psycopg.Connection) -> list[Any]:
    """Everything stored in the session tables, to prove that a failed call changed nothing."""
    sessions = raw_conn.execute("SELECT * FROM conversation_sessions ORDER BY id").fetchall()
    turns = raw_conn.execute(
        "SELECT * FROM conversation_turns ORDER BY session_id, turn_number"
    ).fetchall()
    return [sessions, turns]


def percentile_cont(values: list[int], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the sorted values."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def user_id(raw_conn: psycopg.Connection) -> uuid.UUID:
    return insert_user(raw_conn)


# ---------------------------------------------------------------------------- start
def test_start_returns_an_active_session(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    voice = insert_model(raw_conn, "voice_models", user_id)
    face = insert_model(raw_conn, "face_models", user_id)
    session = factory.sessions.start(
        user_id=str(user_id), voice_model_id=voice, face_model_id=str(face), metadata={"ch": 1}
    )
    assert isinstance(session, ConversationSession)
    assert session.user_id == user_id
    assert (session.voice_model_id, session.face_model_id) == (voice, face)
    assert session.status == "active" and session.is_active
    assert session.ended_at is None
    assert session.turn_count == 0 and session.tokens_in == 0 and session.total_ms_total == 0
    assert session.metadata == {"ch": 1}
    assert session.started_at.tzinfo is not None
    assert factory.sessions.get(session.id) == session


def test_start_without_models(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    session = factory.sessions.start(user_id=user_id)
    assert session.voice_model_id is None and session.face_model_id is None
    assert session.metadata == {}


def test_start_refuses_unknown_or_deleted_user_and_models(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    other = insert_user(raw_conn)
    deleted_user = insert_user(raw_conn)
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (deleted_user,))
    deleted_voice = insert_model(raw_conn, "voice_models", user_id, deleted=True)
    deleted_face = insert_model(raw_conn, "face_models", user_id, deleted=True)
    others_voice = insert_model(raw_conn, "voice_models", other)
    others_face = insert_model(raw_conn, "face_models", other)
    before = snapshot(raw_conn)

    with pytest.raises(NotFoundError, match="does not exist"):
        factory.sessions.start(user_id=uuid.uuid4())
    with pytest.raises(NotFoundError, match="deleted"):
        factory.sessions.start(user_id=deleted_user)
    with pytest.raises(NotFoundError, match=r"voice model .* does not exist"):
        factory.sessions.start(user_id=user_id, voice_model_id=uuid.uuid4())
    with pytest.raises(NotFoundError, match=r"face model .* does not exist"):
        factory.sessions.start(user_id=user_id, face_model_id=uuid.uuid4())
    with pytest.raises(NotFoundError, match=r"voice model .* is deleted"):
        factory.sessions.start(user_id=user_id, voice_model_id=deleted_voice)
    with pytest.raises(NotFoundError, match=r"face model .* is deleted"):
        factory.sessions.start(user_id=user_id, face_model_id=deleted_face)
    with pytest.raises(ValidationError, match=r"voice model .* another user"):
        factory.sessions.start(user_id=user_id, voice_model_id=others_voice)
    with pytest.raises(ValidationError, match=r"face model .* another user"):
        factory.sessions.start(user_id=user_id, face_model_id=others_face)
    assert snapshot(raw_conn) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": "not-a-uuid"},
        {"user_id": 42},
        {"user_id": None},
        {"voice_model_id": "x" * 1_000_000},
        {"face_model_id": 3.5},
        {"metadata": ["not", "a", "dict"]},
        {"metadata": {"x": float("nan")}},
        {"metadata": {"x": "y" * 1_000_001}},
        {"metadata": {"\ud800": 1}},
    ],
)
def test_start_bad_input_is_a_validation_error(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    kwargs: dict[str, Any],
) -> None:
    before = snapshot(raw_conn)
    with pytest.raises(ValidationError):
        factory.sessions.start(**{"user_id": user_id, **kwargs})
    assert snapshot(raw_conn) == before


# ---------------------------------------------------------------------------- add_turn
def test_add_turn_numbers_turns_and_moves_counters(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    session = factory.sessions.start(user_id=user_id)
    first = factory.sessions.add_turn(
        session.id, role="user", content="Hello there", asr_ms=120, total_ms=130, tokens_in=3
    )
    second = factory.sessions.add_turn(
        str(session.id),
        role="assistant",
        content="Hi! How can I help?",
        llm_ms=450,
        tts_ms=210,
        total_ms=700,
        tokens_in=12,
        tokens_out=8,
        metadata={"model": "gpt"},
    )
    third = factory.sessions.add_turn(session.id, role="system", content="note")
    assert [first.turn_number, second.turn_number, third.turn_number] == [1, 2, 3]
    assert first.session_id == session.id and first.role == "user"
    assert (first.asr_ms, first.llm_ms, first.tts_ms, first.total_ms) == (120, None, None, 130)
    assert second.metadata == {"model": "gpt"} and third.metadata == {}
    assert (second.tokens_in, second.tokens_out) == (12, 8)

    current = factory.sessions.get(session.id)
    assert current.turn_count == 3
    assert (current.tokens_in, current.tokens_out) == (15, 8)
    assert (current.asr_ms_total, current.llm_ms_total, current.tts_ms_total) == (120, 450, 210)
    assert current.total_ms_total == 830
    assert current.updated_at >= session.updated_at
    # The stored counters agree with the turns.
    row = raw_conn.execute(
        "SELECT count(*), sum(tokens_in), sum(total_ms) FROM conversation_turns "
        "WHERE session_id = %s",
        (session.id,),
    ).fetchone()
    assert row == (3, 15, 830)


def test_turn_numbers_are_per_session(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    one = factory.sessions.start(user_id=user_id)
    two = factory.sessions.start(user_id=user_id)
    factory.sessions.add_turn(one.id, role="user", content="a")
    factory.sessions.add_turn(one.id, role="assistant", content="b")
    turn = factory.sessions.add_turn(two.id, role="user", content="c")
    assert turn.turn_number == 1


def test_add_turn_to_ended_session_is_a_validation_error(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    session = factory.sessions.start(user_id=user_id)
    factory.sessions.add_turn(session.id, role="user", content="bye", tokens_in=2)
    factory.sessions.end(session.id)
    before = snapshot(raw_conn)
    with pytest.raises(ValidationError, match="has ended"):
        factory.sessions.add_turn(session.id, role="user", content="still there?")
    assert snapshot(raw_conn) == before


def test_add_turn_for_a_soft_deleted_user_is_not_found(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    session = factory.sessions.start(user_id=user_id)
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))
    before = snapshot(raw_conn)
    with pytest.raises(NotFoundError, match="deleted user"):
        factory.sessions.add_turn(session.id, role="user", content="anyone?")
    assert snapshot(raw_conn) == before
    raw_conn.execute("UPDATE users SET deleted_at = NULL WHERE id = %s", (user_id,))
    turn = factory.sessions.add_turn(session.id, role="user", content="back")
    assert turn.turn_number == 1


def test_add_turn_to_unknown_session_is_not_found(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        factory.sessions.add_turn(uuid.uuid4(), role="user", content="hello")
    assert snapshot(raw_conn) == [[], []]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "robot"}, "role must be one of"),
        ({"role": None}, "role must be one of"),
        ({"role": ["user"]}, "role must be one of"),
        ({"content": ""}, "content must not be empty"),
        ({"content": "x" * 1_000_000}, "content is too long"),
        ({"content": 42}, "content must be a string"),
        ({"content": "nul\x00byte"}, "NUL"),
        ({"content": "lone \ud800 surrogate"}, "content is not valid Unicode"),
        ({"asr_ms": -1}, "asr_ms must be >= 0"),
        ({"llm_ms": float("nan")}, "llm_ms must be an integer"),
        ({"tts_ms": 12.5}, "tts_ms must be an integer"),
        ({"total_ms": True}, "total_ms must be a number"),
        ({"total_ms": "100"}, "total_ms must be a number"),
        ({"total_ms": 3_600_001}, "total_ms must be <="),
        ({"tokens_in": -5}, "tokens_in must be >= 0"),
        ({"tokens_out": 10**12}, "tokens_out must be <="),
        ({"tokens_out": float("inf")}, "tokens_out must be"),
        ({"metadata": "not a dict"}, "metadata must be a JSON object"),
        ({"metadata": {"x": object()}}, "metadata is not JSON-serialisable"),
        ({"metadata": {"x": "\udfff"}}, "metadata is not valid Unicode"),
    ],
)
def test_add_turn_bad_input_changes_nothing(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    session = factory.sessions.start(user_id=user_id)
    factory.sessions.add_turn(session.id, role="user", content="first", asr_ms=10)
    before = snapshot(raw_conn)
    arguments: dict[str, Any] = {"role": "assistant", "content": "answer", **kwargs}
    with pytest.raises(ValidationError, match=message):
        factory.sessions.add_turn(session.id, **arguments)
    assert snapshot(raw_conn) == before
    # The numbering continues without a gap.
    turn = factory.sessions.add_turn(session.id, role="assistant", content="ok")
    assert turn.turn_number == 2


@pytest.mark.parametrize("session_id", ["nope", "", 12, None, "1" * 100_000])
def test_add_turn_malformed_session_id(factory: RepositoryFactory, session_id: Any) -> None:
    with pytest.raises(ValidationError, match="session_id must be a UUID"):
        factory.sessions.add_turn(session_id, role="user", content="x")


def test_add_turn_accepts_hostile_text_verbatim(
    factory: RepositoryFactory, user_id: uuid.UUID
) -> None:
    session = factory.sessions.start(user_id=user_id)
    text = "'; DROP TABLE conversation_turns; -- \\ \" %(role)s {} ☃ \n\t  "
    turn = factory.sessions.add_turn(session.id, role="user", content=text)
    assert turn.content == text
    stored = factory.sessions.get_with_turns(session.id)
    assert stored.turns[0].content == text


# ---------------------------------------------------------------------------- end
def test_end_is_idempotent(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    session = factory.sessions.start(user_id=user_id)
    ended = factory.sessions.end(session.id)
    assert ended.status == "ended" and not ended.is_active
    assert ended.ended_at is not None and ended.ended_at >= ended.started_at
    again = factory.sessions.end(str(session.id))
    assert again == ended  # the first end stands: same ended_at, same updated_at


def test_end_unknown_or_malformed(factory: RepositoryFactory) -> None:
    with pytest.raises(NotFoundError):
        factory.sessions.end(uuid.uuid4())
    with pytest.raises(ValidationError):
        factory.sessions.end("12345")


# ---------------------------------------------------------------------------- reads
def test_get_and_find(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    session = factory.sessions.start(user_id=user_id)
    assert factory.sessions.find(str(session.id)) == session
    missing = uuid.uuid4()
    assert factory.sessions.find(missing) is None
    with pytest.raises(NotFoundError, match=str(missing)):
        factory.sessions.get(missing)
    with pytest.raises(ValidationError):
        factory.sessions.get("not-a-uuid")


def test_get_with_turns(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    session = factory.sessions.start(user_id=user_id)
    for n in range(1, 6):
        factory.sessions.add_turn(
            session.id, role="user" if n % 2 else "assistant", content=f"turn {n}"
        )
    full = factory.sessions.get_with_turns(session.id)
    assert full.session.turn_count == 5
    assert [t.turn_number for t in full.turns] == [1, 2, 3, 4, 5]
    assert [t.content for t in full.turns] == [f"turn {n}" for n in range(1, 6)]

    latest = factory.sessions.get_with_turns(str(session.id), limit=2)
    assert [t.turn_number for t in latest.turns] == [4, 5]
    assert latest.session == full.session
    assert (factory.sessions.get_with_turns(session.id, limit=0)).turns == []
    assert len((factory.sessions.get_with_turns(session.id, limit=100)).turns) == 5

    empty = factory.sessions.start(user_id=user_id)
    assert (factory.sessions.get_with_turns(empty.id)).turns == []


def test_get_with_turns_errors(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    session = factory.sessions.start(user_id=user_id)
    with pytest.raises(NotFoundError):
        factory.sessions.get_with_turns(uuid.uuid4())
    with pytest.raises(ValidationError, match="limit must be >= 0"):
        factory.sessions.get_with_turns(session.id, limit=-1)
    with pytest.raises(ValidationError, match="limit must be"):
        factory.sessions.get_with_turns(session.id, limit="10")  # type: ignore[arg-type]


def test_list_for_user_pages_newest_first(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    other = insert_user(raw_conn)
    factory.sessions.start(user_id=other)
    started = [factory.sessions.start(user_id=user_id) for _ in range(5)]
    # Spread the start times so that the order is unambiguous.
    for age, session in enumerate(reversed(started)):
        raw_conn.execute(
            "UPDATE conversation_sessions SET started_at = now() - make_interval(mins => %s) "
            "WHERE id = %s",
            (age, session.id),
        )
    factory.sessions.end(started[0].id)
    factory.sessions.end(started[1].id)

    page = factory.sessions.list_for_user(user_id, limit=2)
    assert page.total == 5 and page.limit == 2 and page.offset == 0 and page.has_more
    assert [s.id for s in page.items] == [started[4].id, started[3].id]
    rest = factory.sessions.list_for_user(str(user_id), limit=10, offset=2)
    assert [s.id for s in rest.items] == [started[2].id, started[1].id, started[0].id]
    assert not rest.has_more

    ended = factory.sessions.list_for_user(user_id, status="ended")
    assert {s.id for s in ended.items} == {started[0].id, started[1].id} and ended.total == 2
    active = factory.sessions.list_for_user(user_id, status="active")
    assert active.total == 3 and all(s.status == "active" for s in active.items)

    beyond = factory.sessions.list_for_user(user_id, offset=50)
    assert beyond.items == [] and beyond.total == 5

    lonely = insert_user(raw_conn)
    nothing = factory.sessions.list_for_user(lonely)
    assert nothing.items == [] and nothing.total == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "paused"},
        {"status": 1},
        {"limit": 0},
        {"limit": -1},
        {"limit": 1001},
        {"limit": "10"},
        {"offset": -1},
        {"offset": 1.5},
    ],
)
def test_list_for_user_bad_arguments(
    factory: RepositoryFactory, user_id: uuid.UUID, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        factory.sessions.list_for_user(user_id, **kwargs)


def test_list_for_unknown_or_deleted_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    with pytest.raises(NotFoundError):
        factory.sessions.list_for_user(uuid.uuid4())
    with pytest.raises(ValidationError):
        factory.sessions.list_for_user("nope")
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))
    with pytest.raises(NotFoundError, match="deleted"):
        factory.sessions.list_for_user(user_id)


# ---------------------------------------------------------------------------- statistics
def test_statistics_are_computed_in_sql(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    other = insert_user(raw_conn)
    noise = factory.sessions.start(user_id=other)
    factory.sessions.add_turn(noise.id, role="user", content="x", asr_ms=99999)

    asr = [80, 95, 120, 150, 400]
    llm = [300, 320, 450, 500, 900, 1200]
    one = factory.sessions.start(user_id=user_id)
    two = factory.sessions.start(user_id=user_id)
    totals: list[int] = []
    for i, value in enumerate(asr):
        target = one if i % 2 else two
        totals.append(value + 10)
        factory.sessions.add_turn(
            target.id, role="user", content="q", asr_ms=value, total_ms=value + 10, tokens_in=4
        )
    for i, value in enumerate(llm):
        target = one if i % 2 else two
        totals.append(value + 200)
        factory.sessions.add_turn(
            target.id,
            role="assistant",
            content="a",
            llm_ms=value,
            tts_ms=value // 2,
            total_ms=value + 200,
            tokens_in=10,
            tokens_out=20,
        )
    factory.sessions.end(one.id)

    stats = factory.sessions.statistics(user_id)
    assert stats.user_id == user_id and stats.since is None
    assert (stats.sessions, stats.active_sessions, stats.ended_sessions) == (2, 1, 1)
    assert stats.turns == 11 and stats.avg_turns_per_session == 5.5
    assert (stats.tokens_in, stats.tokens_out) == (4 * 5 + 10 * 6, 20 * 6)
    assert stats.asr.count == 5 and stats.llm.count == 6 and stats.total.count == 11
    assert stats.asr.avg_ms == pytest.approx(sum(asr) / len(asr))
    assert stats.asr.p95_ms == pytest.approx(percentile_cont(asr, 0.95))
    assert stats.asr.p50_ms == pytest.approx(120)
    assert stats.asr.max_ms == 400
    assert stats.llm.p95_ms == pytest.approx(percentile_cont(llm, 0.95))
    tts = [v // 2 for v in llm]
    assert stats.tts.avg_ms == pytest.approx(sum(tts) / len(tts))
    assert stats.tts.p95_ms == pytest.approx(percentile_cont(tts, 0.95))
    assert stats.total.avg_ms == pytest.approx(sum(totals) / len(totals))
    assert stats.total.p95_ms == pytest.approx(percentile_cont(totals, 0.95))


def test_statistics_since_and_empty(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    empty = factory.sessions.statistics(user_id)
    assert (empty.sessions, empty.turns, empty.tokens_in) == (0, 0, 0)
    assert empty.asr.count == 0 and empty.asr.avg_ms is None and empty.asr.p95_ms is None
    assert empty.avg_turns_per_session == 0.0

    old = factory.sessions.start(user_id=user_id)
    factory.sessions.add_turn(old.id, role="user", content="old", asr_ms=1000)
    raw_conn.execute(
        "UPDATE conversation_sessions SET started_at = now() - interval '2 days' WHERE id = %s",
        (old.id,),
    )
    new = factory.sessions.start(user_id=user_id)
    factory.sessions.add_turn(new.id, role="user", content="new", asr_ms=100)
    since = datetime.now(UTC) - timedelta(days=1)
    recent = factory.sessions.statistics(str(user_id), since=since)
    assert recent.since == since
    assert (recent.sessions, recent.turns) == (1, 1)
    assert recent.asr.avg_ms == pytest.approx(100) and recent.asr.max_ms == 100
    everything = factory.sessions.statistics(user_id)
    assert (everything.sessions, everything.turns, everything.asr.max_ms) == (2, 2, 1000)


def test_statistics_bad_input(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    with pytest.raises(NotFoundError):
        factory.sessions.statistics(uuid.uuid4())
    with pytest.raises(ValidationError, match="timezone-aware"):
        factory.sessions.statistics(user_id, since=datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="since must be a datetime"):
        factory.sessions.statistics(user_id, since="yesterday")  # type: ignore[arg-type]
    with pytest.raises(DigitwinDBError):
        factory.sessions.statistics("garbage")


def test_sessions_go_away_with_their_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    session = factory.sessions.start(user_id=user_id)
    factory.sessions.add_turn(session.id, role="user", content="hi")
    raw_conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
    assert factory.sessions.find(session.id) is None
    assert snapshot(raw_conn) == [[], []]


def test_health_check_covers_the_session_tables(factory: RepositoryFactory) -> None:
    check = factory.sessions.check_health()
    assert check.ok and check.name == "sessions"
