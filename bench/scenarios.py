"""The scenarios: digitwin-db beside bare psycopg, Redis, ``limits`` and pyrate-limiter."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import async_concurrency, baselines, near_cache, security, workers
from bench.harness import Measurement, measure_async, measure_sync, summarize_latencies
from bench.limits_storage import limits_storage
from bench.results import Scenario, Target
from bench.servers import redis_unavailable_reason

DIGITWIN = "digitwin-db"
BARE = "bare psycopg"
REDIS = "redis-py"
# Informational contender: what the limiter's statement costs on a table without WAL.
BARE_UNLOGGED = "bare upsert, UNLOGGED table"

EMBED_MODEL = "text-embedding-3-small"
LLM_MODEL = "gpt-4o-mini"
LLM_PARAMS = {"temperature": 0.2, "max_tokens": 256}


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    mode: str
    ops: int  # calls per round of a micro scenario
    rounds: int
    warmup: int
    keys: int  # distinct keys of the micro scenarios
    many_ops: int  # get_many calls per round
    procs: int
    concurrent_seconds: float
    scale_small: int
    scale_large: int
    scale_ops: int
    expired_rows: int
    readers: int
    reader_rate: float  # kv.get calls per second per reader
    before_seconds: float

    @classmethod
    def full(cls) -> Config:
        return cls(
            mode="full",
            ops=2000,
            rounds=7,
            warmup=500,
            keys=1000,
            many_ops=40,
            procs=8,
            concurrent_seconds=5.0,
            scale_small=10_000,
            scale_large=1_000_000,
            scale_ops=3000,
            expired_rows=1_000_000,
            readers=4,
            reader_rate=500.0,
            before_seconds=5.0,
        )

    @classmethod
    def quick(cls) -> Config:
        return cls(
            mode="quick",
            ops=100,
            rounds=3,
            warmup=20,
            keys=50,
            many_ops=5,
            procs=8,
            concurrent_seconds=0.3,
            scale_small=1_000,
            scale_large=5_000,
            scale_ops=100,
            expired_rows=5_000,
            readers=4,
            reader_rate=200.0,
            before_seconds=0.3,
        )


@dataclass
class Env:
    pg_url: str
    redis_url: str | None
    config: Config

    @property
    def redis_skip(self) -> str:
        return redis_unavailable_reason() or "redis-server did not start"


def sample_value(i: int) -> dict[str, Any]:
    """A typical small JSON cache value (~120 bytes)."""
    return {
        "user_id": str(uuid.UUID(int=i)),
        "name": f"session-{i}",
        "turns": i % 17,
        "flags": ["voice", "face"],
        "score": 0.5,
    }


def sample_vector(i: int, dims: int = 1536) -> list[float]:
    rng = random.Random(i)
    return [rng.uniform(-1.0, 1.0) for _ in range(dims)]


LLM_RESPONSE = ("The digital twin answers in the user's own voice. " * 20).strip()
LLM_METADATA = {"tokens": 256, "finish_reason": "stop", "latency_ms": 812}


@contextmanager
def digitwin_factory(pg_url: str) -> Iterator[Any]:
    import digitwin_db

    db = digitwin_db.Database(url=pg_url)
    db.open()
    factory = digitwin_db.RepositoryFactory(db)
    try:
        yield factory
    finally:
        factory.close()


def redis_client(env: Env) -> Any:
    import redis

    assert env.redis_url is not None
    return redis.Redis.from_url(env.redis_url)


def _ops_ratio_target(sc: Scenario, baseline: str, bar: float, label: str) -> None:
    sc.targets.append(Target(f"{label}: {DIGITWIN} ÷ {baseline}", sc.ratio(baseline), bar))


# ---------------------------------------------------------------- cache hits (sync)
def cache_hit(env: Env) -> list[Scenario]:
    cfg = env.config
    keys = [f"user:{i}:profile" for i in range(cfg.keys)]
    texts = [f"embedding text number {i} about voice cloning" for i in range(cfg.keys)]
    prompts = [f"Summarise conversation {i} in two sentences." for i in range(cfg.keys)]
    vectors = [sample_vector(i) for i in range(min(cfg.keys, 32))]
    kv_sc = Scenario("cache_hit_kv_get", "cache hit: kv.get (sync)", DIGITWIN)
    emb_sc = Scenario("cache_hit_get_embedding", "cache hit: get_embedding 1536 d", DIGITWIN)
    llm_sc = Scenario("cache_hit_get_llm_response", "cache hit: get_llm_response", DIGITWIN)
    kv_ops: dict[str, Callable[[int], object]] = {}
    emb_ops: dict[str, Callable[[int], object]] = {}
    llm_ops: dict[str, Callable[[int], object]] = {}
    n = len(keys)

    with digitwin_factory(env.pg_url) as factory, baselines.bare_connection(env.pg_url) as conn:
        cache = factory.cache
        kv = cache.kv
        kv.set_many({k: sample_value(i) for i, k in enumerate(keys)})
        for i, t in enumerate(texts):
            cache.set_embedding(t, vectors[i % len(vectors)], model=EMBED_MODEL)
        for p in prompts:
            cache.set_llm_response(
                p, LLM_RESPONSE, model=LLM_MODEL, params=LLM_PARAMS, metadata=LLM_METADATA
            )
        kv_ops[DIGITWIN] = lambda i: kv.get(keys[i % n])
        emb_ops[DIGITWIN] = lambda i: cache.get_embedding(texts[i % n], model=EMBED_MODEL)
        llm_ops[DIGITWIN] = lambda i: cache.get_llm_response(
            prompts[i % n], model=LLM_MODEL, params=LLM_PARAMS
        )

        baselines.fill_bare_kv(conn, keys, sample_value(0))
        baselines.fill_bare_embeddings(conn, texts, vectors[0], EMBED_MODEL)
        baselines.fill_bare_llm(conn, prompts, LLM_RESPONSE, LLM_METADATA, LLM_MODEL)
        kv_hashes = [baselines.key_hash("default", k) for k in keys]
        emb_hashes = [baselines.key_hash(EMBED_MODEL, t) for t in texts]
        llm_keys = [f"{p}\x00{json.dumps(LLM_PARAMS, sort_keys=True)}" for p in prompts]
        key_hash = baselines.key_hash

        def bare_kv(i: int) -> object:
            h = key_hash("default", keys[i % n])
            row = conn.execute(baselines.BARE_KV_GET, (h,), prepare=True).fetchone()
            return row[0] if row else None

        def bare_emb(i: int) -> object:
            h = key_hash(EMBED_MODEL, texts[i % n])
            row = conn.execute(baselines.BARE_EMBEDDING_GET, (h,), prepare=True).fetchone()
            return baselines.floats_from_bytes(row[0]) if row else None

        def bare_llm(i: int) -> object:
            h = key_hash(LLM_MODEL, prompts[i % n])
            return conn.execute(baselines.BARE_LLM_GET, (h,), prepare=True).fetchone()

        assert bare_kv(0) is not None and len(kv_hashes) == len(emb_hashes) == len(llm_keys)
        kv_ops[BARE], emb_ops[BARE], llm_ops[BARE] = bare_kv, bare_emb, bare_llm

        rclient = None
        if env.redis_url:
            rclient = redis_client(env)
            pipe = rclient.pipeline(transaction=False)
            for i, k in enumerate(keys):
                pipe.set(k, json.dumps(sample_value(i)))
            for t in texts:
                pipe.set(f"emb:{EMBED_MODEL}:{t}", baselines.floats_to_bytes(vectors[0]))
            llm_payload = json.dumps({"response": LLM_RESPONSE, "metadata": LLM_METADATA})
            for lk in llm_keys:
                pipe.set(f"llm:{LLM_MODEL}:{lk}", llm_payload)
            pipe.execute()
            r = rclient
            kv_ops[REDIS] = lambda i: json.loads(r.get(keys[i % n]))
            emb_ops[REDIS] = lambda i: baselines.floats_from_bytes(
                r.get(f"emb:{EMBED_MODEL}:{texts[i % n]}")
            )
            llm_ops[REDIS] = lambda i: json.loads(r.get(f"llm:{LLM_MODEL}:{llm_keys[i % n]}"))
        else:
            for sc in (kv_sc, emb_sc, llm_sc):
                sc.skipped[REDIS] = env.redis_skip

        for sc, ops in ((kv_sc, kv_ops), (emb_sc, emb_ops), (llm_sc, llm_ops)):
            sc.results.update(measure_sync(ops, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup))
        if rclient is not None:
            rclient.close()

    for sc, label in ((kv_sc, "L2 hit kv.get"), (emb_sc, "L2 hit get_embedding")):
        _ops_ratio_target(sc, BARE, 0.8, label)
        _ops_ratio_target(sc, REDIS, 0.8, label)
    _ops_ratio_target(kv_sc, BARE, 0.9, "issue 12: kv.get (sync)")
    llm_sc.note = "no SPEC target (informational)"
    return [kv_sc, emb_sc, llm_sc]


# ---------------------------------------------------------------- cache hit (async)
def cache_hit_async(env: Env) -> list[Scenario]:
    return [asyncio.run(_cache_hit_async(env))]


async def _cache_hit_async(env: Env) -> Scenario:
    from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory

    cfg = env.config
    sc = Scenario("cache_hit_kv_get_async", "cache hit: kv.get (async)", DIGITWIN)
    keys = [f"user:{i}:profile:async" for i in range(cfg.keys)]
    n = len(keys)
    ops: dict[str, Callable[[int], Any]] = {}
    db = AsyncDatabase(url=env.pg_url)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    conn = await baselines.bare_async_connection(env.pg_url)
    aredis: Any = None
    try:
        kv = factory.cache.kv
        await kv.set_many({k: sample_value(i) for i, k in enumerate(keys)})

        async def dw(i: int) -> object:
            return await kv.get(keys[i % n])

        ops[DIGITWIN] = dw
        with baselines.bare_connection(env.pg_url) as sconn:
            baselines.fill_bare_kv(sconn, keys, sample_value(0))
        key_hash = baselines.key_hash

        async def bare(i: int) -> object:
            h = key_hash("default", keys[i % n])
            cur = await conn.execute(baselines.BARE_KV_GET, (h,), prepare=True)
            row = await cur.fetchone()
            return row[0] if row else None

        ops[BARE] = bare
        if env.redis_url:
            aredis, ops[REDIS] = await redis_async_get(env.redis_url, keys)
        else:
            sc.skipped[REDIS] = env.redis_skip
        sc.results.update(
            await measure_async(ops, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup)
        )
    finally:
        if aredis is not None:
            await aredis.aclose()
        await conn.close()
        await factory.close()
    _ops_ratio_target(sc, BARE, 0.8, "L2 hit kv.get async")
    _ops_ratio_target(sc, REDIS, 0.8, "L2 hit kv.get async")
    return sc


# ---------------------------------------------------------------- cache write
def cache_write(env: Env) -> list[Scenario]:
    cfg = env.config
    sc = Scenario("cache_write_kv_set", "cache write: kv.set ttl=300", DIGITWIN)
    sc.note = "no SPEC target (informational); keys cycle over the key set (upserts)"
    keys = [f"write:{i}" for i in range(cfg.keys)]
    values = [sample_value(i) for i in range(cfg.keys)]
    n = len(keys)
    ops: dict[str, Callable[[int], object]] = {}
    with digitwin_factory(env.pg_url) as factory, baselines.bare_connection(env.pg_url) as conn:
        kv = factory.cache.kv
        ops[DIGITWIN] = lambda i: kv.set(keys[i % n], values[i % n], ttl=300)
        key_hash = baselines.key_hash

        def bare(i: int) -> object:
            k = keys[i % n]
            payload = json.dumps(values[i % n])
            return conn.execute(
                baselines.BARE_KV_SET,
                (key_hash("default", k), k, Jsonb(values[i % n]), len(payload), 300),
                prepare=True,
            )

        ops[BARE] = bare
        rclient = None
        if env.redis_url:
            rclient = redis_client(env)
            r = rclient
            ops[REDIS] = lambda i: r.set(keys[i % n], json.dumps(values[i % n]), ex=300)
        else:
            sc.skipped[REDIS] = env.redis_skip
        sc.results.update(measure_sync(ops, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup))
        if rclient is not None:
            rclient.close()
    return [sc]


# ---------------------------------------------------------------- get_many
def get_many(env: Env) -> list[Scenario]:
    cfg = env.config
    sc = Scenario("get_many_100", "kv.get_many(100 keys) per call", "kv.get_many(100)")
    singles = "100 x kv.get"
    keys = [f"many:{i}" for i in range(max(cfg.keys, 100))]
    n = len(keys)
    ops: dict[str, Callable[[int], object]] = {}
    with digitwin_factory(env.pg_url) as factory:
        kv = factory.cache.kv
        kv.set_many({k: sample_value(i) for i, k in enumerate(keys)})

        def batch(i: int) -> list[str]:
            start = (i * 100) % n
            return (keys[start:] + keys[:start])[:100]

        def many(i: int) -> object:
            found = kv.get_many(batch(i))
            assert len(found) == 100
            return found

        def loop(i: int) -> object:
            return [kv.get(k) for k in batch(i)]

        ops["kv.get_many(100)"] = many
        ops[singles] = loop
        rclient = None
        if env.redis_url:
            rclient = redis_client(env)
            r = rclient
            for i, k in enumerate(keys):
                r.set(k, json.dumps(sample_value(i)))

            def mget(i: int) -> object:
                start = (i * 100) % n
                chosen = (keys[start:] + keys[:start])[:100]
                return [json.loads(v) for v in r.mget(chosen)]

            ops["redis-py MGET 100"] = mget
        else:
            sc.skipped["redis-py MGET 100"] = env.redis_skip
        if ops:
            sc.results.update(
                measure_sync(
                    ops, ops=cfg.many_ops, rounds=cfg.rounds, warmup=max(5, cfg.many_ops // 5)
                )
            )
        if rclient is not None:
            rclient.close()
    speedup = sc.ratio(singles)
    sc.targets.append(Target("get_many(100): per-key speedup over 100 single gets", speedup, 20))
    sc.targets.append(Target("issue 12: get_many(100) ÷ kv.get's per-key cost", speedup, 20))
    return [sc]


# ---------------------------------------------------------------- rate limit, one client
def rate_limit(env: Env) -> list[Scenario]:
    cfg = env.config
    sc = Scenario("rate_limit_check", "rate-limit check (1 client, 100 users)", DIGITWIN)
    sc.note = (
        f"capacity {workers.RL_CAPACITY}, refill {workers.RL_REFILL:g}/s (limits: "
        f"{workers.RL_CAPACITY}/second moving window; pyrate: Rate({workers.RL_CAPACITY}, "
        "1 s) in one PostgresBucket table — its buckets are whole tables)"
    )
    users = [str(uuid.UUID(int=i + 1)) for i in range(100)]
    ops: dict[str, Callable[[int], object]] = {}
    closers: list[Callable[[], None]] = []
    kinds = [
        (DIGITWIN, "digitwin"),
        ("bare upsert", "bare"),
        (BARE_UNLOGGED, "bare_unlogged"),
        ("limits MovingWindow (Redis)", "limits"),
    ]
    for name, kind in kinds:
        if kind == "limits" and not env.redis_url:
            sc.skipped[name] = env.redis_skip
            continue
        try:
            check, close = workers.make_rate_limit_op(kind, env.pg_url, env.redis_url)
        except ImportError as exc:
            sc.skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        closers.append(close)
        ops[name] = _bind_check(check, users)
    pyrate = "pyrate-limiter PostgresBucket"
    try:
        limiter, close_pyrate = _pyrate_limiter(env.pg_url)
        closers.append(close_pyrate)
        ops[pyrate] = lambda i: limiter.try_acquire(users[i % 100], blocking=False)
    except ImportError as exc:
        sc.skipped[pyrate] = f"{type(exc).__name__}: {exc}"
    try:
        sc.results.update(measure_sync(ops, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup))
    finally:
        for close in closers:
            close()
    _ops_ratio_target(sc, "bare upsert", 0.8, "rate-limit check")
    # rate_limits is UNLOGGED: the like-for-like bare statement is the UNLOGGED one.
    _ops_ratio_target(sc, BARE_UNLOGGED, 0.9, "issue 12: check_and_consume")
    _ops_ratio_target(sc, "limits MovingWindow (Redis)", 1.0, "rate-limit check")
    _ops_ratio_target(sc, pyrate, 1.0, "rate-limit check")
    return [sc]


def _bind_check(check: Callable[[str, str], object], users: list[str]) -> Callable[[int], object]:
    return lambda i: check(users[i % len(users)], "/api/chat")


def _pyrate_limiter(pg_url: str) -> tuple[Any, Callable[[], None]]:
    from psycopg_pool import ConnectionPool
    from pyrate_limiter import Duration, Limiter, Rate
    from pyrate_limiter.buckets import PostgresBucket

    # Not autocommit: PostgresBucket takes a LOCK TABLE, which needs a transaction.
    pool = ConnectionPool(pg_url, min_size=1, max_size=2, open=True)
    bucket = PostgresBucket(pool, "digitwin_bench", [Rate(workers.RL_CAPACITY, Duration.SECOND)])
    limiter = Limiter(bucket)

    def close() -> None:
        limiter.close()
        pool.close()

    return limiter, close


# ---------------------------------------------------------------- rate limit, 8 processes
def rate_limit_concurrent(env: Env) -> list[Scenario]:
    out = []
    for buckets in (1, 1000):
        out.append(_rate_limit_concurrent(env, buckets))
    return out


def _rate_limit_concurrent(env: Env, buckets: int) -> Scenario:
    cfg = env.config
    sc = Scenario(
        f"rate_limit_concurrent_{buckets}",
        f"rate-limit, {cfg.procs} processes, {buckets} bucket{'s' if buckets > 1 else ''}",
        DIGITWIN,
    )
    sc.note = "ops/s = checks/s of all processes together; p50/p99 over every check"
    ctx = workers.mp_context()
    kinds = [
        (DIGITWIN, "digitwin"),
        ("bare upsert", "bare"),
        (BARE_UNLOGGED, "bare_unlogged"),
        ("limits MovingWindow (Redis)", "limits"),
    ]
    for name, kind in kinds:
        if kind == "limits" and not env.redis_url:
            sc.skipped[name] = env.redis_skip
            continue
        barrier = ctx.Barrier(cfg.procs)
        queue = ctx.Queue()
        procs = [
            ctx.Process(
                target=workers.rate_limit_worker,
                args=(
                    kind,
                    env.pg_url,
                    env.redis_url,
                    buckets,
                    cfg.concurrent_seconds,
                    barrier,
                    queue,
                    p,
                ),
            )
            for p in range(cfg.procs)
        ]
        for p in procs:
            p.start()
        results = _collect(queue, procs, 120 + cfg.concurrent_seconds)
        if isinstance(results, str):
            sc.skipped[name] = results
            continue
        total = sum(r[0] for r in results)
        wall = max(r[1] for r in results)
        latencies = [lat for r in results for lat in r[2]]
        _, p50, p99 = summarize_latencies(latencies, wall)
        sc.results[name] = Measurement(
            ops_per_s=total / (wall / 1e9), p50_us=p50, p99_us=p99, rounds=1, ops_per_round=total
        )
    return sc


def _collect(queue: Any, procs: list[Any], timeout: float) -> list[Any] | str:
    """Every worker's result, or the first error message (workers then stopped)."""
    results: list[Any] = []
    error = ""
    deadline = time.monotonic() + timeout
    while len(results) < len(procs) and not error:
        try:
            item = queue.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            error = "workers did not report in time"
            break
        if isinstance(item, str):
            error = f"worker failed: {item}"
        else:
            results.append(item)
    for p in procs:
        p.join(timeout=10 if not error else 1)
        if p.is_alive():
            p.terminate()
            p.join()
    return error or results


