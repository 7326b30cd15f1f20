"""RepositoryFactory.instance() under real thread concurrency (sync API only)."""

from __future__ import annotations

import threading

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
