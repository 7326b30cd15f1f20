"""SQL of ``voice_models`` and ``face_models`` (VoiceModelRepository, FaceModelRepository).

The two tables share these templates: ``{table}`` is ``sql.Identifier("voice_models")`` or
``sql.Identifier("face_models")``, ``{columns}`` the row model's columns (identifiers),
``{insert_columns}``/``{values}`` the fixed per-kind column list and its placeholders,
``{where}`` ``deleted_at IS NULL`` or ``TRUE``. get/find/soft_delete/restore/hard_delete
come from ``sql/soft_delete.py``; the audit row from ``sql/users.py``.
"""

from __future__ import annotations

from psycopg import sql

# Create a model of a live user and return it; no row back = the user is absent or deleted.
# FOR SHARE on the user (as documents.INSERT): a concurrent users.soft_delete waits for this
# insert, so its cascade sees (and soft-deletes) the new model.
INSERT = sql.SQL(
    """
INSERT INTO {table} ({insert_columns})
SELECT {values}
FROM users AS u
WHERE u.id = %(user_id)s AND u.deleted_at IS NULL
FOR SHARE OF u
RETURNING {columns}
"""
)

# The user's active model (an active model is live and ready: the *_active_ready CHECK).
GET_ACTIVE = sql.SQL("SELECT {columns} FROM {table} WHERE user_id = %(user_id)s AND is_active")

# activate, step 1: whose model is it (live models only)?
OWNER_OF_LIVE = sql.SQL("SELECT user_id FROM {table} WHERE id = %(id)s AND deleted_at IS NULL")

# activate, step 2: serialise activations of one user's models on the user's row
# (NO KEY UPDATE does not block inserts that only need the user's key for their FK).
LOCK_LIVE_USER_EXCLUSIVE = sql.SQL(
    "SELECT 1 FROM users WHERE id = %(user_id)s AND deleted_at IS NULL FOR NO KEY UPDATE"
)

# activate, step 3: the model as it is now, locked (it may have changed before step 2).
LOCK_MODEL = sql.SQL(
    """
SELECT status, is_active
FROM {table}
WHERE id = %(id)s AND user_id = %(user_id)s AND deleted_at IS NULL FOR UPDATE
"""
)

# activate, step 4: switch the user's other active model (at most one) off ...
DEACTIVATE_OTHERS = sql.SQL(
    """
UPDATE {table}
SET is_active = false, updated_at = now()
WHERE user_id = %(user_id)s AND is_active AND id <> %(id)s
"""
)

# ... and step 5: this one on (the partial unique index *_one_active_per_user backs it).
ACTIVATE = sql.SQL(
    "UPDATE {table} SET is_active = true, updated_at = now() WHERE id = %(id)s RETURNING {columns}"
)

# Switch a live model off (a no-op if it was not active).
DEACTIVATE = sql.SQL(
    """
UPDATE {table}
SET is_active = false, updated_at = now()
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING {columns}
"""
)

# On soft delete, an active model is switched off too (an active model must be live).
SOFT_DELETE_EXTRA_SET = sql.SQL(", is_active = false")
