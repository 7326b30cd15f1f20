"""The document lifecycle under concurrent workers (real threads, sync API): of workers
racing one document pending → processing, exactly one wins."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from digitwin_db import Database, RepositoryFactory
from digitwin_db.errors import NotFoundError, ValidationError
from digitwin_db.models.documents import KnowledgeDocument
from tests.helpers import insert_user

WORKERS = 8


@pytest.fixture
def factory(pg_url: str) -> Iterator[RepositoryFactory]:
    db = Database(url=pg_url, pool_min_size=WORKERS, pool_max_size=WORKERS, pool_timeout=30.0)
    db.open()
    repositories = RepositoryFactory(db)
    yield repositories
    repositories.close()


def _race(
    factory: RepositoryFactory, doc_id: uuid.UUID, workers: int, target: str
) -> tuple[list[KnowledgeDocument], list[BaseException]]:
    barrier = threading.Barrier(workers)
    won: list[KnowledgeDocument] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        try:
            document = factory.documents.set_status(doc_id, target)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                won.append(document)

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return won, errors


def test_two_workers_claim_one_document(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user_id = insert_user(raw_conn)
    for attempt in range(10):
        doc = factory.documents.create(user_id=user_id, title=f"doc {attempt}", content="text")
        won, errors = _race(factory, doc.id, 2, "processing")
        assert len(won) == 1 and won[0].status == "processing"
        assert len(errors) == 1 and isinstance(errors[0], ValidationError)
        assert "cannot move from 'processing' to 'processing'" in str(errors[0])
        assert factory.documents.get(doc.id).status == "processing"


def test_many_workers_many_documents(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user_id = insert_user(raw_conn)
    doc = factory.documents.create(user_id=user_id, title="contended", content="text")
    won, errors = _race(factory, doc.id, WORKERS, "processing")
    assert len(won) == 1
    assert len(errors) == WORKERS - 1 and all(isinstance(e, ValidationError) for e in errors)
    # The finish line is raced too: exactly one worker moves it to ready.
    won, errors = _race(factory, doc.id, WORKERS, "ready")
    assert len(won) == 1 and won[0].status == "ready"
    assert len(errors) == WORKERS - 1 and all(isinstance(e, ValidationError) for e in errors)
    final = factory.documents.get(doc.id)
    assert final.status == "ready" and final.processed_at is not None


def test_create_waits_for_a_concurrent_user_soft_delete(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, pg_url: str
) -> None:
    """A document created while the user's soft delete is in flight is either refused
    (the delete commits first) or caught by its cascade: never a live document of a
    deleted user."""
    user_id = insert_user(raw_conn)
    outcome: list[BaseException | KnowledgeDocument] = []
    with psycopg.connect(pg_url) as deleter:  # one transaction, held open below
        deleter.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))

        def create() -> None:
            try:
                outcome.append(
                    factory.documents.create(user_id=user_id, title="late", content="text")
                )
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=create)
        thread.start()
        # Wait until the insert is blocked on the user's row lock.
        for _ in range(500):
            row = raw_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%INSERT INTO knowledge_documents%'"
            ).fetchone()
            if row and row[0]:
                break
            threading.Event().wait(0.01)
        else:
            pytest.fail("the insert never waited for the user's row lock")
        deleter.execute(
            "UPDATE knowledge_documents SET deleted_at = now() "
            "WHERE user_id = %s AND deleted_at IS NULL",
            (user_id,),
        )
        deleter.commit()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], NotFoundError)
    live = raw_conn.execute(
        "SELECT count(*) FROM knowledge_documents WHERE user_id = %s AND deleted_at IS NULL",
        (user_id,),
    ).fetchone()
    assert live == (0,)
