"""Rewrite SQL statements of ``src/digitwin_db/sql`` into the one style, in place.

The style (checked by ``tests/test_sql_index.py``): a statement is ONE string literal,
either a single line or a triple-quoted block that starts on the line after its opening
quotes, one clause per line (``SELECT``, ``FROM``, ``WHERE``, ``ORDER BY``, ``RETURNING``…),
continuation lines indented. Statements written as implicitly concatenated literals are
rewritten; triple-quoted ones are left as they are. Only white space outside string literals
changes, and the tool checks that before writing.

Usage:  python tools/format_sql.py [FILE ...]   (default: every module of digitwin_db.sql)
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = ROOT / "src" / "digitwin_db" / "sql"
STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b")
#: Clause keywords that start a line (longest first).
CLAUSES = (
    "DO UPDATE SET",
    "ON CONFLICT",
    "ORDER BY",
    "GROUP BY",
    "UNION ALL",
    "LEFT JOIN",
    "RETURNING",
    "FROM",
    "WHERE",
    "LIMIT",
    "OFFSET",
    "VALUES",
    "WINDOW",
    "USING",
    "JOIN",
    "SELECT",
    "SET",
    "HAVING",
)
WIDTH = 92
#: A parenthesised group up to this long stays on one line.
SHORT_GROUP = 72


def words(text: str) -> list[str]:
    """Split on white space outside '...' literals."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            if text[j] == "'":
                k = text.index("'", j + 1)
                while k + 1 < len(text) and text[k + 1] == "'":
                    k = text.index("'", k + 2)
                j = k + 1
            else:
                j += 1
        out.append(text[i:j])
        i = j
    return out


def _short_groups(tokens: list[str]) -> set[int]:
    """Indexes of tokens inside a short parenthesised group (no line break there)."""
    inside: set[int] = set()
    depth = 0
    for a, token in enumerate(tokens):
        before = depth
        depth += token.count("(") - token.count(")")
        if depth > before:
            level, b = depth, a
            while b + 1 < len(tokens) and level > before:
                b += 1
                level += tokens[b].count("(") - tokens[b].count(")")
            if len(" ".join(tokens[a : b + 1])) <= SHORT_GROUP:
                inside.update(range(a + 1, b + 1))
    return inside


def _clause_lines(tokens: list[str]) -> list[tuple[int, str]]:
    keep_together = _short_groups(tokens)
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    depth = line_depth = 0
    for i, token in enumerate(tokens):
        clause = next((c for c in CLAUSES if tokens[i : i + len(c.split())] == c.split()), None)
        if clause == "SET" and not (current and current[0] == "UPDATE"):
            clause = None
        after_opener = current and (
            current[-1].endswith("(") or current[-1] in ("ALL", "DO", "UPDATE", "CONFLICT")
        )
        if clause and i not in keep_together and current and not after_opener:
            lines.append((line_depth, " ".join(current)))
            current, line_depth = [], depth
        current.append(token)
        depth += token.count("(") - token.count(")")
    if current:
        lines.append((line_depth, " ".join(current)))
    return lines


def _wrapped(depth: int, line: str) -> list[str]:
    # Keep "a = b" and a literal with the word before it on one line.
    units: list[str] = []
    glue = False
    for token in words(line):
        if units and (glue or token == "=" or token.startswith("'")):
            units[-1] += " " + token
        else:
            units.append(token)
        glue = token == "="
    out: list[str] = []
    indent = "    " * depth
    while units:
        prefix = indent if not out else indent + "    "
        taken: list[str] = []
        width = len(prefix)
        for unit in units:
            if taken and width + 1 + len(unit) > WIDTH:
                break
            width += len(unit) + (1 if taken else 0)
            taken.append(unit)
        out.append(prefix + " ".join(taken))
        units = units[len(taken) :]
    return out


def format_statement(text: str) -> str:
    """``text`` one clause per line (white space outside literals is all that changes)."""
    lines = [w for depth, line in _clause_lines(words(text)) for w in _wrapped(depth, line)]
    result = "\n".join(lines)
    if words(result) != words(text):
        raise ValueError(f"formatting changed more than white space: {text[:80]!r}")
    return result


def format_file(path: Path) -> int:
    """Rewrite the concatenated statements of one module; returns how many."""
    source = path.read_text(encoding="utf-8")
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        value = node.value
        literal = value.args[0] if isinstance(value, ast.Call) and value.args else value
        if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
            continue
        segment = ast.get_source_segment(source, literal) or ""
        pieces = [
            t
            for t in tokenize.generate_tokens(io.StringIO(segment).readline)
            if t.type == tokenize.STRING
        ]
        if len(pieces) < 2 or not STATEMENT.match(literal.value):
            continue
        if literal.end_lineno is None or literal.end_col_offset is None:
            continue
        start = starts[literal.lineno - 1] + literal.col_offset
        end = starts[literal.end_lineno - 1] + literal.end_col_offset
        if literal is value:  # NAME = ("..." "..."): drop the parentheses too
            before, after = source.rfind("(", 0, start), source.find(")", end)
            if not source[before + 1 : start].strip() and not source[end:after].strip():
                start, end = before, after + 1
        edits.append((start, end, '"""\n' + format_statement(literal.value) + '\n"""'))
    for start, end, block in sorted(edits, reverse=True):
        source = source[:start] + block + source[end:]
    if edits:
        path.write_text(source, encoding="utf-8")
    return len(edits)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(SQL_DIR.glob("*.py"))
    for path in paths:
        count = format_file(path)
        if count:
            print(f"{path}: {count} statement(s) rewritten (run ruff format next)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
