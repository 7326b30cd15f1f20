"""Migrations: apply, roll back, re-apply; concurrent migrators; status."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import psycopg
import pytest

from digitwin_db import migrations
from digitwin_db.settings import ENV_FILE_VARIABLE
from tests.helpers import scratch_database

SCHEMA_SNAPSHOT = """
SELECT 'column', table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
       || ':' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass::text || ':' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'comment', c.relname || ':' || obj_description(c.oid, 'pg_class')
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
UNION ALL
SELECT 'persistence', relname || ':' || relpersistence::text
  FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
ORDER BY 1, 2
"""

APP_TABLES = {
    "users",
    "voice_models",
    "face_models",
    "conversation_sessions",
    "conversation_turns",
    "knowledge_documents",
    "embedding_cache",
    "vector_search_cache",
    "llm_response_cache",
    "kv_cache",
    "rate_limits",
    "audit_logs",
}


@pytest.fixture
def scratch_url(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test server."""
    with scratch_database(pg_url) as url:
        yield url


def _snapshot(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1]) for r in conn.execute(SCHEMA_SNAPSHOT).fetchall()]


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows.fetchall()}


def test_every_table_exists_with_a_comment(scratch_url: str) -> None:
    migrations.migrate(scratch_url)
    assert APP_TABLES <= _tables(scratch_url)
    with psycopg.connect(scratch_url) as conn:
        for table in APP_TABLES:
            row = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (table,))
            comment = row.fetchone()
            assert comment is not None and comment[0], f"{table} has no comment"


def test_migrate_rollback_migrate_gives_the_same_schema(scratch_url: str) -> None:
    applied = migrations.migrate(scratch_url)
    assert applied == migrations.available_migrations()
    first = _snapshot(scratch_url)
    assert migrations.migrate(scratch_url) == []  # idempotent
    rolled_back = migrations.rollback(scratch_url, count=None)
    assert rolled_back == list(reversed(applied))
    assert not (APP_TABLES & _tables(scratch_url))
    migrations.migrate(scratch_url)
    assert _snapshot(scratch_url) == first


def test_rollback_one_step_and_status(scratch_url: str) -> None:
    migrations.migrate(scratch_url)
    newest = migrations.available_migrations()[-1]
    assert migrations.rollback(scratch_url) == [newest]
    status = {s.id: s.applied for s in migrations.status(scratch_url)}
    assert status[newest] is False
    assert all(applied for mid, applied in status.items() if mid != newest)
    assert migrations.migrate(scratch_url) == [newest]


def test_two_migrators_at_once(scratch_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrations.migrate(scratch_url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # yoyo's lock serializes them: one applied everything, the other found nothing to do.
    assert sorted(results, key=len) == [[], migrations.available_migrations()]
    with psycopg.connect(scratch_url) as conn:
        rows = conn.execute("SELECT migration_id, count(*) FROM _yoyo_migration GROUP BY 1")
        assert all(count == 1 for _, count in rows.fetchall())


def test_cli_migrate_status_rollback(scratch_url: str) -> None:
    env_cmd = [sys.executable, "-m", "digitwin_db"]
    env = {"DATABASE_URL": scratch_url, "PATH": "/usr/bin:/bin", ENV_FILE_VARIABLE: os.devnull}
    out = subprocess.run([*env_cmd, "migrate"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "0001_core" in out.stdout
    out = subprocess.run([*env_cmd, "status"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "PENDING" not in out.stdout and ", 0 pending" in out.stdout, out.stdout
    out = subprocess.run([*env_cmd, "rollback"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([*env_cmd, "status"], env=env, capture_output=True, text=True)
    assert "PENDING" in out.stdout and ", 1 pending" in out.stdout, out.stdout


def test_cli_reports_unreachable_database_cleanly() -> None:
    env = {
        "DATABASE_URL": "postgresql://u:topsecret@127.0.0.1:1/x",
        "PATH": "/usr/bin:/bin",
        ENV_FILE_VARIABLE: os.devnull,
    }
    out = subprocess.run(
        [sys.executable, "-m", "digitwin_db", "migrate"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "topsecret" not in out.stderr + out.stdout
