"""Month partitions of ``conversation_turns`` and ``audit_logs``: created ahead, dropped
for retention.

Attached to the factory as ``factory.partitions``; ``digitwin-db migrate`` and the cleanup
job call :meth:`AsyncPartitions.ensure_ahead` so that next months' partitions of both
tables exist before the first row of the month arrives (a row with no partition lands in
the default partition, it never fails). Retention drops whole month partitions: no DELETE,
no dead tuples (turns: ``Settings.turn_retention_days``, here; audit rows:
``Settings.audit_retention_days`` through ``audit_logs.apply_retention``, which keeps the
hash chain verifiable).
"""

from __future__ import annotations

import logging
from datetime import datetime

from psycopg.rows import class_row

from digitwin_db._async.database import AsyncDatabase
from digitwin_db.errors import ValidationError
from digitwin_db.models.partitions import Partition
from digitwin_db.sql import partitions as q

__all__ = ["DEFAULT_MONTHS_AHEAD", "PARTITIONED_TABLES", "AsyncPartitions"]

logger = logging.getLogger("digitwin_db.partitions")

#: Months prepared ahead of the current one: a deploy or cleanup pass missed for a quarter
#: still leaves every insert a partition of its own month.
DEFAULT_MONTHS_AHEAD = 3

#: The tables partitioned by month (``created_at``, UTC months).
PARTITIONED_TABLES: tuple[str, ...] = ("conversation_turns", "audit_logs")


class AsyncPartitions:
    """``ensure_ahead()``, ``drop_turns_older_than(cutoff)`` and ``list(table)``."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    async def installed(self) -> bool:
        """True once the migration that partitions ``conversation_turns`` is applied."""
        async with self.db.connection("partitions.installed") as conn:
            cur = await conn.execute(q.TURNS_PARTITIONED)
            row = await cur.fetchone()
        return bool(row and row[0])

    async def ensure_ahead(self, months_ahead: int = DEFAULT_MONTHS_AHEAD) -> dict[str, int]:
        """Create the partitions of every partitioned table from this UTC month to
        ``months_ahead`` months ahead.

        Returns the number created per table whose partitioning migration is applied (0
        when they exist; idempotent, safe from several hosts at once: the creation is
        serialised by the table's lock, audit_logs' also by an advisory lock).
        """
        if isinstance(months_ahead, bool) or not isinstance(months_ahead, int):
            raise ValidationError(f"months_ahead must be an integer, got {months_ahead!r}")
        if not 0 <= months_ahead <= 120:
            raise ValidationError(f"months_ahead must be between 0 and 120, got {months_ahead}")
        created: dict[str, int] = {}
        async with self.db.connection("partitions.ensure_ahead") as conn:
            for table, installed, ensure in q.ENSURE_AHEAD:
                cur = await conn.execute(installed)
                row = await cur.fetchone()
                if not (row and row[0]):
                    continue  # that table's partitioning migration is not applied
                cur = await conn.execute(ensure, {"months_ahead": months_ahead})
                row = await cur.fetchone()
                created[table] = int(row[0]) if row else 0
                if created[table]:
                    logger.info("created %d month partition(s) of %s", created[table], table)
        return created

    async def drop_turns_older_than(self, cutoff: datetime) -> int:
        """Retention: drop every month partition of ``conversation_turns`` that ends at or
        before ``cutoff`` (and delete older rows of the default partition). Returns the
        rows removed. The sessions keep their counters (``turn_count`` etc.)."""
        if not isinstance(cutoff, datetime) or cutoff.utcoffset() is None:
            raise ValidationError("cutoff must be a timezone-aware datetime")
        async with self.db.connection("partitions.drop_turns_older_than") as conn:
            cur = await conn.execute(q.DROP_TURN_PARTITIONS, {"older_than": cutoff})
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def list(self, table: str = "conversation_turns") -> list[Partition]:
        """The partitions of ``table``, oldest first, the default partition last."""
        if table not in PARTITIONED_TABLES:
            raise ValidationError(
                f"{table!r} is not partitioned; partitioned: {', '.join(PARTITIONED_TABLES)}"
            )
        async with self.db.connection("partitions.list") as conn:
            cur = conn.cursor(row_factory=class_row(Partition))
            await cur.execute(q.LIST_PARTITIONS, {"table": table})
            return await cur.fetchall()
