"""SQL of ``conversation_sessions`` and ``conversation_turns`` (migrations/0001_core.sql).

A turn and the session counters it moves are written by ONE statement (``ADD_TURN``): the
``UPDATE`` of the session row takes its row lock and hands out the next turn number, the
``INSERT`` of the turn uses it. Concurrent callers queue on that row lock, so numbers are
1..n without gaps or duplicates, and a failed insert rolls the counter back with it.
"""

from __future__ import annotations

from typing import LiteralString

from digitwin_db.sql import common

# Every statement lists the columns of its row model (ConversationSession or
# ConversationTurn) in model order.

# Start a session for a live user with optional live models of that same user; inserts
# nothing (no row back) when one of those checks fails — START_DIAGNOSE then says which.
START: LiteralString = """
INSERT INTO conversation_sessions (user_id, voice_model_id, face_model_id, metadata)
SELECT u.id, %(voice_model_id)s::uuid, %(face_model_id)s::uuid, %(metadata)s
  FROM users u
 WHERE u.id = %(user_id)s AND u.deleted_at IS NULL
   AND (%(voice_model_id)s::uuid IS NULL OR EXISTS (
        SELECT 1 FROM voice_models v
         WHERE v.id = %(voice_model_id)s::uuid AND v.user_id = u.id AND v.deleted_at IS NULL))
   AND (%(face_model_id)s::uuid IS NULL OR EXISTS (
        SELECT 1 FROM face_models f
         WHERE f.id = %(face_model_id)s::uuid AND f.user_id = u.id AND f.deleted_at IS NULL))
RETURNING id, user_id, voice_model_id, face_model_id, status, started_at, ended_at, turn_count,
       tokens_in, tokens_out, asr_ms_total, llm_ms_total, tts_ms_total, total_ms_total,
       metadata, created_at, updated_at
"""

# Why START inserted nothing: is the user live, and who owns each model, is it live
# (NULL owner = no such model).
START_DIAGNOSE: LiteralString = """
SELECT (SELECT deleted_at IS NULL FROM users WHERE id = %(user_id)s) AS user_live,
       (SELECT user_id FROM voice_models WHERE id = %(voice_model_id)s::uuid) AS voice_owner,
       (SELECT deleted_at IS NULL FROM voice_models WHERE id = %(voice_model_id)s::uuid)
           AS voice_live,
       (SELECT user_id FROM face_models WHERE id = %(face_model_id)s::uuid) AS face_owner,
       (SELECT deleted_at IS NULL FROM face_models WHERE id = %(face_model_id)s::uuid)
           AS face_live
"""

# Append a turn to an active session and move its counters, in one statement: the UPDATE
# locks the session row and hands out turn_count + 1 as the turn number. No row back =
# the session is absent, ended, or its user soft-deleted (SESSION_STATE says which).
ADD_TURN: LiteralString = """
WITH s AS (
    UPDATE conversation_sessions
       SET turn_count     = turn_count + 1,
           tokens_in      = tokens_in + coalesce(%(tokens_in)s::integer, 0),
           tokens_out     = tokens_out + coalesce(%(tokens_out)s::integer, 0),
           asr_ms_total   = asr_ms_total + coalesce(%(asr_ms)s::integer, 0),
           llm_ms_total   = llm_ms_total + coalesce(%(llm_ms)s::integer, 0),
           tts_ms_total   = tts_ms_total + coalesce(%(tts_ms)s::integer, 0),
           total_ms_total = total_ms_total + coalesce(%(total_ms)s::integer, 0),
           updated_at     = now()
     WHERE id = %(session_id)s AND status = 'active'
       AND EXISTS (SELECT 1 FROM users AS u
                    WHERE u.id = conversation_sessions.user_id AND u.deleted_at IS NULL)
 RETURNING id, turn_count
)
INSERT INTO conversation_turns (session_id, turn_number, role, content, asr_ms, llm_ms,
                                tts_ms, total_ms, tokens_in, tokens_out, metadata)
SELECT s.id, s.turn_count, %(role)s, %(content)s, %(asr_ms)s::integer, %(llm_ms)s::integer,
       %(tts_ms)s::integer, %(total_ms)s::integer, %(tokens_in)s::integer,
       %(tokens_out)s::integer, %(metadata)s
  FROM s
RETURNING id, session_id, turn_number, role, content, asr_ms, llm_ms, tts_ms, total_ms,
       tokens_in, tokens_out, metadata, created_at
"""

