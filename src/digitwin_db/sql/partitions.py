"""SQL of the month partitions of ``conversation_turns`` and ``audit_logs``
(migrations/0013_turn_partitions.sql and 0015_audit_partitions.sql define the functions
called here)."""

from __future__ import annotations

from typing import LiteralString

# Is the partition maintenance of conversation_turns installed (migration 0013 applied)?
TURNS_PARTITIONED: LiteralString = (
    "SELECT to_regprocedure('conversation_turns_ensure_partitions(integer)') IS NOT NULL"
)

# Create the month partitions from this UTC month to months_ahead ahead; returns how many
# were created (0 when they all exist).
ENSURE_TURN_PARTITIONS: LiteralString = (
    "SELECT conversation_turns_ensure_partitions(%(months_ahead)s)"
)

# Is the partition maintenance of audit_logs installed (migration 0015 applied)?
AUDIT_PARTITIONED: LiteralString = (
    "SELECT to_regprocedure('audit_logs_ensure_partitions(integer)') IS NOT NULL"
)

# The same for audit_logs.
ENSURE_AUDIT_PARTITIONS: LiteralString = "SELECT audit_logs_ensure_partitions(%(months_ahead)s)"

#: Per partitioned table: (is its maintenance installed?, create the partitions ahead). One
#: ensure-ahead pass (migrate, the cleanup job) runs every installed one.
ENSURE_AHEAD: tuple[tuple[str, LiteralString, LiteralString], ...] = (
    ("conversation_turns", TURNS_PARTITIONED, ENSURE_TURN_PARTITIONS),
    ("audit_logs", AUDIT_PARTITIONED, ENSURE_AUDIT_PARTITIONS),
)

# Retention: detach and drop the month partitions that end by older_than (and delete older
# rows of the default partition); returns the rows removed.
DROP_TURN_PARTITIONS: LiteralString = "SELECT conversation_turns_drop_partitions(%(older_than)s)"

# The partitions of a partitioned table: name, bounds (NULL for the default partition) and
# estimated rows, oldest first, the default last.
LIST_PARTITIONS: LiteralString = """
SELECT c.relname AS name,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz
           AS range_from,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz
           AS range_to,
       greatest(c.reltuples, 0)::bigint AS estimated_rows
  FROM pg_inherits AS i
  JOIN pg_class AS c ON c.oid = i.inhrelid
 WHERE i.inhparent = to_regclass(%(table)s)
 ORDER BY is_default, range_from, c.relname
"""