# ---------------------------------------------------------------- scale
def scale(env: Env) -> list[Scenario]:
    cfg = env.config
    small, large = cfg.scale_small, cfg.scale_large
    sc = Scenario("scale_lookup", "scale: kv.get latency by table size", f"kv.get @ {small:,}")
    large_name = f"kv.get @ {large:,}"
    live = [f"scale:{i}" for i in range(min(small, 10_000))]
    with digitwin_factory(env.pg_url) as factory, baselines.bare_connection(env.pg_url) as conn:
        kv = factory.cache.kv
        conn.execute("TRUNCATE kv_cache")
        _set_many_chunked(kv, {k: sample_value(i) for i, k in enumerate(live)})
        _fill_kv(conn, small - len(live), start=0)
        conn.execute("VACUUM ANALYZE kv_cache")
        n = len(live)
        rng = random.Random(7)
        order = [rng.randrange(n) for _ in range(cfg.scale_ops * (cfg.rounds + 1))]

        def lookup(i: int) -> object:
            return kv.get(live[order[i % len(order)]])

        sc.results[sc.subject] = measure_sync(
            {sc.subject: lookup}, ops=cfg.scale_ops, rounds=cfg.rounds, warmup=cfg.warmup
        )[sc.subject]
        started = time.perf_counter()
        _fill_kv(conn, large - small, start=small)
        conn.execute("VACUUM ANALYZE kv_cache")
        sc.extra["bulk load rows/s"] = round((large - small) / (time.perf_counter() - started))
        sc.results[large_name] = measure_sync(
            {large_name: lookup}, ops=cfg.scale_ops, rounds=cfg.rounds, warmup=cfg.warmup
        )[large_name]
        conn.execute("TRUNCATE kv_cache")
    a, b = sc.results[sc.subject], sc.results[large_name]
    sc.extra["p99 ratio large/small"] = b.p99_us / a.p99_us
    sc.targets.append(
        Target(f"lookup p50 at {large:,} ÷ at {small:,}", b.p50_us / a.p50_us, 1.3, "<=")
    )
    sc.note = (
        f"{len(live):,} live keys written with kv.set_many, the rest bulk-loaded with "
        "generate_series (other namespace); random lookups over the live keys"
    )
    return [sc]


