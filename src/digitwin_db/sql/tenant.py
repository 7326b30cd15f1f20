"""SQL of tenant isolation (migrations/0007_tenant_isolation.sql): the setting the
row-level-security policies read, set for the current transaction only (``is_local``), so
that it dies with the transaction — safe behind PgBouncer in transaction mode."""

from __future__ import annotations

from typing import LiteralString

# SET LOCAL is set_config(..., true) as a utility statement: it takes no snapshot, so a
# repository may still open its transaction with SET TRANSACTION ISOLATION LEVEL after it.
# A utility statement takes no bound parameter: {user_id} is a sql.Literal of a validated
# UUID's canonical text.
SCOPE_TO_USER: LiteralString = "SET LOCAL digitwin.user_id = {user_id}"
