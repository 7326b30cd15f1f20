"""The operations command line: --help, usage errors, health, stats, maintenance.

The cleanup command has its own file (tests/test_cleanup.py). Commands run as real
subprocesses (``python -m digitwin_db``) where the exit status and output matter.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from digitwin_db import cli

COMMANDS = ["migrate", "rollback", "status", "seed", "health", "cleanup", "stats", "maintenance"]


def run_cli(
    *args: str, url: str, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "POOL_MIN_SIZE": "0", "CONNECT_TIMEOUT": "2"}
    return subprocess.run(
        [sys.executable, "-m", "digitwin_db", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,  # no stray .env from the repository
        timeout=timeout,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: digitwin-db" in out
    if command is None:
        for name in COMMANDS:
            assert name in out
    else:
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [
        ["cleanup", "--batch-size", "0"],
        ["cleanup", "--batch-size", "many"],
        ["cleanup", "--interval", "-5"],
        ["cleanup", "--once", "--interval", "5"],
        ["maintenance", "defragment"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2_without_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err


def test_health_exits_non_zero_when_the_server_is_down(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres"
    result = run_cli("health", url=url, cwd=tmp_path)
    assert result.returncode == cli.EXIT_UNAVAILABLE
    assert "UNHEALTHY" in result.stdout
    assert "Traceback" not in result.stderr
    as_json = run_cli("health", "--json", url=url, cwd=tmp_path)
    assert as_json.returncode == cli.EXIT_UNAVAILABLE
    assert json.loads(as_json.stdout)["ok"] is False


def test_every_database_command_fails_cleanly_when_the_server_is_down(tmp_path: Path) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{_free_port()}/postgres"
    for argv in (["stats"], ["cleanup", "--once"], ["maintenance", "report"]):
        result = run_cli(*argv, url=url, cwd=tmp_path)
        assert result.returncode == cli.EXIT_UNAVAILABLE, argv
        assert "database unavailable" in result.stderr
        assert "Traceback" not in result.stderr
        assert "secret" not in result.stderr + result.stdout


def test_health_exits_1_when_migrations_are_pending(
    pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    name = f"unmigrated_{uuid.uuid4().hex[:8]}"
    raw_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
        result = run_cli("health", url=url, cwd=tmp_path)
        assert result.returncode == cli.EXIT_PROBLEM, result.stderr
        assert "UNHEALTHY" in result.stdout and "0004_audit_logs" in result.stdout
    finally:
        raw_conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_health_ok(pg_url: str, tmp_path: Path) -> None:
    result = run_cli("health", url=pg_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HEALTHY" in result.stdout and "audit_logs" in result.stdout


def test_stats_reports_every_section(
    pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    raw_conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens, "
        "allowed_count, denied_count) VALUES ('u1', '/chat', 10, 1, 5, 7, 3)"
    )
    for outcome in ("success", "success", "failure"):
        raw_conn.execute(
            "INSERT INTO audit_logs (action, result, metadata) VALUES ('user.login', %s, %s)",
            (outcome, Jsonb({})),
        )
    result = run_cli("stats", "--json", url=pg_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"pool", "cache", "rate_limits", "audit_last_24h", "tables", "operations"} <= set(report)
    assert report["rate_limits"]["allowed"] == 7 and report["rate_limits"]["denied"] == 3
    assert set(report["cache"]) == {"embedding", "vector_search", "llm_response", "kv"}
    assert {"hits", "misses", "hit_rate", "entries", "bytes"} <= set(report["cache"]["kv"])
    assert report["audit_last_24h"]["total"] == 3
    assert report["audit_last_24h"]["by_result"] == {"success": 2, "failure": 1}
    assert report["tables"]["audit_logs"]["live_tuples"] >= 0
    assert "dead_ratio" in report["tables"]["kv_cache"]
    ops = report["operations"]
    assert "audit_logs.statistics" in ops
    assert {"calls", "min_ms", "avg_ms", "p95_ms"} <= set(ops["audit_logs.statistics"])
    text = run_cli("stats", url=pg_url, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    for word in ("pool:", "rate_limits:", "tables:", "kv_cache:", "dead_ratio", "p95_ms"):
        assert word in text.stdout


def test_maintenance_vacuum_and_report(pg_url: str, tmp_path: Path) -> None:
    vacuum = run_cli("maintenance", "vacuum", url=pg_url, cwd=tmp_path)
    assert vacuum.returncode == 0, vacuum.stderr
    assert "kv_cache" in vacuum.stdout and "rate_limits" in vacuum.stdout
    one = run_cli("maintenance", "vacuum", "--table", "audit_logs", url=pg_url, cwd=tmp_path)
    assert one.returncode == 0 and one.stdout.count("vacuum (analyze)") == 1
    report = run_cli("maintenance", "report", url=pg_url, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "dead %" in report.stdout and "audit_logs" in report.stdout
    as_json = run_cli("maintenance", "report", "--json", url=pg_url, cwd=tmp_path)
    assert {row["table"] for row in json.loads(as_json.stdout)} >= {"kv_cache", "audit_logs"}
    bad = run_cli("maintenance", "vacuum", "--table", "nope", url=pg_url, cwd=tmp_path)
    assert bad.returncode == cli.EXIT_USAGE  # an unknown table is bad usage
    assert "unknown table" in bad.stderr and "Traceback" not in bad.stderr
