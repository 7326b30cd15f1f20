"""Tenant isolation (SPEC §2.12), as the application role: a repository scoped with
``factory.for_user(alice)`` — and raw SQL on its connection — cannot read, update or delete
Bob's rows; unscoped service code sees everyone as before; the scope never outlives its
transaction on a pooled connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from digitwin_db import Database, NotFoundError, RepositoryFactory, ValidationError
from digitwin_db.errors import DigitwinDBError
from digitwin_db.models.users import User
from tests.conftest import RoleUrls

_OWNED = (
    "users",
    "voice_models",
    "face_models",
    "conversation_sessions",
    "conversation_turns",
    "knowledge_documents",
)


@pytest.fixture
def app_factory(role_urls: RoleUrls, pg_url: str) -> Iterator[RepositoryFactory]:
    # One connection: a scoped call and the next unscoped one share it.
    db = Database(url=role_urls.app, pool_min_size=1, pool_max_size=1)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()


def _populate(factory: RepositoryFactory, name: str) -> dict[str, Any]:
    user = factory.users.create(email=f"{name}@example.com", name=name.title())
    voice = factory.voice_models.create(user_id=user.id, name="v", provider="p", model_ref="r")
    face = factory.face_models.create(user_id=user.id, name="f", provider="p", model_ref="r")
    session = factory.sessions.start(user_id=user.id)
    factory.sessions.add_turn(session.id, role="user", content=f"hello from {name}")
    doc = factory.documents.create(user_id=user.id, title="notes", content="shared words")
    return {"user": user, "voice": voice, "face": face, "session": session, "doc": doc}


def _snapshot(raw_conn: psycopg.Connection) -> dict[str, list[Any]]:
    return {
        table: raw_conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in _OWNED
    }


@pytest.fixture
def two_users(app_factory: RepositoryFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    return _populate(app_factory, "alice"), _populate(app_factory, "bob")


def test_scoped_repositories_see_only_their_user(
    app_factory: RepositoryFactory,
    two_users: tuple[dict[str, Any], dict[str, Any]],
    raw_conn: psycopg.Connection,
) -> None:
    alice, bob = two_users
    before = _snapshot(raw_conn)
    scoped = app_factory.for_user(alice["user"].id)
    assert scoped.users.get(alice["user"].id).email == "alice@example.com"
    assert scoped.users.list().total == 1
    assert scoped.users.find(bob["user"].id) is None
    assert scoped.voice_models.list_for_user(bob["user"].id).items == []
    assert [m.id for m in scoped.voice_models.list_for_user(alice["user"].id).items] == [
        alice["voice"].id
    ]
    assert [d.id for d in scoped.documents.search(alice["user"].id, "words")] == [alice["doc"].id]
    # Reads, updates and deletes of Bob's rows: not found, nothing changed.
    attempts = [
        lambda: scoped.documents.search(bob["user"].id, "words"),
        lambda: scoped.users.get(bob["user"].id),
        lambda: scoped.users.update(bob["user"].id, name="Mallory"),
        lambda: scoped.users.soft_delete(bob["user"].id),
        lambda: scoped.users.hard_delete(bob["user"].id),
        lambda: scoped.users.erase(bob["user"].id),
        lambda: scoped.voice_models.get(bob["voice"].id),
        lambda: scoped.voice_models.update(bob["voice"].id, name="stolen"),
        lambda: scoped.voice_models.activate(bob["voice"].id),
        lambda: scoped.face_models.soft_delete(bob["face"].id),
        lambda: scoped.sessions.get(bob["session"].id),
        lambda: scoped.sessions.get_with_turns(bob["session"].id),
        lambda: scoped.sessions.add_turn(bob["session"].id, role="user", content="x"),
        lambda: scoped.sessions.end(bob["session"].id),
        lambda: scoped.documents.get(bob["doc"].id),
        lambda: scoped.documents.update(bob["doc"].id, title="stolen"),
        lambda: scoped.documents.soft_delete(bob["doc"].id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            attempt()
    # Writing a row for Bob (or another user) is refused by the policies' WITH CHECK.
    for create in (
        lambda: scoped.voice_models.create(
            user_id=bob["user"].id, name="x", provider="p", model_ref="r"
        ),
        lambda: scoped.documents.create(user_id=bob["user"].id, title="x", content="y"),
        lambda: scoped.sessions.start(user_id=bob["user"].id),
        lambda: scoped.users.create(email="eve@example.com", name="Eve"),
    ):
        with pytest.raises(DigitwinDBError):
            create()
    assert _snapshot(raw_conn) == before


def test_raw_sql_on_a_scoped_connection_is_scoped(
    app_factory: RepositoryFactory,
    two_users: tuple[dict[str, Any], dict[str, Any]],
    raw_conn: psycopg.Connection,
) -> None:
    alice, bob = two_users
    bob_id = bob["user"].id
    bob_rows = {t: v for t, v in _snapshot(raw_conn).items()}
    scoped = app_factory.for_user(alice["user"].id)
    with scoped.db.connection("test.raw") as conn:
        for table in _OWNED:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row == (1,), table  # Alice's one row of each
        assert conn.execute("SELECT count(*) FROM users WHERE id = %s", (bob_id,)).fetchone() == (
            0,
        )
        for statement in (
            "UPDATE users SET name = 'Mallory' WHERE id = %s",
            "UPDATE voice_models SET name = 'x' WHERE user_id = %s",
            "DELETE FROM knowledge_documents WHERE user_id = %s",
            "DELETE FROM conversation_sessions WHERE user_id = %s",
            "DELETE FROM users WHERE id = %s",
        ):
            assert conn.execute(statement, (bob_id,)).rowcount == 0, statement
        # A statement without a filter touches Alice's rows only.
        assert conn.execute("UPDATE conversation_turns SET content = 'edited'").rowcount == 1
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
            conn.transaction(),  # a savepoint: the refusal does not undo the update above
        ):
            conn.execute(
                "INSERT INTO voice_models (user_id, name, provider, model_ref) "
                "VALUES (%s, 'x', 'p', 'r')",
                (bob_id,),
            )
    after = _snapshot(raw_conn)
    for table in _OWNED:
        bobs = [r for r in after[table] if bob_id in r or bob["session"].id in r]
        assert bobs == [r for r in bob_rows[table] if bob_id in r or bob["session"].id in r]
    turns = raw_conn.execute("SELECT content FROM conversation_turns ORDER BY content").fetchall()
    assert turns == [("edited",), ("hello from bob",)]


def test_unscoped_code_sees_everyone_and_the_scope_does_not_leak(
    app_factory: RepositoryFactory, two_users: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    alice, _bob = two_users
    scoped = app_factory.for_user(alice["user"].id)
    assert scoped.users.list().total == 1
    # The same (single) pooled connection, unscoped again: the setting was transaction-local.
    assert app_factory.users.list().total == 2
    with app_factory.db.connection("test.setting") as conn:
        row = conn.execute("SELECT current_setting('digitwin.user_id', true)").fetchone()
        assert row is not None and row[0] in (None, "")
        assert conn.execute("SELECT count(*) FROM voice_models").fetchone() == (2,)
    # A scoped user may do everything with their own rows.
    model = scoped.voice_models.create(
        user_id=alice["user"].id, name="second", provider="p", model_ref="r", status="ready"
    )
    scoped.voice_models.activate(model.id)
    session = scoped.sessions.start(user_id=alice["user"].id)
    scoped.sessions.add_turn(session.id, role="assistant", content="hi")
    assert len(scoped.sessions.get_with_turns(session.id).turns) == 1
    updated: User = scoped.users.update(alice["user"].id, name="Alice B.")
    assert updated.name == "Alice B."
    scoped.users.erase(alice["user"].id)
    assert app_factory.users.list().total == 1


@pytest.mark.parametrize("bad", ["not-a-uuid", 42, None, [[1]]])
def test_for_user_needs_a_uuid(app_factory: RepositoryFactory, bad: Any) -> None:
    with pytest.raises(ValidationError, match="user_id"):
        app_factory.for_user(bad)
