"""Structural rules of the package, checked on its source (no database needed)."""

from __future__ import annotations

import ast
from pathlib import Path

from digitwin_db.cache_registry import CACHE_NAMES, CACHES, CAP_SETTINGS
from digitwin_db.models.cache import CacheStats
from digitwin_db.settings import Settings

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitwin_db"


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> package modules it imports, counting every import statement anywhere in
    the file (``if TYPE_CHECKING:`` blocks and function bodies included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            # "from a.b import c" imports a.b, and c too when c is a module.
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40  # every module was read
    assert "digitwin_db._async.cache_core" in graph["digitwin_db._async.repositories.cache_kv"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle_through_type_checking_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_cache_of_the_registry_is_configured_by_settings() -> None:
    fields = set(Settings.model_fields)
    for cache in CACHES:
        assert {cache.ttl_setting, cache.max_entries_setting, cache.max_bytes_setting} <= fields
    assert len(CAP_SETTINGS) == 2 * len(CACHES)
    settings = Settings.model_validate(dict.fromkeys(CAP_SETTINGS, ""))  # empty = no cap
    assert all(getattr(settings, field) is None for field in CAP_SETTINGS)


def test_cache_stats_has_one_field_per_cache_of_the_registry() -> None:
    assert tuple(n for n in CacheStats.model_fields if n != "collected_at") == CACHE_NAMES


def test_no_pure_function_is_generated_twice() -> None:
    # Module-level plain functions of _async would be copied into _sync: pure code lives in
    # validation.py, rules/, ratelimit_policy.py, cache_codec.py instead.
    found = []
    for path in sorted((PACKAGE / "_async").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef):
                found.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert found == []


def test_pure_modules_import_no_io_layer() -> None:
    graph = import_graph()
    pure = [
        m
        for m in graph
        if m.startswith("digitwin_db.rules")
        or m
        in (
            "digitwin_db.validation",
            "digitwin_db.ratelimit_policy",
            "digitwin_db.cache_codec",
            "digitwin_db.cache_registry",
        )
    ]
    assert len(pure) >= 10
    for module in pure:
        io = {t for t in graph[module] if t.startswith(("digitwin_db._async", "digitwin_db._sync"))}
        assert io == set(), module


def test_invariants_are_checked_with_errors_not_asserts() -> None:
    # ``python -O`` drops asserts: an invariant of the library raises QueryError instead.
    found = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
