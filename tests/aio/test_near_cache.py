"""The near cache (SPEC §2.10) through the API, against a real server: hits from memory,
invalidation by every kind of writer (seen through the listener's real notifications),
the listener losing its connection, a fill racing an invalidation, expiry and bounds.
tests/sync/test_near_cache.py is generated from this file: both APIs behave alike.

Cross-process coherence with a randomized history is in tests/test_near_cache_processes.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.repositories.cache_near import AsyncNearReads
from digitwin_db.cache_codec import KV_PERSON, hash_key
from digitwin_db.near_cache import ENTRY_OVERHEAD

WAIT = 10.0  # seconds; generous for a loaded 2-core machine (never a timing assertion)


class Notifications:
    """What the listener applied: payloads in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, payload: str) -> None:
        with self.lock:
            self.payloads.append(payload)

    def count(self) -> int:
        with self.lock:
            return len(self.payloads)


async def _wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def _fence(factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection) -> None:
    """Send a fence notification and wait until the listener applied it: every write
    committed before it has been applied too (notifications arrive in commit order). Also
    used after the test's own writes, whose notifications would otherwise drop copies
    filled after them (a refill, not an error, but it would change the counts)."""
    token = f"!fence-{time.monotonic_ns()}"
    arrived = threading.Event()
    _near(factory).listener.add_observer(lambda p: arrived.set() if p == token else None)
    raw_conn.execute("SELECT pg_notify('digitwin_cache', %s)", (token,))
    await _wait_for(arrived.is_set, "the fence notification")


def _near(factory: AsyncRepositoryFactory) -> AsyncNearReads:
    near = factory.cache.near
    assert near is not None
    return near


async def _open(pg_url: str, **settings: Any) -> AsyncRepositoryFactory:
    db = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=10, near_cache=True, **settings)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    assert _near(factory).listener.wait_listening(WAIT)
    return factory


@pytest.fixture
async def near_factory(pg_url: str) -> AsyncIterator[AsyncRepositoryFactory]:
    factory = await _open(pg_url)
    yield factory
    await factory.close()
    await factory.db.close()


@pytest.fixture
def seen(near_factory: AsyncRepositoryFactory) -> Notifications:
    observer = Notifications()
    _near(near_factory).listener.add_observer(observer)
    return observer


def _kv_hash(namespace: str, key: str) -> int:
    return hash_key(KV_PERSON, namespace.encode() + b"\x00" + key.encode())


# ---------------------------------------------------------------------- off by default
async def test_off_by_default(factory: AsyncRepositoryFactory) -> None:
    assert factory.cache.near is None
    await factory.cache.kv.set("k", 1)
    assert await factory.cache.kv.get("k") == 1
    assert (await factory.cache.stats()).kv.near_hits == 0


