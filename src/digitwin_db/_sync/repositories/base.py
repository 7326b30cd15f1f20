# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/repositories/base.py
"""What every repository shares: its database, its table, and a health check."""

from __future__ import annotations

import time
from typing import ClassVar

from psycopg import sql

from digitwin_db._sync.database import Database
from digitwin_db.errors import DigitwinDBError
from digitwin_db.models.common import RepositoryCheck


class Repository:
    """Base of the repositories: holds the database and names the tables it owns."""

    #: Name used in health reports and operation statistics (e.g. ``"users"``).
    name: ClassVar[str] = ""
    #: Tables this repository reads and writes; checked by :meth:`check_health`.
    tables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, db: Database) -> None:
        self.db = db

    def check_health(self) -> RepositoryCheck:
        """Probe each of the repository's tables with a cheap indexed read."""
        start = time.perf_counter()
        try:
            with self.db.connection(f"{self.name}.check_health") as conn:
                for table in self.tables:
                    conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(table)))
        except DigitwinDBError as exc:
            return RepositoryCheck(name=self.name, ok=False, error=str(exc))
        return RepositoryCheck(
            name=self.name, ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 3)
        )

    def close(self) -> None:
        """Release what the repository holds (e.g. flush buffered counters). Default: nothing."""
