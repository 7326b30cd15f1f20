"""Statements every repository uses, on a table it names (``{table}``)."""

from __future__ import annotations

from psycopg import sql

# Health probe of one table: a cheap indexed read.
TABLE_PROBE = sql.SQL("SELECT 1 FROM {table} LIMIT 1")
