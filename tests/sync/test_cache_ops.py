# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_cache_ops.py
"""Cache operations: expiry cleanup, statistics, caps with eviction, fail-open reads."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import DatabaseUnavailableError, TransientError, ValidationError


def _count(raw_conn: psycopg.Connection, table: str) -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_cleanup_expired_removes_only_expired_rows(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    cache.kv.set_many({f"old{i}": i for i in range(25)}, ttl=60)
    cache.kv.set_many({f"live{i}": i for i in range(5)}, ttl=60)
    cache.kv.set("forever", 1)
    cache.set_embeddings({f"t{i}": [1.0] for i in range(7)}, model="m")
    cache.set_search_results("q", [], index="i")
    cache.set_llm_response("p", "r", model="m")
    cache.set_llm_response("p2", "r", model="m")
    raw_conn.execute(
        "UPDATE kv_cache SET expires_at = now() - interval '1 s' WHERE key LIKE 'old%'"
    )
    raw_conn.execute("UPDATE embedding_cache SET expires_at = now() - interval '1 s'")
    raw_conn.execute("UPDATE llm_response_cache SET expires_at = now() - interval '1 s'")
    report = cache.cleanup_expired(batch_size=10)
    assert report.removed == {
        "embedding_cache": 7,
        "vector_search_cache": 0,
        "llm_response_cache": 2,
        "kv_cache": 25,
    }
    assert report.total == 34
    assert report.batches == 3 + 1 + 1 + 1  # kv: 10 + 10 + 5; the others one batch each
    assert _count(raw_conn, "kv_cache") == 6
    assert _count(raw_conn, "vector_search_cache") == 1
    assert (cache.cleanup_expired()).total == 0
    with pytest.raises(ValidationError):
        cache.cleanup_expired(batch_size=0)


def test_cleanup_expired_stops_after_the_batch_when_asked(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    cache.kv.set_many({f"old{i}": i for i in range(25)}, ttl=60)
    raw_conn.execute("UPDATE kv_cache SET expires_at = now() - interval '1 s'")
    polls: list[int] = []

    def stop_after_four_batches() -> bool:
        polls.append(1)
        return len(polls) >= 4

    # The three other caches take one (empty) batch each, then kv_cache: 10 rows, stop.
    report = cache.cleanup_expired(batch_size=10, should_stop=stop_after_four_batches)
    assert report.batches == 4
    assert report.total == 10
    assert _count(raw_conn, "kv_cache") == 15
    assert (cache.cleanup_expired(batch_size=10)).total == 15


def test_stats_exact_after_flush(factory: RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    cache = factory.cache
    cache.kv.set("a", "x" * 100)
    for _ in range(3):
        cache.kv.get("a")
    cache.kv.get("missing")
    assert cache.kv.get_many(["a", "b", "c"]) == {"a": "x" * 100}
    cache.set_embedding("t", [1.0, 2.0], model="m")
    cache.get_embedding("t", model="m")
    cache.get_embeddings(["t", "u"], model="m")
    cache.get_search_results("q", index="i")
    cache.set_llm_response("p", "r", model="m")
    cache.get_llm_response("p", model="m")
    assert _count(raw_conn, "cache_stats") == 0  # nothing written on the read path
    cache.flush_stats()
    rows = dict(
        (name, (hits, misses))
        for name, hits, misses in raw_conn.execute(
            "SELECT cache_name, hits, misses FROM cache_stats"
        ).fetchall()
    )
    assert rows == {
        "kv": (4, 3),
        "embedding": (2, 1),
        "vector_search": (0, 1),
        "llm_response": (1, 0),
    }
    stats = cache.stats()
    assert (stats.kv.hits, stats.kv.misses, stats.kv.entries) == (4, 3, 1)
    assert stats.kv.hit_rate == pytest.approx(4 / 7)
    assert stats["kv"].bytes > 100
    assert (stats.embedding.entries, stats.embedding.bytes) == (1, 8 + 1)
    assert stats.vector_search.hit_rate == 0.0
    assert stats.llm_response.entries == 1
    assert set(stats.caches) == {"embedding", "vector_search", "llm_response", "kv"}
    cache.kv.get("a")
    cache.flush_stats()
    cache.flush_stats()  # nothing pending: no double counting
    assert (cache.stats()).kv.hits == 5


def test_stats_flushed_on_interval_and_on_close(pg_url: str, raw_conn: psycopg.Connection) -> None:
    db = Database(url=pg_url, pool_min_size=1, cache_stats_flush_interval=0.001)
    db.open()
    factory = RepositoryFactory(db)
    time.sleep(0.01)
    factory.cache.kv.get("a")  # the interval has passed: this call flushes
    assert raw_conn.execute("SELECT misses FROM cache_stats").fetchall() == [(1,)]
    db2 = Database(url=pg_url, pool_min_size=1, cache_stats_flush_interval=3600)
    db2.open()
    factory2 = RepositoryFactory(db2)
    factory2.cache.kv.get("a")
    factory2.cache.kv.get("a")
    assert raw_conn.execute("SELECT misses FROM cache_stats").fetchall() == [(1,)]
    factory2.close()
    factory.close()
    assert raw_conn.execute("SELECT misses FROM cache_stats").fetchall() == [(3,)]


def test_caps_evict_oldest_first(pg_url: str, raw_conn: psycopg.Connection) -> None:
    db = Database(
        url=pg_url,
        pool_min_size=1,
        kv_cache_max_entries=5,
        embedding_cache_max_bytes=3 * (8 + 2),
        cache_cap_check_writes=1,
    )
    db.open()
    factory = RepositoryFactory(db)
    kv = factory.cache.kv
    try:
        for i in range(8):
            kv.set(f"k{i}", i)
        assert sorted((kv.get_many([f"k{i}" for i in range(8)])).keys()) == [
            "k3",
            "k4",
            "k5",
            "k6",
            "k7",
        ]
        for i in range(5):  # 10 bytes each (2 float32 + a 2-character text)
            factory.cache.set_embedding(f"t{i}", [1.0, 2.0], model="m")
        got = factory.cache.get_embeddings([f"t{i}" for i in range(5)], model="m")
        assert [g is not None for g in got] == [False, False, True, True, True]
        assert factory.cache.enforce_caps() == {"embedding": 0, "kv": 0}
    finally:
        factory.close()
    assert _count(raw_conn, "kv_cache") == 5


def test_caps_are_checked_every_n_writes(pg_url: str, raw_conn: psycopg.Connection) -> None:
    db = Database(url=pg_url, pool_min_size=1, kv_cache_max_entries=2, cache_cap_check_writes=4)
    db.open()
    factory = RepositoryFactory(db)
    try:
        for i in range(3):
            factory.cache.kv.set(f"k{i}", i)
        assert _count(raw_conn, "kv_cache") == 3  # not checked yet
        factory.cache.kv.set("k3", 3)  # 4th write: checked
        assert _count(raw_conn, "kv_cache") == 2
        assert factory.cache.kv.get_many(["k2", "k3"]) == {"k2": 2, "k3": 3}
    finally:
        factory.close()


def test_fail_open_reads_on_lock_timeout(
    pg_url: str, raw_conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(url=pg_url, pool_min_size=1, lock_timeout_ms=100)
    db.open()
    factory = RepositoryFactory(db)
    cache = factory.cache
    cache.kv.set("k", 1)
    cache.set_embedding("t", [1.0], model="m")
    cache.set_llm_response("p", "r", model="m")
    cache.set_search_results("q", [], index="i")
    locker = psycopg.connect(pg_url)
    try:
        # Another transaction holds ACCESS EXCLUSIVE locks: every read waits, then times out.
        locker.execute(
            "LOCK TABLE kv_cache, embedding_cache, llm_response_cache, vector_search_cache "
            "IN ACCESS EXCLUSIVE MODE"
        )
        with caplog.at_level(logging.WARNING, logger="digitwin_db.cache"):
            assert cache.kv.get("k", default="miss") == "miss"
            assert cache.kv.get_many(["k"]) == {}
            assert cache.get_embedding("t", model="m") is None
            assert cache.get_embeddings(["t"], model="m") == [None]
            assert cache.get_llm_response("p", model="m") is None
            assert cache.get_search_results("q", index="i") is None
        assert sum("treated as a cache miss" in r.getMessage() for r in caplog.records) == 6
        with pytest.raises(TransientError):  # writes never fail silently
            cache.kv.set("k", 2)
        with pytest.raises(TransientError):
            cache.set_embedding("t", [2.0], model="m")
    finally:
        locker.rollback()
        locker.close()
    assert cache.kv.get("k") == 1
    factory.close()


def test_fail_closed_when_disabled(pg_url: str) -> None:
    db = Database(url=pg_url, pool_min_size=1, lock_timeout_ms=100, cache_fail_open=False)
    db.open()
    factory = RepositoryFactory(db)
    locker = psycopg.connect(pg_url)
    try:
        locker.execute("LOCK TABLE kv_cache IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TransientError):
            factory.cache.kv.get("k")
    finally:
        locker.rollback()
        locker.close()
        factory.close()


def test_fail_open_when_database_is_closed(pg_url: str) -> None:
    db = Database(url=pg_url, pool_min_size=1)
    db.open()
    factory = RepositoryFactory(db)
    factory.cache.kv.set("k", 1)
    db.close()
    assert factory.cache.kv.get("k", default="miss") == "miss"
    assert factory.cache.get_embedding("t", model="m") is None
    with pytest.raises(DatabaseUnavailableError):
        factory.cache.kv.set("k", 2)
    with pytest.raises(DatabaseUnavailableError):
        factory.cache.kv.get_or_set("k", lambda: 3)


def test_health_check_covers_the_cache_tables(factory: RepositoryFactory) -> None:
    check = factory.cache.check_health()
    assert check.ok, check.error
