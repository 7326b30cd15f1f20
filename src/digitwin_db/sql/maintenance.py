"""SQL of the operator's maintenance and reports: VACUUM, table sizes, dead tuples, and a
read-only rate-limit usage summary for the ``stats`` command."""

from __future__ import annotations

from typing import LiteralString

# Reclaim dead tuples and refresh planner statistics of one table ({table} is an Identifier;
# VACUUM cannot run inside a transaction, so this goes through an autocommit connection).
VACUUM_ANALYZE: LiteralString = "VACUUM (ANALYZE) {table}"

# Sizes, live/dead tuple estimates and vacuum history of the given public tables.
TABLE_STATS: LiteralString = """
SELECT c.relname AS table,
       c.relpersistence = 'u' AS unlogged,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       coalesce(s.n_live_tup, 0) AS live_tuples,
       coalesce(s.n_dead_tup, 0) AS dead_tuples,
       CASE WHEN coalesce(s.n_live_tup, 0) + coalesce(s.n_dead_tup, 0) = 0 THEN 0.0
            ELSE s.n_dead_tup::float8 / (s.n_live_tup + s.n_dead_tup) END AS dead_ratio,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
  FROM pg_class AS c
  LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
   AND c.relname = ANY(%(tables)s)
 ORDER BY c.relname
"""

# Tables of the public schema that belong to the application (not yoyo's bookkeeping).
APPLICATION_TABLES: LiteralString = """
SELECT relname FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
   AND relname NOT LIKE '\\_yoyo%' AND relname <> 'yoyo_lock'
 ORDER BY relname
"""

# Rate-limit usage over every bucket: how many buckets and subjects, admissions and denials,
# and the busiest endpoints.
RATE_LIMIT_SUMMARY: LiteralString = """
SELECT count(*) AS buckets,
       count(DISTINCT user_id) AS subjects,
       coalesce(sum(allowed_count), 0)::bigint AS allowed,
       coalesce(sum(denied_count), 0)::bigint AS denied,
       (SELECT coalesce(jsonb_agg(e ORDER BY e.allowed + e.denied DESC, e.endpoint), '[]')
          FROM (SELECT endpoint, sum(allowed_count)::bigint AS allowed,
                       sum(denied_count)::bigint AS denied
                  FROM rate_limits GROUP BY endpoint
                 ORDER BY sum(allowed_count + denied_count) DESC, endpoint
                 LIMIT %(top)s) AS e) AS top_endpoints
  FROM rate_limits
"""
