"""SQL of ``audit_logs``: the append-only audit trail (see migrations/0004_audit_logs.sql).

The table refuses UPDATE, DELETE and TRUNCATE through a trigger unless the transaction has
set ``digitwin.audit_maintenance`` locally; the retention purge below is the only delete.
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

# The retention cut-off: entries created before it are past retention (server clock).
PURGE_CUTOFF: LiteralString = "SELECT now() - %(days)s * interval '1 day'"

# Allow this transaction (only) to delete audit rows: the append-only trigger checks it.
ALLOW_PURGE: LiteralString = "SELECT set_config('digitwin.audit_maintenance', 'purge', true)"

# Delete one batch of entries older than the cut-off, oldest first (created_at index);
# SKIP LOCKED lets several cleaners work at once without waiting on each other.
PURGE_BATCH: LiteralString = """
DELETE FROM audit_logs WHERE id IN (
    SELECT id FROM audit_logs WHERE created_at < %(cutoff)s
     ORDER BY created_at LIMIT %(batch_size)s FOR UPDATE SKIP LOCKED
)
"""
