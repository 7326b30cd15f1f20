"""Statements several repositories use: the health probe of a table, the read snapshot."""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

# Health probe of one table: a cheap indexed read.
TABLE_PROBE = sql.SQL("SELECT 1 FROM {table} LIMIT 1")

# Make the next reads of this transaction see one snapshot (a page and its total agree).
SNAPSHOT: LiteralString = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
