"""Group commit of rate-limit checks under asyncio (``db.batcher``), against a real server.

Batches are made deterministic with real row locks: an outside transaction holds a bucket,
so the batch (or the lone call) touching it waits on the server while the others queue.
Every count is asserted exactly, from the callers' answers and from the table.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.cache_codec import KV_PERSON, hash_key
from digitwin_db.errors import RateLimitUnavailableError
from digitwin_db.key_hash import PrefixHasher
from digitwin_db.testing import EmbeddedPostgres

OP = "rate_limits.check_and_consume"
SLOW = 1e-6  # refill: one token per ~11 days, nothing refills during a test


def _db(url: str, app: str, **settings: Any) -> AsyncDatabase:
    return AsyncDatabase(
        url=url,
        pool_min_size=1,
        pool_max_size=10,
        pool_timeout=30,
        rate_limit_on_error="raise",
        application_name=app,
        **settings,
    )


@pytest.fixture
async def rl_db(pg_url: str) -> AsyncIterator[AsyncDatabase]:
    app = f"batch-{uuid.uuid4().hex[:8]}"
    async with _db(pg_url, app, lock_timeout_ms=400) as database:
        yield database


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        yield conn


def _check(factory: AsyncRepositoryFactory, user: str, capacity: int = 10) -> Any:
    return factory.rate_limits.check_and_consume(user, "chat", capacity=capacity, refill_rate=SLOW)


async def _counts(admin: psycopg.AsyncConnection[Any], user: str) -> tuple[int, int] | None:
    cur = await admin.execute(
        "SELECT allowed_count, denied_count FROM rate_limits WHERE user_id = %s", (user,)
    )
    row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def _lock_bucket(url: str, user: str) -> psycopg.AsyncConnection[Any]:
    """An outside transaction holding the row lock of ``user``'s bucket (it must exist)."""
    conn = await psycopg.AsyncConnection.connect(url)
    cur = await conn.execute(
        "SELECT 1 FROM rate_limits WHERE user_id = %s AND endpoint = 'chat' FOR UPDATE", (user,)
    )
    assert await cur.fetchone() == (1,)
    return conn


async def _wait_lock_waiters(admin: psycopg.AsyncConnection[Any], app: str, count: int) -> None:
    """Until ``count`` backends of ``app`` wait on a lock (the server says so)."""
    for _ in range(3000):
        cur = await admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock'",
            (app,),
        )
        row = await cur.fetchone()
        if row is not None and row[0] == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} backends of {app} never waited on a lock")


async def _until_pending(database: AsyncDatabase, count: int) -> None:
    batcher = database.batcher(OP)
    for _ in range(1000):
        if batcher.pending == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"pending stayed {batcher.pending}, expected {count}")


def _users(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


@asynccontextmanager
async def _queued_behind_stuck_call(
    rl_db: AsyncDatabase,
    admin: psycopg.AsyncConnection[Any],
    pg_url: str,
    calls: list[Coroutine[Any, Any, Any]],
) -> AsyncIterator[tuple[asyncio.Task[Any], list[asyncio.Task[Any]], psycopg.AsyncConnection[Any]]]:
    """A check on a bucket that an outside transaction holds goes alone and waits on the
    server; ``calls`` are started and queue behind it. Yields (that check, the queued
    calls, the outside transaction's connection — commit it to let the check go on)."""
    factory = AsyncRepositoryFactory(rl_db)
    (lead,) = _users(1)
    assert (await _check(factory, lead)).allowed
    hold = await _lock_bucket(pg_url, lead)
    try:
        first = asyncio.create_task(_check(factory, lead))
        await _wait_lock_waiters(admin, rl_db.settings.application_name, 1)
        queued = [asyncio.create_task(call) for call in calls]
        await _until_pending(rl_db, len(calls))
        yield first, queued, hold
    finally:
        await hold.close()


async def test_batch_of_one_runs_at_once_as_a_plain_statement(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any]
) -> None:
    factory = AsyncRepositoryFactory(rl_db)
    (user,) = _users(1)
    for i in range(5):
        result = await _check(factory, user)
        assert result.allowed and result.remaining == 9 - i
        batcher = rl_db.batcher(OP)
        # Each call was a batch of its own, started without waiting for company.
        assert (batcher.batches, batcher.statements, batcher.pending) == (i + 1, i + 1, 0)
    assert await _counts(admin, user) == (5, 0)
    ops = {s.operation: s.calls for s in rl_db.stats.snapshot()}
    assert ops == {OP: 5}  # no pipelined batch ran


