"""Operability: a failed connection names its real cause (without the password), and the
cleanup command's signal handler never prints (printing there while the main thread prints
crashed a `systemctl stop` with "reentrant call")."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from digitwin_db import Database, DatabaseUnavailableError, RepositoryFactory, Settings
from digitwin_db.cli import _stop_on_signals
from digitwin_db.errors import RateLimitUnavailableError
from digitwin_db.testing import EmbeddedPostgres
from tests.conftest import APP_ROLE, RoleUrls

PASSWORD = "Correct-Horse-42"
ROLE = "digitwin_pw_user"
USER = "7d6c3a52-30a8-4d6c-9c45-5b1f0e0a9f11"


@pytest.fixture
def password_role(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A role that must give its password (the test server trusts everyone else)."""
    hba = pg_server.data_dir / "pg_hba.conf"
    original = hba.read_text()
    rule = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(ROLE)))
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(PASSWORD))
        )
        hba.write_text(rule + original)
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield make_conninfo(pg_server.url, user=ROLE)
    finally:
        hba.write_text(original)
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


def _open_error(url: str) -> str:
    db = Database(url=url, connect_timeout=2, pool_min_size=1)
    with pytest.raises(DatabaseUnavailableError) as excinfo:
        db.open()
    db.close()
    return str(excinfo.value)


def test_wrong_password_is_named(password_role: str) -> None:
    ok = Database(url=make_conninfo(password_role, password=PASSWORD), pool_min_size=0)
    ok.open()  # the right password works
    ok.close()
    message = _open_error(make_conninfo(password_role, password="Wrong-Horse-13"))
    assert "authentication failed" in message
    assert "Wrong-Horse" not in message and PASSWORD not in message


def test_unknown_database_is_named(pg_url: str) -> None:
    message = _open_error(make_conninfo(pg_url, dbname="no_such_database_here"))
    assert "the database does not exist" in message


def test_refused_connection_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = _open_error(f"postgresql://app:Secret-77@127.0.0.1:{port}/x")
    assert "connection refused" in message and f"127.0.0.1:{port}" in message
    assert "Secret-77" not in message


class _ExplodingStream(io.StringIO):
    def write(self, text: str) -> int:
        raise AssertionError(f"the signal handler wrote {text!r}")


def test_the_signal_handler_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    received: list[str] = []
    monkeypatch.setattr("sys.stderr", _ExplodingStream())
    monkeypatch.setattr("sys.stdout", _ExplodingStream())
    with _stop_on_signals(stop, received):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal: recorded once, no print
    assert received == ["SIGTERM"]


@pytest.mark.parametrize(("policy", "allowed"), [("allow", True), ("deny", False)])
def test_rate_limit_on_error_covers_refused_statements(
    role_urls: RoleUrls, pg_url: str, policy: str, allowed: bool
) -> None:
    """A statement the server refuses (here: the application role lost its privileges on
    the buckets) is a database failure like an outage: rate_limit_on_error decides."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE ALL ON rate_limits FROM {}").format(sql.Identifier(APP_ROLE)))
    with Database(url=role_urls.app, pool_min_size=0, rate_limit_on_error=policy) as db:
        factory = RepositoryFactory(db)
        result = factory.rate_limits.check_and_consume(USER, "api", capacity=5, window_seconds=60)
        assert result.degraded and result.allowed is allowed
    with Database(url=role_urls.app, pool_min_size=0, rate_limit_on_error="raise") as db:
        factory = RepositoryFactory(db)
        with pytest.raises(RateLimitUnavailableError, match="database failed"):
            factory.rate_limits.check_and_consume(USER, "api", capacity=5, window_seconds=60)


def _cli(*args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "digitwin_db", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_file_is_named_by_digitwin_db_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "elsewhere.env"
    env_file.write_text("DATABASE_URL=postgresql://app@db.example:5432/named\nPOOL_MAX_SIZE=7\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("POOL_MAX_SIZE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    assert Settings().url == "postgresql://localhost:5432/digitwin"
    monkeypatch.setenv("DIGITWIN_DB_ENV_FILE", str(env_file))
    settings = Settings()
    assert settings.url.endswith("/named") and settings.pool_max_size == 7
    # ... and only the working directory's .env otherwise (not a parent's).
    monkeypatch.delenv("DIGITWIN_DB_ENV_FILE")
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://app@db.example:5432/here\n")
    child = tmp_path / "sub"
    child.mkdir()
    assert Settings().url.endswith("/here")
    monkeypatch.chdir(child)
    assert Settings().url == "postgresql://localhost:5432/digitwin"


def test_health_prints_readable_text(pg_url: str) -> None:
    done = _cli("health", env={"DATABASE_URL": pg_url})
    assert done.returncode in (0, 1), done.stderr
    pool = next(line for line in done.stdout.splitlines() if line.strip().startswith("pool"))
    assert "{" not in pool and "pool_max" in pool, pool


def test_unknown_table_is_bad_usage(pg_url: str) -> None:
    done = _cli("maintenance", "report", "--table", "no_such_table", env={"DATABASE_URL": pg_url})
    assert done.returncode == 2 and "no_such_table" in done.stderr, done.stderr


def test_a_cleanup_with_nothing_to_do_prints_one_line(pg_url: str) -> None:
    done = _cli("cleanup", "--once", env={"DATABASE_URL": pg_url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("removed 0 rows")
    assert done.stderr == ""


def test_backups_are_readable_by_their_owner_only(pg_url: str, tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "db_backup.sh"
    done = subprocess.run(
        ["bash", str(script), "--dir", str(tmp_path / "b")],
        env={**os.environ, "DATABASE_URL": pg_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    backup = Path(done.stdout.strip())
    assert backup.stat().st_mode & 0o777 == 0o600
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2


@pytest.fixture
def strict_pgbouncer(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A real PgBouncer in transaction mode WITHOUT ``ignore_startup_parameters = options``
    (the misconfiguration the error message must name); yields its URL."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.fail("pgbouncer is not installed (scripts/lib.sh installs it as root)")
    # Under /tmp itself: pytest's tmp_path is private to root, pgbouncer runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="digitwin-pgbouncer-"))
    workdir.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = str(psycopg.conninfo.conninfo_to_dict(pg_server.url).get("user") or "postgres")
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"test = host=127.0.0.1 port={pg_server.port} dbname=test\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
    )
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        subprocess.run(["chown", "-R", "postgres:postgres", str(workdir)], check=True)
        drop = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]
        command = [*drop, *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"postgresql://{user}@127.0.0.1:{port}/test"
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(
                    f"pgbouncer exited: {proc.stdout.read().decode() if proc.stdout else ''}"
                )
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_startup_parameter_pgbouncer_rejects_is_named(strict_pgbouncer: str) -> None:
    message = _open_error(strict_pgbouncer)
    assert "PgBouncer rejects a startup parameter" in message
    assert "ignore_startup_parameters = options" in message
