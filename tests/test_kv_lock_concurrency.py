"""cache.lock and compare_and_set under real contention: 16 threads, 2 processes, asyncio
tasks. Every count is asserted exactly."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import Any

import pytest

from digitwin_db import Database, RepositoryFactory
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from tests.helpers import run_threads


@pytest.fixture
def factory(sync_factory: RepositoryFactory) -> RepositoryFactory:
    return sync_factory


def test_16_threads_trying_a_lock_at_once_give_exactly_one_holder(
    factory: RepositoryFactory,
) -> None:
    locks = [factory.cache.lock("job", ttl=30) for _ in range(16)]
    results = run_threads(16, lambda i: locks[i].acquire(blocking=False))
    assert results.count(True) == 1
    assert [lock.held for lock in locks] == results


def test_16_threads_under_the_lock_never_overlap(factory: RepositoryFactory) -> None:
    """A non-atomic read-modify-write of a kv value under the lock: 16 threads x 5
    rounds give exactly 80 only if no two holders ever overlapped."""
    kv = factory.cache.kv
    kv.set("counter", 0)
    inside = 0
    most_inside = 0
    guard = threading.Lock()

    def work(_: int) -> None:
        nonlocal inside, most_inside
        for _ in range(5):
            with factory.cache.lock("counter-lock", ttl=30, timeout=60):
                with guard:
                    inside += 1
                    most_inside = max(most_inside, inside)
                value = kv.get("counter")
                time.sleep(0.002)  # widen the window a race would need
                kv.set("counter", value + 1)
                with guard:
                    inside -= 1

    run_threads(16, work)
    assert kv.get("counter") == 80
    assert most_inside == 1


def _process_worker(url: str, rounds: int, start: Any, out: Any) -> None:
    db = Database(url=url, pool_min_size=1, pool_max_size=2, pool_timeout=30.0)
    db.open()
    try:
        factory = RepositoryFactory(db)
        kv = factory.cache.kv
        first = factory.cache.lock("race", ttl=30)
        start.wait()
        got_first = first.acquire(blocking=False)
        out.put(got_first)
        for _ in range(rounds):
            with factory.cache.lock("counter-lock", ttl=30, timeout=60):
                value = kv.get("counter")
                time.sleep(0.002)
                kv.set("counter", value + 1)
        factory.close()
    finally:
        db.close()


@pytest.mark.slow
def test_2_processes_share_the_lock_exactly(factory: RepositoryFactory, pg_url: str) -> None:
    factory.cache.kv.set("counter", 0)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(pg_url, 40, start, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    firsts = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    assert sorted(firsts) == [False, True]  # exactly one process took "race"
    assert factory.cache.kv.get("counter") == 80


def test_compare_and_set_has_exactly_one_winner_among_16_threads(
    factory: RepositoryFactory,
) -> None:
    kv = factory.cache.kv
    kv.set("version", 0)
    results = run_threads(16, lambda i: kv.compare_and_set("version", 0, i + 1))
    assert results.count(True) == 1
    assert kv.get("version") == results.index(True) + 1


def test_delete_if_has_exactly_one_winner_among_16_threads(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    kv.set("token", "t")
    results = run_threads(16, lambda _: kv.delete_if("token", "t"))
    assert results.count(True) == 1
    assert not kv.exists("token")


def test_compare_and_set_has_exactly_one_winner_among_asyncio_tasks(pg_url: str) -> None:
    async def main() -> list[bool]:
        db = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=16, pool_timeout=30.0)
        await db.open()
        try:
            factory = AsyncRepositoryFactory(db)
            kv = factory.cache.kv
            await kv.set("version", 0)
            results = list(
                await asyncio.gather(*(kv.compare_and_set("version", 0, i + 1) for i in range(16)))
            )
            assert await kv.get("version") == results.index(True) + 1
            lock_results = await asyncio.gather(
                *(factory.cache.lock("tasks", ttl=30).acquire(blocking=False) for _ in range(16))
            )
            assert lock_results.count(True) == 1
            await factory.close()
            return results
        finally:
            await db.close()

    assert asyncio.run(main()).count(True) == 1
