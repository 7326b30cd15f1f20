"""Concurrent asyncio scenarios: N tasks of one event loop, digitwin-db beside Redis.

- async ``check_and_consume`` with 8 and 64 tasks beside ``limits``' moving window on
  ``redis.asyncio`` (issue 12: ≥ 1.0x at 8, ≥ 1.1x at 64);
- async ``kv.get`` with 16 and 64 tasks beside ``redis.asyncio`` GET + ``json.loads``
  (≥ 1.0x at 64).

Each round every contender runs the same number of calls spread over the same number of
tasks, rounds interleaved; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from bench import workers
from bench.harness import measure_async_concurrent
from bench.results import Scenario, Target

DIGITWIN = "digitwin-db"
LIMITS_AIO = "limits MovingWindow (redis.asyncio)"
REDIS_AIO = "redis.asyncio GET"
RL_TASKS = (8, 64)
KV_TASKS = (16, 64)


def rate_limit_async(env: Any) -> list[Scenario]:
    return [asyncio.run(_rate_limit_async(env, tasks)) for tasks in RL_TASKS]


async def _rate_limit_async(env: Any, tasks: int) -> Scenario:
    from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory

    cfg = env.config
    sc = Scenario(
        f"rate_limit_async_{tasks}", f"async rate-limit check, {tasks} tasks, 100 users", DIGITWIN
    )
    sc.note = (
        f"capacity {workers.RL_CAPACITY}, refill {workers.RL_REFILL:g}/s; limits: "
        f"{workers.RL_CAPACITY}/second moving window (limits.aio, async+redis storage); "
        "digitwin-db default Settings (pool max 20)"
    )
    users = [str(uuid.UUID(int=i + 1)) for i in range(100)]
    ops: dict[str, Callable[[int], Any]] = {}
    db = AsyncDatabase(url=env.pg_url)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    rl = factory.rate_limits
    cap, rate = workers.RL_CAPACITY, workers.RL_REFILL

    async def dw(i: int) -> object:
        return await rl.check_and_consume(
            users[i % 100], "/api/chat", capacity=cap, refill_rate=rate
        )

    ops[DIGITWIN] = dw
    storage: Any = None
    if env.redis_url:
        from limits import RateLimitItemPerSecond
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string

        # limits on redis-py's asyncio client (its default, coredis, is not installed).
        storage = storage_from_string("async+" + env.redis_url, implementation="redispy")
        limiter = MovingWindowRateLimiter(storage)
        item = RateLimitItemPerSecond(cap)

        async def lim(i: int) -> object:
            return await limiter.hit(item, users[i % 100], "/api/chat")

        ops[LIMITS_AIO] = lim
    else:
        sc.skipped[LIMITS_AIO] = env.redis_skip
    try:
        sc.results.update(
            await measure_async_concurrent(
                ops, tasks=tasks, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup
            )
        )
    finally:
        batcher = db.batcher("rate_limits.check_and_consume")
        if batcher.batches:
            sc.extra["statements per batch"] = round(batcher.statements / batcher.batches, 2)
        await factory.close()
    bar = 1.0 if tasks <= 8 else 1.1
    sc.targets.append(
        Target(
            f"async check_and_consume, {tasks} tasks: {DIGITWIN} ÷ limits (redis.asyncio)",
            sc.ratio(LIMITS_AIO),
            bar,
        )
    )
    return sc


def cache_hit_async_concurrent(env: Any) -> list[Scenario]:
    return [asyncio.run(_kv_get_concurrent(env, tasks)) for tasks in KV_TASKS]


async def _kv_get_concurrent(env: Any, tasks: int) -> Scenario:
    from bench.scenarios import redis_async_get, sample_value
    from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory

    cfg = env.config
    sc = Scenario(f"cache_hit_kv_get_async_{tasks}", f"async kv.get, {tasks} tasks", DIGITWIN)
    sc.note = "cache hits over the key set; redis-py's asyncio client with its default pool"
    keys = [f"user:{i}:profile:conc" for i in range(cfg.keys)]
    n = len(keys)
    ops: dict[str, Callable[[int], Any]] = {}
    db = AsyncDatabase(url=env.pg_url)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    kv = factory.cache.kv
    await kv.set_many({k: sample_value(i) for i, k in enumerate(keys)})

    async def dw(i: int) -> object:
        return await kv.get(keys[i % n])

    ops[DIGITWIN] = dw
    aredis: Any = None
    if env.redis_url:
        aredis, ops[REDIS_AIO] = await redis_async_get(env.redis_url, keys)
    else:
        sc.skipped[REDIS_AIO] = env.redis_skip
    try:
        sc.results.update(
            await measure_async_concurrent(
                ops, tasks=tasks, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup
            )
        )
    finally:
        if aredis is not None:
            await aredis.aclose()
        await factory.close()
    if tasks >= 64:
        sc.targets.append(
            Target(
                f"async kv.get, {tasks} tasks: {DIGITWIN} ÷ redis.asyncio GET",
                sc.ratio(REDIS_AIO),
                1.0,
            )
        )
    return sc
