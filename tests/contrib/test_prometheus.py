"""digitwin_db.contrib.prometheus: the collector's figures equal the factory's, exactly."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from digitwin_db import ConfigurationError, RepositoryFactory
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from digitwin_db.contrib.prometheus import DigitwinDBCollector


@pytest.fixture
def factory(sync_factory: RepositoryFactory) -> RepositoryFactory:
    return sync_factory


def test_collector_exports_calls_pool_and_cache_stats(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    for i in range(3):
        kv.set(f"k{i}", i)
    assert kv.get("k1") == 1
    assert kv.get("k2") == 2
    assert kv.get("absent") is None
    registry = CollectorRegistry()
    collector = DigitwinDBCollector(factory, cache_stats_interval=3600)
    registry.register(collector)
    value = registry.get_sample_value
    assert value("digitwin_db_calls_total", {"operation": "cache.kv.set"}) == 3
    assert value("digitwin_db_call_failures_total", {"operation": "cache.kv.set"}) == 0
    max_ms = value("digitwin_db_call_latency_ms", {"operation": "cache.kv.get", "stat": "max"})
    assert max_ms is not None and max_ms > 0
    assert value("digitwin_db_pool", {"stat": "pool_max"}) == 40
    assert value("digitwin_db_cache_hits", {"cache": "kv"}) == 2
    assert value("digitwin_db_cache_misses", {"cache": "kv"}) == 1
    assert value("digitwin_db_cache_entries", {"cache": "kv"}) == 3
    assert value("digitwin_db_cache_hit_rate", {"cache": "kv"}) == pytest.approx(2 / 3)
    # Cache statistics are refreshed at most every interval: the next hit shows later.
    assert kv.get("k0") == 0
    assert value("digitwin_db_cache_hits", {"cache": "kv"}) == 2
    collector.set_cache_stats(factory.cache.stats())
    assert value("digitwin_db_cache_hits", {"cache": "kv"}) == 3
    assert b"digitwin_db_calls_total" in generate_latest(registry)


def test_collector_over_an_asyncio_factory(pg_url: str) -> None:
    async def main() -> None:
        db = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=3, pool_timeout=10.0)
        await db.open()
        try:
            factory = AsyncRepositoryFactory(db)
            await factory.cache.kv.set("a", 1)
            registry = CollectorRegistry()
            collector = DigitwinDBCollector(factory)
            registry.register(collector)
            value = registry.get_sample_value
            assert value("digitwin_db_calls_total", {"operation": "cache.kv.set"}) == 1
            assert value("digitwin_db_cache_entries", {"cache": "kv"}) is None  # not yet read
            await collector.refresh_cache_stats()
            assert value("digitwin_db_cache_entries", {"cache": "kv"}) == 1
            await factory.close()
        finally:
            await db.close()

    asyncio.run(main())


def test_collector_refuses_what_is_not_a_factory(factory: RepositoryFactory) -> None:
    with pytest.raises(ConfigurationError):
        DigitwinDBCollector(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        asyncio.run(DigitwinDBCollector(factory).refresh_cache_stats())
