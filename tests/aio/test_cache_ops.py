"""Cache operations: expiry cleanup, statistics, caps with eviction, fail-open reads."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import DatabaseUnavailableError, TransientError, ValidationError


def _count(raw_conn: psycopg.Connection, table: str) -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


async def test_cleanup_expired_removes_only_expired_rows(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    await cache.kv.set_many({f"old{i}": i for i in range(25)}, ttl=60)
    await cache.kv.set_many({f"live{i}": i for i in range(5)}, ttl=60)
    await cache.kv.set("forever", 1)
    await cache.set_embeddings({f"t{i}": [1.0] for i in range(7)}, model="m")
    await cache.set_search_results("q", [], index="i")
    await cache.set_llm_response("p", "r", model="m")
    await cache.set_llm_response("p2", "r", model="m")
    raw_conn.execute(
        "UPDATE kv_cache SET expires_at = now() - interval '1 s' WHERE key LIKE 'old%'"
    )
    raw_conn.execute("UPDATE embedding_cache SET expires_at = now() - interval '1 s'")
    raw_conn.execute("UPDATE llm_response_cache SET expires_at = now() - interval '1 s'")
    report = await cache.cleanup_expired(batch_size=10)
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
    assert (await cache.cleanup_expired()).total == 0
    with pytest.raises(ValidationError):
        await cache.cleanup_expired(batch_size=0)


async def test_cleanup_expired_stops_after_the_batch_when_asked(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    await cache.kv.set_many({f"old{i}": i for i in range(25)}, ttl=60)
    raw_conn.execute("UPDATE kv_cache SET expires_at = now() - interval '1 s'")
    polls: list[int] = []

    def stop_after_four_batches() -> bool:
        polls.append(1)
        return len(polls) >= 4

    # The three other caches take one (empty) batch each, then kv_cache: 10 rows, stop.
    report = await cache.cleanup_expired(batch_size=10, should_stop=stop_after_four_batches)
    assert report.batches == 4
    assert report.total == 10
    assert _count(raw_conn, "kv_cache") == 15
    assert (await cache.cleanup_expired(batch_size=10)).total == 15


async def test_stats_exact_after_flush(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    await cache.kv.set("a", "x" * 100)
    for _ in range(3):
        await cache.kv.get("a")
    await cache.kv.get("missing")
    assert await cache.kv.get_many(["a", "b", "c"]) == {"a": "x" * 100}
    await cache.set_embedding("t", [1.0, 2.0], model="m")
    await cache.get_embedding("t", model="m")
    await cache.get_embeddings(["t", "u"], model="m")
    await cache.get_search_results("q", index="i")
    await cache.set_llm_response("p", "r", model="m")
    await cache.get_llm_response("p", model="m")
    assert _count(raw_conn, "cache_stats") == 0  # nothing written on the read path
    await cache.flush_stats()
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
    stats = await cache.stats()
    assert (stats.kv.hits, stats.kv.misses, stats.kv.entries) == (4, 3, 1)
    assert stats.kv.hit_rate == pytest.approx(4 / 7)
    assert stats["kv"].bytes > 100
    assert (stats.embedding.entries, stats.embedding.bytes) == (1, 8 + 1)
    assert stats.vector_search.hit_rate == 0.0
    assert stats.llm_response.entries == 1
    assert set(stats.caches) == {"embedding", "vector_search", "llm_response", "kv"}
    await cache.kv.get("a")
    await cache.flush_stats()
    await cache.flush_stats()  # nothing pending: no double counting
    assert (await cache.stats()).kv.hits == 5


async def test_stats_flushed_on_interval_and_on_close(
    pg_url: str, raw_conn: psycopg.Connection
) -> None:
    db = AsyncDatabase(url=pg_url, pool_min_size=1, cache_stats_flush_interval=0.001)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    await asyncio.sleep(0.01)
    await factory.cache.kv.get("a")  # the interval has passed: this call flushes
    assert raw_conn.execute("SELECT misses FROM cache_stats").fetchall() == [(1,)]
    db2 = AsyncDatabase(url=pg_url, pool_min_size=1, cache_stats_flush_interval=3600)
    await db2.open()
    factory2 = AsyncRepositoryFactory(db2)
    await factory2.cache.kv.get("a")
    await factory2.cache.kv.get("a")
    assert raw_conn.execute("SELECT misses FROM cache_stats").fetchall() == [(1,)]
    await factory2.close()
    await factory.close()
    assert raw_conn.execute("SELECT misses FROM cache_stats").fetchall() == [(3,)]


async def test_caps_evict_oldest_first(pg_url: str, raw_conn: psycopg.Connection) -> None:
    db = AsyncDatabase(
        url=pg_url,
        pool_min_size=1,
        kv_cache_max_entries=5,
        embedding_cache_max_bytes=3 * (8 + 2),
        cache_cap_check_writes=1,
    )
    await db.open()
    factory = AsyncRepositoryFactory(db)
    kv = factory.cache.kv
    try:
        for i in range(8):
            await kv.set(f"k{i}", i)
        assert sorted((await kv.get_many([f"k{i}" for i in range(8)])).keys()) == [
            "k3",
            "k4",
            "k5",
            "k6",
            "k7",
        ]
        for i in range(5):  # 10 bytes each (2 float32 + a 2-character text)
            await factory.cache.set_embedding(f"t{i}", [1.0, 2.0], model="m")
        got = await factory.cache.get_embeddings([f"t{i}" for i in range(5)], model="m")
        assert [g is not None for g in got] == [False, False, True, True, True]
        assert await factory.cache.enforce_caps() == {"embedding": 0, "kv": 0}
    finally:
        await factory.close()
    assert _count(raw_conn, "kv_cache") == 5


async def test_caps_are_checked_every_n_writes(pg_url: str, raw_conn: psycopg.Connection) -> None:
    db = AsyncDatabase(
        url=pg_url, pool_min_size=1, kv_cache_max_entries=2, cache_cap_check_writes=4
    )
    await db.open()
    factory = AsyncRepositoryFactory(db)
    try:
        for i in range(3):
            await factory.cache.kv.set(f"k{i}", i)
        assert _count(raw_conn, "kv_cache") == 3  # not checked yet
        await factory.cache.kv.set("k3", 3)  # 4th write: checked
        assert _count(raw_conn, "kv_cache") == 2
        assert await factory.cache.kv.get_many(["k2", "k3"]) == {"k2": 2, "k3": 3}
    finally:
        await factory.close()


async def test_fail_open_reads_on_lock_timeout(
    pg_url: str, raw_conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    db = AsyncDatabase(url=pg_url, pool_min_size=1, lock_timeout_ms=100)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    cache = factory.cache
    await cache.kv.set("k", 1)
    await cache.set_embedding("t", [1.0], model="m")
    await cache.set_llm_response("p", "r", model="m")
    await cache.set_search_results("q", [], index="i")
    locker = psycopg.connect(pg_url)
    try:
        # Another transaction holds ACCESS EXCLUSIVE locks: every read waits, then times out.
        locker.execute(
            "LOCK TABLE kv_cache, embedding_cache, llm_response_cache, vector_search_cache "
            "IN ACCESS EXCLUSIVE MODE"
        )
        with caplog.at_level(logging.WARNING, logger="digitwin_db.cache"):
            assert await cache.kv.get("k", default="miss") == "miss"
            assert await cache.kv.get_many(["k"]) == {}
            assert await cache.get_embedding("t", model="m") is None
            assert await cache.get_embeddings(["t"], model="m") == [None]
            assert await cache.get_llm_response("p", model="m") is None
            assert await cache.get_search_results("q", index="i") is None
        assert sum("treated as a cache miss" in r.getMessage() for r in caplog.records) == 6
        with pytest.raises(TransientError):  # writes never fail silently
            await cache.kv.set("k", 2)
        with pytest.raises(TransientError):
            await cache.set_embedding("t", [2.0], model="m")
    finally:
        locker.rollback()
        locker.close()
    assert await cache.kv.get("k") == 1
    await factory.close()


async def test_fail_closed_when_disabled(pg_url: str) -> None:
    db = AsyncDatabase(url=pg_url, pool_min_size=1, lock_timeout_ms=100, cache_fail_open=False)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    locker = psycopg.connect(pg_url)
    try:
        locker.execute("LOCK TABLE kv_cache IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TransientError):
            await factory.cache.kv.get("k")
    finally:
        locker.rollback()
        locker.close()
        await factory.close()


async def test_fail_open_when_database_is_closed(pg_url: str) -> None:
    db = AsyncDatabase(url=pg_url, pool_min_size=1)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    await factory.cache.kv.set("k", 1)
    await db.close()
    assert await factory.cache.kv.get("k", default="miss") == "miss"
    assert await factory.cache.get_embedding("t", model="m") is None
    with pytest.raises(DatabaseUnavailableError):
        await factory.cache.kv.set("k", 2)
    with pytest.raises(DatabaseUnavailableError):
        await factory.cache.kv.get_or_set("k", lambda: 3)


async def test_health_check_covers_the_cache_tables(factory: AsyncRepositoryFactory) -> None:
    check = await factory.cache.check_health()
    assert check.ok, check.error
