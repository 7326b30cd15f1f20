"""Sharded cache and limiter across processes (issue 16): exact rate limits per bucket
from several processes, near-cache invalidation from a write on one shard reaching another
process, and ``digitwin-db migrate`` covering every shard."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
import pytest

from digitwin_db import Database, RepositoryFactory
from digitwin_db.models.rate_limits import Limit
from digitwin_db.sharding import SUBJECT_SEED, ShardRing, key_seed, shard_identity
from digitwin_db.testing import EmbeddedPostgres

CAPACITY = 40
NEGLIGIBLE = 1e-6  # tokens per second: no refill during the test
PROCESSES = 4
THREADS_PER_SUBJECT = 20  # per process: 4 x 20 = 80 callers per subject for 40 tokens
WAIT = 10.0


def _ring(urls: list[str]) -> ShardRing:
    return ShardRing([shard_identity(u) for u in urls])


def _open(pg_url: str, urls: list[str], **settings: Any) -> RepositoryFactory:
    db = Database(
        url=pg_url,
        cache_shard_urls=urls,
        pool_min_size=1,
        pool_max_size=8,
        pool_timeout=60,
        **settings,
    )
    db.open()
    return RepositoryFactory(db)


def _subjects_one_per_shard(urls: list[str]) -> list[str]:
    ring = _ring(urls)
    chosen: dict[int, str] = {}
    i = 0
    while len(chosen) < len(urls):
        subject = f"tenant-{os.getpid()}-{time.monotonic_ns()}-{i}"
        chosen.setdefault(ring.shard_of(subject.encode(), SUBJECT_SEED), subject)
        i += 1
    return [chosen[k] for k in sorted(chosen)]


def _limit_caller(pg_url: str, urls: list[str], subjects: list[str], start: Any, out: Any) -> None:
    """One process: THREADS_PER_SUBJECT threads per subject, all released by ``start``;
    each makes one check_many call (a 40-token bucket and a large one, all-or-nothing)."""
    factory = _open(pg_url, urls)
    limits = [
        Limit("chat", capacity=CAPACITY, refill_rate=NEGLIGIBLE),
        Limit("day", capacity=10_000, refill_rate=NEGLIGIBLE),
    ]
    allowed = dict.fromkeys(subjects, 0)
    lock = threading.Lock()

    def call(subject: str) -> None:
        start.wait()
        result = factory.rate_limits.check_many(subject, limits)
        with lock:
            allowed[subject] += result.allowed

    threads = [
        threading.Thread(target=call, args=(s,))
        for s in subjects
        for _ in range(THREADS_PER_SUBJECT)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    factory.close()
    out.put(allowed)


@pytest.mark.slow
def test_rate_limits_are_exact_per_bucket_from_several_processes(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    urls = [s.url for s in shard_servers]
    subjects = _subjects_one_per_shard(urls)  # one subject on each of the three shards
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_limit_caller, args=(pg_url, urls, subjects, start, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every process build its factory and park its threads
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ring = _ring(urls)
    for subject in subjects:
        admitted = sum(r[subject] for r in results)
        assert admitted == CAPACITY, (subject, [r[subject] for r in results])
        server = shard_servers[ring.shard_of(subject.encode(), SUBJECT_SEED)]
        with psycopg.connect(server.url) as conn:
            rows = conn.execute(
                "SELECT endpoint, allowed_count, denied_count FROM rate_limits "
                "WHERE user_id = %s ORDER BY endpoint",
                (subject,),
            ).fetchall()
        calls = PROCESSES * THREADS_PER_SUBJECT
        # All-or-nothing: the large bucket admitted exactly what the small one did.
        assert rows == [("chat", CAPACITY, calls - CAPACITY), ("day", CAPACITY, calls - CAPACITY)]
        for other in shard_servers:
            if other is not server:
                with psycopg.connect(other.url) as conn:
                    found = conn.execute(
                        "SELECT count(*) FROM rate_limits WHERE user_id = %s", (subject,)
                    ).fetchone()
                assert found == (0,)


def _near_reader(pg_url: str, urls: list[str], key: str, shard: int, pipe: Any) -> None:
    """A process with the near cache on: cache ``key`` (on ``shard``) in its near tier, say
    so, then wait for the new value the parent writes, and report how long it took."""
    factory = _open(pg_url, urls, near_cache=True)
    assert factory.shards is not None
    nears = [s.cache.near for s in factory.shards.shards]
    ok = all(n is not None and n.listener.wait_listening(WAIT) for n in nears)
    kv = factory.cache.kv
    first = kv.get(key)
    near = nears[shard]
    assert near is not None
    held = near.tier.entries_of("kv")
    pipe.send((ok, first, held))
    pipe.recv()  # the parent wrote
    start = time.perf_counter()
    value = kv.get(key)
    while value != "v2" and time.perf_counter() - start < WAIT:
        time.sleep(0.001)
        value = kv.get(key)
    pipe.send((value, time.perf_counter() - start, near.tier.entries_of("kv")))
    factory.close()


@pytest.mark.slow
def test_near_cache_invalidation_from_a_write_on_one_shard_reaches_another_process(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    urls = [s.url for s in shard_servers]
    ring = _ring(urls)
    seed = key_seed(b"default\x00")
    key = next(
        k for k in (f"near-{i}" for i in range(1000)) if ring.shard_of(k.encode(), seed) == 2
    )
    writer = _open(pg_url, urls)
    try:
        writer.cache.kv.set(key, "v1")
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_near_reader, args=(pg_url, urls, key, 2, child))
        proc.start()
        assert parent.poll(60)
        listening, first, held = parent.recv()
        assert listening and first == "v1" and held == 1  # the copy is in its near tier
        writer.cache.kv.set(key, "v2")  # a write on shard 2, from this process
        parent.send("written")
        assert parent.poll(60)
        value, elapsed, held_after = parent.recv()
        proc.join(timeout=30)
        assert proc.exitcode == 0
    finally:
        writer.close()
    print(f"\nnear-cache invalidation via shard 2 seen after {elapsed * 1000:.1f} ms")
    # Within WAIT, far below near_cache_max_age (60 s): dropped by the notification.
    assert value == "v2"
    assert held_after == 1  # refilled with the new value


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digitwin_db", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_migrate_command_migrates_every_shard(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    urls = []
    for server in shard_servers:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS shard_migrate")
            conn.execute("CREATE DATABASE shard_migrate")
        urls.append(server.url.rsplit("/", 1)[0] + "/shard_migrate")
    env = {**os.environ, "DATABASE_URL": pg_url, "CACHE_SHARD_URLS": ",".join(urls)}
    env.pop("OWNER_DATABASE_URL", None)
    done = _cli(env, "migrate")
    assert done.returncode == 0, done.stderr[-2000:]
    for url in urls:
        assert f"cache shard {shard_identity(url)}: applied" in done.stdout
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname IN "
                "('kv_cache', 'embedding_cache', 'vector_search_cache', 'llm_response_cache', "
                "'rate_limits', 'cache_stats')"
            ).fetchone()
        assert row == (6,)
    again = _cli(env, "migrate")
    assert again.returncode == 0
    assert again.stdout.count(": up to date") == 3
    for server in shard_servers:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("DROP DATABASE shard_migrate WITH (FORCE)")


def test_cleanup_and_health_commands_cover_every_shard(
    pg_url: str, shard_servers: list[EmbeddedPostgres]
) -> None:
    urls = [s.url for s in shard_servers]
    for server in shard_servers:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("TRUNCATE kv_cache")
    factory = _open(pg_url, urls)
    try:
        factory.cache.kv.set_many({f"gone{i}": i for i in range(90)}, ttl=0.01)
        factory.cache.kv.set_many({f"kept{i}": i for i in range(30)}, ttl=600)
    finally:
        factory.close()
    time.sleep(0.05)
    env = {**os.environ, "DATABASE_URL": pg_url, "CACHE_SHARD_URLS": ",".join(urls)}
    for name in ("OWNER_DATABASE_URL", "MAINTENANCE_DATABASE_URL"):
        env.pop(name, None)
    done = _cli(env, "cleanup", "--once", "--json", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["removed"]["kv_cache"] == 90
    for server in shard_servers:
        with psycopg.connect(server.url) as conn:
            row = conn.execute("SELECT count(*) FROM kv_cache WHERE key LIKE 'gone%'").fetchone()
        assert row == (0,)
    health = _cli(env, "health", "--json")
    assert health.returncode == 0, health.stdout[-2000:]
    report = json.loads(health.stdout)
    cache = next(c for c in report["repositories"] if c["name"] == "cache")
    assert sorted(cache["details"]["shards"]) == sorted(shard_identity(u) for u in urls)
    assert all(s["ok"] and s["database"]["ok"] for s in cache["details"]["shards"].values())
