"""SQL of the shared soft-delete machinery (``_async/repositories/soft_delete.py``).

Templates, not finished statements: ``{table}`` is filled with ``sql.Identifier(table)``,
``{columns}`` with the row model's column list (identifiers), ``{extra_set}`` with
a subclass's extra ``SET`` assignments (always starting with ``, ``, or empty), ``{where}``
with a fixed fragment. Values are always bound parameters (``%(id)s``). Every table used
here has ``id uuid``, ``deleted_at timestamptz`` (NULL = live) and ``updated_at``.
"""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

# Filter fragments: a "live only" read adds LIVE_ONLY; include_deleted=True adds ANY_STATE.
LIVE_ONLY = sql.SQL("deleted_at IS NULL")
ANY_STATE = sql.SQL("TRUE")

# Read one row by id ({where} is LIVE_ONLY or ANY_STATE).
GET_BY_ID = sql.SQL("SELECT {columns} FROM {table} WHERE id = %(id)s AND {where}")

# Lock one row by id, whatever its state, and say whether it is deleted (restore, erase).
LOCK_BY_ID = sql.SQL("SELECT deleted_at FROM {table} WHERE id = %(id)s FOR UPDATE")

# Soft-delete a live row; no row back = absent or already deleted.
SOFT_DELETE = sql.SQL(
    """
UPDATE {table}
SET deleted_at = now(), updated_at = now(){extra_set}
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING {columns}
"""
)

# Bring a deleted row back; a live row holding the same unique value makes this fail with
# a unique violation (→ ConflictError naming the partial unique index).
RESTORE = sql.SQL(
    """
UPDATE {table}
SET deleted_at = NULL, updated_at = now()
WHERE id = %(id)s AND deleted_at IS NOT NULL
RETURNING {columns}
"""
)

# Remove a row for good, live or deleted; foreign keys cascade to owned rows.
HARD_DELETE = sql.SQL("DELETE FROM {table} WHERE id = %(id)s RETURNING id")

# Update whitelisted columns of a live row ({assignments}: "col = %(col)s, ..." built from
# sql.Identifier of whitelisted names only).
UPDATE_LIVE = sql.SQL(
    """
UPDATE {table}
SET {assignments}, updated_at = now()
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING {columns}
"""
)

# Is the owning row (e.g. the user of a model) live? Used before restoring an owned row.
# FOR SHARE: a concurrent soft delete of the owner waits for this restore, so its cascade
# then sees the restored row (and the owner is locked before the owned row: same order as
# the cascade, no deadlock). No row back: the owned row does not exist.
OWNER_IS_LIVE = sql.SQL(
    """
SELECT deleted_at IS NULL
FROM {owner_table}
WHERE id = (SELECT {owner_column} FROM {table} WHERE id = %(id)s) FOR SHARE
"""
)

# Append an audit row in the caller's transaction (security-relevant actions of the domain
# repositories: user.created, user.soft_deleted, voice_model.activated, …).
INSERT_AUDIT: LiteralString = """
INSERT INTO audit_logs (user_id, action, resource_type, resource_id, result, metadata)
VALUES (%(user_id)s, %(action)s, %(resource_type)s, %(resource_id)s, 'success',
    %(metadata)s)
"""
