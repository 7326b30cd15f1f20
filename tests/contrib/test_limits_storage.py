"""digitwin_db.contrib.limits beyond limits' own suite (scripts/peer_suites.sh runs that one):
registration, options, hostile keys, wrap_exceptions, rate_limit_on_error, the server's clock,
exactness under threads and tasks, pools closed with their event loop, cleanup."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from limits import RateLimitItemPerHour, RateLimitItemPerSecond, parse
from limits.aio import strategies as async_strategies
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from digitwin_db._sync.cleanup import CleanupJob
from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.contrib.limits import AsyncPostgresStorage, PostgresStorage
from digitwin_db.contrib.limits_rules import MAX_KEY_LENGTH
from digitwin_db.contrib.limits_shared import SharedDatabases
from digitwin_db.errors import (
    ConfigurationError,
    RateLimitUnavailableError,
    ValidationError,
)
from tests.contrib.helpers import closed_port_url

STRATEGIES: list[Any] = [
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
]
ASYNC_STRATEGIES = [
    async_strategies.FixedWindowRateLimiter,
    async_strategies.MovingWindowRateLimiter,
    async_strategies.SlidingWindowCounterRateLimiter,
]
TABLES = ("limits_counters", "limits_windows", "limits_sliding")


@pytest.fixture
def storage(pg_url: str) -> Iterator[PostgresStorage]:
    store = storage_from_string(pg_url)
    assert isinstance(store, PostgresStorage)
    yield store
    SharedDatabases.close_all()


def stored_rows(raw_conn: psycopg.Connection) -> dict[str, list[Any]]:
    return {
        table: raw_conn.execute(f"SELECT * FROM {table} ORDER BY key").fetchall()
        for table in TABLES
    }


def dead_url() -> str:
    """No server behind it; the password must never show in an error."""
    return closed_port_url("app:s3cret-pw")


def test_import_registers_both_schemes(pg_url: str) -> None:
    assert type(storage_from_string(pg_url)) is PostgresStorage
    assert type(storage_from_string("async+" + pg_url)) is AsyncPostgresStorage
    SharedDatabases.close_all()


def shared_database(store: Any) -> Database:
    database: Database = store._shared.get()
    return database


def test_storages_of_one_url_share_one_pool(pg_url: str) -> None:
    first = storage_from_string(pg_url)
    second = storage_from_string(pg_url)
    assert first.check() and second.check()
    assert shared_database(first) is shared_database(second)
    other = storage_from_string(pg_url, pool_min_size=1)
    assert other.check()
    assert shared_database(other) is not shared_database(first)
    SharedDatabases.close_all()


def test_unknown_or_invalid_options_are_configuration_errors(pg_url: str) -> None:
    with pytest.raises(ConfigurationError, match="pool_max_sise"):
        storage_from_string(pg_url, pool_max_sise=3)
    with pytest.raises(ConfigurationError, match="POOL_MAX_SIZE"):
        storage_from_string(pg_url, pool_max_size=0)
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_ON_ERROR"):
        storage_from_string(pg_url, rate_limit_on_error="sometimes")
    with pytest.raises(LimitsConfigurationError):
        storage_from_string("postgres+nope://x")


def test_given_database_is_used(pg_url: str, raw_conn: psycopg.Connection) -> None:
    with Database(url=pg_url, pool_min_size=1, pool_max_size=2) as db:
        store = PostgresStorage(pg_url, database=db)
        limiter = FixedWindowRateLimiter(store)
        assert limiter.hit(parse("1/hour"), "given")
        assert not limiter.hit(parse("1/hour"), "given")
        assert {s.operation for s in db.stats.snapshot()} >= {"limits.incr"}  # through db
    assert len(stored_rows(raw_conn)["limits_counters"]) == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_admits_exactly_the_limit(
    storage: PostgresStorage, strategy: type[Any]
) -> None:
    limiter = strategy(storage)
    item = parse("4/hour")
    assert [limiter.hit(item, "k") for _ in range(6)] == [True] * 4 + [False] * 2
    assert limiter.get_window_stats(item, "k").remaining == 0
    assert limiter.test(parse("4/hour"), "other")
    limiter.clear(item, "k")
    assert limiter.get_window_stats(item, "k").remaining == 4


@pytest.mark.parametrize("strategy", [MovingWindowRateLimiter, SlidingWindowCounterRateLimiter])
def test_a_denial_stores_nothing(
    storage: PostgresStorage, raw_conn: psycopg.Connection, strategy: type[Any]
) -> None:
    limiter = strategy(storage)
    item = parse("2/hour")
    assert limiter.hit(item, "k") and limiter.hit(item, "k")
    # (A fixed window counts every hit, denied or not, as limits' own storages do.)
    before = stored_rows(raw_conn)
    assert not limiter.hit(item, "k")
    assert not limiter.hit(item, "k", cost=2)
    assert stored_rows(raw_conn) == before


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exact_under_threads(storage: PostgresStorage, strategy: type[Any]) -> None:
    limiter = strategy(storage)
    item = parse("7/hour")
    threads, per_thread = 8, 5
    barrier = threading.Barrier(threads)
    admitted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            ok = limiter.hit(item, "shared")
            with lock:
                admitted.append(ok)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(admitted) == threads * per_thread
    assert admitted.count(True) == 7


@pytest.mark.parametrize("strategy", ASYNC_STRATEGIES)
async def test_exact_under_tasks(pg_url: str, strategy: type[Any]) -> None:
    limiter = strategy(storage_from_string("async+" + pg_url))
    item = parse("9/hour")
    results = await asyncio.gather(*[limiter.hit(item, "shared") for _ in range(60)])
    assert results.count(True) == 9


def test_costs_count(storage: PostgresStorage) -> None:
    # (Not the fixed window: limits counts a denied hit's cost there too.)
    for strategy in (MovingWindowRateLimiter, SlidingWindowCounterRateLimiter):
        limiter = strategy(storage)
        item = parse("10/hour")
        key = strategy.__name__
        assert limiter.hit(item, key, cost=7)
        assert not limiter.hit(item, key, cost=4)
        assert limiter.hit(item, key, cost=3)
        assert not limiter.hit(item, key)
        assert not limiter.hit(item, key + "-big", cost=11)


def test_windows_follow_the_servers_clock(
    storage: PostgresStorage, raw_conn: psycopg.Connection
) -> None:
    item = RateLimitItemPerHour(2)
    storage.incr(item.key_for("clock"), item.get_expiry())
    row = raw_conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()
    assert row is not None
    server_now = row[0]
    assert storage.get_expiry(item.key_for("clock")) == pytest.approx(server_now + 3600, abs=2)
    assert storage.acquire_entry("mw", 5, 60)
    start, count = storage.get_moving_window("mw", 5, 60)
    assert count == 1 and start == pytest.approx(server_now, abs=2)
    # A moving window frees its slots as the server's time passes.
    second = RateLimitItemPerSecond(1)
    limiter = MovingWindowRateLimiter(storage)
    assert limiter.hit(second, "tick") and not limiter.hit(second, "tick")
    time.sleep(1.05)
    assert limiter.hit(second, "tick")


HOSTILE_KEYS = ["", "x" * (MAX_KEY_LENGTH + 1), "a\x00b", "\ud800", b"key", 7, None]


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=repr)
def test_hostile_keys_are_validation_errors_and_change_nothing(
    storage: PostgresStorage, raw_conn: psycopg.Connection, key: Any
) -> None:
    storage.incr("kept", 60)
    storage.acquire_entry("kept", 5, 60)
    storage.acquire_sliding_window_entry("kept", 5, 60)
    before = stored_rows(raw_conn)
    calls = [
        lambda: storage.incr(key, 60),
        lambda: storage.get(key),
        lambda: storage.get_expiry(key),
        lambda: storage.acquire_entry(key, 5, 60),
        lambda: storage.get_moving_window(key, 5, 60),
        lambda: storage.acquire_sliding_window_entry(key, 5, 60),
        lambda: storage.get_sliding_window(key, 60),
        lambda: storage.clear_sliding_window(key, 60),
        lambda: storage.clear(key),
    ]
    for call in calls:
        with pytest.raises(ValidationError):
            call()
    assert stored_rows(raw_conn) == before


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("incr", ("k", 0)),
        ("incr", ("k", float("nan"))),
        ("incr", ("k", 60, -1)),
        ("incr", ("k", 60, 1.5)),
        ("acquire_entry", ("k", -1, 60)),
        ("acquire_entry", ("k", 5, float("inf"))),
        ("acquire_sliding_window_entry", ("k", 5, 60, True)),
        ("get_sliding_window", ("k", -60)),
    ],
)
def test_bad_numbers_are_validation_errors(
    storage: PostgresStorage, raw_conn: psycopg.Connection, call: str, args: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError):
        getattr(storage, call)(*args)
    assert stored_rows(raw_conn) == {table: [] for table in TABLES}


def test_longest_key_is_accepted(storage: PostgresStorage) -> None:
    key = "k" * MAX_KEY_LENGTH
    assert storage.incr(key, 60) == 1
    assert storage.acquire_entry(key, 1, 60)
    assert storage.acquire_sliding_window_entry(key, 1, 60)


def test_wrap_exceptions_gives_limits_storage_errors(pg_url: str) -> None:
    wrapped = storage_from_string(pg_url, wrap_exceptions=True)
    with pytest.raises(StorageError) as caught:
        wrapped.incr("", 60)
    assert isinstance(caught.value.storage_error, ValidationError)
    SharedDatabases.close_all()


@pytest.mark.parametrize("wrap", [False, True])
def test_server_gone_with_raise(wrap: bool) -> None:
    store = storage_from_string(dead_url(), wrap_exceptions=wrap, connect_timeout=1)
    error = StorageError if wrap else RateLimitUnavailableError
    for strategy in STRATEGIES:
        with pytest.raises(error) as caught:
            strategy(store).hit(parse("5/minute"), "k")
        assert "s3cret-pw" not in str(caught.value)
    assert store.check() is False


@pytest.mark.parametrize("policy", ["allow", "deny"])
def test_server_gone_with_allow_or_deny(policy: str) -> None:
    store = storage_from_string(dead_url(), rate_limit_on_error=policy, connect_timeout=1)
    for strategy in STRATEGIES:
        limiter = strategy(store)
        item = parse("5/minute")
        assert limiter.hit(item, "k") is (policy == "allow")
        assert limiter.test(item, "k") is (policy == "allow")
        assert limiter.get_window_stats(item, "k").remaining == (5 if policy == "allow" else 0)


def test_server_gone_async_follows_the_policy() -> None:
    async def run(policy: str) -> bool:
        store = storage_from_string(
            "async+" + dead_url(), rate_limit_on_error=policy, connect_timeout=1
        )
        return bool(
            await async_strategies.MovingWindowRateLimiter(store).hit(parse("5/minute"), "k")
        )

    assert asyncio.run(run("allow")) is True
    assert asyncio.run(run("deny")) is False
    with pytest.raises(RateLimitUnavailableError):
        asyncio.run(run("raise"))


def test_async_pools_close_with_their_event_loop(pg_url: str, raw_conn: psycopg.Connection) -> None:
    def connections() -> int:
        row = raw_conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
        assert row is not None
        return int(row[0])

    baseline = connections()

    async def burst() -> int:
        limiter = async_strategies.FixedWindowRateLimiter(storage_from_string("async+" + pg_url))
        results = await asyncio.gather(*[limiter.hit(parse("3/hour"), "loop") for _ in range(30)])
        return results.count(True)

    admitted = [asyncio.run(burst()) for _ in range(5)]
    assert admitted == [3, 0, 0, 0, 0]
    deadline = time.monotonic() + 5
    while connections() != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections() == baseline


def test_reset_and_cleanup_expired(storage: PostgresStorage, raw_conn: psycopg.Connection) -> None:
    storage.incr("live", 3600)
    storage.incr("short", 1)
    storage.acquire_entry("short-mw", 5, 1)
    storage.acquire_sliding_window_entry("short-sw", 5, 1)
    time.sleep(2.1)  # the sliding window row lives two windows
    assert storage.cleanup_expired() == 3
    assert [r[0] for r in stored_rows(raw_conn)["limits_counters"]] == ["live"]
    assert storage.cleanup_expired() == 0
    storage.acquire_entry("mw", 5, 60)
    assert storage.reset() == 2
    assert stored_rows(raw_conn) == {table: [] for table in TABLES}


def test_cleanup_job_removes_expired_windows(
    pg_url: str, storage: PostgresStorage, raw_conn: psycopg.Connection
) -> None:
    for i in range(7):
        storage.incr(f"gone-{i}", 1)
    storage.acquire_entry("gone-mw", 5, 1)
    storage.acquire_sliding_window_entry("gone-sw", 5, 1)
    storage.incr("live", 3600)
    time.sleep(2.1)
    with Database(url=pg_url, pool_min_size=1, pool_max_size=2) as db:
        report = CleanupJob(RepositoryFactory(db), batch_size=2).run_once()
    assert report.removed["limits_storage"] == 9
    assert not report.errors
    assert [r[0] for r in stored_rows(raw_conn)["limits_counters"]] == ["live"]
    assert stored_rows(raw_conn)["limits_windows"] == []
    assert stored_rows(raw_conn)["limits_sliding"] == []
