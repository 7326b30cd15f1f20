"""What every repository shares: its database, its table, and a health check."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, LiteralString
from uuid import UUID

from psycopg import AsyncConnection, sql

from digitwin_db._async.database import AsyncDatabase
from digitwin_db.errors import DigitwinDBError, NotFoundError
from digitwin_db.models.common import RepositoryCheck
from digitwin_db.sql import common
from digitwin_db.sql import users as user_sql


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
