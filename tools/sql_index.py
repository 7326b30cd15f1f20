"""Which statements of ``digitwin_db.sql`` touch which table, found by parsing them.

Every statement constant of ``src/digitwin_db/sql/*.py`` is parsed with PostgreSQL's own
parser (pglast, i.e. libpg_query); the tables it names (``FROM``, ``JOIN``, ``INSERT INTO``,
``UPDATE``, ``DELETE FROM``, ``USING``…, or a string such as ``pg_relation_size('t')``)
that are application tables (created by the
migrations) make up its row of the index. Templates are parsed once per table they are
formatted with (``TEMPLATES`` of ``digitwin_db.sql.index``). The index is written to
``src/digitwin_db/sql/INDEX.md`` for readers; ``tests/test_sql_index.py`` fails when that
file differs from what this finds.

Usage:  python tools/sql_index.py           print the index (the text of sql/INDEX.md)
        python tools/sql_index.py --write   rewrite src/digitwin_db/sql/INDEX.md
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pglast
from pglast import ast
from pglast.visitors import Visitor
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
INDEX_FILE = ROOT / "src" / "digitwin_db" / "sql" / "INDEX.md"
#: First word of a statement (anything else in sql/ is a fragment: filters, SET lists).
STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|SET|VACUUM)\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")
_FIELD = re.compile(r"\{(\w+)\}")
#: What stands in for the non-table fields of a template while it is parsed.
FIELD_STAND_INS = {
    "columns": "id",
    "insert_columns": "id",
    "values": "NULL",
    "where": "TRUE",
    "assignments": "id = id",
    "extra_set": "",
    "age": "created_at",
    "owner_column": "user_id",
    # sql/tenant.py and sql/privileges.py (identifiers and a literal given by psycopg.sql)
    "user_id": "'00000000-0000-0000-0000-000000000000'",
    "role": "app_role",
    "privileges": "SELECT",
    "function": "f(integer)",
}
#: Fields that name a table: replaced by each table the index gives the template.
TABLE_FIELDS = ("table", "owner_table")


def application_tables() -> set[str]:
    """Tables the migrations create (partitions count as their parent table)."""
    tables: set[str] = set()
    for path in sorted((ROOT / "migrations").glob("*.sql")):
        if path.name.endswith(".rollback.sql"):
            continue
        for stmt in pglast.parse_sql(path.read_text(encoding="utf-8")):
            node = stmt.stmt
            # A partition (CREATE TABLE … PARTITION OF) is part of its parent's table.
            if (
                isinstance(node, ast.CreateStmt)
                and node.relation is not None
                and node.partbound is None
            ):
                tables.add(str(node.relation.relname))
    return tables


def statements() -> Iterator[tuple[str, str | sql.Composable]]:
    """(``module.NAME``, statement) for every statement constant of ``digitwin_db.sql``."""
    import digitwin_db.sql as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name == "index":
            continue
        module = importlib.import_module(f"digitwin_db.sql.{info.name}")
        for name, value in vars(module).items():
            if not name.isupper() and not name.lstrip("_").isupper():
                continue
            if isinstance(value, sql.Composable):
                text = value.as_string(None)
            elif isinstance(value, str):
                text = value
            else:
                continue
            if STATEMENT.match(text) and not name.startswith("_"):
                yield f"{info.name}.{name}", value


def _text(value: str | sql.Composable) -> str:
    return value.as_string(None) if isinstance(value, sql.Composable) else value


def _parseable(text: str, table: str | None, owner: str | None) -> str:
    text = _PLACEHOLDER.sub("NULL", text)

    def field(match: re.Match[str]) -> str:
        name = match[1]
        if name == "table":
            return table or "missing_table"
        if name == "owner_table":
            return owner or "missing_table"
        return FIELD_STAND_INS[name]

    return _FIELD.sub(field, text)


class _Relations(Visitor):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_RangeVar(self, ancestors: Any, node: ast.RangeVar) -> None:
        self.names.add(str(node.relname))

    def visit_A_Const(self, ancestors: Any, node: ast.A_Const) -> None:
        # A table named by a string, e.g. pg_relation_size('rate_limits').
        if isinstance(node.val, ast.String):
            self.names.add(str(node.val.sval))


def tables_of(text: str, known: set[str]) -> set[str]:
    """The application tables a parsed statement names."""
    visitor = _Relations()
    for stmt in pglast.parse_sql(text):
        visitor(stmt)
    return visitor.names & known


def compute(templates: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Table -> sorted statement names, from the statements themselves."""
    known = application_tables()
    index: dict[str, set[str]] = {t: set() for t in known}
    for name, value in statements():
        text = _text(value)
        fields = set(_FIELD.findall(text))
        found: set[str] = set()
        if fields & set(TABLE_FIELDS):
            targets = templates.get(name)
            if targets is None:
                raise KeyError(f"{name} is a template: give its tables in TEMPLATES")
            for target in targets:
                if target == "*":  # any table: parsed (on some table) but not indexed
                    tables_of(_parseable(text, "users", None), known)
                    continue
                owner, _, table = target.rpartition(":")
                found |= tables_of(_parseable(text, table, owner or None), known)
                found |= {owner, table} & known
        else:
            found = tables_of(_parseable(text, None, None), known)
        for table in found:
            index[table].add(name)
    return {t: tuple(sorted(index[t])) for t in sorted(index)}


HEADER = """\
# SQL by table

Every statement of `digitwin_db.sql` that reads or writes each application table, found by
parsing the statements with PostgreSQL's own parser (templates on the tables their
`TEMPLATES` entry in `sql/index.py` gives). `module: NAME` is the constant `NAME` of
`src/digitwin_db/sql/module.py`.

Generated by `python tools/sql_index.py --write`; `tests/test_sql_index.py` fails when this
file is stale. Do not edit it by hand.
"""


def render(index: dict[str, tuple[str, ...]]) -> str:
    """The index as markdown: a section per table, a line per module."""
    lines = [HEADER]
    for table, names in index.items():
        lines.append(f"## {table}\n")
        by_module: dict[str, list[str]] = {}
        for name in names:
            module, _, constant = name.partition(".")
            by_module.setdefault(module, []).append(constant)
        lines.extend(f"- {module}: {', '.join(consts)}" for module, consts in by_module.items())
        lines.append("")
    return "\n".join(lines)


def load(text: str) -> dict[str, tuple[str, ...]]:
    """The index a rendered INDEX.md holds (the inverse of ``render``)."""
    index: dict[str, list[str]] = {}
    table = None
    for line in text.splitlines():
        if line.startswith("## "):
            table = line[3:].strip()
            index[table] = []
        elif line.startswith("- ") and table is not None:
            module, _, constants = line[2:].partition(": ")
            index[table].extend(f"{module}.{c}" for c in constants.split(", "))
    return {t: tuple(sorted(names)) for t, names in index.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="rewrite sql/INDEX.md")
    args = parser.parse_args(argv)
    from digitwin_db.sql import index as current

    text = render(compute(current.TEMPLATES))
    if not args.write:
        print(text, end="")
        return 0
    INDEX_FILE.write_text(text, encoding="utf-8")
    print(f"rewrote {INDEX_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
