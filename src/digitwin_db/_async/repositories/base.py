"""What every repository shares: its database, its table, and a health check."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, LiteralString, TypeVar
from uuid import UUID

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from digitwin_db._async.database import AsyncDatabase
from digitwin_db.errors import DigitwinDBError, NotFoundError
from digitwin_db.models.common import Page, RepositoryCheck, Row
from digitwin_db.sql import common
from digitwin_db.sql import users as user_sql
from digitwin_db.validation import check_page

ItemT = TypeVar("ItemT", bound=Row)


class AsyncRepository:
    """Base of the repositories: holds the database and names the tables it owns."""

    #: Name used in health reports and operation statistics (e.g. ``"users"``).
    name: ClassVar[str] = ""
    #: Tables this repository reads and writes; checked by :meth:`check_health`.
    tables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    async def check_health(self) -> RepositoryCheck:
        """Probe each of the repository's tables with a cheap indexed read."""
        start = time.perf_counter()
        try:
            async with self.db.connection(f"{self.name}.check_health") as conn:
                for table in self.tables:
                    await conn.execute(common.TABLE_PROBE.format(table=sql.Identifier(table)))
        except DigitwinDBError as exc:
            return RepositoryCheck(name=self.name, ok=False, error=str(exc))
        return RepositoryCheck(
            name=self.name, ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 3)
        )

    async def close(self) -> None:
        """Release what the repository holds (e.g. flush buffered counters). Default: nothing."""

    @staticmethod
    async def _page_total(
        conn: AsyncConnection[Any],
        shown: int,
        limit: int,
        offset: int,
        count: sql.SQL | sql.Composed | LiteralString,
        params: Mapping[str, Any],
    ) -> int:
        """The ``total`` of a listing page, the one way every ``Page`` gets it: the first
        page that is not full tells it (``shown``); otherwise one count statement, run in
        the listing's transaction (its snapshot) when it has one."""
        if offset == 0 and shown < limit:
            return shown
        cur = await conn.execute(count, params)
        row = await cur.fetchone()
        return int(row[0]) if row is not None else 0

    async def _list_page(
        self,
        op: str,
        model: type[ItemT],
        queries: tuple[sql.Composed, sql.Composed],
        params: Mapping[str, Any],
        limit: object,
        offset: object,
        *,
        owner: UUID | None = None,
        owner_deleted: bool = False,
    ) -> Page[ItemT]:
        """The ``Page`` of a listing: ``queries`` are its page and count statements
        (``common.PAGE`` and ``common.COUNT_ROWS``), the items and their total read from
        one snapshot. With ``owner``, ``NotFoundError`` unless that user exists and (unless
        ``owner_deleted``) is live."""
        size, start = check_page(limit, offset)
        values = {**params, "limit": size, "offset": start}
        async with self.db.transaction(op) as conn:
            await conn.execute(common.SNAPSHOT)
            if owner is not None:
                await self._require_user(conn, owner, allow_deleted=owner_deleted)
            async with conn.cursor(row_factory=class_row(model)) as cur:
                await cur.execute(queries[0], values)
                items = await cur.fetchall()
            total = await self._page_total(conn, len(items), size, start, queries[1], values)
        return Page[model](items=items, total=total, limit=size, offset=start)  # type: ignore[valid-type]

    @staticmethod
    def _listing(
        table: str, columns: sql.Composable, where: list[sql.Composable], age: str = "created_at"
    ) -> tuple[sql.Composed, sql.Composed]:
        """The page and count statements of a listing of ``table`` (filters joined by AND)."""
        fields = {"table": sql.Identifier(table), "where": sql.SQL(" AND ").join(where)}
        page = common.PAGE.format(**fields, columns=columns, age=sql.Identifier(age))
        return page, common.COUNT_ROWS.format(**fields)

    @staticmethod
    async def _require_user(
        conn: AsyncConnection[Any], user_id: UUID, *, allow_deleted: bool = False
    ) -> None:
        """``NotFoundError`` unless the user exists and (unless ``allow_deleted``) is live."""
        cur = await conn.execute(user_sql.USER_STATE, {"user_id": user_id})
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"user {user_id} does not exist")
        if not row[0] and not allow_deleted:
            raise NotFoundError(f"user {user_id} is deleted")
