"""SQL of ``audit_logs``: the append-only audit trail (see migrations/0004_audit_logs.sql).

The application role may only INSERT and SELECT (see ``digitwin_db.privileges``); a trigger
refuses UPDATE, DELETE and TRUNCATE to everyone else too, except from the owner-defined
``SECURITY DEFINER`` functions of migrations/0005_audit_privileges.sql (purge, anonymise).
"""

from __future__ import annotations

from typing import LiteralString

# Make this transaction's commit wait for the WAL flush even when the server (or the
# session) runs with synchronous_commit = off: an audit row is durable when log() returns.
SYNCHRONOUS_COMMIT_ON: LiteralString = "SET LOCAL synchronous_commit = on"

# Append one audit entry and return it.
INSERT: LiteralString = """
INSERT INTO audit_logs (user_id, action, resource_type, resource_id, result, ip_address,
    user_agent, metadata)
VALUES (%(user_id)s, %(action)s, %(resource_type)s, %(resource_id)s, %(result)s,
    %(ip_address)s::inet, %(user_agent)s, %(metadata)s)
RETURNING id, user_id, action, resource_type, resource_id, result, host(ip_address) AS
    ip_address, user_agent, metadata, created_at
"""

# One page of entries, newest first; {where} is built from QUERY_FILTERS only. Columns as
# in AuditEntry; host() gives the address without the /32 or /128 mask.
SELECT_PAGE: LiteralString = """
SELECT id, user_id, action, resource_type, resource_id, result, host(ip_address) AS
    ip_address, user_agent, metadata, created_at
FROM audit_logs
WHERE {where}
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
OFFSET %(offset)s
"""

# How many entries match the filters of a page.
COUNT: LiteralString = "SELECT count(*) FROM audit_logs WHERE {where}"

# The filter fragments that query() may AND together (each uses only its own parameter).
QUERY_FILTERS: dict[str, LiteralString] = {
    "user_id": "user_id = %(user_id)s",
    "action": "action = %(action)s",
    "resource_type": "resource_type = %(resource_type)s",
    "resource_id": "resource_id = %(resource_id)s",
    "result": "result = %(result)s",
    "since": "created_at >= %(since)s",
    "until": "created_at < %(until)s",
}
NO_FILTER: LiteralString = "TRUE"

# Totals, counts per action and per result, and the most active users of a time range,
# in one statement ([since, until), either bound optional).
STATISTICS: LiteralString = """
WITH scope AS MATERIALIZED (
    SELECT action, result, user_id FROM audit_logs
     WHERE created_at >= coalesce(%(since)s::timestamptz, '-infinity')
       AND created_at <  coalesce(%(until)s::timestamptz, 'infinity')
)
SELECT
    (SELECT count(*) FROM scope) AS total,
    (SELECT coalesce(jsonb_object_agg(action, n), '{}')
       FROM (SELECT action, count(*) AS n FROM scope GROUP BY action) AS a) AS by_action,
    (SELECT coalesce(jsonb_object_agg(result, n), '{}')
       FROM (SELECT result, count(*) AS n FROM scope GROUP BY result) AS r) AS by_result,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('user_id', user_id, 'count', n)
                               ORDER BY n DESC, user_id), '[]')
       FROM (SELECT user_id, count(*) AS n FROM scope WHERE user_id IS NOT NULL
              GROUP BY user_id ORDER BY n DESC, user_id LIMIT %(top_users)s) AS u) AS top_users
"""

# One batch of the retention purge, through the SECURITY DEFINER function (maintenance role
# only): deletes up to batch_size rows older than days (server clock), oldest first, and
# refuses a days below the owner's floor (audit_policy.min_retention_days).
PURGE_BATCH: LiteralString = "SELECT digitwin_audit_purge(%(days)s, %(batch_size)s)"

# Is audit_logs partitioned by month (migration 0015 applied)?
PARTITIONED: LiteralString = """
SELECT to_regprocedure('digitwin_audit_drop_partitions(double precision, integer)') IS NOT NULL
"""

# Retention of the partitioned table, through the SECURITY DEFINER function (maintenance
# role only): detaches and drops the month partitions that end before days ago, then
# deletes up to batch_size older rows of the default partition; every removed row whose
# successor survives leaves its hash in audit_chain_anchors. Same floor as PURGE_BATCH.
DROP_PARTITIONS_BATCH: LiteralString = (
    "SELECT digitwin_audit_drop_partitions(%(days)s, %(batch_size)s)"
)

# Anonymise the audit rows of up to `limit` users erased by the application role (queued in
# audit_erasure_requests); maintenance role only.
PROCESS_ERASURES: LiteralString = "SELECT digitwin_audit_process_erasures(%(limit)s)"

# ----------------------------------------------------------------- the hash chain (0006)
# verify reads the head, the anchors and the rows in one snapshot.
VERIFY_SNAPSHOT: LiteralString = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# The newest link (absent before the first row).
CHAIN_HEAD: LiteralString = "SELECT seq, row_hash, updated_at FROM audit_chain_head"

# Hashes of purged rows the surviving chain links to.
CHAIN_ANCHORS: LiteralString = "SELECT seq, row_hash FROM audit_chain_anchors"

# Every row in chain order (rows without a link first), as the text forms the hashes cover.
CHAIN_ROWS: LiteralString = """
SELECT id, chain_seq,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS created_at,
       action, resource_type, result, user_id::text AS user_id, resource_id,
       ip_address::text AS ip_address, user_agent, metadata::text AS metadata,
       anonymised_at IS NOT NULL AS anonymised, pii_hash, prev_hash, row_hash
  FROM audit_logs
 ORDER BY chain_seq NULLS FIRST, id
"""

# The owner's floor under every retention purge (30 days when the row is missing).
RETENTION_FLOOR: LiteralString = "SELECT coalesce(max(min_retention_days), 30) FROM audit_policy"
