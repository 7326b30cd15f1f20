"""Operator maintenance: ``VACUUM (ANALYZE)`` on demand and a size / dead-tuple report.

Attached to the factory as ``factory.maintenance``. The cache and rate-limit tables churn
(every expiry and cleanup leaves dead tuples behind); autovacuum normally keeps up, and
this is the manual lever and the report that tells whether it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from psycopg import sql
from psycopg.rows import class_row, dict_row

from digitwin_db._async.database import AsyncDatabase
from digitwin_db.cache_registry import CACHE_TABLES, STATS_TABLE
from digitwin_db.errors import ValidationError
from digitwin_db.models.audit import TableStats
from digitwin_db.sql import maintenance as q
from digitwin_db.sql.limits_storage import TABLES as LIMITS_TABLES

__all__ = ["CHURN_TABLES", "AsyncMaintenance"]

logger = logging.getLogger("digitwin_db.maintenance")

#: Tables vacuumed by default: the ones whose rows expire and are deleted all day long
#: (the ``limits`` storage's tables too).
CHURN_TABLES: tuple[str, ...] = (*CACHE_TABLES, STATS_TABLE, "rate_limits", *LIMITS_TABLES)


class AsyncMaintenance:
    """``vacuum_analyze(tables)``, ``table_stats(tables)`` and ``rate_limit_summary()``."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    async def application_tables(self) -> list[str]:
        """Every table of the application (public schema, migrations bookkeeping excluded)."""
        async with self.db.connection("maintenance.application_tables") as conn:
            cur = await conn.execute(q.APPLICATION_TABLES)
            return [r[0] for r in await cur.fetchall()]

    async def _checked(self, tables: Iterable[str] | None, default: Iterable[str]) -> list[str]:
        if isinstance(tables, str):
            raise ValidationError("tables must be a list of table names, not a single string")
        wanted = list(default if tables is None else tables)
        known = set(await self.application_tables())
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise ValidationError(
                f"unknown table(s): {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return list(dict.fromkeys(wanted))

    async def vacuum_analyze(self, tables: Iterable[str] | None = None) -> dict[str, float]:
        """Run ``VACUUM (ANALYZE)`` on each table (default: :data:`CHURN_TABLES`); return the
        milliseconds each took. Unknown table names are a ``ValidationError``."""
        names = await self._checked(tables, CHURN_TABLES)
        timings: dict[str, float] = {}
        for table in names:
            start = time.perf_counter()
            async with self.db.connection("maintenance.vacuum_analyze") as conn:
                # Pooled connections are in autocommit mode, as VACUUM requires.
                await conn.execute(sql.SQL(q.VACUUM_ANALYZE).format(table=sql.Identifier(table)))
            timings[table] = round((time.perf_counter() - start) * 1000.0, 3)
            logger.info("vacuum (analyze) %s took %.1f ms", table, timings[table])
        return timings

    async def table_stats(self, tables: Iterable[str] | None = None) -> list[TableStats]:
        """Size, live/dead tuple estimates and dead-tuple ratio per table (default: every
        application table), sorted by name."""
        names = await self._checked(tables, await self.application_tables())
        async with self.db.connection("maintenance.table_stats") as conn:
            cur = conn.cursor(row_factory=class_row(TableStats))
            await cur.execute(q.TABLE_STATS, {"tables": names})
            return await cur.fetchall()

    async def rate_limit_summary(self, *, top: int = 5) -> dict[str, Any]:
        """Buckets, distinct subjects, total admissions and denials, busiest endpoints."""
        async with self.db.connection("maintenance.rate_limit_summary") as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q.RATE_LIMIT_SUMMARY, {"top": top})
            row = await cur.fetchone()
        return dict(row) if row is not None else {}
