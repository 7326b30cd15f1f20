"""The servers a run needs: its own PostgreSQL (embedded, migrated) and a local Redis.

PostgreSQL comes from :func:`digitwin_db.testing.embedded_postgres` (root-safe, throw-away,
``fsync=off``); on top of the test settings the benchmark turns ``synchronous_commit`` back
on, so a commit of a logged table (``rate_limits``) waits for its WAL write as in production
(without fsync the write is not flushed to disk; the cache tables are UNLOGGED and never
wait). Redis runs without persistence (``--save '' --appendonly no``), its usual cache setup.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from digitwin_db import migrations
from digitwin_db.testing import EmbeddedPostgres, embedded_postgres

# Appended to the test server settings (later -c wins): production-like commits.
BENCH_PG_SETTINGS = "-c synchronous_commit=on -c max_connections=100"
PG_SETTINGS_NOTE = (
    "embedded PostgreSQL: fsync=off, full_page_writes=off (throw-away server), "
    "synchronous_commit=on, shared_buffers=128MB; cache tables are UNLOGGED"
)


@contextmanager
def postgres() -> Iterator[EmbeddedPostgres]:
    """A fresh, migrated PostgreSQL for this run; removed afterwards."""
    with embedded_postgres(extra_settings=BENCH_PG_SETTINGS) as server:
        migrations.migrate(server.url)
        yield server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    url: str
    version: str
    process: subprocess.Popen[bytes]


def redis_unavailable_reason() -> str | None:
    """Why the Redis columns are skipped, or None when they can run."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py not installed (pip install -e '.[bench]')"
    if shutil.which("redis-server") is None:
        return "redis-server not installed (apt-get install redis-server)"
    return None


@contextmanager
def redis_server() -> Iterator[RedisServer | None]:
    """A ``redis-server`` on a free loopback port, stopped on exit; None when unavailable."""
    if redis_unavailable_reason() is not None:
        yield None
        return
    import redis

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="digitwin-bench-redis-")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        info: Any = client.info("server")
        version = str(info.get("redis_version", "?"))
        client.close()
        yield RedisServer(url=url, version=version, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def machine_info(pg_url: str) -> dict[str, Any]:
    """nproc, CPU model, OS, Python, PostgreSQL version — printed with every table."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg_version = str(row[0]) if row else "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": pg_version,
        "postgresql_settings": PG_SETTINGS_NOTE,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
