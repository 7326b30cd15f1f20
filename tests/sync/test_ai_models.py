# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_ai_models.py
"""Voice and face models: the same behaviour from one implementation, tested for both."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db._sync.repositories.ai_models import AIModelRepository
from digitwin_db.errors import NotFoundError, ValidationError
from digitwin_db.models.ai_models import AIModel, FaceModel, VoiceModel
from digitwin_db.models.users import User

KINDS = ["voice_models", "face_models"]


def repo(factory: RepositoryFactory, kind: str) -> Any:
    """factory.voice_models or factory.face_models (typed Any: their create() differ)."""
    repository: AIModelRepository[Any] = getattr(factory, kind)
    return repository


def make(factory: RepositoryFactory, kind: str, user: User, **kwargs: Any) -> AIModel:
    args: dict[str, Any] = {"name": "model", "provider": "acme", "model_ref": "s3://m", **kwargs}
    model: AIModel = repo(factory, kind).create(user_id=user.id, **args)
    return model


def snapshot(conn: psycopg.Connection, kind: str) -> list[Any]:
    query = psycopg.sql.SQL("SELECT to_jsonb(t) FROM {} t ORDER BY id").format(
        psycopg.sql.Identifier(kind)
    )
    return [r[0] for r in conn.execute(query).fetchall()]


@pytest.fixture
def user(factory: RepositoryFactory) -> User:
    return factory.users.create(email="models@example.com", name="Modeller")


def test_create_voice_model(factory: RepositoryFactory, user: User) -> None:
    model = factory.voice_models.create(
        user_id=user.id,
        name=" Warm voice ",
        provider="elevenlabs",
        model_ref="voice-123",
        status="ready",
        metadata={"epochs": 10},
        quality_score=0.93,
        language="en-GB",
        sample_rate=44100,
    )
    assert isinstance(model, VoiceModel)
    assert model.name == "Warm voice" and model.user_id == user.id
    assert model.language == "en-GB" and model.sample_rate == 44100
    assert model.quality_score == pytest.approx(0.93)
    assert model.metadata == {"epochs": 10}
    assert model.status == "ready" and not model.is_active and model.deleted_at is None
    assert factory.voice_models.get(model.id) == model


def test_create_face_model(factory: RepositoryFactory, user: User) -> None:
    model = factory.face_models.create(
        user_id=str(user.id), name="Face", provider="did", model_ref="f", resolution="1920x1080"
    )
    assert isinstance(model, FaceModel)
    assert model.resolution == "1920x1080" and model.status == "training"
    assert model.metadata == {} and model.quality_score is None
    assert factory.face_models.find(model.id) == model


@pytest.mark.parametrize("kind", KINDS)
def test_create_needs_a_live_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user: User, kind: str
) -> None:
    with pytest.raises(NotFoundError, match="user"):
        make(factory, kind, user.model_copy(update={"id": uuid.uuid4()}))
    factory.users.soft_delete(user.id)
    with pytest.raises(NotFoundError, match="deleted"):
        make(factory, kind, user)
    assert snapshot(raw_conn, kind) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "n" * 1_000_000}, "name is too long"),
        ({"name": None}, "name must be a string"),
        ({"provider": " "}, "provider must not be empty"),
        ({"model_ref": ""}, "model_ref must not be empty"),
        ({"status": "done"}, "status must be one of"),
        ({"status": None}, "status must be one of"),
        ({"quality_score": float("nan")}, "quality_score must be finite"),
        ({"quality_score": 1.5}, "quality_score must be <= 1"),
        ({"quality_score": -0.1}, "quality_score must be >= 0"),
        ({"quality_score": "0.5"}, "quality_score must be a number"),
        ({"metadata": [1]}, "metadata must be a JSON object"),
        ({"metadata": {"\ud800": 1}}, "not valid Unicode"),
        ({"name": "\ud800"}, "not valid Unicode"),
        ({"metadata": {"x": float("inf")}}, "metadata is not JSON-serialisable"),
    ],
)
def test_create_rejects_bad_input(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user: User,
    kind: str,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    make(factory, kind, user)
    before = snapshot(raw_conn, kind)
    with pytest.raises(ValidationError, match=message):
        make(factory, kind, user, **kwargs)
    assert snapshot(raw_conn, kind) == before


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("voice_models", {"language": "e"}, "language must have at least 2"),
        ("voice_models", {"sample_rate": 100}, "sample_rate must be >= 8000"),
        ("voice_models", {"sample_rate": 44100.5}, "sample_rate must be an integer"),
        ("face_models", {"resolution": "big"}, "resolution must look like"),
        ("face_models", {"resolution": "1x1"}, "resolution must look like"),
        (
            "face_models",
            {"resolution": "\uff11\uff19\uff12\uff10x1080"},
            "resolution must look like",
        ),
        ("user_id", {}, "user_id must be a UUID"),
    ],
)
def test_create_rejects_bad_kind_specific_input(
    factory: RepositoryFactory, user: User, kind: str, kwargs: dict[str, Any], message: str
) -> None:
    if kind == "user_id":
        with pytest.raises(ValidationError, match=message):
            factory.voice_models.create(user_id="nope", name="n", provider="p", model_ref="r")
        return
    with pytest.raises(ValidationError, match=message):
        make(factory, kind, user, **kwargs)


def test_kind_columns_are_not_shared(factory: RepositoryFactory, user: User) -> None:
    with pytest.raises(TypeError):
        factory.face_models.create(  # type: ignore[call-arg]
            user_id=user.id, name="n", provider="p", model_ref="r", language="en"
        )
    face = make(factory, "face_models", user)
    with pytest.raises(ValidationError, match="cannot update sample_rate"):
        factory.face_models.update(face.id, sample_rate=16000)


@pytest.mark.parametrize("kind", KINDS)
def test_list_for_user(factory: RepositoryFactory, user: User, kind: str) -> None:
    other = factory.users.create(email="other@example.com", name="Other")
    first = make(factory, kind, user, name="first")
    second = make(factory, kind, user, name="second")
    make(factory, kind, other)
    listed = repo(factory, kind).list_for_user(user.id)
    assert [m.id for m in listed.items] == [second.id, first.id]  # newest first
    assert (listed.total, listed.limit, listed.offset) == (2, 100, 0)
    repo(factory, kind).soft_delete(first.id)
    assert [m.id for m in (repo(factory, kind).list_for_user(user.id)).items] == [second.id]
    everything = repo(factory, kind).list_for_user(str(user.id), include_deleted=True)
    assert {m.id for m in everything.items} == {first.id, second.id}
    assert (repo(factory, kind).list_for_user(uuid.uuid4())).items == []
    with pytest.raises(ValidationError):
        repo(factory, kind).list_for_user("bad")


@pytest.mark.parametrize("kind", KINDS)
def test_update(factory: RepositoryFactory, user: User, kind: str) -> None:
    model = make(factory, kind, user)
    updated = repo(factory, kind).update(
        model.id, name="renamed", status="ready", quality_score=0.5, metadata={"a": 1}
    )
    assert updated.name == "renamed" and updated.status == "ready"
    assert updated.quality_score == 0.5 and updated.metadata == {"a": 1}
    assert repo(factory, kind).get(model.id) == updated
    cleared = repo(factory, kind).update(model.id, quality_score=None)
    assert cleared.quality_score is None


@pytest.mark.parametrize("kind", KINDS)
def test_update_rejects_bad_input_and_changes_nothing(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user: User, kind: str
) -> None:
    model = make(factory, kind, user, status="ready")
    repo(factory, kind).activate(model.id)
    before = snapshot(raw_conn, kind)
    with pytest.raises(ValidationError, match="cannot update is_active, user_id"):
        repo(factory, kind).update(model.id, user_id=uuid.uuid4(), is_active=False)
    with pytest.raises(ValidationError, match="status must be one of"):
        repo(factory, kind).update(model.id, status="bogus")
    with pytest.raises(ValidationError, match="quality_score must be finite"):
        repo(factory, kind).update(model.id, quality_score=float("nan"))
    with pytest.raises(ValidationError, match="name is too long"):
        repo(factory, kind).update(model.id, name="x" * 1_000_000)
    with pytest.raises(ValidationError, match="deactivate it first") as info:
        repo(factory, kind).update(model.id, status="failed")
    assert info.value.constraint == f"{kind}_active_ready"
    with pytest.raises(NotFoundError):
        repo(factory, kind).update(uuid.uuid4(), name="ghost")
    assert snapshot(raw_conn, kind) == before


@pytest.mark.parametrize("kind", KINDS)
def test_activate_swaps_atomically(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user: User, kind: str
) -> None:
    a = make(factory, kind, user, status="ready")
    b = make(factory, kind, user, status="ready")
    assert repo(factory, kind).get_active(user.id) is None
    activated = repo(factory, kind).activate(a.id)
    assert activated.is_active and activated.id == a.id
    assert (repo(factory, kind).get_active(user.id)) == activated
    repo(factory, kind).activate(b.id)
    active = repo(factory, kind).get_active(str(user.id))
    assert active is not None and active.id == b.id
    assert not (repo(factory, kind).get(a.id)).is_active
    # Activating the active one again is a no-op.
    assert (repo(factory, kind).activate(b.id)).is_active
    prefix = kind.removesuffix("s")
    rows = raw_conn.execute(
        "SELECT resource_id, user_id, resource_type FROM audit_logs WHERE action = %s ORDER BY id",
        (f"{prefix}.activated",),
    ).fetchall()
    assert rows == [(str(a.id), user.id, prefix), (str(b.id), user.id, prefix)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", ["training", "failed"])
def test_only_ready_models_can_be_activated(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user: User,
    kind: str,
    status: str,
) -> None:
    ready = make(factory, kind, user, status="ready")
    repo(factory, kind).activate(ready.id)
    model = make(factory, kind, user, status=status)
    before = snapshot(raw_conn, kind)
    with pytest.raises(ValidationError, match="only a ready"):
        repo(factory, kind).activate(model.id)
    assert snapshot(raw_conn, kind) == before
    active = repo(factory, kind).get_active(user.id)
    assert active is not None and active.id == ready.id


@pytest.mark.parametrize("kind", KINDS)
def test_activate_unknown_or_deleted(factory: RepositoryFactory, user: User, kind: str) -> None:
    with pytest.raises(NotFoundError):
        repo(factory, kind).activate(uuid.uuid4())
    with pytest.raises(ValidationError):
        repo(factory, kind).activate("not-a-uuid")
    model = make(factory, kind, user, status="ready")
    repo(factory, kind).soft_delete(model.id)
    with pytest.raises(NotFoundError):
        repo(factory, kind).activate(model.id)


@pytest.mark.parametrize("kind", KINDS)
def test_deactivate(factory: RepositoryFactory, user: User, kind: str) -> None:
    model = make(factory, kind, user, status="ready")
    repo(factory, kind).activate(model.id)
    off = repo(factory, kind).deactivate(model.id)
    assert not off.is_active
    assert repo(factory, kind).get_active(user.id) is None
    assert not (repo(factory, kind).deactivate(model.id)).is_active  # idempotent
    with pytest.raises(NotFoundError):
        repo(factory, kind).deactivate(uuid.uuid4())
    with pytest.raises(ValidationError):
        repo(factory, kind).get_active("bad")


@pytest.mark.parametrize("kind", KINDS)
def test_one_active_per_user_is_enforced_by_the_database(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user: User, kind: str
) -> None:
    a = make(factory, kind, user, status="ready")
    b = make(factory, kind, user, status="ready")
    repo(factory, kind).activate(a.id)
    query = psycopg.sql.SQL("UPDATE {} SET is_active = true WHERE id = %s").format(
        psycopg.sql.Identifier(kind)
    )
    with pytest.raises(psycopg.errors.UniqueViolation, match=f"{kind}_one_active_per_user"):
        raw_conn.execute(query, (b.id,))


@pytest.mark.parametrize("kind", KINDS)
def test_soft_delete_restore_hard_delete(factory: RepositoryFactory, user: User, kind: str) -> None:
    model = make(factory, kind, user, status="ready")
    repo(factory, kind).activate(model.id)
    repo(factory, kind).soft_delete(model.id)
    # Deleting the active model switches it off.
    assert repo(factory, kind).get_active(user.id) is None
    with pytest.raises(NotFoundError):
        repo(factory, kind).get(model.id)
    hidden = repo(factory, kind).get(model.id, include_deleted=True)
    assert hidden.deleted_at is not None and not hidden.is_active
    with pytest.raises(NotFoundError):
        repo(factory, kind).soft_delete(model.id)
    restored = repo(factory, kind).restore(model.id)
    assert restored.deleted_at is None and not restored.is_active
    repo(factory, kind).hard_delete(model.id)
    assert repo(factory, kind).find(model.id, include_deleted=True) is None
    with pytest.raises(NotFoundError):
        repo(factory, kind).hard_delete(model.id)
    with pytest.raises(NotFoundError):
        repo(factory, kind).restore(model.id)


def test_hard_deleted_model_leaves_sessions_with_null(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user: User
) -> None:
    model = make(factory, "voice_models", user)
    raw_conn.execute(
        "INSERT INTO conversation_sessions (user_id, voice_model_id) VALUES (%s, %s)",
        (user.id, model.id),
    )
    factory.voice_models.hard_delete(model.id)
    row = raw_conn.execute("SELECT voice_model_id FROM conversation_sessions").fetchone()
    assert row == (None,)


def test_health_lists_the_repositories(factory: RepositoryFactory) -> None:
    report = factory.health()
    names = {c.name: c.ok for c in report.repositories}
    assert names["users"] and names["voice_models"] and names["face_models"]


@pytest.mark.parametrize("kind", KINDS)
def test_list_for_user_pages_like_every_listing(
    factory: RepositoryFactory, user: User, kind: str
) -> None:
    made = [make(factory, kind, user, name=f"m{i}") for i in range(5)]
    newest_first = [m.id for m in reversed(made)]
    first = repo(factory, kind).list_for_user(user.id, limit=2)
    assert ([m.id for m in first.items], first.total, first.has_more) == (
        newest_first[:2],
        5,
        True,
    )
    last = repo(factory, kind).list_for_user(user.id, limit=2, offset=4)
    assert ([m.id for m in last.items], last.total, last.has_more) == (newest_first[4:], 5, False)
    beyond = repo(factory, kind).list_for_user(user.id, offset=10)
    assert (beyond.items, beyond.total) == ([], 5)
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        with pytest.raises(ValidationError, match=r"limit|offset"):
            repo(factory, kind).list_for_user(user.id, **bad)
