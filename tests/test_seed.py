"""The demo-data seed: what it creates, that a second run changes nothing, that an
interrupted run is completed, and the ``seed`` command."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from digitwin_db import ConfigurationError, Database, RepositoryFactory
from digitwin_db.cli import main
from digitwin_db.seed import SEED_USERS, run, seed

# Every table the seed writes, with the columns that identify a row's content (timestamps
# and generated ids excluded, so two runs can be compared).
_CONTENT: dict[str, str] = {
    "users": "SELECT email, name, subscription_tier, personality_traits, preferences, settings "
    "FROM users ORDER BY email",
    "voice_models": "SELECT u.email, m.name, m.status, m.is_active, m.provider, m.model_ref, "
    "m.language, m.sample_rate, m.quality_score FROM voice_models m JOIN users u "
    "ON u.id = m.user_id ORDER BY u.email, m.name",
    "face_models": "SELECT u.email, m.name, m.status, m.is_active, m.resolution "
    "FROM face_models m JOIN users u ON u.id = m.user_id ORDER BY u.email, m.name",
    "knowledge_documents": "SELECT u.email, d.title, d.status, d.mime_type, d.source, "
    "d.chunk_count, d.error, d.size_bytes FROM knowledge_documents d JOIN users u "
    "ON u.id = d.user_id ORDER BY u.email, d.title",
    "conversation_sessions": "SELECT u.email, s.metadata, s.status, s.turn_count, s.tokens_in, "
    "s.tokens_out, s.asr_ms_total, s.llm_ms_total, s.tts_ms_total, s.total_ms_total, "
    "s.voice_model_id IS NOT NULL, s.face_model_id IS NOT NULL FROM conversation_sessions s "
    "JOIN users u ON u.id = s.user_id ORDER BY u.email, s.metadata->>'seed'",
    "conversation_turns": "SELECT s.metadata->>'seed', t.turn_number, t.role, t.content, "
    "t.asr_ms, t.llm_ms, t.tts_ms, t.total_ms, t.tokens_in, t.tokens_out "
    "FROM conversation_turns t JOIN conversation_sessions s ON s.id = t.session_id "
    "ORDER BY 1, 2",
    "audit_logs": "SELECT action, result, resource_type, resource_id, host(ip_address) "
    "FROM audit_logs WHERE resource_type = 'seed' ORDER BY resource_id",
}


def _contents(raw_conn: psycopg.Connection) -> dict[str, list[Any]]:
    return {table: raw_conn.execute(query).fetchall() for table, query in _CONTENT.items()}


def _ids(raw_conn: psycopg.Connection) -> list[Any]:
    return [
        raw_conn.execute(
            sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table))
        ).fetchall()
        for table in _CONTENT
    ]


@pytest.fixture
def factory(pg_url: str) -> Iterator[RepositoryFactory]:
    db = Database(url=pg_url, pool_min_size=0, pool_max_size=4)
    db.open()
    repositories = RepositoryFactory(db)
    yield repositories
    repositories.close()


def test_seed_creates_the_demo_data(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    report = seed(factory)
    assert report.changed and report.existing == {}
    assert report.created["users"] == 2

    free = factory.users.get_by_email("alice.free@example.com")
    pro = factory.users.get_by_email("bob.pro@example.com")
    assert (free.subscription_tier, pro.subscription_tier) == ("free", "pro")
    for user in (free, pro):
        voice = factory.voice_models.get_active(user.id)
        face = factory.face_models.get_active(user.id)
        assert voice is not None and voice.status == "ready"
        assert face is not None and face.status == "ready"
        assert len(factory.voice_models.list_for_user(user.id).items) >= 2

        documents = factory.documents.list_for_user(user.id).items
        assert {d.status for d in documents} == {"pending", "processing", "ready", "failed"}
        assert all(d.chunk_count for d in documents if d.status == "ready")
        assert all(d.error for d in documents if d.status == "failed")

        sessions = factory.sessions.list_for_user(user.id).items
        assert {s.status for s in sessions} == {"active", "ended"}
        for session in sessions:
            assert session.voice_model_id == voice.id and session.face_model_id == face.id
            full = factory.sessions.get_with_turns(session.id)
            numbers = [t.turn_number for t in full.turns]
            assert numbers == list(range(1, session.turn_count + 1)) and numbers

        stats = factory.sessions.statistics(user.id)
        for stage in (stats.asr, stats.llm, stats.tts, stats.total):
            assert stage.count > 0 and stage.avg_ms is not None and stage.p95_ms is not None
        # Realistic latencies: ASR a few hundred ms, end-to-end around a second.
        assert stats.asr.avg_ms is not None and 50 < stats.asr.avg_ms < 400
        assert stats.llm.p95_ms is not None and 300 < stats.llm.p95_ms < 1000
        assert stats.tokens_in > 0 and stats.tokens_out > 0

    assert factory.documents.search(pro.id, "latency streaming")
    entries = factory.audit_logs.query(resource_type="seed")
    assert entries.total == sum(len(u.audit) for u in SEED_USERS)
    assert {e.result for e in entries.items} == {"success", "failure", "denied"}


def test_a_second_run_changes_nothing(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    seed(factory)
    contents, ids = _contents(raw_conn), _ids(raw_conn)
    report = seed(factory)
    assert not report.changed
    assert report.created == {}
    assert report.existing["users"] == 2
    assert _contents(raw_conn) == contents
    assert _ids(raw_conn) == ids


def test_an_interrupted_seed_is_completed(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    seed(factory)
    complete = _contents(raw_conn)
    # Simulate a run that stopped half-way: drop some turns, a document, a session's end,
    # a model's activation.
    raw_conn.execute(
        "DELETE FROM conversation_turns t USING conversation_sessions s "
        "WHERE t.session_id = s.id AND s.metadata->>'seed' = 'bob-standup' AND t.turn_number > 3"
    )
    raw_conn.execute(
        "UPDATE conversation_sessions SET status = 'active', ended_at = NULL, turn_count = 3, "
        "tokens_in = t.tin, tokens_out = t.tout, asr_ms_total = t.asr, llm_ms_total = t.llm, "
        "tts_ms_total = t.tts, total_ms_total = t.total FROM (SELECT session_id, "
        "sum(tokens_in) tin, coalesce(sum(tokens_out), 0) tout, coalesce(sum(asr_ms), 0) asr, "
        "coalesce(sum(llm_ms), 0) llm, coalesce(sum(tts_ms), 0) tts, sum(total_ms) total "
        "FROM conversation_turns GROUP BY session_id) t "
        "WHERE t.session_id = conversation_sessions.id "
        "AND conversation_sessions.metadata->>'seed' = 'bob-standup'"
    )
    raw_conn.execute("DELETE FROM knowledge_documents WHERE title = 'Favourite recipes'")
    raw_conn.execute(
        "UPDATE knowledge_documents SET status = 'processing', chunk_count = NULL "
        "WHERE title = 'Product roadmap'"
    )
    raw_conn.execute("UPDATE face_models SET is_active = false")
    assert _contents(raw_conn) != complete

    report = seed(factory)
    assert report.created == {"documents": 1, "turns": 5}
    assert _contents(raw_conn) == complete


def test_two_seeds_at_once_create_one_set(
    factory: RepositoryFactory, pg_url: str, raw_conn: psycopg.Connection
) -> None:
    other_db = Database(url=pg_url, pool_min_size=0, pool_max_size=4)
    other_db.open()
    other = RepositoryFactory(other_db)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def go(target: RepositoryFactory) -> None:
        barrier.wait()
        try:
            seed(target)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(f,)) for f in (factory, other)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.close()
    assert errors == []
    counts = raw_conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM conversation_sessions), "
        "(SELECT count(*) FROM knowledge_documents), (SELECT count(*) FROM audit_logs "
        "WHERE resource_type = 'seed')"
    ).fetchone()
    expected = (
        len(SEED_USERS),
        sum(len(u.sessions) for u in SEED_USERS),
        sum(len(u.documents) for u in SEED_USERS),
        sum(len(u.audit) for u in SEED_USERS),
    )
    assert counts == expected


def test_seed_needs_two_connections(pg_url: str) -> None:
    with Database(url=pg_url, pool_min_size=0, pool_max_size=1) as db:
        with pytest.raises(ConfigurationError, match="at least 2 connections"):
            seed(RepositoryFactory(db))


def test_run_from_settings_and_the_command(
    pg_url: str,
    raw_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert run().changed
    contents = _contents(raw_conn)
    assert main(["seed"]) == 0
    out = capsys.readouterr().out
    assert "users 2 (0 new)" in out and "already in place" in out
    assert _contents(raw_conn) == contents
    with pytest.raises(SystemExit) as help_exit:
        main(["seed", "--help"])
    assert help_exit.value.code == 0