# ---------------------------------------------------------------------- hits and copies
async def test_second_read_is_served_from_memory(
    near_factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = near_factory.cache.kv
    await kv.set("k", {"a": [1, 2]})
    await _fence(near_factory, raw_conn)
    assert await kv.get("k") == {"a": [1, 2]}  # fill
    assert await kv.get("k") == {"a": [1, 2]}  # memory
    assert await kv.get("k") == {"a": [1, 2]}
    stats = (await near_factory.cache.stats()).kv
    assert (stats.near_hits, stats.near_misses, stats.near_entries) == (2, 1, 1)
    assert (stats.hits, stats.misses) == (3, 0)


async def test_values_handed_out_are_never_shared(
    near_factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = near_factory.cache.kv
    await kv.set("k", {"a": [1, 2]})
    await _fence(near_factory, raw_conn)
    first = await kv.get("k")
    first["a"].append(3)  # the caller mutates what it got from the fill
    second = await kv.get("k")
    assert second == {"a": [1, 2]}
    second["b"] = 1  # ... and what it got from memory
    assert await kv.get("k") == {"a": [1, 2]}
    assert (await near_factory.cache.stats()).kv.near_hits == 2
    await kv.set("b", b"\x00bytes")
    await kv.set("n", None)
    await _fence(near_factory, raw_conn)
    assert await kv.get("b") == b"\x00bytes"
    assert await kv.get("b") == b"\x00bytes"
    assert await kv.get("n", "default") is None
    assert await kv.get("n", "default") is None  # a stored None is a value, from memory too


async def test_every_cache_is_fronted_and_copies_are_fresh_objects(
    near_factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = near_factory.cache
    await cache.set_embedding("t", [1.0, 2.5], model="m")
    await cache.set_search_results("q", [("d1", 0.9, {"p": [1]})], index="i")
    await cache.set_llm_response("p", "r", model="m", metadata={"tokens": [1]})
    await _fence(near_factory, raw_conn)
    for _ in range(2):
        vector = await cache.get_embedding("t", model="m")
        assert vector == [1.0, 2.5]
        assert vector is not None
        vector.append(9.0)
        assert await cache.get_embeddings(["t", "x"], model="m") == [[1.0, 2.5], None]
        hits = await cache.get_search_results("q", index="i")
        assert hits is not None and hits[0].payload == {"p": [1]}
        hits[0].payload["p"].append(2)
        response = await cache.get_llm_response("p", model="m")
        assert response is not None and response.metadata == {"tokens": [1]}
        response.metadata["tokens"].append(2)
    stats = await cache.stats()
    # Memory served: "t" in the first get_embeddings, and both calls the second time.
    assert (stats.embedding.near_hits, stats.embedding.near_misses) == (3, 3)
    assert stats.vector_search.near_hits == 1
    assert stats.llm_response.near_hits == 1
    response = await cache.get_llm_response("p", model="m")
    assert response is not None and response.hit_count == 3
    await cache.flush_stats()


async def test_opted_out_namespace_never_uses_memory(near_factory: AsyncRepositoryFactory) -> None:
    plain = near_factory.cache.namespace("plain", near=False)
    await plain.set("k", 1)
    for _ in range(3):
        assert await plain.get("k") == 1
    assert await plain.get_many(["k"]) == {"k": 1}
    stats = (await near_factory.cache.stats()).kv
    assert (stats.near_hits, stats.near_misses, stats.near_entries, stats.hits) == (0, 0, 0, 4)


# ---------------------------------------------------------------------- invalidation
async def test_this_process_reads_its_own_writes_at_once(
    near_factory: AsyncRepositoryFactory,
) -> None:
    """A local write drops the local copy before the call returns (no wait for NOTIFY)."""
    kv = near_factory.cache.namespace("own")
    steps: list[tuple[str, Any]] = [
        ("set", lambda: kv.set("k", 2)),
        ("set_many", lambda: kv.set_many({"k": 3})),
        ("incr", lambda: kv.incr("k")),
        ("decr", lambda: kv.decr("k", 2)),
        ("delete", lambda: kv.delete("k")),
        ("add", lambda: kv.add("k", 5)),
        ("delete_many", lambda: kv.delete_many(["k"])),
        ("get_or_set", lambda: kv.get_or_set("k", lambda: 6)),
        ("expire", lambda: kv.expire("k", 100)),
        ("persist", lambda: kv.persist("k")),
    ]
    await kv.set("k", 1)
    for name, step in steps:
        await kv.get("k")
        await kv.get("k")  # a copy now exists (unless the key is absent)
        await step()
        expected = await near_factory.cache.namespace("own", near=False).get("k")
        assert await kv.get("k") == expected, name
    await kv.set("k", 7, tags=["t"])
    for name, bulk in [
        ("delete_prefix", lambda: kv.delete_prefix("k")),
        ("invalidate_tags", lambda: kv.invalidate_tags("t")),
        ("clear", kv.clear),
    ]:
        await kv.set("k", 7, tags=["t"])
        assert await kv.get("k") == 7
        assert await kv.get("k") == 7
        await bulk()
        assert await kv.get("k") is None, name
    # A shorter TTL set here is honoured by this process's copy at once.
    await kv.set("k", 8)
    assert await kv.get("k") == 8
    assert await kv.get("k") == 8
    await kv.expire("k", 0.2)
    await asyncio.sleep(0.25)
    assert await kv.get("k") is None


async def test_plain_sql_writes_invalidate_through_notifications(
    near_factory: AsyncRepositoryFactory, seen: Notifications, raw_conn: psycopg.Connection
) -> None:
    kv = near_factory.cache.kv
    await kv.set("k", 1)
    await _fence(near_factory, raw_conn)
    assert await kv.get("k") == 1
    assert await kv.get("k") == 1
    statements = [
        ("UPDATE kv_cache SET value_json = '2' WHERE key = 'k'", 2),
        ("UPDATE kv_cache SET expires_at = now() - interval '1 s' WHERE key = 'k'", None),
        ("UPDATE kv_cache SET expires_at = NULL, value_json = '3' WHERE key = 'k'", 3),
        ("DELETE FROM kv_cache WHERE key = 'k'", None),
    ]
    for statement, expected in statements:
        await kv.get("k")
        await kv.get("k")
        raw_conn.execute(statement)
        await _fence(near_factory, raw_conn)
        assert await kv.get("k") == expected, statement
    # INSERT by another writer (here: plain SQL with the package's key hash).
    await kv.get("k")
    raw_conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
        "VALUES (%s, 'default', 'k', '4', 1)",
        (_kv_hash("default", "k"),),
    )
    await _fence(near_factory, raw_conn)
    assert await kv.get("k") == 4
    assert await kv.get("k") == 4
    raw_conn.execute("TRUNCATE kv_cache")
    await _fence(near_factory, raw_conn)
    assert await kv.get("k") is None
    assert "k*" in seen.payloads


async def test_a_statement_too_large_for_one_payload_drops_the_namespace(
    near_factory: AsyncRepositoryFactory, seen: Notifications, raw_conn: psycopg.Connection
) -> None:
    big = near_factory.cache.namespace("big")
    other = near_factory.cache.namespace("other")
    await big.set_many({f"k{i}": i for i in range(600)})
    await other.set("k", "o")
    await _fence(near_factory, raw_conn)
    for ns in (big, other):
        assert await ns.get("k1" if ns is big else "k") is not None
        await ns.get("k1" if ns is big else "k")
    raw_conn.execute("UPDATE kv_cache SET value_json = '-1' WHERE namespace = 'big'")
    await _fence(near_factory, raw_conn)
    assert "k*big" in seen.payloads  # 600 keys do not fit in 8000 bytes
    assert all(len(p.encode()) < 8000 for p in seen.payloads)
    assert await big.get("k1") == -1
    before = (await near_factory.cache.stats()).kv.near_hits
    assert await other.get("k") == "o"  # the other namespace kept its copy
    assert (await near_factory.cache.stats()).kv.near_hits == before + 1


async def test_embedding_search_and_llm_writes_by_others_invalidate(
    near_factory: AsyncRepositoryFactory, seen: Notifications, raw_conn: psycopg.Connection
) -> None:
    cache = near_factory.cache
    await cache.set_embedding("t", [1.0], model="m")
    await cache.set_search_results("q", [("d", 0.5)], index="i")
    await cache.set_llm_response("p", "r1", model="m")
    await _fence(near_factory, raw_conn)
    for _ in range(2):
        await cache.get_embedding("t", model="m")
        await cache.get_search_results("q", index="i")
        await cache.get_llm_response("p", model="m")
    raw_conn.execute("UPDATE embedding_cache SET embedding = '\\x00000040'::bytea")
    raw_conn.execute("""UPDATE vector_search_cache SET hits = '[{"id": "e", "score": 1.0}]'""")
    raw_conn.execute("UPDATE llm_response_cache SET response = 'r2'")
    await _fence(near_factory, raw_conn)
    assert await cache.get_embedding("t", model="m") == [2.0]
    hits = await cache.get_search_results("q", index="i")
    assert hits is not None and [h.id for h in hits] == ["e"]
    response = await cache.get_llm_response("p", model="m")
    assert response is not None and response.response == "r2"
    # A hit-count flush changes no content: it must not invalidate the copies.
    count = seen.count()
    await cache.flush_stats()
    await _fence(near_factory, raw_conn)
    assert seen.payloads[count:] == [seen.payloads[-1]]  # only the fence arrived
    assert (await cache.stats()).llm_response.near_entries == 1


# ---------------------------------------------------------------------- the listener
async def test_listener_lost_then_back_never_serves_a_stale_copy(
    near_factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection, pg_url: str
) -> None:
    """The listener's backend is terminated and the key changes while it cannot
    reconnect (the database refuses new connections meanwhile): the tier is empty and
    bypassed while it is down, and once it is back the new value is read."""
    near = _near(near_factory)
    kv = near_factory.cache.kv
    await kv.set("k", "old")
    assert await kv.get("k") == "old"
    assert await kv.get("k") == "old"
    old_pid = near.listener.backend_pid
    database = raw_conn.info.dbname
    admin = psycopg.connect(make_conninfo(pg_url, dbname="postgres"), autocommit=True)
    admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
    try:
        raw_conn.execute("SELECT pg_terminate_backend(%s, 5000)", (old_pid,))
        await _wait_for(lambda: near.listener.state == "reconnecting", "the listener to notice")
        assert not near.tier.listening
        assert len(near.tier) == 0
        raw_conn.execute("UPDATE kv_cache SET value_json = '\"new\"' WHERE key = 'k'")
        assert await kv.get("k") == "new"  # bypassed: read from the table, not stored
        assert len(near.tier) == 0
    finally:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        admin.close()
    assert near.listener.wait_listening(WAIT)
    assert near.listener.backend_pid != old_pid
    assert near.listener.reconnects == 1
    assert await kv.get("k") == "new"
    assert await kv.get("k") == "new"
    assert len(near.tier) == 1
    health = await near_factory.health()
    check = next(c for c in health.repositories if c.name == "cache")
    assert check.details["near_cache"]["state"] == "listening"
    assert check.details["near_cache"]["reconnects"] == 1


async def test_fill_racing_an_invalidation_is_not_installed(
    near_factory: AsyncRepositoryFactory, seen: Notifications, raw_conn: psycopg.Connection
) -> None:
    """Forced interleaving: begin a fill, read the old row, let a write commit and its
    notification be applied, then try to install what was read."""
    near = _near(near_factory)
    kv = near_factory.cache.kv
    await kv.set("k", "old")
    key_hash = _kv_hash("default", "k")
    token = near.tier.begin("kv", key_hash)
    assert token is not None
    row = raw_conn.execute("SELECT value_json FROM kv_cache WHERE key = 'k'").fetchone()
    assert row == ("old",)
    raw_conn.execute("UPDATE kv_cache SET value_json = '\"new\"' WHERE key = 'k'")
    await _fence(near_factory, raw_conn)
    assert near.tier.fill(token, ("k", "default", "k"), "old", 3, None, "default") is False
    assert await kv.get("k") == "new"
    assert await kv.get("k") == "new"
    # The same interleaving around a whole-cache drop and a listener restart.
    for interrupt in ("drop", "relisten"):
        token = near.tier.begin("kv", key_hash)
        assert token is not None
        if interrupt == "drop":
            near.tier.drop("kv")
        else:
            near.tier.set_listening(False)
            near.tier.set_listening(True)
        assert near.tier.fill(token, ("k", "default", "k"), "old", 3, None, "default") is False
    # Without an invalidation in between, the fill is installed.
    token = near.tier.begin("kv", _kv_hash("default", "other"))
    assert token is not None
    assert near.tier.fill(token, ("k", "default", "other"), "v", 1, None, "default") is True


# ---------------------------------------------------------------------- expiry and bounds
async def test_expiry_is_honoured_from_memory(pg_url: str, raw_conn: psycopg.Connection) -> None:
    factory = await _open(pg_url, near_cache_max_age=1.0)
    try:
        kv = factory.cache.kv
        await kv.set("ttl", 1, ttl=1.0)
        await kv.set("forever", 2)
        await _fence(factory, raw_conn)
        assert await kv.get("ttl") == 1
        assert await kv.get("forever") == 2
        assert await kv.get("ttl") == 1  # memory
        assert await kv.get("forever") == 2  # memory
        await asyncio.sleep(1.05)
        assert await kv.get("ttl") is None  # past expires_at: not served from memory
        assert await kv.get("forever") == 2  # past max_age: read again from the table
        stats = (await factory.cache.stats()).kv
        assert (stats.near_hits, stats.near_misses) == (2, 4)
    finally:
        await factory.close()
        await factory.db.close()


async def test_memory_bounds_evict_least_recently_used(
    pg_url: str, raw_conn: psycopg.Connection
) -> None:
    factory = await _open(pg_url, near_cache_max_entries=5)
    try:
        kv = factory.cache.kv
        await kv.set_many({f"k{i}": i for i in range(10)})
        await _fence(factory, raw_conn)
        for i in range(10):
            assert await kv.get(f"k{i}") == i
        near = _near(factory)
        assert len(near.tier) == 5
        assert await kv.get("k9") == 9  # among the 5 most recent: memory
        assert await kv.get("k0") == 0  # evicted: the table
        stats = (await factory.cache.stats()).kv
        assert (stats.near_evictions, stats.near_hits, stats.near_entries) == (6, 1, 5)
    finally:
        await factory.close()
        await factory.db.close()
    value = "x" * 3000
    factory = await _open(pg_url, near_cache_max_bytes=4 * (3000 + ENTRY_OVERHEAD + 10))
    try:
        kv = factory.cache.kv
        await kv.set_many({f"b{i}": value for i in range(8)})
        await kv.set("huge", "y" * 100_000)
        await _fence(factory, raw_conn)
        for i in range(8):
            assert await kv.get(f"b{i}") == value
        assert await kv.get("huge") == "y" * 100_000  # larger than the bound: not kept
        near = _near(factory)
        assert len(near.tier) == 4
        assert near.tier.bytes <= near.tier.max_bytes
        # cache_stats sums every process's counters: 6 of the first factory, 4 here.
        assert (await factory.cache.stats()).kv.near_evictions == 6 + 4
    finally:
        await factory.close()
        await factory.db.close()


async def test_stats_of_all_processes_and_close_stops_the_listener(
    near_factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = near_factory.cache.kv
    await kv.set("k", 1)
    await _fence(near_factory, raw_conn)
    for _ in range(4):
        await kv.get("k")
    await near_factory.cache.flush_stats()
    row = raw_conn.execute(
        "SELECT near_hits, near_misses FROM cache_stats WHERE cache_name = 'kv'"
    ).fetchone()
    assert row == (3, 1)
    near = _near(near_factory)
    pid = near.listener.backend_pid
    await near_factory.close()
    assert near.listener.state == "stopped"
    assert not near.tier.listening
    await _wait_for(
        lambda: (
            raw_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            == (0,)
        ),
        "the listener's backend to go away",
    )


async def test_a_failure_while_applying_bypasses_then_starts_over(
    near_factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    """A payload that cannot be applied (here: an observer that raises once) must not
    leave the tier serving without a working listener: it is emptied and bypassed, and
    the listener starts over on a new connection."""
    near = _near(near_factory)
    kv = near_factory.cache.kv
    await kv.set("k", "old")
    await _fence(near_factory, raw_conn)
    assert await kv.get("k") == "old"
    failures = ["once"]

    def failing(payload: str) -> None:
        if payload.startswith("k:") and failures:
            failures.pop()
            raise RuntimeError("observer failed")

    near.listener.add_observer(failing)
    old_pid = near.listener.backend_pid
    raw_conn.execute("UPDATE kv_cache SET value_json = '\"new\"' WHERE key = 'k'")
    await _wait_for(lambda: near.listener.reconnects == 1, "the listener to start over")
    assert near.listener.wait_listening(WAIT)
    assert near.listener.backend_pid != old_pid
    assert await kv.get("k") == "new"
    assert await kv.get("k") == "new"
