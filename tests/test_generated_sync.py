"""The generated sync code: a warning header on every file, no async-only text left."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYNC_TREES = (ROOT / "src" / "digitwin_db" / "_sync", ROOT / "tests" / "sync")
# Words that only make sense in the asyncio API ("asyncio API" itself may be named: the
# sync code tells a caller who passed a coroutine to use it).
ASYNC_ONLY = re.compile(
    r"\b[Aa]sync\b|\b[Aa]wait(s|ed|ing)?\b|\bAsync[A-Z]\w*|\basyncio\.|hand-written|# ASYNC"
)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sync", ROOT / "tools/generate_sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated() -> list[Path]:
    return sorted(p for tree in SYNC_TREES for p in tree.rglob("*.py"))


def test_every_generated_file_starts_with_the_warning() -> None:
    files = _generated()
    assert len(files) >= 30
    for path in files:
        head = path.read_text(encoding="utf-8").splitlines()[:3]
        assert head[0].startswith("# WARNING: generated file, do not edit."), path
        assert head[2].startswith(("# src/digitwin_db/_async/", "# tests/aio/")), path


def test_the_generated_library_code_has_no_async_only_text() -> None:
    found = []
    for path in sorted((ROOT / "src" / "digitwin_db" / "_sync").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if number > 3 and ASYNC_ONLY.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_generated_code_assigns_no_name_to_itself() -> None:
    found = []
    for path in _generated():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Name)
                and any(isinstance(t, ast.Name) and t.id == node.value.id for t in node.targets)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []  # e.g. "value = value" left where the async code had "await value"


def test_the_scan_would_catch_async_text() -> None:
    assert ASYNC_ONLY.search("    async with db.connection() as conn:")
    assert ASYNC_ONLY.search('"""This file is the hand-written async source."""')
    assert not ASYNC_ONLY.search('raise ValidationError("use the asyncio API for it")')


def test_branches_keep_the_else_body_dedented() -> None:
    source = (
        "def f(x):\n"
        "    if True:  # ASYNC\n"
        "        x = await x\n"
        "\n"
        "        y = 1\n"
        "    else:\n"
        "        # sync only\n"
        "        if x:\n"
        "            raise ValueError\n"
        "\n"
        "    return x\n"
    )
    assert _generator()._sync_branches(source, "f.py") == (
        "def f(x):\n    # sync only\n    if x:\n        raise ValueError\n\n    return x\n"
    )


def test_a_branch_without_else_disappears_and_a_stray_marker_is_refused() -> None:
    generator = _generator()
    source = "a = 1\nif True:  # ASYNC\n    b = 2\nc = 3\n"
    assert generator._sync_branches(source, "f.py") == "a = 1\nc = 3\n"
    with pytest.raises(ValueError, match="ASYNC"):
        generator._sync_branches("if x:  # ASYNC\n    pass\n", "f.py")
