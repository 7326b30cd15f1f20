"""Failing fast (digitwin_db.circuit): the breaker's states on a fake clock, then against a
real server that is stopped and started again — while it is down, calls after the first
fail without touching the pool; get_or_set waits at most once; the first call after the
server is back succeeds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from digitwin_db import Database, DatabaseUnavailableError, RepositoryFactory, migrations
from digitwin_db.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpenError
from digitwin_db.testing import EmbeddedPostgres, embedded_postgres


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_and_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, open_seconds=5, clock=clock)
    assert breaker.before_call() is False
    breaker.record_failure("connection refused")
    assert breaker.state == CLOSED
    breaker.record_failure("connection refused")
    assert breaker.state == OPEN
    for _ in range(3):
        with pytest.raises(CircuitOpenError, match="connection refused"):
            breaker.before_call()
    assert breaker.refused == 3
    # A success (a call already under way) closes it again.
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.before_call() is False


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5, clock=clock)
    breaker.record_failure("refused")
    clock.now += 4.9
    with pytest.raises(CircuitOpenError, match=r"next try in 0\.1s"):
        breaker.before_call()
    clock.now += 0.1
    assert breaker.state == HALF_OPEN
    assert breaker.before_call() is True  # the probe
    with pytest.raises(CircuitOpenError, match="probe is in flight"):
        breaker.before_call()
    breaker.record_failure("still refused")  # the probe failed: open for 5 s more
    assert breaker.state == OPEN
    clock.now += 5
    assert breaker.before_call() is True
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.before_call() is False


def test_a_probe_that_learnt_nothing_lets_the_next_caller_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=1, clock=clock)
    breaker.record_failure("refused")
    clock.now += 1
    assert breaker.before_call() is True
    breaker.release_probe()
    assert breaker.before_call() is True


def test_concurrent_callers_get_one_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=1, clock=clock)
    breaker.record_failure("refused")
    clock.now += 1
    probes: list[bool] = []
    refused: list[int] = []
    barrier = threading.Barrier(16)

    def call() -> None:
        barrier.wait()
        try:
            probes.append(breaker.before_call())
        except CircuitOpenError:
            refused.append(1)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert probes == [True] and len(refused) == 15


def test_zero_threshold_disables_it() -> None:
    breaker = CircuitBreaker(failure_threshold=0, open_seconds=1)
    for _ in range(5):
        breaker.record_failure("refused")
    assert breaker.before_call() is False


# ------------------------------------------------------------- against a real server
@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A server of its own: this test stops it."""
    with embedded_postgres() as server:
        migrations.migrate(server.url)
        yield server


def _pool_errors(db: Database) -> int:
    return int(db.pool_stats().get("requests_errors", 0))


def test_outage_fails_fast_and_recovers(own_server: EmbeddedPostgres) -> None:
    db = Database(
        url=own_server.url,
        pool_min_size=2,
        pool_timeout=1.0,
        connect_timeout=1.0,
        circuit_breaker_open_seconds=0.5,
        cache_fail_open=False,
    )
    db.open()
    factory = RepositoryFactory(db)
    try:
        factory.cache.kv.set("k", 1)
        own_server.halt("fast")
        # The first call meets the outage (waits for the pool, at most pool_timeout) ...
        with pytest.raises(DatabaseUnavailableError) as first:
            factory.users.count()
        assert not isinstance(first.value, CircuitOpenError)
        assert db.breaker.state == OPEN
        errors = _pool_errors(db)
        # ... the next ones are refused at once, without asking the pool.
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                factory.users.count()
        assert _pool_errors(db) == errors
        assert db.breaker.refused == 5
        # get_or_set waits at most once: after its lookup meets the outage, the locking
        # transaction is refused without a second wait.
        time.sleep(0.6)  # let the breaker half-open: the lookup is the probe
        loads: list[int] = []

        def loader() -> int:
            loads.append(1)
            return 2

        with pytest.raises(DatabaseUnavailableError):
            factory.cache.kv.get_or_set("other", loader)
        assert _pool_errors(db) == errors + 1
        # The server comes back: the first call after the open period succeeds.
        own_server.resume()
        time.sleep(0.6)
        assert factory.cache.kv.get("k") == 1
        assert db.breaker.state == CLOSED
        assert factory.users.count() == 0
    finally:
        factory.close()


def test_one_killed_connection_does_not_open_it(pg_url: str) -> None:
    """A backend killed during a call (pg_terminate_backend) says nothing about the server:
    the breaker stays closed and the next call succeeds."""
    import psycopg

    with Database(url=pg_url, pool_min_size=1, pool_max_size=1) as db:
        with pytest.raises(DatabaseUnavailableError), db.connection("test.killed") as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None

            def kill() -> None:
                time.sleep(0.3)
                with psycopg.connect(pg_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))

            killer = threading.Thread(target=kill)
            killer.start()
            try:
                conn.execute("SELECT pg_sleep(10)")  # killed under way
            finally:
                killer.join()
        assert db.breaker.state == CLOSED
        with db.connection("test.after") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
