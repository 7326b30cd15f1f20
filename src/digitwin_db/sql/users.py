"""SQL of ``users`` (UserRepository): create, lookups, listing, the soft-delete cascade,
GDPR export and erasure, and the audit rows those actions write in their transaction.

get/find/soft_delete/restore/hard_delete themselves come from ``sql/soft_delete.py``.
Statements returning users select the User model's columns, in model order.
"""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

# Create a user and return it.
INSERT: LiteralString = """
INSERT INTO users (email, name, personality_traits, preferences, settings,
    subscription_tier)
VALUES (%(email)s, %(name)s, %(personality_traits)s, %(preferences)s, %(settings)s,
    %(subscription_tier)s)
RETURNING id, email, name, personality_traits, preferences, settings, subscription_tier,
    last_active_at, created_at, updated_at, deleted_at
"""

# The live user with this email, compared case-insensitively (uses users_email_live_key).
GET_BY_EMAIL: LiteralString = """
SELECT id, email, name, personality_traits, preferences, settings, subscription_tier,
    last_active_at, created_at, updated_at, deleted_at
FROM users
WHERE lower(email) = lower(%(email)s) AND deleted_at IS NULL
"""

# Optional filter fragment of the users listing (common.PAGE / COUNT_ROWS).
TIER_FILTER = sql.SQL("subscription_tier = %(subscription_tier)s")

# Soft-delete cascade: the user's live rows of {table} (voice models, face models,
# documents) get the user's own deleted_at (the transaction time); {extra_set} is the
# table's own soft-delete extra (models are deactivated: an active model must be live).
CASCADE_SOFT_DELETE = sql.SQL(
    """
UPDATE {table}
SET deleted_at = %(deleted_at)s, updated_at = now(){extra_set}
WHERE user_id = %(user_id)s AND deleted_at IS NULL
"""
)

# Restore cascade: exactly the rows of {table} the user's soft delete marked (same
# deleted_at), not rows deleted earlier on their own.
CASCADE_RESTORE = sql.SQL(
    """
UPDATE {table}
SET deleted_at = NULL, updated_at = now()
WHERE user_id = %(user_id)s AND deleted_at = %(deleted_at)s
"""
)

# GDPR access: every row of the user's data as one JSON document, in one snapshot.
# Rate-limit buckets are keyed by the user id as text; the search vector of documents is
# derived data and left out.
EXPORT: LiteralString = """
SELECT jsonb_build_object(
    'user', (SELECT to_jsonb(u) FROM users u WHERE u.id = %(id)s),
    'voice_models', coalesce((SELECT jsonb_agg(to_jsonb(v) ORDER BY v.created_at, v.id)
        FROM voice_models v WHERE v.user_id = %(id)s), '[]'::jsonb),
    'face_models', coalesce((SELECT jsonb_agg(to_jsonb(f) ORDER BY f.created_at, f.id)
        FROM face_models f WHERE f.user_id = %(id)s), '[]'::jsonb),
    'conversation_sessions', coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.started_at, s.id)
        FROM conversation_sessions s WHERE s.user_id = %(id)s), '[]'::jsonb),
    'conversation_turns', coalesce((SELECT jsonb_agg(to_jsonb(t) ORDER BY s.started_at, s.id,
            t.turn_number)
        FROM conversation_turns t JOIN conversation_sessions s ON s.id = t.session_id
        WHERE s.user_id = %(id)s), '[]'::jsonb),
    'knowledge_documents', coalesce((SELECT jsonb_agg(to_jsonb(d) - 'search_vector'
            ORDER BY d.created_at, d.id)
        FROM knowledge_documents d WHERE d.user_id = %(id)s), '[]'::jsonb),
    'rate_limits', coalesce((SELECT jsonb_agg(to_jsonb(r) ORDER BY r.endpoint)
        FROM rate_limits r WHERE r.user_id = %(id)s::text), '[]'::jsonb),
    'audit_logs', coalesce((SELECT jsonb_agg(to_jsonb(a) ORDER BY a.id)
        FROM audit_logs a WHERE a.user_id = %(id)s), '[]'::jsonb),
    'exported_at', now()
)
"""

# GDPR erasure of the audit rows: only the owner-defined SECURITY DEFINER function may
# change audit rows (migrations/0005_audit_privileges.sql), and only the maintenance role may
# run it. Can this connection's role? (The application role cannot: it queues the request.)
CAN_ANONYMISE_AUDIT: LiteralString = (
    "SELECT has_function_privilege('digitwin_audit_anonymise(uuid)', 'EXECUTE')"
)

# Run after the user row is deleted (the function refuses a user who still exists): rows the
# user made lose user id, IP address, user agent; rows about the user lose the resource id;
# all lose the free-form metadata. Returns the number of rows changed.
ANONYMISE_AUDIT: LiteralString = "SELECT digitwin_audit_anonymise(%(id)s)"

# The application role's way: the maintenance job (cleanup) anonymises queued users.
QUEUE_AUDIT_ERASURE: LiteralString = (
    "INSERT INTO audit_erasure_requests (user_id) VALUES (%(id)s) ON CONFLICT DO NOTHING"
)

# Step 3: the user's rate-limit buckets (keyed by the user id as text; no foreign key).
ERASE_RATE_LIMITS: LiteralString = "DELETE FROM rate_limits WHERE user_id = %(id)s::text"

# Step 4: the user; foreign keys cascade to models, sessions, turns and documents.
ERASE_USER: LiteralString = "DELETE FROM users WHERE id = %(id)s"

# Is the user live? No row = no such user; false = soft-deleted. (Every repository checks a
# user's state with it before writing rows that belong to the user.)
USER_STATE: LiteralString = "SELECT deleted_at IS NULL FROM users WHERE id = %(user_id)s"
