"""The built wheel works on its own: installed into a fresh virtual environment outside the
checkout, its ``digitwin-db`` command migrates, reports health and seeds a real server
(migrations and seed data come from the package's resources, not from the repository)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from digitwin_db import __version__
from digitwin_db.migrations import available_migrations

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(
        args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv with the wheel (built from this checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(work)],
        cwd=work,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = work.glob("digitwin_db-*.whl")
    assert wheel.name.startswith(f"digitwin_db-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    for migration in available_migrations():
        assert f"digitwin_db/data/migrations/{migration}.sql" in names
        assert f"digitwin_db/data/migrations/{migration}.rollback.sql" in names
    assert "digitwin_db/data/seed.json" in names
    venv = work / "venv"
    created = _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    assert created.returncode == 0, created.stderr
    pip = _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        cwd=work,
    )
    assert pip.returncode == 0, pip.stderr
    return venv / "bin"


def test_the_installed_wheel_migrates_checks_health_and_seeds(
    installed: Path, pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    name = f"wheel_{uuid.uuid4().hex[:8]}"
    raw_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
        # Nothing from the checkout: no PYTHONPATH, no MIGRATIONS_DIR, a directory outside it.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "MIGRATIONS_DIR", "VIRTUAL_ENV")
        }
        env.update(DATABASE_URL=url, POOL_MIN_SIZE="0", CONNECT_TIMEOUT="5")
        cli = str(installed / "digitwin-db")

        where = _run(
            [str(installed / "python"), "-c", "import digitwin_db; print(digitwin_db.__file__)"],
            cwd=tmp_path,
            env=env,
        )
        assert where.returncode == 0, where.stderr
        assert not Path(where.stdout.strip()).resolve().is_relative_to(ROOT)

        version = _run([cli, "--version"], cwd=tmp_path, env=env)
        assert (version.returncode, version.stdout.strip()) == (0, f"digitwin-db {__version__}")

        health = _run([cli, "health"], cwd=tmp_path, env=env)
        assert health.returncode == 1, health.stdout + health.stderr  # nothing applied yet

        migrate = _run([cli, "migrate"], cwd=tmp_path, env=env)
        assert migrate.returncode == 0, migrate.stderr
        assert migrate.stdout.split() == [w for m in available_migrations() for w in ("applied", m)]

        health = _run([cli, "health"], cwd=tmp_path, env=env)
        assert health.returncode == 0, health.stdout + health.stderr
        assert "HEALTHY" in health.stdout

        seed = _run([cli, "seed"], cwd=tmp_path, env=env)
        assert seed.returncode == 0, seed.stderr
        with psycopg.connect(url) as conn:
            users = conn.execute("SELECT count(*) FROM users").fetchone()
        assert users == (2,)
    finally:
        raw_conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
