"""Connection affinity (``digitwin_db.affinity``): a thread or task keeps its connection
between one-statement calls, without losing the pool's limits, error handling or close().

Observed through public figures only: the backend pid a call runs on, ``pool_stats()``
(a parked connection is checked out of the pool, not available) and
``connections_in_use()`` (which does not count parked connections).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import digitwin_db as ddb
from digitwin_db import affinity
from digitwin_db._async.database import AsyncDatabase
from digitwin_db.errors import ValidationError
from tests.helpers import run_threads


@pytest.fixture
def sdb(pg_url: str) -> Iterator[ddb.Database]:
    database = ddb.Database(url=pg_url, pool_min_size=1, pool_max_size=4, pool_timeout=10)
    with database:
        yield database


def _pid(db: ddb.Database) -> int:
    with db.connection("test.pid") as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _available(db: ddb.Database) -> tuple[int, int]:
    stats = db.pool_stats()
    return stats["pool_size"], stats["pool_available"]


def test_a_thread_keeps_its_connection_between_calls(sdb: ddb.Database) -> None:
    pids = {_pid(sdb) for _ in range(10)}
    assert len(pids) == 1
    size, available = _available(sdb)
    assert available == size - 1  # parked for this thread, still checked out of the pool
    assert sdb.pool_stats()["connections_parked"] == 1
    assert sdb.connections_in_use() == 0  # ... but not in use
    # A nested call in the same thread gets another connection.
    with sdb.connection() as outer, sdb.connection() as inner:
        assert outer is not inner


def test_threads_beyond_the_pool_size_all_get_served(pg_url: str) -> None:
    # Two connections for six threads: parked connections must go back to the threads
    # waiting for one, or these calls would hit the pool timeout.
    database = ddb.Database(url=pg_url, pool_min_size=1, pool_max_size=2, pool_timeout=10)
    with database:
        pids = run_threads(6, lambda _: {_pid(database) for _ in range(100)})
        seen = set().union(*pids)
        assert len(seen) == 2
        assert database.pool_stats()["pool_size"] == 2


def test_a_failed_call_returns_its_connection(sdb: ddb.Database) -> None:
    _pid(sdb)
    size, available = _available(sdb)
    assert available == size - 1
    with pytest.raises(ValidationError), sdb.connection() as conn:
        conn.execute("SELECT 1/0")
    size, available = _available(sdb)
    assert available == size  # given back to the pool, not parked


def test_a_connection_left_in_a_transaction_is_not_parked(sdb: ddb.Database) -> None:
    with sdb.connection() as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT 1")
    size, available = _available(sdb)
    assert available == size  # the pool rolled it back
    with sdb.connection() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in%'")
        assert row.fetchone() == (0,)


def test_idle_parked_connections_go_back_to_the_pool(sdb: ddb.Database) -> None:
    done = threading.Event()

    def other() -> None:
        _pid(sdb)
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert done.is_set()
    _pid(sdb)
    size, available = _available(sdb)
    assert available == size - 2  # one parked per thread (the other thread has ended)
    time.sleep(affinity.IDLE_RETURN + affinity.SWEEP_INTERVAL)
    _pid(sdb)  # this call sweeps: both idle connections went back, then it parked one
    size, available = _available(sdb)
    assert available == size - 1


def test_a_thread_reuses_its_own_idle_connection(sdb: ddb.Database) -> None:
    # Idle past IDLE_RETURN, the caller's own parked connection is reused after the
    # liveness check: no pool checkout (requests_num counts them), same backend.
    pid = _pid(sdb)
    requests = sdb.pool_stats().get("requests_num", 0)
    time.sleep(affinity.IDLE_RETURN + affinity.SWEEP_INTERVAL)
    assert _pid(sdb) == pid
    assert sdb.pool_stats().get("requests_num", 0) == requests
    assert sdb.pool_stats()["connections_parked"] == 1


def test_an_idle_connection_whose_backend_died_is_replaced(sdb: ddb.Database, pg_url: str) -> None:
    pid = _pid(sdb)
    time.sleep(affinity.IDLE_RETURN)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        # With a timeout the call returns once the backend has exited (socket closed).
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
    new_pid = _pid(sdb)  # no error: the liveness check caught it, the pool gave another
    assert new_pid != pid
    assert _pid(sdb) == new_pid


@pytest.mark.slow
def test_a_connection_held_past_the_hold_limit_goes_back_to_the_pool(
    sdb: ddb.Database,
) -> None:
    _pid(sdb)
    requests = sdb.pool_stats().get("requests_num", 0)
    time.sleep(affinity.HOLD_LIMIT + 0.1)
    _pid(sdb)  # too long since its checkout: returned, and one checked out of the pool
    assert sdb.pool_stats().get("requests_num", 0) == requests + 1
    assert sdb.pool_stats()["connections_parked"] == 1


def test_close_takes_parked_connections_back(pg_url: str) -> None:
    database = ddb.Database(url=pg_url, pool_min_size=1, pool_max_size=4, pool_timeout=10)
    database.open()
    run_threads(3, lambda _: _pid(database))
    # (The pool may still be opening a connection it counts as in use: wait for it.)
    for _ in range(500):
        if database.connections_in_use() == 0:
            break
        time.sleep(0.01)
    assert database.connections_in_use() == 0
    assert database.pool_stats()["connections_parked"] >= 1
    assert database.pool_stats()["pool_available"] < database.pool_stats()["pool_size"]
    started = time.monotonic()
    database.close(timeout=30)
    assert time.monotonic() - started < 30  # not waited for as if in use
    assert not database.is_open


def test_close_still_waits_for_a_running_call(pg_url: str) -> None:
    database = ddb.Database(url=pg_url, pool_min_size=1, pool_max_size=4, pool_timeout=10)
    database.open()
    _pid(database)
    started = threading.Event()
    answer: list[Any] = []

    def slow() -> None:
        with database.connection() as conn:
            started.set()
            answer.append(conn.execute("SELECT pg_sleep(0.3), 5").fetchone())

    thread = threading.Thread(target=slow)
    thread.start()
    assert started.wait(10)
    database.close(timeout=30)
    thread.join()
    assert answer == [("", 5)]


async def test_tasks_of_one_loop_never_share_a_connection(pg_url: str) -> None:
    database = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=10, pool_timeout=10)
    in_use: set[int] = set()
    overlaps = 0

    async def work() -> None:
        nonlocal overlaps
        for _ in range(20):
            async with database.connection() as conn:
                if id(conn) in in_use:
                    overlaps += 1
                in_use.add(id(conn))
                await conn.execute("SELECT pg_sleep(0.001)")
                in_use.discard(id(conn))

    async with database:
        pids = set()
        for _ in range(5):  # one task alone: it keeps its connection
            async with database.connection() as conn:
                cur = await conn.execute("SELECT pg_backend_pid()")
                pids.add(await cur.fetchone())
        assert len(pids) == 1
        await asyncio.gather(*(work() for _ in range(8)))
        assert overlaps == 0
        assert database.connections_in_use() == 0
