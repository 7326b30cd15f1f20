# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_documents.py
"""Knowledge documents: CRUD, lifecycle, listing, full-text search, soft delete.

Two workers racing one document (real threads) are in tests/test_documents_concurrency.py.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import DigitwinDBError, NotFoundError, ValidationError
from digitwin_db.models.documents import (
    DOCUMENT_STATUSES,
    DOCUMENT_TRANSITIONS,
    KnowledgeDocument,
)
from tests.helpers import insert_user

# ---------------------------------------------------------------------------- helpers


def stored(raw_conn: psycopg.Connection) -> list[Any]:
    """Every stored document, to prove that a failed call changed nothing."""
    return raw_conn.execute("SELECT * FROM knowledge_documents ORDER BY id").fetchall()


def force_status(raw_conn: psycopg.Connection, doc_id: uuid.UUID, status: str) -> None:
    raw_conn.execute("UPDATE knowledge_documents SET status = %s WHERE id = %s", (status, doc_id))


@pytest.fixture
def user_id(raw_conn: psycopg.Connection) -> uuid.UUID:
    return insert_user(raw_conn)


def make_doc(
    factory: RepositoryFactory, user_id: uuid.UUID, title: str = "Notes", **kw: Any
) -> KnowledgeDocument:
    kw.setdefault("content", "Some content about digital twins.")
    return factory.documents.create(user_id=user_id, title=title, **kw)


# ---------------------------------------------------------------------------- create
def test_create_is_pending(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = factory.documents.create(
        user_id=str(user_id),
        title="  Voice cloning FAQ ",
        content="Naïve café — how does voice cloning work?",
        source="https://example.com/faq",
        mime_type="Text/Markdown",
        metadata={"lang": "en", "tags": ["faq"]},
    )
    assert doc.user_id == user_id and doc.status == "pending"
    assert doc.title == "Voice cloning FAQ"
    assert doc.content == "Naïve café — how does voice cloning work?"
    assert doc.size_bytes == len(doc.content.encode())
    assert doc.mime_type == "text/markdown" and doc.source == "https://example.com/faq"
    assert doc.metadata == {"lang": "en", "tags": ["faq"]}
    assert doc.error is None and doc.chunk_count is None and doc.processed_at is None
    assert doc.deleted_at is None and not doc.is_deleted
    assert factory.documents.get(doc.id) == doc
    plain = make_doc(factory, user_id)
    assert plain.mime_type == "text/plain" and plain.source is None and plain.metadata == {}


def test_create_for_unknown_or_deleted_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        make_doc(factory, uuid.uuid4())
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))
    with pytest.raises(NotFoundError, match="deleted"):
        make_doc(factory, user_id)
    assert stored(raw_conn) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_id": "not-a-uuid"}, "user_id must be a UUID"),
        ({"user_id": 7}, "user_id must be a UUID"),
        ({"title": ""}, "title must not be empty"),
        ({"title": "   "}, "title must not be empty"),
        ({"title": "t" * 1_000_000}, "title is too long"),
        ({"title": None}, "title must be a string"),
        ({"title": b"bytes"}, "title must be a string"),
        ({"content": ""}, "content must not be empty"),
        ({"content": "c" * 5_000_001}, "content is too long"),
        ({"content": 3.14}, "content must be a string"),
        ({"content": "a\x00b"}, "NUL"),
        ({"content": "a\ud800b"}, "content is not valid Unicode"),
        ({"title": "\udfff"}, "title is not valid Unicode"),
        ({"source": "file-\ud800.txt"}, "source is not valid Unicode"),
        ({"metadata": {"k": "\ud800"}}, "metadata is not valid Unicode"),
        ({"source": "s" * 2001}, "source is too long"),
        ({"source": 12}, "source must be a string"),
        ({"mime_type": "text"}, "mime_type must look like"),
        ({"mime_type": "text/plain; charset=utf-8"}, "mime_type must look like"),
        ({"mime_type": "text/" + "x" * 300}, "mime_type must look like"),
        ({"mime_type": None}, "mime_type must be a string"),
        ({"metadata": ["list"]}, "metadata must be a JSON object"),
        ({"metadata": {"x": float("nan")}}, "metadata is not JSON-serialisable"),
    ],
)
def test_create_bad_input_changes_nothing(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    arguments: dict[str, Any] = {"user_id": user_id, "title": "T", "content": "C", **kwargs}
    with pytest.raises(ValidationError, match=message):
        factory.documents.create(**arguments)
    assert stored(raw_conn) == []


# ---------------------------------------------------------------------------- reads
def test_get_and_find(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id)
    assert factory.documents.find(str(doc.id)) == doc
    assert factory.documents.find(uuid.uuid4()) is None
    with pytest.raises(NotFoundError):
        factory.documents.get(uuid.uuid4())
    with pytest.raises(ValidationError):
        factory.documents.get("garbage")


def test_list_for_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    other = insert_user(raw_conn)
    make_doc(factory, other, "not mine")
    docs = [make_doc(factory, user_id, f"doc {i}") for i in range(5)]
    for age, doc in enumerate(reversed(docs)):
        raw_conn.execute(
            "UPDATE knowledge_documents SET created_at = now() - make_interval(mins => %s) "
            "WHERE id = %s",
            (age, doc.id),
        )
    factory.documents.set_status(docs[0].id, "processing")
    factory.documents.set_status(docs[1].id, "processing")
    factory.documents.set_status(docs[1].id, "ready", chunk_count=3)
    factory.documents.soft_delete(docs[4].id)

    page = factory.documents.list_for_user(user_id, limit=2)
    assert page.total == 4 and page.has_more
    assert [d.id for d in page.items] == [docs[3].id, docs[2].id]
    rest = factory.documents.list_for_user(str(user_id), limit=2, offset=2)
    assert [d.id for d in rest.items] == [docs[1].id, docs[0].id] and not rest.has_more

    everything = factory.documents.list_for_user(user_id, include_deleted=True)
    assert everything.total == 5 and everything.items[0].id == docs[4].id
    assert everything.items[0].is_deleted

    pending = factory.documents.list_for_user(user_id, status="pending")
    assert {d.id for d in pending.items} == {docs[2].id, docs[3].id} and pending.total == 2
    ready = factory.documents.list_for_user(user_id, status="ready")
    assert [d.id for d in ready.items] == [docs[1].id]
    deleted_pending = factory.documents.list_for_user(
        user_id, status="pending", include_deleted=True
    )
    assert deleted_pending.total == 3

    beyond = factory.documents.list_for_user(user_id, offset=100)
    assert beyond.items == [] and beyond.total == 4


def test_list_for_unknown_or_deleted_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    doc = make_doc(factory, user_id)
    with pytest.raises(NotFoundError):
        factory.documents.list_for_user(uuid.uuid4())
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))
    raw_conn.execute(
        "UPDATE knowledge_documents SET deleted_at = now() WHERE user_id = %s", (user_id,)
    )
    with pytest.raises(NotFoundError, match="deleted"):
        factory.documents.list_for_user(user_id)
    visible = factory.documents.list_for_user(user_id, include_deleted=True)
    assert [d.id for d in visible.items] == [doc.id]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "done"},
        {"status": 3},
        {"limit": 0},
        {"limit": 5000},
        {"limit": None},
        {"offset": -3},
        {"offset": float("nan")},
        {"include_deleted": "yes"},
    ],
)
def test_list_for_user_bad_arguments(
    factory: RepositoryFactory, user_id: uuid.UUID, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        factory.documents.list_for_user(user_id, **kwargs)


# ---------------------------------------------------------------------------- update
def test_update_fields(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id, source="file.txt", metadata={"a": 1})
    updated = factory.documents.update(
        doc.id, title=" New title ", source=None, metadata={"b": 2}, mime_type="TEXT/HTML"
    )
    assert updated.title == "New title" and updated.source is None
    assert updated.metadata == {"b": 2} and updated.mime_type == "text/html"
    assert updated.content == doc.content and updated.status == "pending"
    assert updated.updated_at >= doc.updated_at
    assert factory.documents.update(doc.id) == updated  # no change: the current row


def test_update_content_sends_document_back_to_pending(
    factory: RepositoryFactory, user_id: uuid.UUID
) -> None:
    doc = make_doc(factory, user_id)
    factory.documents.set_status(doc.id, "processing")
    ready = factory.documents.set_status(doc.id, "ready", chunk_count=4)
    assert ready.processed_at is not None
    changed = factory.documents.update(doc.id, content="Completely new text")
    assert changed.status == "pending" and changed.chunk_count is None
    assert changed.processed_at is None and changed.error is None
    assert changed.size_bytes == len("Completely new text")
    # A worker that was still processing the old content cannot mark it ready.
    with pytest.raises(ValidationError, match="cannot move from 'pending' to 'ready'"):
        factory.documents.set_status(doc.id, "ready", chunk_count=1)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"status": "ready"}, ValidationError),
        ({"user_id": str(uuid.uuid4())}, ValidationError),
        ({"deleted_at": None}, ValidationError),
        ({"title": ""}, ValidationError),
        ({"title": "x" * 1_000_000}, ValidationError),
        ({"content": 5}, ValidationError),
        ({"mime_type": "nope"}, ValidationError),
        ({"metadata": "x"}, ValidationError),
        ({"title": "ok", "source": 1.5}, ValidationError),
    ],
)
def test_update_bad_input_changes_nothing(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    changes: dict[str, Any],
    error: type[Exception],
) -> None:
    doc = make_doc(factory, user_id)
    before = stored(raw_conn)
    with pytest.raises(error):
        factory.documents.update(doc.id, **changes)
    assert stored(raw_conn) == before


def test_update_missing_or_deleted(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id)
    factory.documents.soft_delete(doc.id)
    with pytest.raises(NotFoundError):
        factory.documents.update(doc.id, title="x")
    with pytest.raises(NotFoundError):
        factory.documents.update(uuid.uuid4(), title="x")
    with pytest.raises(ValidationError):
        factory.documents.update("bad-id", title="x")


# ---------------------------------------------------------------------------- lifecycle
def test_lifecycle_happy_paths(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id)
    processing = factory.documents.set_status(str(doc.id), "processing")
    assert processing.status == "processing" and processing.processed_at is None
    failed = factory.documents.set_status(doc.id, "failed", error="embedding timeout")
    assert failed.status == "failed" and failed.error == "embedding timeout"
    assert failed.processed_at is not None
    retry = factory.documents.set_status(doc.id, "pending")
    assert retry.status == "pending" and retry.error is None and retry.processed_at is None
    factory.documents.set_status(doc.id, "processing")
    ready = factory.documents.set_status(doc.id, "ready", chunk_count=12)
    assert ready.status == "ready" and ready.chunk_count == 12 and ready.error is None
    assert ready.processed_at is not None
    assert factory.documents.get(doc.id) == ready


_FORBIDDEN = [
    (current, target)
    for current, target in itertools.product(DOCUMENT_STATUSES, DOCUMENT_STATUSES)
    if current not in DOCUMENT_TRANSITIONS[target]
]


@pytest.mark.parametrize(("current", "target"), _FORBIDDEN)
def test_every_other_transition_is_refused(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    current: str,
    target: str,
) -> None:
    doc = make_doc(factory, user_id)
    force_status(raw_conn, doc.id, current)
    before = stored(raw_conn)
    with pytest.raises(ValidationError, match=f"cannot move from '{current}' to '{target}'"):
        factory.documents.set_status(doc.id, target)
    assert stored(raw_conn) == before


def test_the_forbidden_list_is_complete() -> None:
    assert len(_FORBIDDEN) == 16 - 4
    assert ("ready", "pending") in _FORBIDDEN and ("pending", "ready") in _FORBIDDEN


@pytest.mark.parametrize(
    ("status", "kwargs", "message"),
    [
        ("done", {}, "status must be one of"),
        ("READY", {}, "status must be one of"),
        (None, {}, "status must be one of"),
        ("processing", {"error": "boom"}, "error can only be given with status 'failed'"),
        ("processing", {"chunk_count": 3}, "chunk_count can only be given with status 'ready'"),
        ("failed", {"error": 42}, "error must be a string"),
        ("failed", {"error": "e" * 10_001}, "error is too long"),
        ("failed", {"error": "\ud800"}, "error is not valid Unicode"),
        ("ready", {"chunk_count": -1}, "chunk_count must be >= 0"),
        ("ready", {"chunk_count": float("nan")}, "chunk_count must be an integer"),
        ("ready", {"chunk_count": "3"}, "chunk_count must be a number"),
    ],
)
def test_set_status_bad_input_changes_nothing(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    status: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    doc = make_doc(factory, user_id)
    force_status(raw_conn, doc.id, "processing")
    before = stored(raw_conn)
    with pytest.raises(ValidationError, match=message):
        factory.documents.set_status(doc.id, status, **kwargs)
    assert stored(raw_conn) == before


def test_set_status_missing_or_deleted(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id)
    factory.documents.soft_delete(doc.id)
    with pytest.raises(NotFoundError):
        factory.documents.set_status(doc.id, "processing")
    with pytest.raises(NotFoundError):
        factory.documents.set_status(uuid.uuid4(), "processing")
    with pytest.raises(ValidationError):
        factory.documents.set_status("x" * 1_000_000, "processing")


# ---------------------------------------------------------------------------- search
def test_search_ranks_and_scopes(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    other = insert_user(raw_conn)
    best = make_doc(
        factory,
        user_id,
        "Kubernetes deployment guide",
        content="Deploying the avatar service on Kubernetes: pods, deployments, kubernetes "
        "services and more kubernetes tips.",
    )
    weaker = make_doc(
        factory,
        user_id,
        "Team notes",
        content="We talked about lunch. Someone mentioned kubernetes once.",
    )
    make_doc(factory, user_id, "Recipes", content="Pancakes with maple syrup.")
    make_doc(factory, other, "Kubernetes for others", content="kubernetes kubernetes")
    gone = make_doc(factory, user_id, "Kubernetes old", content="kubernetes deprecated")
    factory.documents.soft_delete(gone.id)

    hits = factory.documents.search(user_id, "kubernetes")
    assert [h.id for h in hits] == [best.id, weaker.id]
    assert hits[0].rank > hits[1].rank > 0
    assert hits[0].user_id == user_id and hits[0].title == "Kubernetes deployment guide"
    assert "**" in hits[1].snippet and "kubernetes" in hits[1].snippet.lower()
    # Stemming: "deploying" finds "deployment".
    assert [h.id for h in factory.documents.search(str(user_id), "deploying")] == [best.id]
    # Web-search syntax: exclusion and phrases.
    assert [h.id for h in factory.documents.search(user_id, "kubernetes -lunch")] == [best.id]
    assert [h.id for h in factory.documents.search(user_id, '"maple syrup"')] != []
    assert factory.documents.search(user_id, '"syrup maple"') == []
    assert len(factory.documents.search(user_id, "kubernetes", limit=1)) == 1


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   \t\n ",
        "'",
        '"',
        '"unbalanced quote',
        "\\",
        "\\\\' OR 1=1 --",
        "&|!():*",
        "a & b | !c",
        "(((",
        ")) <-> ((",
        "foo:*",
        "pancakes:* & !",
        "'; DROP TABLE knowledge_documents; --",
        "%(user_id)s {query} %s",
        "\x00pancakes",
        "pancakes \ud800",
        "\udfff" * 5000,
        "or or or - - -",
        "the and of",
        "☃ 日本語 🤖",
        "pancake " * 1250,
        "x" * 10_000,
        "&|!():*\\'\"" * 1000,
        "w" * 5000 + " pancakes",
        "pancake," * 1250,
        "-".join(["maple"] * 2000),
        " or ".join(["syrup"] * 1000),
        '"' + "maple syrup " * 800 + '"',
    ],
)
def test_search_is_safe_for_any_text(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    user_id: uuid.UUID,
    query: str,
) -> None:
    make_doc(factory, user_id, "Breakfast", content="Pancakes with maple syrup.")
    before = stored(raw_conn)
    hits = factory.documents.search(user_id, query)
    assert isinstance(hits, list)
    assert all(h.user_id == user_id for h in hits)
    assert stored(raw_conn) == before


def test_search_finds_through_noise(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id, "Breakfast", content="Pancakes with maple syrup.")
    for query in ("pancakes!!!", "(pancakes)", "\x00pancakes", "pancakes:*", "'pancakes'"):
        assert [h.id for h in factory.documents.search(user_id, query)] == [doc.id]


def test_search_uses_the_first_32_words(factory: RepositoryFactory, user_id: uuid.UUID) -> None:
    doc = make_doc(factory, user_id, "Breakfast", content="Pancakes with maple syrup.")
    query = " ".join(["pancakes"] * 32)
    assert [h.id for h in factory.documents.search(user_id, query)] == [doc.id]
    # Every word is required: a 33rd word that matches nothing is not used.
    assert [h.id for h in factory.documents.search(user_id, query + " zebra")] == [doc.id]
    assert factory.documents.search(user_id, "zebra " + query) == []


def test_search_bad_arguments(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    with pytest.raises(ValidationError, match="query is too long"):
        factory.documents.search(user_id, "q" * 100_001)
    with pytest.raises(ValidationError, match="query must be a string"):
        factory.documents.search(user_id, None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="limit"):
        factory.documents.search(user_id, "x", limit=0)
    with pytest.raises(ValidationError, match="limit"):
        factory.documents.search(user_id, "x", limit=101)
    with pytest.raises(ValidationError):
        factory.documents.search("nope", "x")
    with pytest.raises(NotFoundError):
        factory.documents.search(uuid.uuid4(), "x")
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))
    with pytest.raises(NotFoundError):
        factory.documents.search(user_id, "x")


# ---------------------------------------------------------------------------- soft delete
def test_soft_delete_hides_and_restore_brings_back(
    factory: RepositoryFactory, user_id: uuid.UUID
) -> None:
    doc = make_doc(factory, user_id, "Secret plans", content="secret plans inside")
    factory.documents.soft_delete(doc.id)
    assert factory.documents.find(doc.id) is None
    with pytest.raises(NotFoundError):
        factory.documents.get(doc.id)
    deleted = factory.documents.get(doc.id, include_deleted=True)
    assert deleted.is_deleted
    assert factory.documents.search(user_id, "secret") == []
    assert (factory.documents.list_for_user(user_id)).total == 0
    with pytest.raises(NotFoundError):
        factory.documents.soft_delete(doc.id)  # already deleted

    restored = factory.documents.restore(doc.id)
    assert restored.deleted_at is None and restored.title == doc.title
    assert [h.id for h in factory.documents.search(user_id, "secret")] == [doc.id]
    with pytest.raises(NotFoundError):
        factory.documents.restore(doc.id)  # not deleted


def test_restore_refused_while_the_user_is_deleted(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    doc = make_doc(factory, user_id)
    factory.documents.soft_delete(doc.id)
    raw_conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (user_id,))
    with pytest.raises(NotFoundError, match="owner"):
        factory.documents.restore(doc.id)
    assert (factory.documents.get(doc.id, include_deleted=True)).is_deleted


def test_hard_delete(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    live = make_doc(factory, user_id)
    deleted = make_doc(factory, user_id)
    factory.documents.soft_delete(deleted.id)
    factory.documents.hard_delete(live.id)
    factory.documents.hard_delete(str(deleted.id))
    assert stored(raw_conn) == []
    with pytest.raises(NotFoundError):
        factory.documents.hard_delete(live.id)
    with pytest.raises(DigitwinDBError):
        factory.documents.hard_delete("not-an-id")


def test_documents_go_away_with_their_user(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, user_id: uuid.UUID
) -> None:
    make_doc(factory, user_id)
    raw_conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
    assert stored(raw_conn) == []


def test_health_check(factory: RepositoryFactory) -> None:
    check = factory.documents.check_health()
    assert check.ok and check.name == "documents"
