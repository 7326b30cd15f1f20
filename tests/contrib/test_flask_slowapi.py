"""End to end: Flask + Flask-Limiter and FastAPI + slowapi with ``storage_uri="postgresql://…"``
(digitwin_db.contrib.limits), for each of limits' strategies: the N+1-th request in the window
gets 429, and from several threads or from two processes exactly N requests pass."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.contrib import apps

STRATEGIES = ["fixed-window", "moving-window", "sliding-window-counter"]
FRAMEWORKS: dict[str, Callable[..., list[int]]] = {
    "flask": apps.flask_statuses,
    "slowapi": apps.slowapi_statuses,
}
#: The limit of every app: N = 5 requests per hour, so no window ends during a test.
N = 5
LIMIT = f"{N}/hour"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_flask_limiter_n_plus_first_request_is_429(pg_url: str, strategy: str) -> None:
    client = apps.flask_app(pg_url, LIMIT, strategy).test_client()
    admitted = [client.get("/ping") for _ in range(N)]
    assert [r.status_code for r in admitted] == [200] * N
    assert admitted[-1].headers["X-RateLimit-Remaining"] == "0"
    denied = client.get("/ping")
    assert denied.status_code == 429
    assert int(denied.headers["Retry-After"]) > 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_slowapi_n_plus_first_request_is_429(pg_url: str, strategy: str) -> None:
    with TestClient(apps.slowapi_app(pg_url, LIMIT, strategy)) as client:
        assert [client.get("/ping").status_code for _ in range(N)] == [200] * N
        denied = client.get("/ping")
        assert denied.status_code == 429
        assert "Rate limit exceeded" in denied.text


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_from_eight_threads_exactly_n_pass(pg_url: str, framework: str, strategy: str) -> None:
    threads, per_thread = 8, 4
    start_at = time.time() + 1.0
    barrier = threading.Barrier(threads)

    def worker(_: int) -> list[int]:
        barrier.wait()
        return FRAMEWORKS[framework](pg_url, LIMIT, strategy, per_thread, start_at)

    with ThreadPoolExecutor(threads) as pool:
        statuses = [s for batch in pool.map(worker, range(threads)) for s in batch]
    assert len(statuses) == threads * per_thread
    assert statuses.count(200) == N
    assert statuses.count(429) == threads * per_thread - N


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
def test_from_two_processes_exactly_n_pass(pg_url: str, framework: str, strategy: str) -> None:
    processes, per_process = 2, 10
    # Spawned interpreters import the apps first; they start sending at the same moment.
    start_at = time.time() + 4.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        batches = pool.starmap(
            FRAMEWORKS[framework],
            [(pg_url, LIMIT, strategy, per_process, start_at)] * processes,
        )
    statuses = [s for batch in batches for s in batch]
    assert len(statuses) == processes * per_process
    assert statuses.count(200) == N
    assert statuses.count(429) == processes * per_process - N
