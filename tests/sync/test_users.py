# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_users.py
"""UserRepository: CRUD, email uniqueness, listing, bad input leaves everything unchanged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import ConflictError, NotFoundError, ValidationError
from digitwin_db.models.users import User


def snapshot(conn: psycopg.Connection, table: str = "users") -> list[Any]:
    """Every row of a table, as JSON, in id order (to prove nothing changed)."""
    rows = conn.execute(
        psycopg.sql.SQL("SELECT to_jsonb(t) FROM {} t ORDER BY 1").format(
            psycopg.sql.Identifier(table)
        )
    ).fetchall()
    return [r[0] for r in rows]


def audit_actions(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT action FROM audit_logs ORDER BY id").fetchall()]


def test_create_and_get(factory: RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    user = factory.users.create(
        email="Ada@Example.com",
        name=" Ada Lovelace ",
        personality_traits=("curious", "precise"),
        preferences={"voice": "warm", "speed": 1.1},
        settings={"notifications": False},
        subscription_tier="pro",
    )
    assert isinstance(user, User)
    assert user.email == "Ada@Example.com"  # stored as given
    assert user.name == "Ada Lovelace"
    assert user.personality_traits == ["curious", "precise"]
    assert user.preferences == {"voice": "warm", "speed": 1.1}
    assert user.settings == {"notifications": False}
    assert user.subscription_tier == "pro"
    assert user.deleted_at is None and not user.is_deleted
    assert user.created_at.tzinfo is not None
    assert factory.users.get(user.id) == user
    assert factory.users.get(str(user.id)) == user
    assert factory.users.find(user.id) == user
    assert factory.users.find(uuid.uuid4()) is None
    # The creation is audited in the same transaction, without personal data.
    row = raw_conn.execute(
        "SELECT user_id, action, resource_type, resource_id, metadata FROM audit_logs"
    ).fetchone()
    assert row == (user.id, "user.created", "user", str(user.id), {"subscription_tier": "pro"})


def test_defaults(factory: RepositoryFactory) -> None:
    user = factory.users.create(email="a@b.c", name="A")
    assert user.personality_traits == []
    assert user.preferences == {} and user.settings == {}
    assert user.subscription_tier == "free"
    assert user.last_active_at is None


def test_get_by_email_is_case_insensitive(factory: RepositoryFactory) -> None:
    user = factory.users.create(email="Grace@Navy.mil", name="Grace")
    assert (factory.users.get_by_email("grace@navy.MIL")).id == user.id
    assert (factory.users.get_by_email("GRACE@NAVY.MIL")).id == user.id
    with pytest.raises(NotFoundError, match="no user with email"):
        factory.users.get_by_email("nobody@navy.mil")
    factory.users.soft_delete(user.id)
    with pytest.raises(NotFoundError):
        factory.users.get_by_email("grace@navy.mil")


def test_get_unknown_or_malformed(factory: RepositoryFactory) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        factory.users.get(uuid.uuid4())
    for bad in ("not-a-uuid", "", 42, None, "x" * 1_000_000):
        with pytest.raises(ValidationError, match="must be a UUID"):
            factory.users.get(bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            factory.users.find(bad)  # type: ignore[arg-type]


def test_duplicate_live_email_conflicts_case_insensitively(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    factory.users.create(email="dup@example.com", name="First")
    before = snapshot(raw_conn)
    with pytest.raises(ConflictError) as info:
        factory.users.create(email="DUP@example.com", name="Second")
    assert info.value.constraint == "users_email_live_key"
    assert "users_email_live_key" in str(info.value)
    assert snapshot(raw_conn) == before
    # The failed create wrote no audit row either.
    assert audit_actions(raw_conn) == ["user.created"]


def test_deleted_user_frees_the_email(factory: RepositoryFactory) -> None:
    first = factory.users.create(email="reuse@example.com", name="First")
    factory.users.soft_delete(first.id)
    second = factory.users.create(email="reuse@example.com", name="Second")
    assert second.id != first.id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"email": ""}, "email must not be empty"),
        ({"email": "   "}, "email must not be empty"),
        ({"email": "no-at-sign"}, "email must look like"),
        ({"email": "a b@c.d"}, "email must look like"),
        ({"email": "x" * 400 + "@example.com"}, "email is too long"),
        ({"email": 42}, "email must be a string"),
        ({"name": ""}, "name must not be empty"),
        ({"name": "n" * 1_000_000}, "name is too long"),
        ({"name": "nul\x00"}, "NUL"),
        ({"name": "bad \ud800"}, "not valid Unicode"),
        ({"email": "a\udfff@b.c"}, "not valid Unicode"),
        ({"preferences": {"k": "\ud800"}}, "not valid Unicode"),
        ({"personality_traits": ["\ud800"]}, "not valid Unicode"),
        ({"subscription_tier": "gold"}, "subscription_tier must be one of"),
        ({"subscription_tier": None}, "subscription_tier must be one of"),
        ({"preferences": ["not", "a", "dict"]}, "preferences must be a JSON object"),
        ({"preferences": {"x": float("nan")}}, "preferences is not JSON-serialisable"),
        ({"settings": "{}"}, "settings must be a JSON object"),
        ({"personality_traits": "curious"}, "personality_traits must be a list"),
        ({"personality_traits": ["ok", ""]}, r"personality_traits\[1\] must not be empty"),
        ({"personality_traits": ["t"] * 51}, "too many items"),
        ({"personality_traits": [1]}, "must be a string"),
    ],
)
def test_create_rejects_bad_input(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    factory.users.create(email="keep@example.com", name="Keep")
    before = snapshot(raw_conn), snapshot(raw_conn, "audit_logs")
    args: dict[str, Any] = {"email": "new@example.com", "name": "New", **kwargs}
    with pytest.raises(ValidationError, match=message):
        factory.users.create(**args)
    assert (snapshot(raw_conn), snapshot(raw_conn, "audit_logs")) == before


def test_list_pages_with_total_and_filters(factory: RepositoryFactory) -> None:
    created = []
    for i in range(7):
        tier = "pro" if i % 3 == 0 else "free"
        created.append(
            factory.users.create(email=f"u{i}@example.com", name=f"U{i}", subscription_tier=tier)
        )
    factory.users.soft_delete(created[1].id)

    page = factory.users.list(limit=4)
    assert page.total == 6 and page.limit == 4 and page.offset == 0
    assert len(page.items) == 4 and page.has_more
    rest = factory.users.list(limit=4, offset=4)
    assert len(rest.items) == 2 and not rest.has_more
    ids = [u.id for u in page.items + rest.items]
    assert len(set(ids)) == 6 and created[1].id not in ids
    # Newest first.
    assert ids == [u.id for u in reversed(created) if u.id != created[1].id]

    everything = factory.users.list(include_deleted=True)
    assert everything.total == 7 and created[1].id in {u.id for u in everything.items}

    pro = factory.users.list(subscription_tier="pro")
    assert pro.total == 3 and {u.subscription_tier for u in pro.items} == {"pro"}
    assert (factory.users.list(subscription_tier="enterprise")).total == 0
    beyond = factory.users.list(offset=100)
    assert beyond.items == [] and beyond.total == 6


def test_list_and_count_reject_bad_arguments(factory: RepositoryFactory) -> None:
    for kwargs in ({"limit": 0}, {"limit": 100_000}, {"offset": -1}, {"limit": 1.5}):
        with pytest.raises(ValidationError):
            factory.users.list(**kwargs)
    with pytest.raises(ValidationError, match="subscription_tier"):
        factory.users.list(subscription_tier="gold")
    with pytest.raises(ValidationError, match="subscription_tier"):
        factory.users.count(subscription_tier="gold")


def test_count(factory: RepositoryFactory) -> None:
    assert factory.users.count() == 0
    a = factory.users.create(email="a@example.com", name="A", subscription_tier="pro")
    factory.users.create(email="b@example.com", name="B")
    factory.users.soft_delete(a.id)
    assert factory.users.count() == 1
    assert factory.users.count(include_deleted=True) == 2
    assert factory.users.count(subscription_tier="pro") == 0
    assert factory.users.count(subscription_tier="pro", include_deleted=True) == 1


def test_update(factory: RepositoryFactory) -> None:
    user = factory.users.create(email="up@example.com", name="Up")
    seen = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    updated = factory.users.update(
        user.id,
        name="Updated",
        email="NEW@example.com",
        personality_traits=["calm"],
        preferences={"lang": "en"},
        settings={"theme": "dark"},
        subscription_tier="enterprise",
        last_active_at=seen,
    )
    assert updated.name == "Updated" and updated.email == "NEW@example.com"
    assert updated.personality_traits == ["calm"]
    assert updated.preferences == {"lang": "en"} and updated.settings == {"theme": "dark"}
    assert updated.subscription_tier == "enterprise"
    assert updated.last_active_at == seen
    assert updated.updated_at >= user.updated_at
    assert factory.users.get(user.id) == updated
    # No changes: the current row.
    assert factory.users.update(user.id) == updated


def test_update_rejects_bad_input_and_changes_nothing(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user = factory.users.create(email="one@example.com", name="One")
    factory.users.create(email="two@example.com", name="Two")
    before = snapshot(raw_conn)
    with pytest.raises(ValidationError, match="cannot update id, is_admin"):
        factory.users.update(user.id, is_admin=True, id=uuid.uuid4())
    with pytest.raises(ValidationError, match="cannot update deleted_at"):
        factory.users.update(user.id, name="fine", deleted_at=None)
    with pytest.raises(ValidationError, match="name is too long"):
        factory.users.update(user.id, name="n" * 1_000_000)
    with pytest.raises(ValidationError, match="subscription_tier"):
        factory.users.update(user.id, subscription_tier="platinum")
    with pytest.raises(ValidationError, match="preferences must be a JSON object"):
        factory.users.update(user.id, preferences=[1, 2])
    with pytest.raises(ValidationError, match="timezone-aware"):
        factory.users.update(user.id, last_active_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="timezone-aware"):
        factory.users.update(user.id, last_active_at="yesterday")
    with pytest.raises(ConflictError) as info:
        factory.users.update(user.id, name="Renamed", email="TWO@example.com")
    assert info.value.constraint == "users_email_live_key"
    with pytest.raises(NotFoundError):
        factory.users.update(uuid.uuid4(), name="Ghost")
    with pytest.raises(ValidationError, match="must be a UUID"):
        factory.users.update("nope", name="Ghost")
    assert snapshot(raw_conn) == before
    factory.users.soft_delete(user.id)
    with pytest.raises(NotFoundError):
        factory.users.update(user.id, name="Deleted")


def test_models_are_json_serialisable(factory: RepositoryFactory) -> None:
    user = factory.users.create(email="j@example.com", name="J")
    assert json.loads(user.model_dump_json())["email"] == "j@example.com"
