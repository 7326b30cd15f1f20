# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_database.py
"""Connection layer: open/close, transactions, error translation, restarts, health."""

from __future__ import annotations

import time

import psycopg
import pytest

from digitwin_db._sync.database import Database
from digitwin_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    QueryError,
    TransientError,
    ValidationError,
)
from digitwin_db.testing import EmbeddedPostgres


def test_open_query_close(db: Database) -> None:
    with db.connection("test.select") as conn:
        cur = conn.execute("SELECT 40 + 2")
        assert cur.fetchone() == (42,)
    assert db.is_open
    stats = db.pool_stats()
    assert stats["pool_max"] == 20
    db.close()
    assert not db.is_open
    with pytest.raises(DatabaseUnavailableError, match="not open"):
        with db.connection():
            pass


def test_reopen_after_close(pg_url: str) -> None:
    database = Database(url=pg_url, pool_min_size=0)
    with database:
        with database.connection() as conn:
            conn.execute("SELECT 1")
    with database:  # a closed pool is replaced, not reused
        with database.connection() as conn:
            conn.execute("SELECT 1")


def test_transaction_commits_and_rolls_back(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS t_tx (v int)")
    with db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS tx_probe (v int PRIMARY KEY)")
        conn.execute("TRUNCATE tx_probe")
        conn.execute("INSERT INTO tx_probe VALUES (1)")
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO tx_probe VALUES (2)")
            raise RuntimeError("boom")
    with db.connection() as conn:
        cur = conn.execute("SELECT array_agg(v ORDER BY v) FROM tx_probe")
        assert cur.fetchone() == ([1],)
        conn.execute("DROP TABLE tx_probe")


def test_errors_are_translated_by_sqlstate(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS err_probe (v int PRIMARY KEY CHECK (v > 0))")
        conn.execute("TRUNCATE err_probe")
        conn.execute("INSERT INTO err_probe VALUES (1)")
    with pytest.raises(ConflictError) as conflict:
        with db.connection("probe.insert") as conn:
            conn.execute("INSERT INTO err_probe VALUES (1)")
    assert conflict.value.constraint == "err_probe_pkey"
    assert "probe.insert" in str(conflict.value)
    assert isinstance(conflict.value.__cause__, psycopg.errors.UniqueViolation)
    with pytest.raises(ValidationError):
        with db.connection() as conn:
            conn.execute("INSERT INTO err_probe VALUES (-1)")
    with pytest.raises(TransientError):
        with db.connection() as conn:
            conn.execute("SET statement_timeout = 50")
            try:
                conn.execute("SELECT pg_sleep(2)")
            finally:
                conn.execute("RESET statement_timeout")
    with pytest.raises(QueryError):
        with db.connection() as conn:
            conn.execute("SELECT * FROM no_such_table")
    with db.connection() as conn:
        conn.execute("DROP TABLE err_probe")


def test_unreachable_server_fails_fast_without_password(pg_server: EmbeddedPostgres) -> None:
    # A port on which nothing listens: the port of a socket we bind and never listen on.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        url = f"postgresql://app:s3cret-pw@127.0.0.1:{port}/nowhere"
        database = Database(url=url, connect_timeout=2.0, pool_min_size=1)
        start = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as excinfo:
            database.open()
        elapsed = time.monotonic() - start
    message = str(excinfo.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(database)
    assert excinfo.value.__cause__ is None or "s3cret-pw" not in str(excinfo.value.__cause__)
    assert elapsed < 2.0 + 1.5  # within the connect timeout (plus scheduling slack)
    assert not database.is_open


def test_pool_timeout_is_database_unavailable(pg_url: str) -> None:
    database = Database(url=pg_url, pool_min_size=1, pool_max_size=1, pool_timeout=0.2)
    with database, database.connection():
        with pytest.raises(DatabaseUnavailableError, match="pool timeout"):
            with database.connection():
                pass


def test_survives_backend_termination(db: Database, pg_url: str) -> None:
    with db.connection() as conn:
        conn.execute("SELECT 1")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        # With a timeout, pg_terminate_backend waits until each backend has exited (and so
        # has sent its FATAL message and closed the socket): no sleep needed.
        admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE application_name = 'digitwin-db' AND pid <> pg_backend_pid()"
        )
    # The very first call after the server dropped every connection succeeds.
    with db.connection() as conn:
        cur = conn.execute("SELECT 7")
        assert cur.fetchone() == (7,)


@pytest.mark.slow
def test_survives_server_restart(pg_server: EmbeddedPostgres) -> None:
    database = Database(url=pg_server.url, pool_min_size=2, pool_max_size=4)
    with database:
        with database.connection() as conn:
            conn.execute("SELECT 1")
        pg_server.restart("fast")
        with database.connection() as conn:
            cur = conn.execute("SELECT 8")
            assert cur.fetchone() == (8,)


def test_health_check(db: Database) -> None:
    health = db.health_check()
    assert health.ok, health
    assert health.pending_migrations == []
    assert health.latency_ms is not None and health.latency_ms >= 0
    assert health.server_version and health.server_version[0].isdigit()
    assert health.pool["pool_max"] == 20


def test_health_check_when_down(pg_url: str) -> None:
    database = Database(url=pg_url, pool_min_size=0)
    health = database.health_check()  # not open: reported, not raised
    assert not health.ok
    assert health.error and "not open" in health.error
