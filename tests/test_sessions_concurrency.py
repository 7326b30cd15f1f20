"""add_turn under real concurrency (threads, sync API): turn numbers stay 1..n exactly."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest

from digitwin_db import Database, RepositoryFactory
from digitwin_db.errors import ValidationError
from digitwin_db.models.sessions import ConversationTurn
from tests.helpers import insert_user

THREADS = 20


@pytest.fixture
def factory(pg_url: str) -> Iterator[RepositoryFactory]:
    db = Database(url=pg_url, pool_min_size=THREADS, pool_max_size=THREADS, pool_timeout=30.0)
    db.open()
    repositories = RepositoryFactory(db)
    yield repositories
    repositories.close()


def _run_together(
    count: int, work: Callable[[int], object]
) -> tuple[list[object], list[BaseException]]:
    """Run ``work(i)`` in ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            result = work(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def test_concurrent_add_turn_numbers_one_to_n(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    session = factory.sessions.start(user_id=insert_user(raw_conn))

    def add(i: int) -> ConversationTurn:
        return factory.sessions.add_turn(
            session.id,
            role="user" if i % 2 else "assistant",
            content=f"message {i}",
            asr_ms=10 + i,
            llm_ms=100,
            total_ms=200 + i,
            tokens_in=i,
            tokens_out=1,
        )

    results, errors = _run_together(THREADS, add)
    assert errors == []
    turns = [r for r in results if isinstance(r, ConversationTurn)]
    assert sorted(t.turn_number for t in turns) == list(range(1, THREADS + 1))

    stored = raw_conn.execute(
        "SELECT turn_number FROM conversation_turns WHERE session_id = %s ORDER BY turn_number",
        (session.id,),
    ).fetchall()
    assert [r[0] for r in stored] == list(range(1, THREADS + 1))
    current = factory.sessions.get(session.id)
    assert current.turn_count == THREADS
    assert current.tokens_in == sum(range(THREADS))
    assert current.tokens_out == THREADS
    assert current.llm_ms_total == 100 * THREADS
    assert current.asr_ms_total == sum(10 + i for i in range(THREADS))
    assert current.total_ms_total == sum(200 + i for i in range(THREADS))


def test_concurrent_add_turn_and_end(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """Turns racing an end: each either lands with the next number or is refused; the
    session's counters match the turns that landed, with no gap."""
    session = factory.sessions.start(user_id=insert_user(raw_conn))

    def work(i: int) -> object:
        if i == THREADS // 2:
            return factory.sessions.end(session.id)
        return factory.sessions.add_turn(session.id, role="user", content=str(i), tokens_in=1)

    results, errors = _run_together(THREADS, work)
    assert all(isinstance(e, ValidationError) for e in errors), errors
    landed = sorted(r.turn_number for r in results if isinstance(r, ConversationTurn))
    assert landed == list(range(1, len(landed) + 1))
    assert len(landed) + len(errors) == THREADS - 1
    current = factory.sessions.get(session.id)
    assert current.status == "ended"
    assert current.turn_count == len(landed) == current.tokens_in


def test_concurrent_sessions_do_not_interfere(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user_id = insert_user(raw_conn)
    sessions = [factory.sessions.start(user_id=user_id) for _ in range(4)]

    def add(i: int) -> ConversationTurn:
        return factory.sessions.add_turn(sessions[i % 4].id, role="user", content="x")

    results, errors = _run_together(THREADS, add)
    assert errors == []
    for session in sessions:
        numbers = sorted(
            t.turn_number
            for t in results
            if isinstance(t, ConversationTurn) and t.session_id == session.id
        )
        assert numbers == list(range(1, THREADS // 4 + 1))
        assert factory.sessions.get(session.id).turn_count == THREADS // 4
