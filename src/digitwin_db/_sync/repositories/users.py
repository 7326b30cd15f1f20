# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/repositories/users.py
"""UserRepository (SPEC §2.1): accounts, soft delete with cascade, GDPR export/erasure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Connection, sql

from digitwin_db._sync.repositories.soft_delete import SoftDeleteRepository
from digitwin_db.errors import NotFoundError, QueryError
from digitwin_db.models.common import Page
from digitwin_db.models.users import User
from digitwin_db.rules.users import (
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    UPDATERS,
    check_email,
    check_tier,
    check_traits,
)
from digitwin_db.sql import ai_models as ai_models_sql
from digitwin_db.sql import users as q
from digitwin_db.validation import check_fields, check_text, json_param

#: The tables a user's soft delete cascades to (and a restore brings back), with each
#: table's own soft-delete extra ``SET`` (models are deactivated).
CASCADE_TABLES: tuple[tuple[str, sql.Composable], ...] = (
    ("voice_models", ai_models_sql.SOFT_DELETE_EXTRA_SET),
    ("face_models", ai_models_sql.SOFT_DELETE_EXTRA_SET),
    ("knowledge_documents", sql.SQL("")),
)


class UserRepository(SoftDeleteRepository[User]):
    """Users: email unique among live users (case-insensitive); soft delete cascades to the
    user's voice models, face models and knowledge documents."""

    name: ClassVar[str] = "users"
    tables: ClassVar[tuple[str, ...]] = ("users",)
    table: ClassVar[str] = "users"
    row_model = User
    entity: ClassVar[str] = "user"

    def create(
        self,
        *,
        email: str,
        name: str,
        personality_traits: Sequence[str] = (),
        preferences: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        subscription_tier: str = "free",
    ) -> User:
        """Create a user. ``ConflictError`` (constraint ``users_email_live_key``) if a live
        user already has this email in any letter case; ``ValidationError`` for bad input."""
        params = {
            "email": check_email(email),
            "name": check_text(name, "name", max_length=MAX_NAME_LENGTH),
            "personality_traits": check_traits(personality_traits),
            "preferences": json_param(preferences, "preferences"),
            "settings": json_param(settings, "settings"),
            "subscription_tier": check_tier(subscription_tier),
        }
        with self.db.transaction("users.create") as conn:
            user = self._fetch_one(conn, sql.SQL(q.INSERT), params)
            if user is None:
                raise QueryError("users: the statement returned no row")
            self._audit(
                conn,
                "user.created",
                user_id=user.id,
                resource_type="user",
                resource_id=user.id,
                metadata={"subscription_tier": user.subscription_tier},
            )
        return user

    def get_by_email(self, email: str) -> User:
        """The live user with this email (any letter case); ``NotFoundError`` if none."""
        address = check_text(email, "email", max_length=MAX_EMAIL_LENGTH)
        with self.db.connection("users.get_by_email") as conn:
            user = self._fetch_one(conn, sql.SQL(q.GET_BY_EMAIL), {"email": address})
        if user is None:
            raise NotFoundError(f"no user with email {address[:60]!r}")
        return user

    def _filters(
        self, include_deleted: bool, subscription_tier: str | None
    ) -> list[sql.Composable]:
        parts: list[sql.Composable] = [self._live_filter(include_deleted)]
        if subscription_tier is not None:
            check_tier(subscription_tier)
            parts.append(q.TIER_FILTER)
        return parts

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        include_deleted: bool = False,
        subscription_tier: str | None = None,
    ) -> Page[User]:
        """A page of users, newest first, with the ``total`` that match."""
        where = self._filters(include_deleted, subscription_tier)
        queries = self._listing(self.table, self._columns, where)
        params = {"subscription_tier": subscription_tier}
        return self._list_page("users.list", User, queries, params, limit, offset)

    def count(self, *, include_deleted: bool = False, subscription_tier: str | None = None) -> int:
        """How many users (live only unless ``include_deleted``), optionally of one tier."""
        _, count = self._listing(
            self.table, self._columns, self._filters(include_deleted, subscription_tier)
        )
        with self.db.connection("users.count") as conn:
            cur = conn.execute(count, {"subscription_tier": subscription_tier})
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def update(self, id: UUID | str, /, **changes: Any) -> User:
        """Change some of email, name, personality_traits, preferences, settings,
        subscription_tier, last_active_at of a live user. Unknown fields or bad values are
        a ``ValidationError``; a taken email a ``ConflictError``; nothing changes then."""
        user_id = self._parse_id(id)
        check_fields(changes, UPDATERS, self.entity)
        values = {k: UPDATERS[k](v) for k, v in changes.items()}
        return self._update_live("users.update", user_id, values, allowed=UPDATERS)

    # ------------------------------------------------------------------ soft-delete hooks
    def _after_soft_delete(self, conn: Connection[Any], row: User) -> None:
        self._cascade(conn, row, "user.soft_deleted", row.deleted_at, restore=False)

    def _after_restore(self, conn: Connection[Any], row: User, deleted_at: datetime) -> None:
        self._cascade(conn, row, "user.restored", deleted_at, restore=True)

    def _cascade(
        self,
        conn: Connection[Any],
        row: User,
        action: str,
        deleted_at: datetime | None,
        *,
        restore: bool,
    ) -> None:
        """Soft-delete (or restore) the user's rows of every owned table with the user's
        ``deleted_at``, and audit how many of each."""
        params = {"user_id": row.id, "deleted_at": deleted_at}
        counts: dict[str, int] = {}
        for table, extra_set in CASCADE_TABLES:
            fields = {"table": sql.Identifier(table)}
            if restore:
                statement = q.CASCADE_RESTORE.format(**fields)
            else:
                statement = q.CASCADE_SOFT_DELETE.format(**fields, extra_set=extra_set)
            cur = conn.execute(statement, params)
            counts[table] = cur.rowcount
        self._audit(
            conn,
            action,
            user_id=row.id,
            resource_type="user",
            resource_id=row.id,
            metadata=counts,
        )

    # ------------------------------------------------------------------ GDPR
    def export(self, id: UUID | str) -> dict[str, Any]:
        """Every row of the user's data (also of a soft-deleted user) as a JSON-serialisable
        dict: ``user``, ``voice_models``, ``face_models``, ``conversation_sessions``,
        ``conversation_turns``, ``knowledge_documents``, ``rate_limits``, ``audit_logs``,
        ``exported_at``. ``NotFoundError`` if the user does not exist."""
        user_id = self._parse_id(id)
        with self.db.connection("users.export") as conn:
            cur = conn.execute(q.EXPORT, {"id": user_id})
            row = cur.fetchone()
        data: dict[str, Any] = row[0] if row else {}
        if not data or data.get("user") is None:
            raise NotFoundError(f"user {user_id} not found")
        return data

    def erase(self, id: UUID | str) -> None:
        """GDPR erasure, in one transaction: delete the user (live or soft-deleted) and all
        they own (models, sessions, turns, documents, rate-limit buckets); audit rows stay
        but lose every personal datum; a ``user.erased`` audit row records the erasure.
        Audit rows are anonymised at once when the connection's role may (maintenance role,
        owner); the application role queues the erasure and the cleanup job (maintenance
        role, ``audit_logs.process_erasures``) anonymises them on its next pass.
        ``NotFoundError`` if the user does not exist."""
        user_id = self._parse_id(id)
        with self.db.transaction("users.erase") as conn:
            cur = conn.execute(self._q_lock, {"id": user_id})
            if cur.fetchone() is None:
                raise NotFoundError(f"user {user_id} not found")
            cur = conn.execute(q.ERASE_RATE_LIMITS, {"id": user_id})
            buckets = cur.rowcount
            conn.execute(q.ERASE_USER, {"id": user_id})
            cur = conn.execute(q.CAN_ANONYMISE_AUDIT)
            row = cur.fetchone()
            anonymised: int | str
            if row is not None and row[0]:
                cur = conn.execute(q.ANONYMISE_AUDIT, {"id": user_id})
                row = cur.fetchone()
                anonymised = int(row[0]) if row is not None else 0
            else:
                conn.execute(q.QUEUE_AUDIT_ERASURE, {"id": user_id})
                anonymised = "queued"
            self._audit(
                conn,
                "user.erased",
                user_id=None,
                resource_type="user",
                resource_id=None,
                metadata={"audit_rows_anonymised": anonymised, "rate_limit_buckets": buckets},
            )
