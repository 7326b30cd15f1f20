# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_cache_core.py
"""The cache core: statistics flushes piggy-backed on reads never make a reader wait."""

from __future__ import annotations

import time

import psycopg

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory


def _kv_counts(conn: psycopg.Connection) -> tuple[int, int] | None:
    row = conn.execute("SELECT hits, misses FROM cache_stats WHERE cache_name = 'kv'").fetchone()
    return None if row is None else (row[0], row[1])


def test_a_due_flush_on_an_exhausted_pool_adds_no_second_wait(
    pg_url: str, raw_conn: psycopg.Connection
) -> None:
    db = Database(
        url=pg_url,
        pool_min_size=1,
        pool_max_size=1,
        pool_timeout=1.5,
        cache_stats_flush_interval=0.001,
    )
    db.open()
    factory = RepositoryFactory(db)
    try:
        with db.connection("test.hold_the_only_connection"):
            start = time.monotonic()
            assert factory.cache.kv.get("k", default="miss") == "miss"
            elapsed = time.monotonic() - start
        # One wait of pool_timeout for the read itself (fail-open), none for the flush.
        assert 1.0 <= elapsed < 3.0
        ops = {s.operation: s for s in db.stats.snapshot()}
        assert (ops["cache.kv.get"].calls, ops["cache.kv.get"].failures) == (1, 1)
        assert (ops["cache.flush_stats"].calls, ops["cache.flush_stats"].failures) == (1, 1)
        assert _kv_counts(raw_conn) is None  # the skipped flush wrote nothing
        factory.cache.flush_stats()  # waits: the counts are exact afterwards
        assert _kv_counts(raw_conn) == (0, 1)
    finally:
        factory.close()


def test_a_due_flush_with_an_idle_connection_is_written_from_the_read(
    pg_url: str, raw_conn: psycopg.Connection
) -> None:
    db = Database(url=pg_url, pool_min_size=2, cache_stats_flush_interval=0.001)
    db.open()
    factory = RepositoryFactory(db)
    try:
        factory.cache.kv.set("k", 1)
        time.sleep(0.01)  # the flush interval has passed
        assert factory.cache.kv.get("k") == 1
        assert _kv_counts(raw_conn) == (1, 0)
        time.sleep(0.01)
        assert factory.cache.kv.get("absent") is None
        assert _kv_counts(raw_conn) == (1, 1)
    finally:
        factory.close()


def test_factory_cache_has_no_public_plumbing(factory: RepositoryFactory) -> None:
    public = {name for name in dir(factory.cache) if not name.startswith("_")}
    assert not public & {"fail_open", "flush_due", "wrote", "counters", "caps"}
    assert not {n for n in dir(factory.cache.kv) if not n.startswith("_")} & {
        "fail_open",
        "flush_due",
        "wrote",
    }
