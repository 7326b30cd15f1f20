"""Generate the sync code from the async source with unasyncd (``--check`` to verify only).

pyproject.toml's ``[tool.unasyncd]`` says which trees map to which and holds the fixed name
replacements (psycopg, asyncio). This wrapper adds the rest automatically: every class named
``Async*`` that the async trees define becomes its sync name (``AsyncDatabase`` ->
``Database``), and every module-level name imported from another async module is imported
from the generated sync module instead — so a new module needs no configuration.

Branches (as in psycopg's generator): code that differs between the two APIs is written

    if True:  # ASYNC
        ...async-only code...
    else:
        ...sync-only code...

The async source runs the first branch; the generated file keeps only the ``else`` body,
dedented (an ``if True:  # ASYNC`` without ``else`` disappears from the sync code). Every
generated file starts with :data:`HEADER`, a warning not to edit it.

Usage:  python tools/generate_sync.py [--check]
Exit status: 0 when the sync code is (or now is) current; 1 when ``--check`` finds it stale.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import re
import subprocess
import sys
from pathlib import Path

from unasyncd.config import load_config
from unasyncd.main import Env, File

ROOT = Path(__file__).resolve().parents[1]
_ASYNC_MODULE = re.compile(r"\bdigitwin_db\._async\b")
#: The first line of the async branch of a ``if True:  # ASYNC`` / ``else:`` pair.
_BRANCH = re.compile(r"^(?P<indent>[ \t]*)if True:[ \t]*# ASYNC[ \t]*$")
#: Warning at the top of every generated file ({source} is the async file it comes from).
HEADER = (
    "# WARNING: generated file, do not edit. Edit its async source and run\n"
    "# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:\n"
    "# {source}\n"
)


def _module_name(path: Path) -> str:
    rel = (
        path.relative_to(ROOT / "src")
        if path.is_relative_to(ROOT / "src")
        else path.relative_to(ROOT)
    )
    return ".".join(rel.with_suffix("").parts)


def _async_class_replacements(files: dict[str, str]) -> dict[str, str]:
    replacements: dict[str, str] = {}
    for source, target in files.items():
        src_path, dst_path = ROOT / source, ROOT / target
        src_mod, dst_mod = _module_name(src_path), _module_name(dst_path)
        replacements[src_mod] = dst_mod
        tree = ast.parse(src_path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Async"):
                sync_name = node.name.removeprefix("Async")
                replacements[node.name] = sync_name
                replacements[f"{src_mod}.{node.name}"] = f"{dst_mod}.{sync_name}"
    return replacements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the sync code is stale")
    args = parser.parse_args(argv)

    # unasyncd's own --check only looks at source timestamps; transform every file and
    # compare the result with what is on disk instead.
    config = load_config(ROOT / "pyproject.toml", cache=False, force_regen=True)
    generated = _async_class_replacements(config.files)
    for name, extra in config.extra_replacements.items():
        config.extra_replacements[name] = {**generated, **extra}
    stale = asyncio.run(_transform_all(config.files, Env(config=config), write=not args.check))
    orphans = _orphans(config.files)
    if args.check:
        for path in stale:
            print(f"stale generated file: {path}", file=sys.stderr)
        for orphan in orphans:
            print(f"generated file without async source: {orphan}", file=sys.stderr)
        if stale or orphans:
            print("sync code is stale: run `python tools/generate_sync.py`", file=sys.stderr)
            return 1
        print(f"sync code is current ({len(config.files)} files)")
        return 0
    for orphan in orphans:
        orphan.unlink()
        print(f"removed {orphan} (its async source is gone)")
    print(f"{len(stale)} of {len(config.files)} generated files rewritten")
    return 0


async def _transform_all(files: dict[str, str], env: Env, *, write: bool) -> list[str]:
    """Transform every source; return the targets whose content differs (written if asked)."""
    stale: list[str] = []
    for source, target in sorted(files.items()):
        content = await env.transform(File(source))
        # unasyncd rewrites an import only when the imported name changes; a function or
        # constant keeps its name, so point every remaining async module path at its twin.
        fixed = _ASYNC_MODULE.sub("digitwin_db._sync", content)
        fixed = _restore_all(fixed, ROOT / source)
        fixed = HEADER.format(source=source) + _sync_branches(fixed, source)
        if fixed != content:
            content = _ruff_tidy(fixed, target)
        target_path = ROOT / target
        current = target_path.read_text(encoding="utf-8") if target_path.exists() else None
        if content != current:
            stale.append(target)
            if write:
                target_path.parent.mkdir(parents=True, exist_ok=True)
                target_path.write_text(content, encoding="utf-8")
    return stale


def _sync_branches(content: str, source: str) -> str:
    """Keep the ``else`` body of every ``if True:  # ASYNC`` branch (dedented), drop the rest."""
    lines = content.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _BRANCH.match(lines[i].rstrip("\n"))
        if match is None:
            if "# ASYNC" in lines[i]:
                raise ValueError(f"{source}: '# ASYNC' only marks a line 'if True:  # ASYNC'")
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        i = _block_end(lines, i + 1, indent)  # skip the async branch
        if i < len(lines) and lines[i].rstrip() == f"{indent}else:":
            end = _block_end(lines, i + 1, indent)
            body = lines[i + 1 : end]
            if not body:
                raise ValueError(f"{source}: empty else branch of 'if True:  # ASYNC'")
            out.extend(line[4:] if line.strip() else line for line in body)
            i = end
    return "".join(out)


def _block_end(lines: list[str], start: int, indent: str) -> int:
    """Index just past the block that starts at ``start`` (deeper than ``indent``), trailing
    blank lines excluded."""
    end = i = start
    while i < len(lines):
        line = lines[i]
        if line.strip():
            if not (line.startswith(indent + " ") or line.startswith(indent + "\t")):
                break
            end = i + 1
        i += 1
    return end


def _restore_all(content: str, source: Path) -> str:
    """unasyncd empties ``__all__`` (it drops the strings); write the sync names back."""
    names: list[str] | None = None
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            names = [
                str(e.value).removeprefix("Async")
                if str(e.value).startswith("Async")
                else str(e.value)
                for e in node.value.elts
                if isinstance(e, ast.Constant)
            ]
    if names is None:
        return content
    listing = "__all__ = [" + ", ".join(repr(n).replace("'", '"') for n in names) + "]"
    return re.sub(r"^__all__ = \[\]$", listing, content, count=1, flags=re.MULTILINE)


def _ruff_tidy(content: str, filename: str) -> str:
    """Re-sort imports and re-format, as unasyncd's own ruff pass did before our rewrite."""
    ruff = [sys.executable, "-m", "ruff"]
    for args in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        done = subprocess.run(
            [*ruff, *args, "--stdin-filename", filename, "-"],
            input=content,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if done.returncode not in (0, 1) or not done.stdout:
            raise RuntimeError(f"ruff failed on {filename}: {done.stderr}")
        content = done.stdout
    return content


def _orphans(files: dict[str, str]) -> list[Path]:
    """Generated files whose async source no longer exists."""
    targets = {(ROOT / t).resolve() for t in files.values()}
    dirs = {(ROOT / t).resolve().parent for t in files.values()}
    found: list[Path] = []
    for directory in dirs:
        for path in directory.glob("*.py"):
            if path.resolve() not in targets:
                found.append(path)
    return sorted(found)


if __name__ == "__main__":
    sys.exit(main())
