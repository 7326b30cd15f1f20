"""The roles of SPEC §2.12: owner, application and maintenance (``python -m digitwin_db
grant --app ROLE --maintenance ROLE``, run as the owner).

- The **owner** runs the migrations and owns every table and function.
- The **application** role (what services connect as) reads and writes the system-of-record,
  cache and rate-limit tables; on ``audit_logs`` it may only INSERT and SELECT: no UPDATE,
  DELETE, TRUNCATE, no trigger change (it owns nothing), no function that changes audit rows.
- The **maintenance** role (the cleanup job) has the application's table privileges plus
  EXECUTE on the owner's ``SECURITY DEFINER`` functions: the retention purge and GDPR
  anonymisation of audit rows.

:func:`grant` revokes whatever the two roles had on the schema's tables, sequences and
functions first, so that running it again (e.g. after a migration added a table) leaves
exactly these privileges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import LiteralString

import psycopg
from psycopg import sql

from digitwin_db.errors import DigitwinDBError, ValidationError, raise_translated
from digitwin_db.sql import privileges as q

__all__ = [
    "AUDIT_TABLE_PRIVILEGES",
    "MAINTENANCE_FUNCTIONS",
    "GrantReport",
    "grant",
    "table_privileges",
]

# The privileges themselves are SQL text: they live in digitwin_db.sql.privileges.
AUDIT_TABLE_PRIVILEGES = q.AUDIT_TABLE_PRIVILEGES
DATA_PRIVILEGES = q.DATA_PRIVILEGES
MAINTENANCE_FUNCTIONS = q.MAINTENANCE_FUNCTIONS
#: Migration bookkeeping: readable (health reports pending migrations).
_YOYO_PREFIXES = ("_yoyo", "yoyo_")


@dataclass(frozen=True)
class GrantReport:
    """What :func:`grant` gave: table -> privileges, per role, and the functions."""

    app: dict[str, tuple[str, ...]]
    maintenance: dict[str, tuple[str, ...]]
    functions: tuple[LiteralString, ...]


def table_privileges(table: str) -> tuple[LiteralString, ...]:
    """The privileges both roles get on ``table`` (empty: none)."""
    if table.startswith("audit_"):
        return AUDIT_TABLE_PRIVILEGES.get(table, ())
    if table.startswith(_YOYO_PREFIXES):
        return q.READ_ONLY
    return DATA_PRIVILEGES


def _check_role(conn: psycopg.Connection, role: str, what: str) -> None:
    row = conn.execute(q.ROLE_INFO, {"role": role}).fetchone()
    if row is None:
        raise ValidationError(f"the {what} role {role!r:.80} does not exist (CREATE ROLE it first)")
    if row[0]:
        raise ValidationError(
            f"the {what} role {role!r:.80} is a superuser: privileges would mean nothing"
        )
    if row[1]:
        raise ValidationError(
            f"the {what} role {role!r:.80} has BYPASSRLS: tenant isolation would not apply"
        )


def grant(url: str, *, app: str, maintenance: str) -> GrantReport:
    """Give the existing roles ``app`` and ``maintenance`` exactly their privileges on the
    database at ``url`` (connect as the owner). ``ValidationError`` when a role is missing,
    is a superuser, has BYPASSRLS, owns the tables, or both names are the same."""
    for name, what in ((app, "application"), (maintenance, "maintenance")):
        if not isinstance(name, str) or not 1 <= len(name) <= 63:
            raise ValidationError(f"the {what} role must be a name of 1 to 63 characters")
    if app == maintenance:
        raise ValidationError("the application and maintenance roles must be different roles")
    try:
        return _grant(url, app=app, maintenance=maintenance)
    except DigitwinDBError:
        raise
    except psycopg.Error as exc:
        raise_translated(exc, "grant")


def _grant(url: str, *, app: str, maintenance: str) -> GrantReport:
    with psycopg.connect(url, autocommit=True) as conn:
        _check_role(conn, app, "application")
        _check_role(conn, maintenance, "maintenance")
        tables = conn.execute(q.TABLES).fetchall()
        for table, owner in tables:
            if owner in (app, maintenance):
                raise ValidationError(
                    f"table {table} is owned by {owner!r}: the owner must be a third role"
                )
        granted: dict[str, tuple[str, ...]] = {}
        with conn.transaction():
            for role in (app, maintenance):
                ident = sql.Identifier(role)
                for statement in (
                    q.REVOKE_TABLES,
                    q.REVOKE_SEQUENCES,
                    q.REVOKE_FUNCTIONS,
                    q.USAGE_ON_SCHEMA,
                ):
                    conn.execute(sql.SQL(statement).format(role=ident))
                for table, _owner in tables:
                    privileges = table_privileges(table)
                    if privileges:
                        granted[table] = privileges
                        conn.execute(
                            sql.SQL(q.GRANT_ON_TABLE).format(
                                privileges=sql.SQL(", ").join(sql.SQL(p) for p in privileges),
                                table=sql.Identifier("public", table),
                                role=ident,
                            )
                        )
            for function in MAINTENANCE_FUNCTIONS:
                conn.execute(
                    sql.SQL(q.EXECUTE_FUNCTION).format(
                        function=sql.SQL("public.") + sql.SQL(function),
                        role=sql.Identifier(maintenance),
                    )
                )
    return GrantReport(app=granted, maintenance=dict(granted), functions=MAINTENANCE_FUNCTIONS)
