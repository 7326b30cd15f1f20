"""Voice/face model activation and the user cascade under real thread concurrency (sync API).

Exact outcomes, no timing assertions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import psycopg
import pytest

from digitwin_db import Database, RepositoryFactory
from digitwin_db.errors import NotFoundError

THREADS = 8
ROUNDS = 5


@pytest.fixture
def factory(pg_url: str) -> Iterator[RepositoryFactory]:
    db = Database(url=pg_url, pool_min_size=1, pool_max_size=THREADS + 2, pool_timeout=30.0)
    db.open()
    repositories = RepositoryFactory(db)
    yield repositories
    repositories.close()


def run_together(tasks: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Start every task at once (barrier) on its own thread; collect results and errors."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(task: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            value = task()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(t,)) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def active_count(conn: psycopg.Connection, table: str, user_id: Any) -> int:
    row = conn.execute(
        psycopg.sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s AND is_active").format(
            psycopg.sql.Identifier(table)
        ),
        (user_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", ["voice_models", "face_models"])
def test_concurrent_activations_leave_exactly_one_active(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, kind: str
) -> None:
    repository = getattr(factory, kind)
    user = factory.users.create(email="race@example.com", name="Racer")
    models = [
        repository.create(
            user_id=user.id, name=f"m{i}", provider="p", model_ref=f"r{i}", status="ready"
        )
        for i in range(THREADS)
    ]
    for _ in range(ROUNDS):
        results, errors = run_together([partial(repository.activate, m.id) for m in models])
        assert errors == []
        assert len(results) == THREADS and all(r.is_active for r in results)
        assert active_count(raw_conn, kind, user.id) == 1
        active = repository.get_active(user.id)
        assert active is not None and active.id in {m.id for m in models}
    # Every activation that changed something is audited: at least one per round.
    row = raw_conn.execute(
        "SELECT count(*) FROM audit_logs WHERE action = %s",
        (f"{kind.removesuffix('s')}.activated",),
    ).fetchone()
    assert row is not None and ROUNDS <= row[0] <= ROUNDS * THREADS


def test_activations_of_different_users_do_not_interfere(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    users = [factory.users.create(email=f"u{i}@example.com", name=f"U{i}") for i in range(4)]
    tasks: list[Callable[[], Any]] = []
    for user in users:
        for i in range(2):
            model = factory.voice_models.create(
                user_id=user.id, name=f"m{i}", provider="p", model_ref="r", status="ready"
            )
            tasks.append(partial(factory.voice_models.activate, model.id))
    _, errors = run_together(tasks)
    assert errors == []
    for user in users:
        assert active_count(raw_conn, "voice_models", user.id) == 1


def test_activation_racing_user_soft_delete(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """Activations racing the user's soft delete: either they ran first (and the cascade
    switched the model off) or they see the user deleted (NotFoundError); never an
    active model of a deleted user, never another error."""
    for round_ in range(ROUNDS):
        user = factory.users.create(email=f"del{round_}@example.com", name="Deleted")
        models = [
            factory.voice_models.create(
                user_id=user.id, name=f"m{i}", provider="p", model_ref="r", status="ready"
            )
            for i in range(THREADS - 1)
        ]
        tasks: list[Callable[[], Any]] = [
            partial(factory.voice_models.activate, m.id) for m in models
        ]
        tasks.append(partial(factory.users.soft_delete, user.id))
        _, errors = run_together(tasks)
        assert all(isinstance(e, NotFoundError) for e in errors), errors
        assert active_count(raw_conn, "voice_models", user.id) == 0
        live = raw_conn.execute(
            "SELECT count(*) FROM voice_models WHERE user_id = %s AND deleted_at IS NULL",
            (user.id,),
        ).fetchone()
        assert live == (0,)


def test_create_racing_user_soft_delete_leaves_no_live_model(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """A model created while its user is being soft-deleted is either refused or caught by
    the cascade: a deleted user never keeps a live model."""
    for round_ in range(ROUNDS):
        user = factory.users.create(email=f"c{round_}@example.com", name="C")
        tasks: list[Callable[[], Any]] = [
            partial(
                factory.face_models.create,
                user_id=user.id,
                name=f"f{i}",
                provider="p",
                model_ref="r",
            )
            for i in range(THREADS - 1)
        ]
        tasks.append(partial(factory.users.soft_delete, user.id))
        _, errors = run_together(tasks)
        assert all(isinstance(e, NotFoundError) for e in errors), errors
        live = raw_conn.execute(
            "SELECT count(*) FROM face_models WHERE user_id = %s AND deleted_at IS NULL",
            (user.id,),
        ).fetchone()
        assert live == (0,)


def test_restore_racing_user_soft_delete_leaves_no_live_model(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """Restoring models while their user is being soft-deleted: each restore is refused
    (owner deleted) or caught by the cascade; no deadlock, no other error."""
    for round_ in range(ROUNDS):
        user = factory.users.create(email=f"r{round_}@example.com", name="R")
        models = [
            factory.voice_models.create(user_id=user.id, name=f"m{i}", provider="p", model_ref="r")
            for i in range(THREADS - 1)
        ]
        for model in models:
            factory.voice_models.soft_delete(model.id)
        tasks: list[Callable[[], Any]] = [
            partial(factory.voice_models.restore, m.id) for m in models
        ]
        tasks.append(partial(factory.users.soft_delete, user.id))
        _, errors = run_together(tasks)
        assert all(isinstance(e, NotFoundError) for e in errors), errors
        live = raw_conn.execute(
            "SELECT count(*) FROM voice_models WHERE user_id = %s AND deleted_at IS NULL",
            (user.id,),
        ).fetchone()
        assert live == (0,)
