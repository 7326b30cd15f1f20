"""Code that runs in the benchmark's child processes (started through ``forkserver``).

Each child builds its own clients (pools, connections) — nothing is inherited — waits on a
barrier so that all of them start together, and sends its raw figures back on a queue.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

# Imported by the forkserver once, so that every child starts with them loaded.
PRELOAD = ["bench.workers", "bench.baselines", "digitwin_db", "psycopg", "psycopg_pool"]
OPTIONAL_PRELOAD = ["redis", "limits", "limits.storage", "limits.strategies"]


def mp_context() -> Any:
    """The ``forkserver`` context, its server preloaded with the heavy imports."""
    import importlib.util
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    optional = [m for m in OPTIONAL_PRELOAD if importlib.util.find_spec(m.split(".")[0])]
    ctx.set_forkserver_preload(PRELOAD + optional)
    return ctx


RL_CAPACITY = 1000
RL_REFILL = 1000.0


def make_rate_limit_op(
    kind: str, pg_url: str, redis_url: str | None
) -> tuple[Callable[[str, str], object], Callable[[], None]]:
    """(check(user, endpoint), close) for one rate-limit contender."""
    if kind == "digitwin":
        import digitwin_db

        db = digitwin_db.Database(url=pg_url, pool_min_size=1, pool_max_size=2)
        db.open()
        factory = digitwin_db.RepositoryFactory(db)
        rl = factory.rate_limits

        def check(user: str, endpoint: str) -> object:
            return rl.check_and_consume(user, endpoint, capacity=RL_CAPACITY, refill_rate=RL_REFILL)

        return check, factory.close
    if kind in ("bare", "bare_unlogged"):
        from bench.baselines import BARE_RATE_LIMIT, BARE_RATE_LIMIT_UNLOGGED, bare_connection

        conn = bare_connection(pg_url)
        statement = BARE_RATE_LIMIT if kind == "bare" else BARE_RATE_LIMIT_UNLOGGED

        def check_bare(user: str, endpoint: str) -> object:
            params = {
                "user": user,
                "endpoint": endpoint,
                "capacity": float(RL_CAPACITY),
                "rate": RL_REFILL,
            }
            return conn.execute(statement, params, prepare=True).fetchone()

        return check_bare, conn.close
    if kind == "limits":
        from limits import RateLimitItemPerSecond
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        assert redis_url is not None
        storage = storage_from_string(redis_url)
        limiter = MovingWindowRateLimiter(storage)
        item = RateLimitItemPerSecond(RL_CAPACITY)

        def check_limits(user: str, endpoint: str) -> object:
            return limiter.hit(item, user, endpoint)

        return check_limits, lambda: None
    raise ValueError(f"unknown rate-limit contender {kind!r}")


def rate_limit_worker(
    kind: str,
    pg_url: str,
    redis_url: str | None,
    buckets: int,
    duration: float,
    barrier: Any,
    queue: Any,
    seed: int,
) -> None:
    """Check as fast as possible for ``duration`` seconds over ``buckets`` buckets."""
    endpoints = [f"/api/endpoint/{i}" for i in range(buckets)]
    user = "00000000-0000-4000-8000-000000000001"
    try:
        check, close = make_rate_limit_op(kind, pg_url, redis_url)
        check(user, endpoints[0])  # connect and prepare before the clock starts
    except Exception as exc:
        barrier.abort()
        queue.put(f"{type(exc).__name__}: {exc}")
        raise
    rng = random.Random(seed)
    barrier.wait(timeout=120)
    clock = time.perf_counter_ns
    latencies: list[int] = []
    deadline = clock() + int(duration * 1e9)
    begin = clock()
    now = begin
    try:
        while now < deadline:
            endpoint = endpoints[rng.randrange(buckets)] if buckets > 1 else endpoints[0]
            t0 = clock()
            check(user, endpoint)
            now = clock()
            latencies.append(now - t0)
    except Exception as exc:
        queue.put(f"{type(exc).__name__}: {exc}")
        raise
    queue.put((len(latencies), now - begin, latencies))
    close()


def reader_worker(
    pg_url: str,
    keys: list[str],
    rate: float,
    phase: Any,
    barrier: Any,
    queue: Any,
    seed: int,
) -> None:
    """``kv.get`` live keys at ``rate`` calls/s until ``phase`` turns 3.

    Latencies are filed under the phase current at the call: 1 = before the purge,
    2 = during it.
    """
    import digitwin_db

    try:
        db = digitwin_db.Database(url=pg_url, pool_min_size=1, pool_max_size=2)
        db.open()
        factory = digitwin_db.RepositoryFactory(db)
        kv = factory.cache.kv
        kv.get(keys[0])
    except Exception as exc:
        barrier.abort()
        queue.put(f"{type(exc).__name__}: {exc}")
        raise
    rng = random.Random(seed)
    by_phase: dict[int, list[int]] = {1: [], 2: []}
    misses = 0
    barrier.wait(timeout=120)
    clock = time.perf_counter_ns
    interval = int(1e9 / rate)
    next_at = clock()
    while True:
        current = phase.value
        if current >= 3:
            break
        t0 = clock()
        if kv.get(keys[rng.randrange(len(keys))]) is None:
            misses += 1
        t1 = clock()
        if current in by_phase:
            by_phase[current].append(t1 - t0)
        next_at += interval
        pause = next_at - clock()
        if pause > 0:
            time.sleep(pause / 1e9)
        else:
            next_at = clock()  # fell behind: do not burst to catch up
    queue.put((by_phase[1], by_phase[2], misses))
    factory.close()
