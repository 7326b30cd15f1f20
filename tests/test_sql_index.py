"""SQL is findable by table: the index of digitwin_db.sql is what the statements say, every
statement parses, and no SQL text lives outside digitwin_db/sql/."""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import tokenize
from pathlib import Path
from types import ModuleType
from typing import Any

import pglast
import pytest

import digitwin_db.aio  # noqa: F401  (imports every repository class)
from digitwin_db._async.repositories.ai_models import AsyncAIModelRepository
from digitwin_db._async.repositories.soft_delete import AsyncSoftDeleteRepository
from digitwin_db.cache_registry import CACHE_TABLES
from digitwin_db.sql import index

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "digitwin_db"
# What a string that is a SQL statement starts with (keywords in upper case: prose that
# merely says "select" is not matched).
SQL_TEXT = re.compile(
    r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS|CREATE|ALTER|"
    r"DROP|TRUNCATE|VACUUM\s+\(|SET\s+(LOCAL|TRANSACTION|SESSION)|LOCK\s+TABLE|COPY)\b"
)


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sql_index", ROOT / "tools" / "sql_index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subclasses(cls: type[Any]) -> set[type[Any]]:
    found: set[type[Any]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _written_index() -> str:
    return (PACKAGE / "sql" / "INDEX.md").read_text(encoding="utf-8")


def test_the_index_is_what_the_statements_touch() -> None:
    tool = _tool()
    computed = tool.compute(index.TEMPLATES)
    assert tool.load(_written_index()) == computed, "run: python tools/sql_index.py --write"
    assert _written_index() == tool.render(computed), "run: python tools/sql_index.py --write"


def test_every_application_table_is_in_the_index() -> None:
    tool = _tool()
    tables = tool.application_tables()
    written = tool.load(_written_index())
    assert len(tables) >= 12
    assert set(written) == tables
    assert all(written[t] for t in tables)  # every table has its statements


def test_the_written_index_round_trips() -> None:
    tool = _tool()
    example = {"a": ("m.ONE", "m.TWO", "n.THREE"), "b": ("n.FOUR",)}
    assert tool.load(tool.render(example)) == example


def test_templates_are_indexed_on_the_tables_the_code_formats_them_with() -> None:
    soft_delete = {c.table for c in _subclasses(AsyncSoftDeleteRepository) if c.table}
    ai_models = {c.table for c in _subclasses(AsyncAIModelRepository) if c.table}
    owned = {
        f"{c.owner_table}:{c.table}"
        for c in _subclasses(AsyncSoftDeleteRepository)
        if c.table and c.owner_table
    }
    assert set(index.TEMPLATES["soft_delete.GET_BY_ID"]) == soft_delete
    assert set(index.TEMPLATES["soft_delete.OWNER_IS_LIVE"]) == owned
    assert set(index.TEMPLATES["ai_models.INSERT"]) == ai_models
    assert index.TEMPLATES["cache.CLEANUP_BATCH"] == CACHE_TABLES


def test_the_index_finds_a_table_in_joins_ctes_and_strings() -> None:
    tool = _tool()
    known = {"a", "b", "c", "d"}
    text = (
        "WITH x AS (DELETE FROM a RETURNING id) SELECT pg_relation_size('d') "
        "FROM x JOIN b USING (id) WHERE EXISTS (SELECT 1 FROM c)"
    )
    assert tool.tables_of(text, known) == known
    with pytest.raises(pglast.parser.ParseError):
        tool.tables_of("SELEC 1", known)


def _sql_outside_sql_package() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE / "sql":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        prose = {  # help texts of the command line may name SQL commands
            id(kw.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            for kw in node.keywords
            if kw.arg in ("help", "description")
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in prose
                and SQL_TEXT.search(node.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    return found


def test_no_sql_text_outside_the_sql_package() -> None:
    assert _sql_outside_sql_package() == []


def test_the_outside_scan_recognises_sql() -> None:
    for text in ("SELECT 1", "  INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "SET LOCAL x"):
        assert SQL_TEXT.search(text), text
    for text in ("select a model", "Update the row", "DELETE the key", "SET the flag"):
        assert not SQL_TEXT.search(text), text


def _style_offences() -> list[str]:
    """Statements not written in the one style: a single string literal, either one line or
    a triple-quoted block that starts on the line after its opening quotes."""
    tool = _tool()
    found = []
    for path in sorted((PACKAGE / "sql").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            value = node.value
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]
            segment = ast.get_source_segment(source, value) or ""
            if isinstance(value, ast.BinOp) and tool.STATEMENT.match(segment.strip('("')):
                found.append(f"{path.name}:{node.lineno}: built with +")
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            if not tool.STATEMENT.match(value.value):
                continue
            literals = [
                t
                for t in tokenize.generate_tokens(io.StringIO(segment).readline)
                if t.type == tokenize.STRING
            ]
            multi_line = "\n" in value.value
            if len(literals) != 1 or (multi_line and not segment.startswith('"""\n')):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_every_statement_is_written_in_one_style() -> None:
    assert _style_offences() == []


def _formatter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("format_sql", ROOT / "tools" / "format_sql.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_formatter_puts_a_concatenated_statement_into_the_style(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text(
        "from typing import LiteralString\n\n"
        "GET: LiteralString = (\n"
        '    "SELECT a, b FROM t "\n'
        "    \"WHERE x = %(x)s AND y = 'two words' ORDER BY a LIMIT 1\"\n"
        ")\n",
        encoding="utf-8",
    )
    assert _formatter().format_file(module) == 1
    namespace: dict[str, object] = {}
    exec(module.read_text(encoding="utf-8"), namespace)
    assert namespace["GET"] == (
        "\nSELECT a, b\nFROM t\nWHERE x = %(x)s AND y = 'two words'\nORDER BY a\nLIMIT 1\n"
    )
    assert _formatter().format_file(module) == 0  # already in the style
