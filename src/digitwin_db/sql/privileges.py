"""SQL of ``digitwin_db.privileges``: the application and maintenance roles' grants (SPEC
§2.12). Identifiers (roles, tables) are composed with ``psycopg.sql``, never formatted in."""

from __future__ import annotations

from typing import LiteralString

# Does a role exist, and is it dangerous as an application role (superuser, BYPASSRLS)?
ROLE_INFO: LiteralString = "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %(role)s"

# Tables of the public schema (partitions excluded: access goes through their parent).
TABLES: LiteralString = """
SELECT c.relname, pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
 ORDER BY c.relname
"""

# Start from nothing, so that running `grant` again gives exactly the same privileges.
REVOKE_TABLES: LiteralString = "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"
REVOKE_SEQUENCES: LiteralString = "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}"
REVOKE_FUNCTIONS: LiteralString = "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role}"
USAGE_ON_SCHEMA: LiteralString = "GRANT USAGE ON SCHEMA public TO {role}"
GRANT_ON_TABLE: LiteralString = "GRANT {privileges} ON TABLE {table} TO {role}"
EXECUTE_FUNCTION: LiteralString = "GRANT EXECUTE ON FUNCTION {function} TO {role}"

#: Privileges on the audit tables; absent ones get nothing. audit_logs: append and read.
AUDIT_TABLE_PRIVILEGES: dict[str, tuple[LiteralString, ...]] = {
    "audit_logs": ("SELECT", "INSERT"),
    # users.erase as the application role queues the anonymisation here.
    "audit_erasure_requests": ("INSERT",),
    "audit_policy": ("SELECT",),
    # The chain (0006): readable so that `audit verify` runs as any of the roles.
    "audit_chain_head": ("SELECT",),
    "audit_chain_anchors": ("SELECT",),
}
#: Every other table of the schema: the repositories' reads and writes.
DATA_PRIVILEGES: tuple[LiteralString, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
#: Migration bookkeeping.
READ_ONLY: tuple[LiteralString, ...] = ("SELECT",)

#: The owner's SECURITY DEFINER functions only the maintenance role may execute.
MAINTENANCE_FUNCTIONS: tuple[LiteralString, ...] = (
    "digitwin_audit_purge(double precision, integer)",
    "digitwin_audit_anonymise(uuid)",
    "digitwin_audit_process_erasures(integer)",
    # Turn retention (migration 0013): the cleanup job drops whole month partitions.
    "conversation_turns_drop_partitions(timestamp with time zone)",
    # Audit retention (migration 0015): whole month partitions, the chain anchored.
    "digitwin_audit_drop_partitions(double precision, integer)",
)
