"""``scripts/init_db.sh`` on the embedded server creates the three roles of SPEC §2.12 and
writes the application role's URL as DATABASE_URL (run on a copy of the scripts, so that
the checkout's own .env and .pgdata are left alone)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    # A venv that is this interpreter: init_db.sh finds it installed and installs nothing.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".digitwin-installed-_").write_text(digest + "\n")
    for path in (tmp_path, root):
        path.chmod(0o755)
    yield root
    run = _runner(root, venv)
    run("stop")
    data = (root / ".pgdata").resolve()
    shutil.rmtree(data, ignore_errors=True)


def _runner(root: Path, venv: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
        env["VENV"] = str(venv)
        env.update(extra_env)
        return subprocess.run(
            ["bash", str(root / "scripts" / "init_db.sh"), *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def _env(root: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (root / ".env").read_text().splitlines() if line)
    return dict(pairs)


def test_init_db_creates_the_roles_and_writes_the_application_url(project_copy: Path) -> None:
    run = _runner(project_copy, project_copy.parent / "venv")
    done = run()
    assert done.returncode == 0, done.stderr
    env = _env(project_copy)
    assert set(env) == {"DATABASE_URL", "OWNER_DATABASE_URL", "MAINTENANCE_DATABASE_URL"}
    assert (project_copy / ".env").stat().st_mode & 0o777 == 0o600
    # The password is in .env only, not on the terminal.
    password = env["DATABASE_URL"].split("@")[0].rsplit(":", 1)[1]
    assert password not in done.stdout + done.stderr
    users = {}
    for name, url in env.items():
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            users[name] = row
    assert users["DATABASE_URL"] == ("digitwin_app", False)
    assert users["MAINTENANCE_DATABASE_URL"] == ("digitwin_maintenance", False)
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        # The seed ran as the application role, which may append to the trail but not erase.
        count = conn.execute("SELECT count(*) FROM audit_logs").fetchone()
        assert count is not None and count[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_logs")
    # A second run changes nothing and keeps the same URLs.
    again = run()
    assert again.returncode == 0, again.stderr
    assert _env(project_copy) == env


def test_init_db_starts_its_stopped_server_and_seeds_only_it(
    project_copy: Path, pg_url: str
) -> None:
    run = _runner(project_copy, project_copy.parent / "venv")
    assert run("restart").returncode == 2
    assert run("start", "--bogus").returncode == 2
    assert run().returncode == 0
    env = _env(project_copy)
    assert run("stop").returncode == 0
    # DATABASE_URL exported from its own .env while the server is stopped: started again.
    done = run(DATABASE_URL=env["DATABASE_URL"])
    assert done.returncode == 0, done.stderr
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (2,)
    # Another server in DATABASE_URL: migrated, but no demo users unless --seed.
    name = f"initdb_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    other = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        done = run(DATABASE_URL=other)
        assert done.returncode == 0, done.stderr
        assert "--seed" in done.stderr
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        done = run("start", "--seed", DATABASE_URL=other)
        assert done.returncode == 0, done.stderr
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (2,)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
