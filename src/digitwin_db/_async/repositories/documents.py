"""The per-user knowledge base: ``factory.documents``.

A document is created ``pending`` and moves through the processing lifecycle with
:meth:`set_status` (``pending → processing → ready | failed``, ``failed → pending``), each
move checked and made in one statement so that two workers cannot both claim a document.
Changing a document's ``content`` with :meth:`update` sends it back to ``pending`` (its
chunks are stale). :meth:`search` is PostgreSQL full-text search over a generated,
GIN-indexed ``tsvector``. get/find/soft_delete/restore/hard_delete follow the shared
soft-delete rules (SPEC §2.5): deleted documents are hidden unless ``include_deleted``, and
a document cannot be restored while its user is deleted.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from psycopg.rows import class_row

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.repositories.soft_delete import AsyncSoftDeleteRepository
from digitwin_db.errors import NotFoundError, ValidationError
from digitwin_db.models.common import Page
from digitwin_db.models.documents import (
    DOCUMENT_TRANSITIONS,
    DocumentSearchHit,
    KnowledgeDocument,
)
from digitwin_db.rules.documents import (
    ERROR_MAX,
    MAX_SEARCH_RESULTS,
    QUERY_MAX,
    UPDATERS,
    WRITABLE,
    bounded_query,
    check_content,
    check_metadata,
    check_mime_type,
    check_source,
    check_status,
    check_title,
    storable,
)
from digitwin_db.sql import documents as q
from digitwin_db.sql.common import OWNED_BY, STATUS_IS
from digitwin_db.validation import (
    check_fields,
    check_optional_int,
    check_text,
    parse_uuid,
)

__all__ = ["AsyncKnowledgeDocumentRepository"]


class AsyncKnowledgeDocumentRepository(AsyncSoftDeleteRepository[KnowledgeDocument]):
    """Knowledge documents (``knowledge_documents``)."""

    name: ClassVar[str] = "documents"
    tables: ClassVar[tuple[str, ...]] = ("knowledge_documents",)
    table: ClassVar[str] = "knowledge_documents"
    row_model = KnowledgeDocument
    entity: ClassVar[str] = "knowledge document"
    owner_table: ClassVar[str | None] = "users"
    owner_column: ClassVar[str] = "user_id"

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        self._q_insert = q.INSERT.format(columns=self._columns)
        self._q_set_status = q.SET_STATUS.format(columns=self._columns)
        self._q_lists = {
            deleted: self._listing(
                self.table, self._columns, [OWNED_BY, self._live_filter(deleted), STATUS_IS]
            )
            for deleted in (False, True)
        }

    # ------------------------------------------------------------------ writes
    async def create(
        self,
        *,
        user_id: UUID | str,
        title: str,
        content: str,
        source: str | None = None,
        mime_type: str = "text/plain",
        metadata: dict[str, Any] | None = None,
    ) -> KnowledgeDocument:
        """Add a document (status ``pending``) to a live user's knowledge base.

        ``title`` is stripped (1..500 characters), ``content`` kept verbatim (1..5,000,000
        characters), ``mime_type`` lower-cased ``type/subtype``. ``NotFoundError`` if the
        user is absent or deleted, ``ValidationError`` for bad input.
        """
        uid = parse_uuid(user_id, "user_id")
        params = {
            "user_id": uid,
            "title": check_title(title),
            "content": check_content(content),
            "source": check_source(source),
            "mime_type": check_mime_type(mime_type),
            "metadata": check_metadata(metadata),
        }
        async with self.db.connection("documents.create") as conn:
            document = await self._fetch_one(conn, self._q_insert, params)
            if document is None:
                await self._require_user(conn, uid)
                raise NotFoundError(f"user {uid} is not live")
        return document

    async def update(self, id: UUID | str, /, **changes: Any) -> KnowledgeDocument:
        """Change some of title, content, source, mime_type, metadata (replaced, not merged)
        of a live document and return it. A new ``content`` resets the processing state:
        status back to ``pending``, ``error``/``chunk_count``/``processed_at`` cleared (a
        worker still processing the old content then fails to mark it ready). The status
        itself changes only through :meth:`set_status`. Unknown fields or bad values are a
        ``ValidationError``, an absent or deleted document a ``NotFoundError``; nothing
        changes then."""
        document_id = self._parse_id(id)
        check_fields(changes, UPDATERS, self.entity, note=" (status: use set_status)")
        values = {k: UPDATERS[k](v) for k, v in changes.items()}
        if "content" in values:
            values.update(status="pending", error=None, chunk_count=None, processed_at=None)
        return await self._update_live("documents.update", document_id, values, allowed=WRITABLE)

    async def set_status(
        self,
        id: UUID | str,
        status: str,
        *,
        error: str | None = None,
        chunk_count: int | None = None,
    ) -> KnowledgeDocument:
        """Move a live document along its lifecycle and return it.

        Allowed: ``pending → processing``, ``processing → ready`` (optionally with
        ``chunk_count``), ``processing → failed`` (optionally with ``error``), and
        ``failed → pending`` (retry). Anything else — including a move to the current
        status — is a ``ValidationError``. The check and the move are one statement: of
        two workers moving one document ``pending → processing``, one succeeds and the
        other gets ``ValidationError``. ``NotFoundError`` if absent or deleted.
        """
        document_id = self._parse_id(id)
        target = check_status(status)
        if error is not None:
            if target != "failed":
                raise ValidationError("error can only be given with status 'failed'")
            error = check_text(error, "error", max_length=ERROR_MAX, strip=False)
        count = check_optional_int(chunk_count, "chunk_count", minimum=0)
        if count is not None and target != "ready":
            raise ValidationError("chunk_count can only be given with status 'ready'")
        allowed_from = DOCUMENT_TRANSITIONS[target]
        params = {
            "id": document_id,
            "status": target,
            "error": error,
            "chunk_count": count,
            "allowed_from": list(allowed_from),
        }
        async with self.db.connection("documents.set_status") as conn:
            document = await self._fetch_one(conn, self._q_set_status, params)
            if document is not None:
                return document
            cur = await conn.execute(q.STATE, {"id": document_id})
            state = await cur.fetchone()
        if state is None or not state[1]:
            raise NotFoundError(f"knowledge document {document_id} not found")
        raise ValidationError(
            f"knowledge document {document_id} cannot move from {state[0]!r} to {target!r} "
            f"(only from {' or '.join(repr(s) for s in allowed_from)})"
        )

    # ------------------------------------------------------------------ reads
    async def list_for_user(
        self,
        user_id: UUID | str,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> Page[KnowledgeDocument]:
        """A page of the user's documents, newest first, optionally of one ``status``,
        with the ``total`` that match (items and total from one snapshot).
        ``NotFoundError`` if the user is absent, or deleted (unless ``include_deleted``)."""
        uid = parse_uuid(user_id, "user_id")
        if status is not None:
            check_status(status, "status filter")
        self._live_filter(include_deleted)  # a bool
        return await self._list_page(
            "documents.list_for_user",
            KnowledgeDocument,
            self._q_lists[include_deleted],
            {"user_id": uid, "status": status},
            limit,
            offset,
            owner=uid,
            owner_deleted=include_deleted,
        )

    async def search(
        self, user_id: UUID | str, query: str, *, limit: int = 10
    ) -> list[DocumentSearchHit]:
        """Full-text search in the user's live documents, best first (``ts_rank_cd``).

        ``query`` is plain user text in web-search syntax (``"exact phrase"``, ``or``,
        ``-excluded``); any text is safe: quotes, backslashes, ``&|!():*`` never raise.
        Blank text returns ``[]`` without touching the database; text with no searchable
        word (only punctuation or stop words) matches nothing. NUL characters count as
        spaces, lone surrogates as ``?``, and only the first 32 words are used (longer text
        would make a tsquery too costly to rank). ``ValidationError`` beyond 100,000
        characters or for ``limit`` outside 1..100; ``NotFoundError`` if the user is absent
        or deleted.
        """
        uid = parse_uuid(user_id, "user_id")
        if not isinstance(query, str):
            raise ValidationError(f"query must be a string, got {type(query).__name__}")
        if len(query) > QUERY_MAX:
            raise ValidationError(f"query is too long ({len(query)} > {QUERY_MAX} characters)")
        count = check_optional_int(limit, "limit", minimum=1, maximum=MAX_SEARCH_RESULTS)
        if count is None:
            raise ValidationError("limit must be an integer")
        text = bounded_query(storable(query).replace("\x00", " ").strip())
        if not text:
            return []
        async with self.db.connection("documents.search") as conn:
            await self._require_user(conn, uid)
            async with conn.cursor(row_factory=class_row(DocumentSearchHit)) as cur:
                await cur.execute(q.SEARCH, {"user_id": uid, "query": text, "limit": count})
                return await cur.fetchall()
