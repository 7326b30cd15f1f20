# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_users_gdpr.py
"""GDPR: users.export returns every row of the user's data; users.erase leaves none behind
and audit rows keep no personal data."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import NotFoundError, ValidationError
from digitwin_db.models.users import User


def populate(factory: RepositoryFactory, conn: psycopg.Connection, email: str) -> dict[str, Any]:
    """A user owning a row in every table (documents/sessions/turns/buckets by plain SQL)."""
    user = factory.users.create(
        email=email, name="Owner", preferences={"voice": "warm"}, personality_traits=["kind"]
    )
    voice = factory.voice_models.create(
        user_id=user.id, name="v", provider="eleven", model_ref="v-ref", status="ready",
        language="en", sample_rate=24000, quality_score=0.5,
    )  # fmt: skip
    factory.voice_models.activate(voice.id)
    face = factory.face_models.create(
        user_id=user.id, name="f", provider="did", model_ref="f-ref", resolution="512x512"
    )
    doc = conn.execute(
        "INSERT INTO knowledge_documents (user_id, title, content) "
        "VALUES (%s, 'Diary', 'my secrets') RETURNING id",
        (user.id,),
    ).fetchone()
    session = conn.execute(
        "INSERT INTO conversation_sessions (user_id, voice_model_id) VALUES (%s, %s) RETURNING id",
        (user.id, voice.id),
    ).fetchone()
    assert doc is not None and session is not None
    for n in (1, 2):
        conn.execute(
            "INSERT INTO conversation_turns (session_id, turn_number, role, content, total_ms) "
            "VALUES (%s, %s, 'user', %s, 120)",
            (session[0], n, f"turn {n}"),
        )
    conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens) "
        "VALUES (%s, 'chat', 10, 1, 5)",
        (str(user.id),),
    )
    conn.execute(
        "INSERT INTO audit_logs (user_id, action, ip_address, user_agent, metadata) "
        "VALUES (%s, 'auth.login', '10.1.2.3', 'Firefox', '{\"email\": \"x\"}')",
        (user.id,),
    )
    return {
        "user": user,
        "voice": voice.id,
        "face": face.id,
        "doc": doc[0],
        "session": session[0],
    }


def test_export_contains_every_row(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    owned = populate(factory, raw_conn, "owner@example.com")
    populate(factory, raw_conn, "someone@example.com")  # must not leak in
    user: User = owned["user"]
    data = factory.users.export(user.id)
    json.dumps(data)  # JSON-serialisable as it is
    assert data["user"]["id"] == str(user.id)
    assert data["user"]["email"] == "owner@example.com"
    assert data["user"]["preferences"] == {"voice": "warm"}
    assert [m["id"] for m in data["voice_models"]] == [str(owned["voice"])]
    assert data["voice_models"][0]["sample_rate"] == 24000
    assert [m["id"] for m in data["face_models"]] == [str(owned["face"])]
    assert [d["id"] for d in data["knowledge_documents"]] == [str(owned["doc"])]
    assert data["knowledge_documents"][0]["content"] == "my secrets"
    assert "search_vector" not in data["knowledge_documents"][0]
    assert [s["id"] for s in data["conversation_sessions"]] == [str(owned["session"])]
    assert [t["turn_number"] for t in data["conversation_turns"]] == [1, 2]
    assert [(r["user_id"], r["endpoint"]) for r in data["rate_limits"]] == [(str(user.id), "chat")]
    actions = [a["action"] for a in data["audit_logs"]]
    assert actions == ["user.created", "voice_model.activated", "auth.login"]
    assert "exported_at" in data
    # Counts match the database row for row.
    for table, key in [
        ("voice_models", "voice_models"),
        ("face_models", "face_models"),
        ("knowledge_documents", "knowledge_documents"),
        ("conversation_sessions", "conversation_sessions"),
    ]:
        row = raw_conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s").format(
                psycopg.sql.Identifier(table)
            ),
            (user.id,),
        ).fetchone()
        assert row == (len(data[key]),)


def test_export_of_soft_deleted_user_and_errors(factory: RepositoryFactory) -> None:
    user = factory.users.create(email="gone@example.com", name="Gone")
    factory.users.soft_delete(user.id)
    data = factory.users.export(user.id)
    assert data["user"]["deleted_at"] is not None
    assert data["voice_models"] == [] and data["conversation_turns"] == []
    with pytest.raises(NotFoundError):
        factory.users.export(uuid.uuid4())
    with pytest.raises(ValidationError):
        factory.users.export("not a uuid")


def rows_mentioning(conn: psycopg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in (
        "users",
        "voice_models",
        "face_models",
        "knowledge_documents",
        "conversation_sessions",
    ):
        column = "id" if table == "users" else "user_id"
        row = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
            ),
            (user_id,),
        ).fetchone()
        assert row is not None
        counts[table] = row[0]
    for label, query in (
        (
            "conversation_turns",
            "SELECT count(*) FROM conversation_turns t LEFT JOIN conversation_sessions s "
            "ON s.id = t.session_id WHERE s.id IS NULL OR s.user_id = %(id)s",
        ),
        ("rate_limits", "SELECT count(*) FROM rate_limits WHERE user_id = %(id)s::text"),
        (
            "audit_logs",
            "SELECT count(*) FROM audit_logs WHERE user_id = %(id)s "
            "OR resource_id = %(id)s::text OR metadata::text LIKE '%%' || %(id)s::text || '%%'",
        ),
    ):
        row = conn.execute(query, {"id": user_id}).fetchone()
        assert row is not None
        counts[label] = row[0]
    return counts


def test_erase_leaves_no_row_of_the_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    owned = populate(factory, raw_conn, "erase@example.com")
    keep = populate(factory, raw_conn, "keep@example.com")
    user: User = owned["user"]
    kept_before = factory.users.export(keep["user"].id)
    audit_before = raw_conn.execute("SELECT count(*) FROM audit_logs").fetchone()
    assert audit_before is not None

    factory.users.erase(user.id)

    assert set(rows_mentioning(raw_conn, user.id).values()) == {0}
    # Audit rows stay (one more: the erasure itself) but carry no personal data.
    audit_after = raw_conn.execute("SELECT count(*) FROM audit_logs").fetchone()
    assert audit_after == (audit_before[0] + 1,)
    scrubbed = raw_conn.execute(
        "SELECT action, user_id, ip_address, user_agent, resource_id, metadata FROM audit_logs "
        "WHERE action IN ('auth.login', 'user.created', 'voice_model.activated') "
        "AND user_id IS NULL ORDER BY id"
    ).fetchall()
    assert [r[0] for r in scrubbed] == ["user.created", "voice_model.activated", "auth.login"]
    for _, uid, ip, agent, resource_id, metadata in scrubbed:
        assert uid is None and ip is None and agent is None and metadata == {}
        assert resource_id != str(user.id)
    erased = raw_conn.execute(
        "SELECT user_id, resource_type, resource_id, metadata FROM audit_logs "
        "WHERE action = 'user.erased'"
    ).fetchone()
    assert erased is not None
    assert erased[:3] == (None, "user", None)
    assert erased[3] == {"audit_rows_anonymised": 3, "rate_limit_buckets": 1}
    # The other user's data is untouched.
    kept_after = factory.users.export(keep["user"].id)
    kept_before.pop("exported_at")
    kept_after.pop("exported_at")
    assert kept_after == kept_before
    with pytest.raises(NotFoundError):
        factory.users.erase(user.id)
    with pytest.raises(NotFoundError):
        factory.users.export(user.id)


def test_erase_of_soft_deleted_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    owned = populate(factory, raw_conn, "soft@example.com")
    factory.users.soft_delete(owned["user"].id)
    factory.users.erase(owned["user"].id)
    assert set(rows_mentioning(raw_conn, owned["user"].id).values()) == {0}


def test_erase_bad_input_changes_nothing(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    populate(factory, raw_conn, "stay@example.com")
    before = raw_conn.execute("SELECT count(*), max(id) FROM audit_logs").fetchone()
    with pytest.raises(NotFoundError):
        factory.users.erase(uuid.uuid4())
    with pytest.raises(ValidationError):
        factory.users.erase("x" * 1_000_000)
    assert raw_conn.execute("SELECT count(*), max(id) FROM audit_logs").fetchone() == before
    assert raw_conn.execute("SELECT count(*) FROM users").fetchone() == (1,)


def test_audit_rows_stay_append_only_outside_erase(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """erase() uses SET LOCAL: the permission ends with its transaction."""
    owned = populate(factory, raw_conn, "local@example.com")
    factory.users.erase(owned["user"].id)
    with factory.db.connection("test") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_logs SET metadata = '{}'")
