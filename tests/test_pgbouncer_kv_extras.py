"""The issue-14 kv/cache API behind a real PgBouncer in transaction mode (prepared statements
off), where consecutive transactions of one client may run on different server connections:
cache.lock (owner-token row), compare_and_set, keys() paging, incr with a TTL, the LLM
single-flight helper and @cached. Counts are asserted exactly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import digitwin_db as ddb
from digitwin_db.testing import EmbeddedPostgres, PgBouncer, embedded_pgbouncer
from tests.helpers import run_threads


@pytest.fixture(scope="module")
def bouncer(pg_server: EmbeddedPostgres) -> Iterator[PgBouncer]:
    with embedded_pgbouncer(pg_server, pool_mode="transaction") as b:
        yield b


@pytest.fixture
def factory(bouncer: PgBouncer, pg_url: str) -> Iterator[ddb.RepositoryFactory]:
    db = ddb.Database(url=bouncer.url, prepare_threshold=None, pool_max_size=40, pool_timeout=60)
    with db:
        repositories = ddb.RepositoryFactory(db)
        yield repositories
        repositories.close()


def test_lock_has_one_holder_and_serialises_16_threads(factory: ddb.RepositoryFactory) -> None:
    locks = [factory.cache.lock("job", ttl=30) for _ in range(16)]
    taken = run_threads(16, lambda i: locks[i].acquire(blocking=False))
    assert taken.count(True) == 1
    locks[taken.index(True)].release()
    kv = factory.cache.kv
    kv.set("counter", 0)

    def work(_: int) -> None:
        for _ in range(3):
            with factory.cache.lock("counter-lock", ttl=30, timeout=60):
                value = kv.get("counter")
                time.sleep(0.002)
                kv.set("counter", value + 1)

    run_threads(16, work)
    assert kv.get("counter") == 48


def test_compare_and_set_has_one_winner_and_keys_page(factory: ddb.RepositoryFactory) -> None:
    kv = factory.cache.kv
    kv.set("version", 0)
    won = run_threads(16, lambda i: kv.compare_and_set("version", 0, i + 1))
    assert won.count(True) == 1
    assert kv.get("version") == won.index(True) + 1
    kv.set_many({f"k:{i}": i for i in range(10)})
    assert sorted(kv.keys("k:", page_size=3)) == sorted(f"k:{i}" for i in range(10))
    assert kv.incr("window", ttl=60) == 1
    ttl = kv.ttl("window")
    assert ttl is not None and 59 < ttl <= 60
    assert kv.delete_if("k:1", 1)
    assert not kv.exists("k:1")


def test_llm_single_flight_and_cached(factory: ddb.RepositoryFactory) -> None:
    calls: list[str] = []
    guard = threading.Lock()

    def ask(i: int) -> str:
        prompt = f"prompt {i % 3}"

        def generate() -> str:
            with guard:
                calls.append(prompt)
            time.sleep(0.2)
            return f"answer {i % 3}"

        return factory.cache.get_or_set_llm_response(prompt, generate, model="m").response

    answers = run_threads(20, ask)
    assert sorted(calls) == ["prompt 0", "prompt 1", "prompt 2"]
    assert answers == [f"answer {i % 3}" for i in range(20)]

    runs: list[int] = []

    @ddb.cached(serializer="pickle", factory=factory)
    def pair(x: int) -> tuple[int, set[int]]:
        with guard:
            runs.append(x)
        time.sleep(0.2)
        return x, {x}

    assert run_threads(8, lambda _: pair(4)) == [(4, {4})] * 8
    assert runs == [4]
