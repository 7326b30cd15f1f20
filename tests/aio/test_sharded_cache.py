"""The cache and the rate limiter sharded over three real servers (issue 16,
``Settings.cache_shard_urls``): every entry lands on the shard its key hashes to, batches
group by shard, whole-cache calls, stats, health and cleanup cover every shard, and a
shard that is down fails open for its own keys only."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from digitwin_db._async.cleanup import AsyncCleanupJob
from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.sharded_cache import AsyncShardedCache
from digitwin_db._async.sharded_rate_limits import AsyncShardedRateLimits
from digitwin_db._async.shards import AsyncCacheShards
from digitwin_db.errors import DatabaseUnavailableError, DigitwinDBError, ValidationError
from digitwin_db.models.rate_limits import Limit
from digitwin_db.sharding import LOCK_SEED, SUBJECT_SEED, key_seed
from digitwin_db.testing import EmbeddedPostgres

CACHE_TABLES = "kv_cache, embedding_cache, vector_search_cache, llm_response_cache"


def _truncate(servers: list[EmbeddedPostgres]) -> None:
    for server in servers:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {CACHE_TABLES}, rate_limits, cache_stats")


def _rows(server: EmbeddedPostgres, query: str, *params: Any) -> list[Any]:
    with psycopg.connect(server.url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(query, params).fetchall()]


async def _open_factory(
    pg_url: str, servers: list[EmbeddedPostgres], **overrides: Any
) -> AsyncRepositoryFactory:
    db = AsyncDatabase(
        url=pg_url,
        cache_shard_urls=[s.url for s in servers],
        pool_min_size=1,
        pool_max_size=10,
        connect_timeout=1.0,
        circuit_breaker_open_seconds=0.2,
        **overrides,
    )
    await db.open()
    return AsyncRepositoryFactory(db)


@pytest.fixture
async def sharded(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> AsyncIterator[AsyncRepositoryFactory]:
    _truncate(shard_servers)
    factory = await _open_factory(pg_url, shard_servers)
    yield factory
    await factory.close()


def _shards(factory: AsyncRepositoryFactory) -> AsyncCacheShards:
    assert factory.shards is not None
    return factory.shards


def _cache(factory: AsyncRepositoryFactory) -> AsyncShardedCache:
    assert isinstance(factory.cache, AsyncShardedCache)
    return factory.cache


def _kv_shard(factory: AsyncRepositoryFactory, key: str, namespace: str = "default") -> int:
    return _shards(factory).ring.shard_of(key.encode(), key_seed(namespace.encode() + b"\x00"))


def _subject_shard(factory: AsyncRepositoryFactory, subject: str) -> int:
    return _shards(factory).ring.shard_of(subject.encode(), SUBJECT_SEED)


async def test_without_shards_nothing_changes(factory: AsyncRepositoryFactory) -> None:
    assert factory.shards is None
    assert type(factory.cache) is AsyncCacheRepository


async def test_set_many_get_many_round_trip_each_key_on_its_shard(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    kv = sharded.cache.kv
    mapping = {f"k{i}": {"n": i} for i in range(300)}
    await kv.set_many(mapping, ttl=600, tags=["t"])
    per_shard = [
        set(_rows(s, "SELECT key FROM kv_cache WHERE namespace = 'default'")) for s in shard_servers
    ]
    print(f"\n300 keys per shard: {[len(k) for k in per_shard]}")
    for index, keys in enumerate(per_shard):
        assert keys == {k for k in mapping if _kv_shard(sharded, k) == index}
        assert 60 <= len(keys) <= 140  # each shard holds a share (binomial, p = 1/3)
    found = await kv.get_many([*mapping, "absent"])
    assert found == mapping
    assert await kv.get_many([]) == {}
    with pytest.raises(ValidationError):
        await kv.get_many(["ok", "bad\x00key"])
    assert await kv.delete_many(list(mapping)[:100]) == 100
    assert len(await kv.get_many(mapping)) == 200
    assert await kv.invalidate_tags("t") == 200
    assert sum(len(_rows(s, "SELECT key FROM kv_cache")) for s in shard_servers) == 0


async def test_single_key_calls_and_whole_namespace_calls(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    ns = sharded.cache.namespace("jobs")
    keys = [f"job:{i}" for i in range(30)]
    for key in keys:
        await ns.set(key, key.upper())
    for index, server in enumerate(shard_servers):
        stored = set(_rows(server, "SELECT key FROM kv_cache WHERE namespace = 'jobs'"))
        assert stored == {k for k in keys if _kv_shard(sharded, k, "jobs") == index}
    assert await ns.get("job:3") == "JOB:3"
    assert await ns.get("nope", "d") == "d"
    assert await ns.exists("job:4") and not await ns.exists("nope")
    assert await ns.add("job:5", "x") is False and await ns.add("new", "x") is True
    assert await ns.incr("counter", 5) == 5 and await ns.decr("counter", 2) == 3
    assert await ns.expire("job:6", 100) and (await ns.ttl("job:6") or 0) > 90
    assert await ns.persist("job:6") and await ns.ttl("job:6") is None
    assert await ns.compare_and_set("job:7", "JOB:7", "seven")
    assert await ns.get("job:7") == "seven"
    assert await ns.delete_if("job:8", "JOB:8") and not await ns.exists("job:8")
    calls = []

    def loader() -> str:
        calls.append(1)
        return "loaded"

    assert await ns.get_or_set("lazy", loader) == "loaded"
    assert await ns.get_or_set("lazy", loader) == "loaded" and calls == [1]
    listed = [key async for key in ns.keys("job:")]
    assert sorted(listed) == sorted(k for k in keys if k != "job:8")
    assert await ns.delete_prefix("job:1") == 11  # job:1, job:10..19
    assert await ns.delete("job:2") is True
    assert await ns.clear() == 30 - 1 - 11 - 1 + 3  # + new, counter, lazy
    assert await sharded.cache.kv.get("job:3") is None  # another namespace


async def test_bad_input_is_refused_before_routing_and_stores_nothing(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    cache, kv = sharded.cache, sharded.cache.kv
    for bad in ("a\x00b", 123, None, "\ud800"):
        with pytest.raises(ValidationError):
            await kv.set(bad, 1)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await kv.get(bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await kv.set_many({"ok": 1, bad: 2})  # type: ignore[dict-item]
        with pytest.raises(ValidationError):
            await cache.set_embedding(bad, [1.0], model="m")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await cache.get_llm_response("p", model=bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await cache.set_search_results(bad, [], index="i")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        sharded.cache.namespace("")
    for server in shard_servers:
        assert _rows(server, "SELECT count(*) FROM kv_cache") == [0]
        assert _rows(server, "SELECT count(*) FROM embedding_cache") == [0]


async def test_a_lock_can_be_the_first_call_and_lives_on_its_shard(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    _truncate(shard_servers)
    factory = await _open_factory(pg_url, shard_servers)  # shards not opened yet
    try:
        names = [f"job-{i}" for i in range(12)]
        for name in names:
            async with factory.cache.lock(name, ttl=30):
                pass
        lock = factory.cache.lock("held", ttl=30)
        assert await lock.acquire(blocking=False)
        assert not await factory.cache.lock("held", ttl=30).acquire(blocking=False)
        holders = [_rows(s, "SELECT name FROM cache_locks") for s in shard_servers]
        ring = _shards(factory).ring
        for index, rows in enumerate(holders):
            expected = ["held"] if ring.shard_of(b"held", LOCK_SEED) == index else []
            assert rows == expected
        await lock.release()
    finally:
        await factory.close()


async def test_embeddings_search_and_llm_across_shards(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    cache = sharded.cache
    texts = [f"text {i}" for i in range(30)]
    await cache.set_embeddings({t: [float(i), 1.0] for i, t in enumerate(texts)}, model="m")
    holding = [len(_rows(s, "SELECT text FROM embedding_cache")) for s in shard_servers]
    assert sum(holding) == 30 and sum(h > 0 for h in holding) == 3
    got = await cache.get_embeddings([*texts[:5], "missing", texts[29]], model="m")
    assert got == [[float(i), 1.0] for i in range(5)] + [None, [29.0, 1.0]]
    assert await cache.get_embedding("text 7", model="m") == [7.0, 1.0]
    await cache.set_embedding("solo", [0.5, 0.5, 0.5], model="m3")
    assert await cache.get_embedding("solo", model="m3") == [0.5, 0.5, 0.5]
    with pytest.raises(ValidationError, match="one dimension"):
        await cache.set_embeddings({"a": [1.0], "b": [1.0, 2.0]}, model="m")
    for i in range(10):
        await cache.set_search_results(f"q{i}", [("doc", 0.5)], index="i", params={"k": i})
        await cache.set_llm_response(f"p{i}", f"r{i}", model="m", params={"t": 0})
    assert (await cache.get_search_results("q3", index="i", params={"k": 3})) is not None
    assert await cache.get_search_results("q3", index="i", params={"k": 4}) is None
    hit = await cache.get_llm_response("p4", model="m", params={"t": 0})
    assert hit is not None and hit.response == "r4"
    generated = await cache.get_or_set_llm_response("fresh", lambda: "gen", model="m")
    assert generated.response == "gen"
    assert await cache.delete_llm_response("p4", model="m", params={"t": 0})
    assert await cache.clear("llm") == 10  # 9 left + "fresh"
    assert await cache.clear("search") == 10
    assert await cache.clear("embedding") == 31


async def test_stats_and_health_cover_every_shard(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    kv = sharded.cache.kv
    await kv.set_many({f"s{i}": i for i in range(60)})
    await kv.get_many([f"s{i}" for i in range(90)])  # 60 hits, 30 misses
    per_shard = await _cache(sharded).shard_stats()
    assert list(per_shard) == [s.name for s in _shards(sharded).shards]
    total = await sharded.cache.stats()
    assert total.kv.hits == 60 and total.kv.misses == 30 and total.kv.entries == 60
    assert sum(st.kv.entries for st in per_shard.values() if st is not None) == 60
    assert all(st is not None and st.kv.hits > 0 for st in per_shard.values())
    report = await sharded.health()
    assert report.ok
    checks = {c.name: c for c in report.repositories}
    for name in ("cache", "rate_limits"):
        shards = checks[name].details["shards"]
        assert list(shards) == [s.name for s in _shards(sharded).shards]
        assert all(s["ok"] for s in shards.values())
    shard_health = checks["cache"].details["shards"]
    assert all(s["database"]["pending_migrations"] == [] for s in shard_health.values())


async def test_rate_limit_buckets_live_on_their_subjects_shard(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    rl = sharded.rate_limits
    assert isinstance(rl, AsyncShardedRateLimits)
    subjects = [str(uuid.uuid4()) for _ in range(24)]
    limits = [
        Limit("chat", capacity=3, window_seconds=60),
        Limit("day", capacity=5, window_seconds=3600),
    ]
    for subject in subjects:
        results = [await rl.check_many(subject, limits) for _ in range(4)]
        assert [r.allowed for r in results] == [True, True, True, False]
    for index, server in enumerate(shard_servers):
        rows = _rows(server, "SELECT user_id || ' ' || endpoint FROM rate_limits")
        expected = {
            f"{s} {e}"
            for s in subjects
            for e in ("chat", "day")
            if _subject_shard(sharded, s) == index
        }
        assert set(rows) == expected
    one = subjects[0]
    assert (await rl.peek(one, "chat", capacity=3, window_seconds=60)).allowed is False
    assert len(await rl.usage(one)) == 2
    assert await rl.reset(one) == 2
    assert (await rl.check_and_increment(one, "chat", 3, 60)).allowed
    assert rl.shard_name(one) == _shards(sharded).shards[_subject_shard(sharded, one)].name
    assert await rl.cleanup_idle(older_than=3600) == 0  # every bucket is fresh
    with pytest.raises(ValidationError):
        await rl.check_and_consume("", "chat", capacity=1, refill_rate=1)


async def test_cleanup_job_removes_expired_rows_on_every_shard(
    sharded: AsyncRepositoryFactory, shard_servers: list[EmbeddedPostgres]
) -> None:
    await sharded.cache.kv.set_many({f"e{i}": i for i in range(90)}, ttl=0.05)
    await sharded.cache.kv.set_many({f"keep{i}": i for i in range(9)}, ttl=600)
    await asyncio.sleep(0.1)
    report = await AsyncCleanupJob(sharded).run_once()
    assert report.removed["kv_cache"] == 90
    remaining = [len(_rows(s, "SELECT key FROM kv_cache")) for s in shard_servers]
    assert sum(remaining) == 9


@pytest.mark.slow
async def test_a_shard_that_is_down_fails_open_for_its_keys_only(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    _truncate(shard_servers)
    factory = await _open_factory(pg_url, shard_servers, rate_limit_on_error="allow")
    try:
        kv = factory.cache.kv
        mapping = {f"d{i}": i for i in range(60)}
        await kv.set_many(mapping)
        down = 1
        on_down = [k for k in mapping if _kv_shard(factory, k) == down]
        others = {k: v for k, v in mapping.items() if _kv_shard(factory, k) != down}
        subjects = [f"subject-{i}" for i in range(40)]
        down_subject = next(s for s in subjects if _subject_shard(factory, s) == down)
        up_subject = next(s for s in subjects if _subject_shard(factory, s) != down)
        shard_servers[down].halt()
        try:
            assert await kv.get_many(mapping) == others  # the down shard's keys: misses
            assert await kv.get(on_down[0], "default") == "default"
            assert await kv.get(next(iter(others))) == others[next(iter(others))]
            with pytest.raises(DatabaseUnavailableError):
                await kv.set(on_down[0], "new")
            rl = factory.rate_limits
            degraded = await rl.check_and_consume(down_subject, "x", capacity=1, refill_rate=1)
            assert degraded.allowed and degraded.degraded
            decided = await rl.check_and_consume(up_subject, "x", capacity=1, refill_rate=1)
            assert decided.allowed and not decided.degraded
            assert not (
                await rl.check_and_consume(up_subject, "x", capacity=1, refill_rate=1)
            ).allowed
            health = await factory.health()
            cache_check = next(c for c in health.repositories if c.name == "cache")
            assert not cache_check.ok and _shards(factory).shards[down].name in str(
                cache_check.error
            )
        finally:
            shard_servers[down].resume()
        # The misses were counted by the down shard's cache: flushed once it is back.
        deadline = time.monotonic() + 30
        while True:
            try:
                stats = (await _cache(factory).shard_stats())[_shards(factory).shards[down].name]
            except DigitwinDBError:
                stats = None
            if stats is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert stats is not None
        assert stats.kv.misses == len(on_down) + 1 and stats.kv.hits == 0
        assert await kv.get_many(mapping) == mapping  # back: every key hits again
    finally:
        await factory.close()


def _closed_port_url() -> str:
    """A URL whose port has nothing listening (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def test_a_shard_down_at_start_leaves_the_others_working(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    _truncate(shard_servers)
    db = AsyncDatabase(
        url=pg_url,
        cache_shard_urls=[shard_servers[0].url, shard_servers[1].url, _closed_port_url()],
        pool_min_size=1,
        connect_timeout=1.0,
    )
    factory = await AsyncRepositoryFactory.instance(db)  # opens the shards: one fails
    try:
        kv = factory.cache.kv
        keys = [f"up{i}" for i in range(60)]
        up = [k for k in keys if _kv_shard(factory, k) != 2]
        await kv.set_many({k: 1 for k in up})
        assert await kv.get_many(keys) == dict.fromkeys(up, 1)
        with pytest.raises(DatabaseUnavailableError):
            await kv.set_many({k: 1 for k in keys})
        report = await factory.health()
        assert not next(c for c in report.repositories if c.name == "cache").ok
    finally:
        await AsyncRepositoryFactory.reset()
