"""Soft delete, written once (SPEC §2.5), for every table with ``id uuid``, ``deleted_at``
and ``updated_at``: users, voice models, face models, knowledge documents.

How to use it
-------------
Subclass ``AsyncSoftDeleteRepository[YourRow]`` and set four class attributes::

    class AsyncKnowledgeDocumentRepository(AsyncSoftDeleteRepository[KnowledgeDocument]):
        name = "documents"                 # op names: "documents.get", "documents.soft_delete"…
        tables = ("knowledge_documents",)
        table = "knowledge_documents"      # the table the base reads and writes
        row_model = KnowledgeDocument      # a models.common.Row; its field names are the
                                           # columns selected (override ``columns`` if not)
        entity = "knowledge document"      # used in error messages
        owner_table = "users"              # optional: restore refuses (NotFoundError) while
        owner_column = "user_id"           # the owning row is soft-deleted

You then have, with the rules of §2.5 already applied:

- ``get(id, *, include_deleted=False)`` → row; ``NotFoundError`` if absent or deleted.
- ``find(id, *, include_deleted=False)`` → row | None.
- ``soft_delete(id)`` → None; ``NotFoundError`` if absent or already deleted.
- ``restore(id)`` → row; ``NotFoundError`` if absent or not deleted, or if the owner is
  deleted; ``ConflictError`` (``.constraint`` = the partial unique index) if a live row
  now holds its unique value.
- ``hard_delete(id)`` → None; removes live or deleted rows for good (FKs cascade);
  ``NotFoundError`` if absent.

Helpers for your own methods:

- ``self._live_filter(include_deleted)`` → ``sql.SQL("deleted_at IS NULL")`` or
  ``sql.SQL("TRUE")``, a filter of a listing: ``self._listing(table, self._columns,
  [filters])`` builds its page and count statements, ``await self._list_page(...)`` reads
  the ``Page`` (both from the base repository).
- ``self._columns`` (``sql.Composed`` column list), ``self._table`` (``sql.Identifier``).
- ``await self._update_live(op, id, values, allowed=...)`` — UPDATE of whitelisted columns
  of a live row (SET built from ``sql.Identifier`` of whitelisted names), returns the row.
- ``self._parse_id(value)`` — ``parse_uuid`` with the entity in the message.
- Input checks are pure functions outside this package: generic ones in
  ``digitwin_db.validation`` (``json_param``, ``check_fields``…), domain rules in
  ``digitwin_db.rules``.
- ``await self._audit(conn, "user.created", user_id=…, resource_type=…, resource_id=…,
  metadata=…)`` — an audit row in the same transaction (no personal data in metadata).
- ``await self._fetch_one(conn, query, params)`` / ``_fetch_all`` → rows as ``row_model``.

Hooks (all run on the same connection, inside the operation's transaction):

- ``soft_delete_extra_set``: extra ``SET`` assignments, e.g.
  ``sql.SQL(", is_active = false")`` (models: an active model is deactivated).
- ``_after_soft_delete(conn, row)`` / ``_after_restore(conn, row, deleted_at)`` /
  ``_before_hard_delete(conn, id)``: cascade, audit rows… (``deleted_at`` is the
  timestamp the row had before restore — the user restore uses it to restore exactly the
  rows its soft delete cascaded to, which share the same transaction timestamp).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar, cast
from uuid import UUID

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.repositories.base import AsyncRepository
from digitwin_db.errors import NotFoundError, ValidationError
from digitwin_db.models.common import Row
from digitwin_db.sql import soft_delete as q
from digitwin_db.validation import check_fields, parse_uuid

RowT = TypeVar("RowT", bound=Row)


class AsyncSoftDeleteRepository(AsyncRepository, Generic[RowT]):
    """get/find/soft_delete/restore/hard_delete for one soft-deletable table."""

    #: The table (one identifier) this repository's soft-delete methods work on.
    table: ClassVar[str] = ""
    #: Row model built from each selected row.
    row_model: type[RowT]
    #: Human name for messages ("user", "voice model").
    entity: ClassVar[str] = "row"
    #: Columns selected; default: the row model's field names.
    columns: ClassVar[tuple[str, ...]] = ()
    #: Extra ``SET`` assignments on soft delete, starting with ", " (or empty).
    soft_delete_extra_set: ClassVar[sql.Composable] = sql.SQL("")
    #: Owning table/column checked before restore (``None`` = no owner).
    owner_table: ClassVar[str | None] = None
    owner_column: ClassVar[str] = "user_id"

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        names = self.columns or tuple(self.row_model.model_fields)
        self._table = sql.Identifier(self.table)
        self._columns = sql.SQL(", ").join(sql.Identifier(c) for c in names)
        fmt = {"table": self._table, "columns": self._columns}
        self._q_get_live = q.GET_BY_ID.format(**fmt, where=q.LIVE_ONLY)
        self._q_get_any = q.GET_BY_ID.format(**fmt, where=q.ANY_STATE)
        self._q_lock = q.LOCK_BY_ID.format(table=self._table)
        self._q_soft_delete = q.SOFT_DELETE.format(**fmt, extra_set=self.soft_delete_extra_set)
        self._q_restore = q.RESTORE.format(**fmt)
        self._q_hard_delete = q.HARD_DELETE.format(table=self._table)
        self._q_owner_live = (
            q.OWNER_IS_LIVE.format(
                owner_table=sql.Identifier(self.owner_table),
                owner_column=sql.Identifier(self.owner_column),
                table=self._table,
            )
            if self.owner_table
            else None
        )

    # ------------------------------------------------------------------ helpers
    def _parse_id(self, value: object, what: str | None = None) -> UUID:
        return parse_uuid(value, what or f"{self.entity} id")

    @staticmethod
    def _live_filter(include_deleted: bool) -> sql.SQL:
        """``deleted_at IS NULL`` unless ``include_deleted``; for ``{where}`` in templates."""
        if not isinstance(include_deleted, bool):
            raise ValidationError(
                f"include_deleted must be True or False, got {type(include_deleted).__name__}"
            )
        return q.ANY_STATE if include_deleted else q.LIVE_ONLY

    async def _fetch_one(
        self, conn: AsyncConnection[Any], query: sql.SQL | sql.Composed, params: Mapping[str, Any]
    ) -> RowT | None:
        async with conn.cursor(row_factory=class_row(self.row_model)) as cur:
            await cur.execute(query, params)
            return await cur.fetchone()

    async def _fetch_all(
        self, conn: AsyncConnection[Any], query: sql.SQL | sql.Composed, params: Mapping[str, Any]
    ) -> list[RowT]:
        async with conn.cursor(row_factory=class_row(self.row_model)) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def _update_live(
        self,
        op: str,
        row_id: UUID,
        values: Mapping[str, Any],
        *,
        allowed: Iterable[str],
        conn: AsyncConnection[Any] | None = None,
    ) -> RowT:
        """UPDATE the given (already validated) columns of a live row; ``NotFoundError`` if
        it is absent or deleted. Column names must be in ``allowed`` (the whitelist);
        with no values the current row is returned."""
        check_fields(values, allowed, self.entity)
        if not values:
            return await self.get(row_id)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
        )
        query = q.UPDATE_LIVE.format(
            table=self._table, columns=self._columns, assignments=assignments
        )
        params = {**values, "id": row_id}
        if conn is not None:
            row = await self._fetch_one(conn, query, params)
        else:
            async with self.db.connection(op) as own:
                row = await self._fetch_one(own, query, params)
        if row is None:
            raise NotFoundError(f"{self.entity} {row_id} not found")
        return row

    async def _audit(
        self,
        conn: AsyncConnection[Any],
        action: str,
        *,
        user_id: UUID | None,
        resource_type: str,
        resource_id: UUID | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a ``success`` audit row in the caller's transaction (it commits, or rolls
        back, with the action it records). Keep personal data out of ``metadata``."""
        await conn.execute(
            q.INSERT_AUDIT,
            {
                "user_id": user_id,
                "action": action,
                "resource_type": resource_type,
                "resource_id": None if resource_id is None else str(resource_id),
                "metadata": Jsonb(dict(metadata or {})),
            },
        )

    # ------------------------------------------------------------------ reads
    async def find(self, id: UUID | str, *, include_deleted: bool = False) -> RowT | None:
        """The row, or ``None`` if absent (or soft-deleted, unless ``include_deleted``)."""
        row_id = self._parse_id(id)
        query = self._q_get_any if include_deleted else self._q_get_live
        async with self.db.connection(f"{self.name}.find") as conn:
            return await self._fetch_one(conn, query, {"id": row_id})

    async def get(self, id: UUID | str, *, include_deleted: bool = False) -> RowT:
        """The row; ``NotFoundError`` if absent (or soft-deleted, unless ``include_deleted``)."""
        row = await self.find(id, include_deleted=include_deleted)
        if row is None:
            raise NotFoundError(f"{self.entity} {id} not found")
        return row

    # ------------------------------------------------------------------ soft delete
    async def soft_delete(self, id: UUID | str) -> None:
        """Mark a live row deleted (hooks run in the same transaction).

        Raises ``NotFoundError`` if the row is absent or already deleted.
        """
        row_id = self._parse_id(id)
        async with self.db.transaction(f"{self.name}.soft_delete") as conn:
            row = await self._fetch_one(conn, self._q_soft_delete, {"id": row_id})
            if row is None:
                raise NotFoundError(f"{self.entity} {row_id} not found or already deleted")
            await self._after_soft_delete(conn, row)

    async def restore(self, id: UUID | str) -> RowT:
        """Bring a soft-deleted row back and return it.

        Raises ``NotFoundError`` if absent, not deleted, or its owner is deleted;
        ``ConflictError`` (with ``constraint``) if a live row took its unique value.
        """
        row_id = self._parse_id(id)
        async with self.db.transaction(f"{self.name}.restore") as conn:
            # Owner first, then the row: the lock order of the owner's soft-delete cascade.
            if self._q_owner_live is not None:
                cur = await conn.execute(self._q_owner_live, {"id": row_id})
                owner = await cur.fetchone()
                if owner is not None and not owner[0]:
                    raise NotFoundError(
                        f"cannot restore {self.entity} {row_id}: its owner "
                        f"({self.owner_table}) is deleted; restore that first"
                    )
            cur = await conn.execute(self._q_lock, {"id": row_id})
            locked = await cur.fetchone()
            if locked is None:
                raise NotFoundError(f"{self.entity} {row_id} not found")
            deleted_at = cast("datetime | None", locked[0])
            if deleted_at is None:
                raise NotFoundError(f"{self.entity} {row_id} is not deleted: nothing to restore")
            row = await self._fetch_one(conn, self._q_restore, {"id": row_id})
            if row is None:  # pragma: no cover - the row is locked above
                raise NotFoundError(f"{self.entity} {row_id} not found")
            await self._after_restore(conn, row, deleted_at)
            return row

    async def hard_delete(self, id: UUID | str) -> None:
        """Remove the row for good, live or deleted (foreign keys cascade to owned rows).

        Raises ``NotFoundError`` if absent.
        """
        row_id = self._parse_id(id)
        async with self.db.transaction(f"{self.name}.hard_delete") as conn:
            await self._before_hard_delete(conn, row_id)
            cur = await conn.execute(self._q_hard_delete, {"id": row_id})
            if await cur.fetchone() is None:
                raise NotFoundError(f"{self.entity} {row_id} not found")

    # ------------------------------------------------------------------ hooks
    async def _after_soft_delete(self, conn: AsyncConnection[Any], row: RowT) -> None:
        """Runs in the soft-delete transaction after the row is marked. Default: nothing."""

    async def _after_restore(
        self, conn: AsyncConnection[Any], row: RowT, deleted_at: datetime
    ) -> None:
        """Runs in the restore transaction; ``deleted_at`` is the row's former timestamp."""

    async def _before_hard_delete(self, conn: AsyncConnection[Any], row_id: UUID) -> None:
        """Runs in the hard-delete transaction before the DELETE. Default: nothing."""