def _set_many_chunked(kv: Any, mapping: dict[str, Any], chunk: int = 1000) -> None:
    items = list(mapping.items())
    for start in range(0, len(items), chunk):
        kv.set_many(dict(items[start : start + chunk]))


# Filler rows straight into kv_cache (another namespace, distinct hashes).
FILL_KV = """
INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size, expires_at)
SELECT hashtextextended('filler:' || g, 42), 'bench-filler', 'filler:' || g,
       jsonb_build_object('i', g, 'name', 'filler-' || g, 'flags', jsonb_build_array('a', 'b')),
       64, CASE WHEN %(expired)s THEN now() - interval '1 hour' END
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
ON CONFLICT (key_hash) DO NOTHING
"""


def _fill_kv(
    conn: psycopg.Connection[Any], count: int, *, start: int, expired: bool = False
) -> None:
    step = 200_000
    for lo in range(start, start + count, step):
        hi = min(start + count, lo + step) - 1
        conn.execute(FILL_KV, {"start": lo, "stop": hi, "expired": expired})


# ---------------------------------------------------------------- cleanup under load
def cleanup(env: Env) -> list[Scenario]:
    cfg = env.config
    before, during = "readers before purge", "readers during purge"
    sc = Scenario("cleanup_under_load", f"cleanup of {cfg.expired_rows:,} expired rows", during)
    sc.note = (
        f"{cfg.readers} reader processes, kv.get on live keys, each paced at "
        f"{cfg.reader_rate:g} calls/s; purge = factory.cache.cleanup_expired()"
    )
    live = [f"live:{i}" for i in range(min(cfg.keys * 10, 10_000))]
    with digitwin_factory(env.pg_url) as factory, baselines.bare_connection(env.pg_url) as conn:
        cache = factory.cache
        conn.execute("TRUNCATE kv_cache")
        _set_many_chunked(cache.kv, {k: sample_value(i) for i, k in enumerate(live)})
        _fill_kv(conn, cfg.expired_rows, start=0, expired=True)
        conn.execute("VACUUM ANALYZE kv_cache")
        ctx = workers.mp_context()
        barrier = ctx.Barrier(cfg.readers + 1)
        queue = ctx.Queue()
        phase = ctx.RawValue("i", 0)
        procs = [
            ctx.Process(
                target=workers.reader_worker,
                args=(env.pg_url, live, cfg.reader_rate, phase, barrier, queue, p),
            )
            for p in range(cfg.readers)
        ]
        for p in procs:
            p.start()
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            sc.skipped[during] = str(_collect(queue, procs, 30))
            return [sc]
        time.sleep(min(1.0, cfg.before_seconds))  # readers warm up (phase 0, discarded)
        phase.value = 1
        time.sleep(cfg.before_seconds)
        phase.value = 2
        started = time.perf_counter()
        report = cache.cleanup_expired()
        purge_seconds = time.perf_counter() - started
        phase.value = 3
        results = _collect(queue, procs, 60)
        if isinstance(results, str):
            sc.skipped[during] = results
            return [sc]
        remaining = conn.execute(
            "SELECT count(*) FROM kv_cache WHERE namespace = 'bench-filler'"
        ).fetchone()
        conn.execute("TRUNCATE kv_cache")
    for name, idx, seconds in ((before, 0, cfg.before_seconds), (during, 1, purge_seconds)):
        latencies = [lat for r in results for lat in r[idx]]
        ops, p50, p99 = summarize_latencies(latencies, int(seconds * 1e9))
        sc.results[name] = Measurement(ops, p50, p99, 1, len(latencies))
    removed = cfg.expired_rows - (remaining[0] if remaining else 0)
    sc.extra["rows removed"] = removed
    sc.extra["purge seconds"] = round(purge_seconds, 2)
    sc.extra["rows/s removed"] = round(removed / purge_seconds) if purge_seconds > 0 else 0
    sc.extra["reader misses (must be 0)"] = sum(r[2] for r in results)
    sc.extra["cleanup report"] = str(report)[:200]
    sc.targets.append(
        Target(
            "cleanup: readers' p99 during purge (ms)", sc.results[during].p99_us / 1000, 5.0, "<="
        )
    )
    return [sc]