# Why add_turn wrote nothing: the session's status and whether its user is live (no row =
# no such session).
SESSION_STATE: LiteralString = """
SELECT s.status, u.deleted_at IS NULL
  FROM conversation_sessions AS s JOIN users AS u ON u.id = s.user_id
 WHERE s.id = %(id)s
"""

# End an active session; no row back = absent or already ended (then GET tells which).
END: LiteralString = """
UPDATE conversation_sessions
   SET status = 'ended', ended_at = greatest(now(), started_at), updated_at = now()
 WHERE id = %(id)s AND status = 'active'
RETURNING id, user_id, voice_model_id, face_model_id, status, started_at, ended_at, turn_count,
       tokens_in, tokens_out, asr_ms_total, llm_ms_total, tts_ms_total, total_ms_total,
       metadata, created_at, updated_at
"""

# One session by id.
GET: LiteralString = """
SELECT id, user_id, voice_model_id, face_model_id, status, started_at, ended_at, turn_count,
       tokens_in, tokens_out, asr_ms_total, llm_ms_total, tts_ms_total, total_ms_total,
       metadata, created_at, updated_at
  FROM conversation_sessions WHERE id = %(id)s
"""

# Make the next reads of this transaction see one snapshot (get_with_turns).
SNAPSHOT = common.SNAPSHOT

# The turns of a session in turn order: the latest %(limit)s of them (LIMIT NULL = all).
TURNS: LiteralString = """
SELECT * FROM (
    SELECT id, session_id, turn_number, role, content, asr_ms, llm_ms, tts_ms, total_ms,
           tokens_in, tokens_out, metadata, created_at
      FROM conversation_turns
     WHERE session_id = %(id)s
     ORDER BY turn_number DESC
     LIMIT %(limit)s
) latest
ORDER BY turn_number
"""

# Sessions, turns, tokens and per-stage latency (count, average, median, p95, max) of a
# user's sessions started at or after %(since)s (all when NULL) and of their turns.
# percentile_cont and avg skip NULLs: a stage is measured over the turns that ran it.
STATISTICS: LiteralString = """
WITH s AS MATERIALIZED (
    SELECT id, status FROM conversation_sessions
     WHERE user_id = %(user_id)s
       AND started_at >= coalesce(%(since)s::timestamptz, '-infinity')
),
t AS MATERIALIZED (
    SELECT t.asr_ms, t.llm_ms, t.tts_ms, t.total_ms, t.tokens_in, t.tokens_out
      FROM conversation_turns t JOIN s ON s.id = t.session_id
)
SELECT
    (SELECT count(*) FROM s) AS sessions,
    (SELECT count(*) FROM s WHERE status = 'active') AS active_sessions,
    count(*) AS turns,
    coalesce(sum(tokens_in), 0)::bigint AS tokens_in,
    coalesce(sum(tokens_out), 0)::bigint AS tokens_out,
    count(asr_ms) AS asr_count,
    avg(asr_ms)::float8 AS asr_avg,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY asr_ms) AS asr_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY asr_ms) AS asr_p95,
    max(asr_ms) AS asr_max,
    count(llm_ms) AS llm_count,
    avg(llm_ms)::float8 AS llm_avg,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY llm_ms) AS llm_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY llm_ms) AS llm_p95,
    max(llm_ms) AS llm_max,
    count(tts_ms) AS tts_count,
    avg(tts_ms)::float8 AS tts_avg,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY tts_ms) AS tts_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY tts_ms) AS tts_p95,
    max(tts_ms) AS tts_max,
    count(total_ms) AS total_count,
    avg(total_ms)::float8 AS total_avg,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms) AS total_p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY total_ms) AS total_p95,
    max(total_ms) AS total_max
  FROM t
"""
