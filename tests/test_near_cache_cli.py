"""The near cache from the command line: ``stats`` shows its counters (flushed by every
process) and ``health`` the state of the listener with the configured URLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from digitwin_db import Database, RepositoryFactory


def _cli(*args: str, url: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digitwin_db", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url, "POOL_MIN_SIZE": "0", **env},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_stats_shows_near_counters_of_other_processes(pg_url: str, tmp_path: Path) -> None:
    db = Database(url=pg_url, near_cache=True, pool_min_size=1)
    db.open()
    factory = RepositoryFactory(db)
    try:
        near = factory.cache.near
        assert near is not None and near.listener.wait_listening(10)
        kv = factory.cache.kv
        kv.set_many({"a": 1, "b": 2})
        for _ in range(3):
            assert kv.get("a") == 1
        factory.cache.flush_stats()
    finally:
        factory.close()
    proc = _cli("stats", "--json", url=pg_url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    kv_stats = json.loads(proc.stdout)["cache"]["kv"]
    assert (kv_stats["near_hits"], kv_stats["near_misses"], kv_stats["hits"]) == (2, 1, 3)
    assert kv_stats["near_entries"] == 0  # the stats process holds no copies itself


def test_health_reports_the_listener_and_hides_the_listen_password(
    pg_url: str, tmp_path: Path
) -> None:
    proc = _cli("health", "--json", url=pg_url, cwd=tmp_path, NEAR_CACHE="true")
    assert proc.returncode == 0, proc.stderr
    cache = next(r for r in json.loads(proc.stdout)["repositories"] if r["name"] == "cache")
    assert cache["details"]["near_cache"]["state"] == "listening"
    # A listen URL that cannot connect: reported, bypassed, no password anywhere.
    bad = "postgresql://nobody:hunter2secret@127.0.0.1:1/none"
    started = time.monotonic()
    proc = _cli("health", "--json", url=pg_url, cwd=tmp_path, NEAR_CACHE="true", LISTEN_URL=bad)
    assert time.monotonic() - started < 60
    assert "hunter2secret" not in proc.stdout + proc.stderr
    cache = next(r for r in json.loads(proc.stdout)["repositories"] if r["name"] == "cache")
    near = cache["details"]["near_cache"]
    assert near["state"] == "reconnecting"
    assert near["last_error"].startswith("OperationalError")
    assert cache["ok"] is True  # reads go to the tables meanwhile
