"""``limits`` on digitwin-db (``postgresql://``, digitwin_db.contrib.limits) beside ``limits``
on Redis (``redis://``), the same strategy objects and limit, side by side in one run.

Two scenarios: one client (calls in turn, 100 keys) and 8 threads of one process sharing
one storage (as a threaded Flask/slowapi worker does), all hitting for the same time.
The subject is the moving window (the strategy Redis is usually chosen for); the fixed
window and the sliding-window counter on digitwin-db are listed for reference.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.harness import Measurement, measure_sync, summarize_latencies
from bench.results import Scenario, Target

if TYPE_CHECKING:
    from bench.scenarios import Env

SUBJECT = "limits MovingWindow (digitwin-db)"
REDIS = "limits MovingWindow (Redis)"
OTHERS = {
    "limits FixedWindow (digitwin-db)": "FixedWindowRateLimiter",
    "limits SlidingWindowCounter (digitwin-db)": "SlidingWindowCounterRateLimiter",
}
#: The limit of every contender, as in the rate_limit scenarios (1000 per second per key):
#: no hit is denied, and a moving window holds the hits of the last second.
LIMIT = "1000/second"
KEYS = [f"client-{i}" for i in range(100)]
THREADS = 8


def _limiters(env: Env) -> tuple[dict[str, Any], dict[str, str]]:
    """(name -> limiter, name -> reason skipped) of every contender."""
    from limits import strategies
    from limits.storage import storage_from_string

    import digitwin_db.contrib.limits  # noqa: F401  (registers postgresql://)

    pg = storage_from_string(env.pg_url, pool_min_size=2, pool_max_size=THREADS + 2)
    limiters: dict[str, Any] = {SUBJECT: strategies.MovingWindowRateLimiter(pg)}
    skipped: dict[str, str] = {}
    if env.redis_url:
        limiters[REDIS] = strategies.MovingWindowRateLimiter(storage_from_string(env.redis_url))
    else:
        skipped[REDIS] = env.redis_skip
    for name, strategy in OTHERS.items():
        limiters[name] = getattr(strategies, strategy)(pg)
    return limiters, skipped


def _hit_op(limiter: Any) -> Callable[[int], object]:
    from limits import parse

    item = parse(LIMIT)

    def hit(i: int) -> object:
        return limiter.hit(item, KEYS[i % len(KEYS)])

    return hit


def one_client(env: Env) -> Scenario:
    cfg = env.config
    sc = Scenario("limits_storage_1_client", "limits storage, 1 client, 100 keys", SUBJECT)
    sc.note = f"limiter.hit(parse({LIMIT!r}), key): one call at a time, same limits objects"
    limiters, sc.skipped = _limiters(env)
    ops = {name: _hit_op(limiter) for name, limiter in limiters.items()}
    sc.results.update(measure_sync(ops, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup))
    sc.targets.append(Target(f"{SUBJECT} ÷ {REDIS} (1 client)", sc.ratio(REDIS), 1.0))
    return sc


def _threaded(hit: Callable[[int], object], seconds: float) -> Measurement:
    """``THREADS`` threads calling ``hit`` for ``seconds``; ops/s of all together."""
    barrier = threading.Barrier(THREADS + 1)
    results: list[tuple[int, int, list[int]]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        clock = time.perf_counter_ns
        latencies: list[int] = []
        i = seed * 7919
        barrier.wait()
        begin = clock()
        deadline = begin + int(seconds * 1e9)
        now = begin
        while now < deadline:
            t0 = clock()
            hit(i)
            now = clock()
            latencies.append(now - t0)
            i += 1
        with lock:
            results.append((len(latencies), now - begin, latencies))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    total = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    _, p50, p99 = summarize_latencies([lat for r in results for lat in r[2]], wall)
    return Measurement(
        ops_per_s=total / (wall / 1e9), p50_us=p50, p99_us=p99, rounds=1, ops_per_round=total
    )


def eight_threads(env: Env) -> Scenario:
    cfg = env.config
    sc = Scenario(
        "limits_storage_8_threads", f"limits storage, {THREADS} threads, 100 keys", SUBJECT
    )
    sc.note = "ops/s = hits/s of all threads together; p50/p99 over every hit"
    limiters, sc.skipped = _limiters(env)
    for name, limiter in limiters.items():
        hit = _hit_op(limiter)
        for i in range(cfg.warmup):
            hit(i)
        sc.results[name] = _threaded(hit, cfg.concurrent_seconds)
    sc.targets.append(Target(f"{SUBJECT} ÷ {REDIS} ({THREADS} threads)", sc.ratio(REDIS), 1.0))
    return sc


def limits_storage(env: Env) -> list[Scenario]:
    return [one_client(env), eight_threads(env)]
