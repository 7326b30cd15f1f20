"""Prometheus metrics of a repository factory (extra ``prometheus``)::

    from prometheus_client import REGISTRY
    from digitwin_db.contrib.prometheus import DigitwinDBCollector
    REGISTRY.register(DigitwinDBCollector(factory))

Exposes, on every scrape:

* ``digitwin_db_calls_total{operation}``, ``digitwin_db_call_failures_total{operation}`` and
  ``digitwin_db_call_latency_ms{operation,stat}`` (min, avg, p95, max) — the per-operation
  statistics of ``factory.stats()`` (in memory, this process);
* ``digitwin_db_pool{stat}`` — psycopg_pool's counters (pool_size, pool_available,
  requests_waiting…);
* ``digitwin_db_cache_<field>{cache}`` — every number of ``cache.stats()`` per cache (hits,
  misses, hit_rate, entries, bytes, and the near-cache counters where the near cache is
  on). ``cache.stats()`` counts live rows in the database, so it is refreshed at most every
  ``cache_stats_interval`` seconds (sync factories, on scrape); with an asyncio factory call
  ``await collector.refresh_cache_stats()`` from your service (or pass the
  ``CacheStats`` to :meth:`set_cache_stats`), and the scrape reports the last one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import ConfigurationError, DigitwinDBError
from digitwin_db.models.cache import CacheStats

__all__ = ["DigitwinDBCollector"]

logger = logging.getLogger("digitwin_db.contrib.prometheus")

_LATENCIES = ("min_ms", "avg_ms", "p95_ms", "max_ms")


class DigitwinDBCollector(Collector):
    """A ``prometheus_client`` collector over a sync or asyncio repository factory."""

    def __init__(
        self,
        factory: RepositoryFactory | AsyncRepositoryFactory,
        *,
        cache_stats_interval: float = 30.0,
        prefix: str = "digitwin_db",
    ) -> None:
        if not isinstance(factory, RepositoryFactory | AsyncRepositoryFactory):
            raise ConfigurationError(
                "factory must be a RepositoryFactory or AsyncRepositoryFactory"
            )
        self._factory = factory
        self._interval = float(cache_stats_interval)
        self._prefix = prefix
        self._cache_stats: CacheStats | None = None
        self._cache_stats_at = -float("inf")
        self._lock = threading.Lock()

    def set_cache_stats(self, stats: CacheStats) -> None:
        """Report ``stats`` (a ``cache.stats()`` result) from now on."""
        with self._lock:
            self._cache_stats = stats
            self._cache_stats_at = time.monotonic()

    async def refresh_cache_stats(self) -> None:
        """Read ``cache.stats()`` of an asyncio factory now (awaitable)."""
        if not isinstance(self._factory, AsyncRepositoryFactory):
            raise ConfigurationError("refresh_cache_stats() is for asyncio factories")
        self.set_cache_stats(await self._factory.cache.stats())

    def _current_cache_stats(self) -> CacheStats | None:
        factory = self._factory
        due = time.monotonic() - self._cache_stats_at >= self._interval
        if due and isinstance(factory, RepositoryFactory):
            try:
                self.set_cache_stats(factory.cache.stats())
            except DigitwinDBError as exc:  # a scrape must not fail with the database
                logger.warning("cache statistics not refreshed: %s", exc)
        with self._lock:
            return self._cache_stats

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        calls = CounterMetricFamily(f"{p}_calls", "Calls per operation", labels=["operation"])
        failures = CounterMetricFamily(
            f"{p}_call_failures", "Failed calls per operation", labels=["operation"]
        )
        latency = GaugeMetricFamily(
            f"{p}_call_latency_ms",
            "Call latency per operation (ms): min, avg, p95 of recent calls, max",
            labels=["operation", "stat"],
        )
        for op in self._factory.stats():
            calls.add_metric([op.operation], op.calls)
            failures.add_metric([op.operation], op.failures)
            for stat in _LATENCIES:
                latency.add_metric([op.operation, stat.removesuffix("_ms")], getattr(op, stat))
        yield calls
        yield failures
        yield latency
        pool = GaugeMetricFamily(f"{p}_pool", "Connection pool counters", labels=["stat"])
        for name, value in sorted(self._factory.db.pool_stats().items()):
            pool.add_metric([name], value)
        yield pool
        stats = self._current_cache_stats()
        if stats is None:
            return
        families: dict[str, GaugeMetricFamily] = {}
        for name, counts in stats.caches.items():
            for field, value in counts.model_dump().items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                family = families.get(field)
                if family is None:
                    family = families[field] = GaugeMetricFamily(
                        f"{p}_cache_{field}", f"cache.stats() {field} per cache", labels=["cache"]
                    )
                family.add_metric([name], value)
        yield from families.values()
