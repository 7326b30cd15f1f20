"""Knowledge documents (SPEC §2.4): the row model, the status lifecycle, search hits."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from digitwin_db.models.common import Row

__all__ = [
    "DOCUMENT_STATUSES",
    "DOCUMENT_TRANSITIONS",
    "DocumentSearchHit",
    "DocumentStatus",
    "KnowledgeDocument",
]

DocumentStatus = Literal["pending", "processing", "ready", "failed"]
#: The values of ``knowledge_documents.status`` (the table's CHECK says the same).
DOCUMENT_STATUSES: tuple[str, ...] = ("pending", "processing", "ready", "failed")
#: The processing lifecycle: target status → the statuses it may be reached from.
#: ``pending → processing → ready | failed``, and ``failed → pending`` (retry).
DOCUMENT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "processing": ("pending",),
    "ready": ("processing",),
    "failed": ("processing",),
    "pending": ("failed",),
}


class KnowledgeDocument(Row):
    """One row of ``knowledge_documents`` (without the derived ``search_vector``).

    ``size_bytes`` is computed by the database (UTF-8 length of ``content``);
    ``processed_at`` is when processing last finished (``ready`` or ``failed``).
    """

    id: UUID
    user_id: UUID
    title: str
    content: str
    source: str | None
    mime_type: str
    status: DocumentStatus
    error: str | None
    chunk_count: int | None
    size_bytes: int
    metadata: dict[str, Any]
    processed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class DocumentSearchHit(Row):
    """One result of ``documents.search``: the document's identity, its ``rank``
    (``ts_rank_cd``; higher is better, title matches weigh more than body matches) and a
    ``snippet`` of the body with the matched words between ``**``."""

    id: UUID
    user_id: UUID
    title: str
    source: str | None
    mime_type: str
    status: DocumentStatus
    rank: float
    snippet: str
    created_at: datetime
    updated_at: datetime
