"""Concurrency of the cache with real threads (sync API): atomic counters, stampede
protection, concurrent cleaners, exact statistics."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from digitwin_db import RepositoryFactory, ValidationError
from tests.helpers import run_threads


@pytest.fixture
def factory(sync_factory: RepositoryFactory) -> RepositoryFactory:
    return sync_factory


def test_32_threads_incr_100_times_gives_3200(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv

    def work(_: int) -> list[int]:
        return [kv.incr("counter") for _ in range(100)]

    results = run_threads(32, work)
    assert kv.get("counter") == 3200
    seen = sorted(v for r in results for v in r)
    assert seen == list(range(1, 3201))  # every increment saw a distinct value


def test_16_concurrent_get_or_set_run_the_loader_once(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    calls: list[int] = []
    lock = threading.Lock()

    def loader() -> dict[str, str]:
        with lock:
            calls.append(1)
        time.sleep(0.3)  # a slow computation: every other caller misses meanwhile
        return {"computed": "once"}

    results = run_threads(16, lambda _: kv.get_or_set("hot", loader, ttl=60))
    assert len(calls) == 1
    assert results == [{"computed": "once"}] * 16
    assert kv.get("hot") == {"computed": "once"}


def test_get_or_set_waiters_load_themselves_after_lock_timeout(
    factory: RepositoryFactory,
) -> None:
    kv = factory.cache.kv
    calls: list[int] = []
    lock = threading.Lock()

    def slow_loader() -> int:
        with lock:
            calls.append(1)
            n = len(calls)
        time.sleep(1.0)
        return n

    results = run_threads(2, lambda _: kv.get_or_set("slow", slow_loader, lock_timeout=0.2))
    # The waiter gave up after 0.2 s and loaded the value itself: nothing was dropped.
    assert len(calls) == 2
    assert sorted(results) == [1, 2]


def test_two_concurrent_cleaners_delete_every_expired_row_once(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    raw_conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size, expires_at) "
        "SELECT g, 'default', 'k' || g, '1', 1, "
        "CASE WHEN g % 10 = 0 THEN now() + interval '1 hour' "
        "ELSE now() - interval '1 second' END FROM generate_series(1, 20000) AS g"
    )
    raw_conn.execute(
        "INSERT INTO embedding_cache "
        "(key_hash, model, text, dimensions, embedding, byte_size, expires_at) "
        "SELECT g, 'm', 't' || g, 1, '\\x0000803f'::bytea, 5, now() - interval '1 second' "
        "FROM generate_series(1, 3000) AS g"
    )
    expired_kv, live_kv = 18000, 2000

    reports = run_threads(2, lambda _: cache.cleanup_expired(batch_size=500))
    assert sum(r.removed["kv_cache"] for r in reports) == expired_kv
    assert sum(r.removed["embedding_cache"] for r in reports) == 3000
    row = raw_conn.execute(
        "SELECT count(*) FILTER (WHERE expires_at <= now()), count(*) FROM kv_cache"
    ).fetchone()
    assert row == (0, live_kv)
    assert raw_conn.execute("SELECT count(*) FROM embedding_cache").fetchone() == (0,)


def test_statistics_from_many_threads_are_exact_after_flush(
    factory: RepositoryFactory,
) -> None:
    cache = factory.cache
    cache.kv.set("present", 1)
    cache.set_llm_response("p", "r", model="m")

    def work(i: int) -> None:
        for _ in range(50):
            cache.kv.get("present")
            cache.kv.get(f"absent-{i}")
            cache.get_llm_response("p", model="m")

    run_threads(8, work)
    cache.flush_stats()
    stats = cache.stats()
    assert (stats.kv.hits, stats.kv.misses) == (400, 400)
    assert stats.llm_response.hits == 400
    hit = cache.get_llm_response("p", model="m")
    assert hit is not None and hit.hit_count == 401


def test_sync_get_or_set_refuses_an_async_loader(factory: RepositoryFactory) -> None:
    async def loader() -> int:
        return 1

    with pytest.raises(ValidationError, match="asyncio API"):
        factory.cache.kv.get_or_set("k", loader)
    assert factory.cache.kv.get("k") is None
