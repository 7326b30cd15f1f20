"""SQL of the operator's maintenance and reports: VACUUM, table sizes, dead tuples, and a
read-only rate-limit usage summary for the ``stats`` command."""

from __future__ import annotations

from typing import LiteralString

# Reclaim dead tuples and refresh planner statistics of one table ({table} is an Identifier;
# VACUUM cannot run inside a transaction, so this goes through an autocommit connection).
VACUUM_ANALYZE: LiteralString = "VACUUM (ANALYZE) {table}"

# Sizes, live/dead tuple estimates and vacuum history of the given public tables. A
# partitioned table (conversation_turns) is reported once, summed over its partitions
# (pg_partition_tree lists nothing for a plain table: the UNION adds the table itself).
TABLE_STATS: LiteralString = """
SELECT c.relname AS table,
       c.relpersistence = 'u' AS unlogged,
       sum(pg_total_relation_size(t.relid))::bigint AS total_bytes,
       sum(pg_table_size(t.relid))::bigint AS table_bytes,
       sum(pg_indexes_size(t.relid))::bigint AS index_bytes,
       coalesce(sum(s.n_live_tup), 0)::bigint AS live_tuples,
       coalesce(sum(s.n_dead_tup), 0)::bigint AS dead_tuples,
       CASE WHEN coalesce(sum(s.n_live_tup), 0) + coalesce(sum(s.n_dead_tup), 0) = 0 THEN 0.0
            ELSE sum(s.n_dead_tup)::float8 / (sum(s.n_live_tup) + sum(s.n_dead_tup)) END
           AS dead_ratio,
       max(s.last_vacuum) AS last_vacuum, max(s.last_autovacuum) AS last_autovacuum,
       max(s.last_analyze) AS last_analyze, max(s.last_autoanalyze) AS last_autoanalyze
  FROM pg_class AS c
 CROSS JOIN LATERAL (SELECT relid FROM pg_partition_tree(c.oid)
                     UNION SELECT c.oid::regclass) AS t
  LEFT JOIN pg_stat_user_tables AS s ON s.relid = t.relid
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT c.relispartition AND c.relname = ANY(%(tables)s)
 GROUP BY c.oid, c.relname, c.relpersistence
 ORDER BY c.relname
"""

# Tables of the public schema that belong to the application (not yoyo's bookkeeping).
APPLICATION_TABLES: LiteralString = """
SELECT relname FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition
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
