"""Statements several repositories use: the health probe of a table, the read snapshot,
the page of a listing and its total."""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

# Health probe of one table: a cheap indexed read.
TABLE_PROBE = sql.SQL("SELECT 1 FROM {table} LIMIT 1")

# Make the next reads of this transaction see one snapshot (a page and its total agree).
SNAPSHOT: LiteralString = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# One page of a listing (users, a user's models, documents, sessions): the rows of {table}
# matching {where} (fragments below, joined by AND), newest ({age}) first.
PAGE = sql.SQL(
    """
SELECT {columns}
FROM {table}
WHERE {where}
ORDER BY {age} DESC, id DESC
LIMIT %(limit)s
OFFSET %(offset)s
"""
)

# How many rows a listing matches in all (its page's total); same {where} as PAGE.
COUNT_ROWS = sql.SQL("SELECT count(*) FROM {table} WHERE {where}")

# Filter fragments of PAGE / COUNT_ROWS: the rows of one user; of one status when
# %(status)s is not NULL.
OWNED_BY = sql.SQL("user_id = %(user_id)s")
STATUS_IS = sql.SQL("(%(status)s::text IS NULL OR status = %(status)s::text)")