async def test_concurrent_tasks_share_batches_and_stay_exact(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any]
) -> None:
    factory = AsyncRepositoryFactory(rl_db)
    users = _users(8)
    calls = [_check(factory, users[i % 8], capacity=5) for i in range(64)]
    results = await asyncio.gather(*calls)
    for n, user in enumerate(users):
        mine = results[n::8]
        assert sum(r.allowed for r in mine) == 5
        assert sorted(r.remaining for r in mine if r.allowed) == list(range(5))
        assert await _counts(admin, user) == (5, 3)
    batcher = rl_db.batcher(OP)
    assert batcher.statements == 64
    # The first call went alone; the 63 that queued behind it went eight users at a time
    # (one check per subject in a batch).
    assert batcher.batches == 1 + 8
    assert batcher.retried == 0


async def test_one_now_per_batch(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any], pg_url: str
) -> None:
    factory = AsyncRepositoryFactory(rl_db)
    users = _users(7)
    calls = [_check(factory, u) for u in users]
    async with _queued_behind_stuck_call(rl_db, admin, pg_url, calls) as (first, queued, hold):
        base = rl_db.batcher(OP).batches
        await hold.commit()
        assert (await first).allowed
        assert all(r.allowed for r in await asyncio.gather(*queued))
    assert rl_db.batcher(OP).batches == base + 1  # the seven went as one batch
    cur = await admin.execute(
        "SELECT count(*), count(DISTINCT refilled_at) FROM rate_limits WHERE user_id = ANY(%s)",
        (users,),
    )
    # One statement, one transaction: the seven buckets were stamped with one now().
    assert await cur.fetchone() == (7, 1)


async def test_failing_statement_aborts_the_batch_and_the_others_run_alone_once(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any], pg_url: str
) -> None:
    factory = AsyncRepositoryFactory(rl_db)
    blocked, *free = _users(6)
    assert (await _check(factory, blocked)).allowed
    batcher = rl_db.batcher(OP)
    base = batcher.batches + 1  # (+ the stuck call's bucket creation)
    hold_blocked = await _lock_bucket(pg_url, blocked)
    calls = [_check(factory, u) for u in (blocked, *free)]
    try:
        async with _queued_behind_stuck_call(rl_db, admin, pg_url, calls) as (first, others, hold):
            await hold.commit()  # the lone call goes on; the batch of 6 then hits `blocked`
            assert (await first).allowed
            outcomes = await asyncio.gather(*others, return_exceptions=True)
    finally:
        await hold_blocked.close()
    # The blocked statement timed out (lock_timeout) and aborted its batch; alone again it
    # timed out again; every other statement ran once more alone and was counted once.
    assert isinstance(outcomes[0], RateLimitUnavailableError)
    assert all(not isinstance(o, BaseException) and o.allowed for o in outcomes[1:])
    assert (batcher.batches - base, batcher.retried) == (2, 6)
    assert await _counts(admin, blocked) == (1, 0)
    for user in free:
        assert await _counts(admin, user) == (1, 0)


async def test_two_batchers_on_overlapping_buckets_in_opposite_orders(
    pg_url: str, admin: psycopg.AsyncConnection[Any]
) -> None:
    users = sorted(_users(16))
    capacity, rounds = 5, 3
    async with _db(pg_url, "batch-a") as db_a, _db(pg_url, "batch-b") as db_b:
        fa, fb = AsyncRepositoryFactory(db_a), AsyncRepositoryFactory(db_b)
        for user in users:  # create the buckets (one admission each)
            assert (await _check(fa, user, capacity)).allowed
        # An outside transaction holds the middle bucket, so both batches stop half-way,
        # holding the locks they took so far: in opposite orders they would deadlock.
        hold = await _lock_bucket(pg_url, users[8])
        try:
            calls = []
            for _ in range(rounds):
                calls += [_check(fa, u, capacity) for u in users]
                calls += [_check(fb, u, capacity) for u in reversed(users)]
            # A deadlock would surface as RateLimitUnavailableError (rate_limit_on_error).
            gathered = asyncio.gather(*calls)
            await _wait_lock_waiters(admin, "batch-a", 1)
            await _wait_lock_waiters(admin, "batch-b", 1)
            await hold.commit()
            results = await gathered
        finally:
            await hold.close()
        batchers = (db_a.batcher(OP), db_b.batcher(OP))
        assert [b.statements for b in batchers] == [16 * rounds + 16, 16 * rounds]
        # Each: one call alone, then the 47 that queued behind it, 16 subjects at a time.
        assert [b.batches for b in batchers] == [16 + 1 + 3, 1 + 3]
        assert sum(b.retried for b in batchers) == 0
    assert sum(r.allowed for r in results) == 16 * (capacity - 1)
    for user in users:
        assert await _counts(admin, user) == (capacity, 2 * rounds + 1 - capacity)


