"""RepositoryFactory.instance() under real thread concurrency (sync API only)."""

from __future__ import annotations

import threading

import pytest

import digitwin_db as ddb


def test_sixteen_threads_get_one_factory(pg_url: str, monkeypatch) -> None:
    ddb.RepositoryFactory.reset()
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("POOL_MIN_SIZE", "1")
    barrier = threading.Barrier(16)
    seen: list[ddb.RepositoryFactory] = []
    lock = threading.Lock()

    def grab() -> None:
        barrier.wait()
        factory = ddb.RepositoryFactory.instance()
        with lock:
            seen.append(factory)

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(seen) == 16
        assert len({id(f) for f in seen}) == 1
        assert seen[0].db.is_open
        assert seen[0].health().ok
    finally:
        ddb.RepositoryFactory.reset()


def test_close_waits_for_checked_out_connections(pg_url: str) -> None:
    """close() refuses new work at once but lets a running call finish (up to the timeout)."""
    database = ddb.Database(url=pg_url, pool_min_size=1, pool_max_size=2)
    database.open()
    started = threading.Event()
    finished: list[int] = []

    def long_call() -> None:
        with database.connection("probe.long") as conn:
            started.set()
            cur = conn.execute("SELECT 5 FROM pg_sleep(0.3)")
            row = cur.fetchone()
            assert row is not None
            finished.append(row[0])

    worker = threading.Thread(target=long_call)
    worker.start()
    assert started.wait(5)
    database.close(timeout=5)
    worker.join()
    assert finished == [5]  # the checked-out connection was not pulled from under the call
    with pytest.raises(ddb.DatabaseUnavailableError, match="not open"), database.connection():
        pass
