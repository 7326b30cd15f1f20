# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/tenant.py
"""Repositories scoped to one user: ``factory.for_user(user_id)`` (SPEC §2.12).

Every statement of a scoped repository runs inside a transaction that first runs
``SET LOCAL digitwin.user_id = '<id>'`` (that is ``set_config('digitwin.user_id', <id>,
true)``, as a statement that takes no snapshot); the row-level-security policies of
migrations/0007_tenant_isolation.sql then make other users' rows of ``users``,
``voice_models``, ``face_models``, ``conversation_sessions``, ``conversation_turns`` and
``knowledge_documents`` invisible and unwritable — to the repository's own SQL and to raw
SQL on that connection. The setting is transaction-local, so a pooled connection (or a
PgBouncer server connection in transaction mode) never carries it to the next caller.

The policies bind roles subject to row-level security: the application and maintenance
roles (``digitwin-db grant``); the owner and superusers see everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from psycopg import Connection, sql

from digitwin_db._sync.database import Database
from digitwin_db._sync.repositories.ai_models import FaceModelRepository, VoiceModelRepository
from digitwin_db._sync.repositories.documents import KnowledgeDocumentRepository
from digitwin_db._sync.repositories.sessions import ConversationSessionRepository
from digitwin_db._sync.repositories.users import UserRepository
from digitwin_db.sql import tenant as q

__all__ = ["UserScope", "UserScopedDatabase"]


class UserScopedDatabase(Database):
    """A view of an :class:`Database` whose connections are scoped to one user.

    It shares the database's pool, settings and statistics (every other attribute is the
    database's own); only :meth:`connection` and :meth:`transaction` differ: each is one
    transaction that starts by scoping itself to the user.
    """

    def __init__(self, db: Database, user_id: UUID) -> None:
        # No super().__init__(): this is a view, not a second pool.
        self._scoped_db = db
        self.user_id = user_id
        self._scope_statement = sql.SQL(q.SCOPE_TO_USER).format(user_id=sql.Literal(str(user_id)))

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes this view does not have: the database's.
        return getattr(self._scoped_db, name)

    @contextmanager
    def connection(self, op: str = "") -> Iterator[Connection[Any]]:  # type: ignore[override]
        """A pooled connection inside a transaction scoped to the user."""
        with self._scoped_db.connection(op) as conn, conn.transaction():
            conn.execute(self._scope_statement)
            yield conn

    @contextmanager
    def transaction(self, op: str = "") -> Iterator[Connection[Any]]:
        """The same as :meth:`connection`: it is already one transaction."""
        with self.connection(op) as conn:
            yield conn

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._scoped_db!r} for user {self.user_id}>"


class UserScope:
    """The user-owned repositories, scoped to one user (``factory.for_user(user_id)``):
    ``users``, ``voice_models``, ``face_models``, ``sessions``, ``documents``. Cheap to
    build (no connection of its own): make one per request."""

    def __init__(self, db: Database, user_id: UUID) -> None:
        self.user_id = user_id
        self.db = UserScopedDatabase(db, user_id)
        self.users = UserRepository(self.db)
        self.voice_models = VoiceModelRepository(self.db)
        self.face_models = FaceModelRepository(self.db)
        self.sessions = ConversationSessionRepository(self.db)
        self.documents = KnowledgeDocumentRepository(self.db)
