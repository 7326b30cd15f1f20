"""Soft delete, the same everywhere (SPEC §2.5): visibility, cascade from users, exact
restore, restore conflicts, hard delete."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import ConflictError, NotFoundError, ValidationError
from digitwin_db.models.users import User


async def make_user(factory: AsyncRepositoryFactory, email: str = "sd@example.com") -> User:
    return await factory.users.create(email=email, name="Soft Delete")


def insert_document(conn: psycopg.Connection, user_id: uuid.UUID, title: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO knowledge_documents (user_id, title, content) VALUES (%s, %s, 'body') "
        "RETURNING id",
        (user_id, title),
    ).fetchone()
    assert row is not None
    document_id: uuid.UUID = row[0]
    return document_id


def deleted_at(conn: psycopg.Connection, table: str, row_id: uuid.UUID) -> object:
    row = conn.execute(
        psycopg.sql.SQL("SELECT deleted_at FROM {} WHERE id = %s").format(
            psycopg.sql.Identifier(table)
        ),
        (row_id,),
    ).fetchone()
    assert row is not None
    return row[0]


async def test_soft_deleted_user_is_hidden_unless_asked(factory: AsyncRepositoryFactory) -> None:
    user = await make_user(factory)
    await factory.users.soft_delete(user.id)
    with pytest.raises(NotFoundError):
        await factory.users.get(user.id)
    assert await factory.users.find(user.id) is None
    hidden = await factory.users.get(user.id, include_deleted=True)
    assert hidden.deleted_at is not None and hidden.is_deleted
    assert await factory.users.find(user.id, include_deleted=True) == hidden
    assert (await factory.users.list()).total == 0
    assert (await factory.users.list(include_deleted=True)).items == [hidden]


async def test_soft_delete_twice_is_not_found(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user = await make_user(factory)
    await factory.users.soft_delete(user.id)
    first = deleted_at(raw_conn, "users", user.id)
    with pytest.raises(NotFoundError, match="already deleted"):
        await factory.users.soft_delete(user.id)
    assert deleted_at(raw_conn, "users", user.id) == first
    with pytest.raises(NotFoundError):
        await factory.users.soft_delete(uuid.uuid4())
    with pytest.raises(ValidationError):
        await factory.users.soft_delete("nope")


async def test_restore(factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection) -> None:
    user = await make_user(factory)
    await factory.users.soft_delete(user.id)
    restored = await factory.users.restore(user.id)
    assert restored.deleted_at is None
    assert await factory.users.get(user.id) == restored
    with pytest.raises(NotFoundError, match="not deleted"):
        await factory.users.restore(user.id)
    with pytest.raises(NotFoundError, match="not found"):
        await factory.users.restore(uuid.uuid4())
    with pytest.raises(ValidationError):
        await factory.users.restore(12)  # type: ignore[arg-type]
    actions = [r[0] for r in raw_conn.execute("SELECT action FROM audit_logs ORDER BY id")]
    assert actions == ["user.created", "user.soft_deleted", "user.restored"]


async def test_restore_conflicts_when_a_live_row_took_the_email(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    old = await make_user(factory, "taken@example.com")
    await factory.users.soft_delete(old.id)
    await factory.users.create(email="TAKEN@example.com", name="Newcomer")
    before = raw_conn.execute("SELECT to_jsonb(u) FROM users u ORDER BY id").fetchall()
    with pytest.raises(ConflictError) as info:
        await factory.users.restore(old.id)
    assert info.value.constraint == "users_email_live_key"
    assert raw_conn.execute("SELECT to_jsonb(u) FROM users u ORDER BY id").fetchall() == before


async def test_user_soft_delete_cascades_and_restore_is_exact(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user = await make_user(factory)
    other = await make_user(factory, "other@example.com")
    voice_active = await factory.voice_models.create(
        user_id=user.id, name="v1", provider="p", model_ref="r1", status="ready"
    )
    await factory.voice_models.activate(voice_active.id)
    voice_earlier = await factory.voice_models.create(
        user_id=user.id, name="v2", provider="p", model_ref="r2"
    )
    await factory.voice_models.soft_delete(voice_earlier.id)  # deleted on its own, earlier
    face = await factory.face_models.create(
        user_id=user.id, name="f1", provider="p", model_ref="r3", status="ready"
    )
    await factory.face_models.activate(face.id)
    doc_live = insert_document(raw_conn, user.id, "live")
    doc_earlier = insert_document(raw_conn, user.id, "earlier")
    raw_conn.execute(
        "UPDATE knowledge_documents SET deleted_at = now() - interval '1 day' WHERE id = %s",
        (doc_earlier,),
    )
    earlier_doc_ts = deleted_at(raw_conn, "knowledge_documents", doc_earlier)
    earlier_voice_ts = deleted_at(raw_conn, "voice_models", voice_earlier.id)
    other_voice = await factory.voice_models.create(
        user_id=other.id, name="o", provider="p", model_ref="r", status="ready"
    )
    await factory.voice_models.activate(other_voice.id)

    await factory.users.soft_delete(user.id)

    user_ts = deleted_at(raw_conn, "users", user.id)
    assert deleted_at(raw_conn, "voice_models", voice_active.id) == user_ts
    assert deleted_at(raw_conn, "face_models", face.id) == user_ts
    assert deleted_at(raw_conn, "knowledge_documents", doc_live) == user_ts
    assert deleted_at(raw_conn, "voice_models", voice_earlier.id) == earlier_voice_ts
    assert deleted_at(raw_conn, "knowledge_documents", doc_earlier) == earlier_doc_ts
    # Active models were switched off (an active model must be live).
    assert await factory.voice_models.get_active(user.id) is None
    assert await factory.face_models.get_active(user.id) is None
    assert (await factory.voice_models.list_for_user(user.id)).items == []
    # The other user is untouched.
    assert (await factory.voice_models.get_active(other.id)) is not None
    # Owned rows cannot come back while their user is deleted.
    with pytest.raises(NotFoundError, match="owner"):
        await factory.voice_models.restore(voice_active.id)

    await factory.users.restore(user.id)

    assert deleted_at(raw_conn, "voice_models", voice_active.id) is None
    assert deleted_at(raw_conn, "face_models", face.id) is None
    assert deleted_at(raw_conn, "knowledge_documents", doc_live) is None
    # Rows deleted on their own before stay deleted.
    assert deleted_at(raw_conn, "voice_models", voice_earlier.id) == earlier_voice_ts
    assert deleted_at(raw_conn, "knowledge_documents", doc_earlier) == earlier_doc_ts
    assert {m.id for m in (await factory.voice_models.list_for_user(user.id)).items} == {
        voice_active.id
    }
    meta = raw_conn.execute(
        "SELECT metadata FROM audit_logs WHERE action = 'user.restored'"
    ).fetchone()
    assert meta == ({"voice_models": 1, "face_models": 1, "knowledge_documents": 1},)


async def test_failed_cascade_rolls_back_everything(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """The cascade is one transaction: if a step fails, the user stays live too."""
    user = await make_user(factory)
    await factory.voice_models.create(user_id=user.id, name="v", provider="p", model_ref="r")
    raw_conn.execute(
        "CREATE FUNCTION fail_doc() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'boom'; END $$"
    )
    raw_conn.execute(
        "CREATE TRIGGER fail_doc BEFORE UPDATE ON knowledge_documents "
        "FOR EACH ROW EXECUTE FUNCTION fail_doc()"
    )
    try:
        insert_document(raw_conn, user.id, "doc")
        with pytest.raises(ValidationError):
            await factory.users.soft_delete(user.id)
    finally:
        raw_conn.execute("DROP TRIGGER fail_doc ON knowledge_documents")
        raw_conn.execute("DROP FUNCTION fail_doc()")
    assert (await factory.users.get(user.id)).deleted_at is None
    assert len((await factory.voice_models.list_for_user(user.id)).items) == 1


async def test_hard_delete_cascades(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user = await make_user(factory)
    voice = await factory.voice_models.create(
        user_id=user.id, name="v", provider="p", model_ref="r"
    )
    insert_document(raw_conn, user.id, "doc")
    await factory.users.hard_delete(user.id)
    assert await factory.users.find(user.id, include_deleted=True) is None
    assert await factory.voice_models.find(voice.id, include_deleted=True) is None
    count = raw_conn.execute("SELECT count(*) FROM knowledge_documents").fetchone()
    assert count == (0,)
    with pytest.raises(NotFoundError):
        await factory.users.hard_delete(user.id)


async def test_hard_delete_of_a_soft_deleted_row(factory: AsyncRepositoryFactory) -> None:
    user = await make_user(factory)
    await factory.users.soft_delete(user.id)
    await factory.users.hard_delete(user.id)
    assert await factory.users.find(user.id, include_deleted=True) is None
