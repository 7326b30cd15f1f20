"""SQL of ``knowledge_documents`` (migrations/0001_core.sql). Reads by id, soft delete,
restore and hard delete come from the shared soft-delete templates (``sql/soft_delete.py``).

``{columns}`` is the KnowledgeDocument column list and ``{where}`` the live/any-state filter
(``deleted_at IS NULL`` or ``TRUE``), both filled with ``psycopg.sql`` objects; values are
always bound parameters.
"""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

# Add a pending document for a live user; no row back = the user is absent or deleted.
# FOR SHARE on the user: a concurrent users.soft_delete waits for this insert, so its
# cascade soft-deletes the new document too (or, if it commits first, nothing is inserted).
INSERT = sql.SQL(
    """
INSERT INTO knowledge_documents (user_id, title, content, source, mime_type, metadata)
SELECT u.id, %(title)s, %(content)s, %(source)s, %(mime_type)s, %(metadata)s
  FROM users u
 WHERE u.id = %(user_id)s AND u.deleted_at IS NULL
   FOR SHARE OF u
RETURNING {columns}
"""
)

# Move a live document to %(status)s if its current status is one it may come from
# (the check and the move are one statement: of two workers racing pending → processing,
# exactly one gets the row back). error/chunk_count are set as given (NULL otherwise);
# processed_at is when processing finished (ready or failed), cleared otherwise.
SET_STATUS = sql.SQL(
    """
UPDATE knowledge_documents
   SET status       = %(status)s::text,
       error        = %(error)s::text,
       chunk_count  = %(chunk_count)s::integer,
       processed_at = CASE WHEN %(status)s::text IN ('ready', 'failed') THEN now() END,
       updated_at   = now()
 WHERE id = %(id)s AND deleted_at IS NULL AND status = ANY(%(allowed_from)s::text[])
RETURNING {columns}
"""
)

# The status of a document and whether it is live (no row = no such document); used to
# explain why SET_STATUS changed nothing.
STATE: LiteralString = (
    "SELECT status, deleted_at IS NULL FROM knowledge_documents WHERE id = %(id)s"
)

# Full-text search in a user's live documents: websearch_to_tsquery accepts any text
# (quotes, operators, backslashes: never a syntax error; no lexeme = no match), the GIN
# index on search_vector finds candidates, ts_rank_cd ranks them (title weight A beats
# body weight B), and only the returned page gets a ts_headline snippet, made from the
# first 50,000 characters of the body to bound its cost.
SEARCH: LiteralString = """
WITH query AS (
    SELECT websearch_to_tsquery('english', %(query)s) AS q
),
hits AS (
    SELECT d.id, d.user_id, d.title, d.source, d.mime_type, d.status, d.content,
           d.created_at, d.updated_at, ts_rank_cd(d.search_vector, query.q) AS rank
      FROM knowledge_documents d, query
     WHERE d.user_id = %(user_id)s AND d.deleted_at IS NULL AND d.search_vector @@ query.q
     ORDER BY rank DESC, d.created_at DESC, d.id
     LIMIT %(limit)s
)
SELECT hits.id, hits.user_id, hits.title, hits.source, hits.mime_type, hits.status,
       hits.rank::float8 AS rank,
       ts_headline('english', left(hits.content, 50000), query.q,
                   'StartSel=**, StopSel=**, MaxWords=35, MinWords=15, MaxFragments=2')
           AS snippet,
       hits.created_at, hits.updated_at
  FROM hits, query
 ORDER BY hits.rank DESC, hits.created_at DESC, hits.id
"""
