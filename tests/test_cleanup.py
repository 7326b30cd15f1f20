"""The periodic cleanup job, run as real processes: ``python -m digitwin_db cleanup``.

Rows are seeded with raw SQL (expired cache rows, idle rate-limit buckets, audit entries
past retention) so that these tests check the job, not the repositories' write paths; the
job itself goes through the repositories' cleanup methods.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from digitwin_db import RepositoryFactory
from digitwin_db._sync.cleanup import CleanupJob
from digitwin_db._sync.database import Database

pytestmark = pytest.mark.slow


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "POOL_MIN_SIZE": "0", "CONNECT_TIMEOUT": "5"}


def start_cleanup(url: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digitwin_db", "cleanup", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(url),
        cwd=cwd,
    )


def seed(
    conn: psycopg.Connection,
    *,
    expired_kv: int = 0,
    live_kv: int = 0,
    expired_embeddings: int = 0,
    live_embeddings: int = 0,
    idle_buckets: int = 0,
    busy_buckets: int = 0,
    old_audit: int = 0,
    fresh_audit: int = 0,
) -> None:
    """Insert rows on either side of every cleanup criterion (raw SQL, no repository)."""
    conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size, expires_at) "
        "SELECT g, 'cleanup', 'expired-' || g, %(v)s, 8, now() - interval '1 minute' "
        "  FROM generate_series(1, %(n)s) AS g",
        {"v": Jsonb(1), "n": expired_kv},
    )
    conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size, expires_at) "
        "SELECT -g, 'cleanup', 'live-' || g, %(v)s, 8, "
        "       CASE WHEN g %% 2 = 0 THEN now() + interval '1 hour' END "
        "  FROM generate_series(1, %(n)s) AS g",
        {"v": Jsonb(1), "n": live_kv},
    )
    conn.execute(
        "INSERT INTO embedding_cache "
        "(key_hash, model, text, dimensions, embedding, byte_size, expires_at) "
        "SELECT g, 'm', 't' || g, 1, '\\x0000803f'::bytea, 4, "
        "       CASE WHEN g <= %(expired)s THEN now() - interval '1 second' "
        "            ELSE now() + interval '1 hour' END "
        "  FROM generate_series(1, %(total)s) AS g",
        {"expired": expired_embeddings, "total": expired_embeddings + live_embeddings},
    )
    conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens, refilled_at) "
        "SELECT 'idle-' || g, '/chat', 10, 1, 10, now() - interval '3 days' "
        "  FROM generate_series(1, %(n)s) AS g",
        {"n": idle_buckets},
    )
    conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens, refilled_at) "
        "SELECT 'busy-' || g, '/chat', 10, 1, 3, now() "
        "  FROM generate_series(1, %(n)s) AS g",
        {"n": busy_buckets},
    )
    conn.execute(
        "INSERT INTO audit_logs (action, metadata, created_at) "
        "SELECT 'old.entry', '{}', now() - interval '100 days' - g * interval '1 second' "
        "  FROM generate_series(1, %(n)s) AS g",
        {"n": old_audit},
    )
    conn.execute(
        "INSERT INTO audit_logs (action, metadata, created_at) "
        "SELECT 'fresh.entry', '{}', now() - interval '80 days' "
        "  FROM generate_series(1, %(n)s) AS g",
        {"n": fresh_audit},
    )


def counts(conn: psycopg.Connection) -> dict[str, int]:
    row = conn.execute(
        """SELECT
             (SELECT count(*) FROM kv_cache WHERE expires_at <= now()),
             (SELECT count(*) FROM kv_cache WHERE expires_at IS NULL OR expires_at > now()),
             (SELECT count(*) FROM embedding_cache WHERE expires_at <= now()),
             (SELECT count(*) FROM embedding_cache WHERE expires_at > now()),
             (SELECT count(*) FROM rate_limits WHERE user_id LIKE 'idle-%%'),
             (SELECT count(*) FROM rate_limits WHERE user_id LIKE 'busy-%%'),
             (SELECT count(*) FROM audit_logs WHERE action = 'old.entry'),
             (SELECT count(*) FROM audit_logs WHERE action = 'fresh.entry')""",
        {},
    ).fetchone()
    assert row is not None
    names = ["expired_kv", "live_kv", "expired_emb", "live_emb", "idle", "busy", "old", "fresh"]
    return dict(zip(names, map(int, row), strict=True))


def reports(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_cleanup_once_removes_exactly_the_expired_rows(
    pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    seed(
        raw_conn,
        expired_kv=250,
        live_kv=40,
        expired_embeddings=30,
        live_embeddings=5,
        idle_buckets=12,
        busy_buckets=4,
        old_audit=130,
        fresh_audit=9,
    )
    proc = start_cleanup(pg_url, tmp_path, "--once", "--batch-size", "50", "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    (report,) = reports(out)
    assert report["errors"] == {} and report["skipped"] == {} and not report["stopped"]
    removed = report["removed"]
    assert removed["kv_cache"] == 250
    assert removed["embedding_cache"] == 30
    assert removed["rate_limits"] == 12
    assert removed["audit_logs"] == 130
    assert counts(raw_conn) == {
        "expired_kv": 0,
        "live_kv": 40,
        "expired_emb": 0,
        "live_emb": 5,
        "idle": 0,
        "busy": 4,
        "old": 0,
        "fresh": 9,
    }
    # A progress line per audit batch of 50: 50, 100, 130.
    assert "audit_logs: removed 50 (total 100)" in err
    assert "audit_logs: removed 30 (total 130)" in err


def test_two_cleaners_at_once_remove_each_row_once(
    pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    seed(raw_conn, expired_kv=20_000, live_kv=100, old_audit=20_000, fresh_audit=50)
    procs = [
        start_cleanup(pg_url, tmp_path, "--once", "--batch-size", "200", "--json", "--quiet")
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    both = [reports(out)[0]["removed"] for out, _ in outputs]
    assert sum(r.get("kv_cache", 0) for r in both) == 20_000
    assert sum(r.get("audit_logs", 0) for r in both) == 20_000
    after = counts(raw_conn)
    assert (after["expired_kv"], after["live_kv"]) == (0, 100)
    assert (after["old"], after["fresh"]) == (0, 50)


def _read_until(stream: Any, needle: str, seen: list[str]) -> None:
    for line in stream:
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} never appeared; output: {''.join(seen)}")


def test_interval_mode_stops_cleanly_on_sigterm_mid_pass(
    pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    seed(raw_conn, old_audit=60_000)
    proc = start_cleanup(pg_url, tmp_path, "--interval", "3600", "--batch-size", "100", "--json")
    assert proc.stderr is not None
    seen: list[str] = []
    _read_until(proc.stderr, "audit_logs: removed 100", seen)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 0, err
    assert "SIGTERM received, stopping after this batch" in err
    assert "stopped after 1 pass(es)" in err
    assert "Traceback" not in err
    (report,) = reports(out)
    # Whatever it managed before stopping, it reports exactly what is gone, in whole
    # batches (each batch is its own transaction).
    remaining = counts(raw_conn)["old"]
    assert report["removed"]["audit_logs"] == 60_000 - remaining
    if remaining:
        assert report["stopped"] is True
        assert report["removed"]["audit_logs"] % 100 == 0


def test_interval_mode_stops_on_sigint_while_waiting(
    pg_url: str, raw_conn: psycopg.Connection, tmp_path: Path
) -> None:
    seed(raw_conn, old_audit=3)
    proc = start_cleanup(pg_url, tmp_path, "--interval", "3600", "--json")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first pass is done: it now sleeps for an hour
    assert json.loads(first)["removed"]["audit_logs"] == 3
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGINT received" in err and "Traceback" not in err


def test_job_api_reports_per_batch_progress_and_honours_stop(
    pg_url: str, raw_conn: psycopg.Connection
) -> None:
    seed(raw_conn, old_audit=25, expired_kv=10)
    database = Database(url=pg_url, pool_min_size=0)
    database.open()
    factory = RepositoryFactory(database)
    try:
        calls: list[tuple[str, int, int]] = []
        stop = threading.Event()

        def progress(table: str, removed: int, so_far: int) -> None:
            calls.append((table, removed, so_far))
            if table == "audit_logs":
                stop.set()  # ask to stop after the first audit batch

        job = CleanupJob(factory, batch_size=10, progress=progress)
        report = job.run_once(should_stop=stop.is_set)
        assert report.stopped
        assert report.removed["audit_logs"] == 10
        assert ("audit_logs", 10, 10) in calls
        assert counts(raw_conn)["old"] == 15
        stop.clear()
        calls.clear()
        report = CleanupJob(factory, batch_size=10, progress=progress).run_once()
        assert report.removed["audit_logs"] == 15 and not report.stopped
        assert [c for c in calls if c[0] == "audit_logs"] == [
            ("audit_logs", 10, 10),
            ("audit_logs", 5, 15),
        ]
    finally:
        factory.close()