SCENARIOS: dict[str, Callable[[Env], list[Scenario]]] = {
    "cache_hit": cache_hit,
    "cache_hit_async": cache_hit_async,
    "cache_hit_async_concurrent": async_concurrency.cache_hit_async_concurrent,
    "cache_write": cache_write,
    "get_many": get_many,
    "rate_limit": rate_limit,
    "rate_limit_async": async_concurrency.rate_limit_async,
    "rate_limit_concurrent": rate_limit_concurrent,
    "scale": scale,
    "cleanup": cleanup,
    "audit_chain": security.audit_chain,
    "rls": security.rls,
    "limits_storage": limits_storage,
    **near_cache.GROUPS,
}

# Every scenario key a complete run reports (the smoke test checks them).
SCENARIO_KEYS = [
    "cache_hit_kv_get",
    "cache_hit_get_embedding",
    "cache_hit_get_llm_response",
    "cache_hit_kv_get_async",
    "cache_hit_kv_get_async_16",
    "cache_hit_kv_get_async_64",
    "cache_write_kv_set",
    "get_many_100",
    "rate_limit_check",
    "rate_limit_async_8",
    "rate_limit_async_64",
    "rate_limit_concurrent_1",
    "rate_limit_concurrent_1000",
    "scale_lookup",
    "cleanup_under_load",
    "audit_chain_log",
    "audit_chain_log_8_threads",
    "rls_list_for_user",
    "rls_users_get",
    "limits_storage_1_client",
    "limits_storage_8_threads",
    *near_cache.SCENARIO_KEYS,
]


async def redis_async_get(url: str, keys: list[str]) -> tuple[Any, Callable[[int], Any]]:
    """A ``redis.asyncio`` client holding ``sample_value(i)`` as JSON under ``keys[i]``, and
    the op ``GET keys[i % n]`` + ``json.loads`` (close the client with ``aclose()``)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    for i, k in enumerate(keys):
        await client.set(k, json.dumps(sample_value(i)))
    n = len(keys)

    async def rget(i: int) -> object:
        value = await client.get(keys[i % n])
        assert value is not None  # redis-py 8 types GET as bytes | str | None
        return json.loads(value)

    return client, rget