async def test_cancelled_waiting_task_consumes_nothing(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any], pg_url: str
) -> None:
    factory = AsyncRepositoryFactory(rl_db)
    (user,) = _users(1)
    calls = [_check(factory, user) for _ in range(5)]
    async with _queued_behind_stuck_call(rl_db, admin, pg_url, calls) as (first, waiting, hold):
        waiting[2].cancel()
        await _until_pending(rl_db, 4)
        await hold.commit()
        assert (await first).allowed
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    kept = [o for i, o in enumerate(outcomes) if i != 2]
    assert all(not isinstance(o, BaseException) and o.allowed for o in kept)
    assert await _counts(admin, user) == (4, 0)


async def test_cancelled_leader_hands_the_batch_on(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any], pg_url: str
) -> None:
    factory = AsyncRepositoryFactory(rl_db)
    (user,) = _users(1)
    calls = [_check(factory, user) for _ in range(3)]
    async with _queued_behind_stuck_call(rl_db, admin, pg_url, calls) as (first, waiting, _):
        first.cancel()
        # The waiting calls do not wait for the lock the cancelled leader was stuck on.
        outcomes = await asyncio.gather(*waiting)
        assert [o.allowed for o in outcomes] == [True, True, True]
        with pytest.raises(asyncio.CancelledError):
            await first
    assert await _counts(admin, user) == (3, 0)
    assert rl_db.batcher(OP).pending == 0


@pytest.mark.slow
async def test_server_restart_mid_batch_counts_nothing_and_recovers(
    pg_server: EmbeddedPostgres,
) -> None:
    url = pg_server.url
    app = f"batch-{uuid.uuid4().hex[:8]}"
    async with _db(url, app, lock_timeout_ms=30_000) as database:
        factory = AsyncRepositoryFactory(database)
        lead, blocked, *free = _users(6)
        assert (await _check(factory, blocked)).allowed
        hold = await _lock_bucket(url, blocked)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            # `lead` goes alone; the five others queue behind it and form one batch, which
            # waits on the server for the bucket the outside transaction holds.
            first = asyncio.create_task(_check(factory, lead))
            batch = [asyncio.create_task(_check(factory, u)) for u in (blocked, *free)]
            assert (await first).allowed
            await _wait_lock_waiters(admin, app, 1)
        batcher = database.batcher(OP)
        assert (batcher.batches, batcher.statements) == (3, 7)
        pg_server.restart("fast")
        outcomes = await asyncio.gather(*batch, return_exceptions=True)
        # Whether a lost batch committed is unknown to the client: nobody is told
        # "allowed", nothing is retried.
        assert all(isinstance(o, RateLimitUnavailableError) for o in outcomes)
        assert batcher.retried == 0
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            # It had not committed (it was waiting for the lock when the server went down).
            for user in free:
                assert await _counts(admin, user) is None
            assert await _counts(admin, blocked) == (1, 0)
            # The next checks work (the pool replaced the dead connections) and count once.
            again = await asyncio.gather(*(_check(factory, u) for u in free))
            assert all(r.allowed and r.remaining == 9 for r in again)
            for user in free:
                assert await _counts(admin, user) == (1, 0)
        await hold.close()


async def test_concurrent_kv_gets_share_one_probe_and_compare_full_keys(
    rl_db: AsyncDatabase, admin: psycopg.AsyncConnection[Any]
) -> None:
    kv = AsyncRepositoryFactory(rl_db).cache.kv
    await kv.set_many({f"k{i}": i for i in range(20)})
    # A row holding another key under the hash of "ghost" (a hash collision): no hit.
    ghost = hash_key(KV_PERSON, b"default\x00ghost")
    await admin.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
        "VALUES (%s, 'default', 'not-ghost', '1', 1)",
        (ghost,),
    )
    keys = [f"k{i}" for i in range(20)] + ["ghost", "absent"]
    results = await asyncio.gather(*(kv.get(k, "miss") for k in keys * 3))
    assert results == [*range(20), "miss", "miss"] * 3
    batcher = rl_db.batcher("cache.kv.get")
    assert batcher.statements == 66
    # One alone, then the 65 that queued behind it: 64 (the most in a batch), then 1.
    assert batcher.batches == 3
    # Alone (no batch running), the same answers.
    assert [await kv.get(k, "miss") for k in ("k3", "ghost", "absent")] == [3, "miss", "miss"]
    assert (batcher.batches, batcher.statements) == (6, 69)


def test_prefix_hasher_is_hash_key_of_prefix_and_data() -> None:
    hasher = PrefixHasher(KV_PERSON, b"ns\x00")
    keys = ["", "a", "ключ", "x" * 1000, "emoji \U0001f600"]
    expected = [hash_key(KV_PERSON, b"ns\x00" + k.encode()) for k in keys]
    assert [hasher(k.encode()) for k in keys] == expected
    assert hasher.array(keys) == "{" + ",".join(map(str, expected)) + "}"
