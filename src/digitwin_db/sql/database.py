"""SQL of the connection layer: the liveness probe and the migrations bookkeeping."""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

# One round trip: the server answers.
PING: LiteralString = "SELECT 1"

# Does this table exist? (to_regclass is NULL for an unknown name.)
TABLE_EXISTS: LiteralString = "SELECT to_regclass(%(table)s) IS NOT NULL"

# The migrations yoyo recorded as applied, in its bookkeeping table {table}.
APPLIED_MIGRATIONS = sql.SQL("SELECT migration_id FROM {table}")
