"""The generic key/value store: cache.kv and cache.namespace(name)."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg
import pytest

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.cache_codec import KV_PERSON, hash_key
from digitwin_db.errors import ValidationError


def _expire_all(raw_conn: psycopg.Connection, table: str = "kv_cache") -> None:
    raw_conn.execute(f"UPDATE {table} SET expires_at = now() - interval '1 second'")


def _count(raw_conn: psycopg.Connection, table: str = "kv_cache") -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


async def test_set_get_json_bytes_and_default(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    assert await kv.get("missing") is None
    assert await kv.get("missing", default=42) == 42
    await kv.set("json", {"a": [1, 2.5, "x"], "b": None, "c": True})
    await kv.set("bytes", b"\x00\x01\xff")
    await kv.set("none", None)
    await kv.set("text", "hello")
    assert await kv.get("json") == {"a": [1, 2.5, "x"], "b": None, "c": True}
    assert await kv.get("bytes") == b"\x00\x01\xff"
    assert await kv.get("none", default="absent") is None  # a stored None is a value
    assert await kv.get("text") == "hello"
    await kv.set("text", ["replaced"])
    assert await kv.get("text") == ["replaced"]


async def test_keys_of_any_length_and_content(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    keys = [
        "k" * 100_000,
        'it\'s "quoted"',
        "back\\slash\\",
        "100%",
        "a_b",
        "%_%",
        "ünïcødé ✓ 日本語 🎉",
        "",
        "   ",
        "line\nbreak\ttab",
    ]
    for i, key in enumerate(keys):
        await kv.set(key, i)
    for i, key in enumerate(keys):
        assert await kv.get(key) == i, key[:20]
        assert await kv.exists(key)
    assert await kv.get_many(keys) == {k: i for i, k in enumerate(keys)}
    assert _count(raw_conn) == len(keys)
    assert await kv.delete("k" * 100_000)
    assert await kv.get("k" * 100_000) is None
    assert await kv.get("k" * 99_999) is None


async def test_add_only_when_absent_or_expired(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    assert await kv.add("k", 1) is True
    assert await kv.add("k", 2) is False
    assert await kv.get("k") == 1
    await kv.set("e", "old", ttl=60)
    _expire_all(raw_conn)
    assert await kv.add("e", "new") is True
    assert await kv.get("e") == "new"


async def test_delete_exists_ttl_expire_persist(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    await kv.set("k", 1, ttl=100)
    ttl = await kv.ttl("k")
    assert ttl is not None and 98 < ttl <= 100
    assert await kv.expire("k", timedelta(seconds=1000))
    ttl = await kv.ttl("k")
    assert ttl is not None and 998 < ttl <= 1000
    assert await kv.persist("k")
    assert await kv.ttl("k") is None
    assert await kv.exists("k")
    assert await kv.delete("k") is True
    assert await kv.delete("k") is False
    assert not await kv.exists("k")
    assert await kv.ttl("k") is None
    assert await kv.expire("k", 10) is False
    assert await kv.persist("k") is False


async def test_expired_entries_are_never_returned(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    await kv.set("a", 1, ttl=60)
    await kv.set_many({"b": 2, "c": 3}, ttl=60)
    _expire_all(raw_conn)
    assert _count(raw_conn) == 3  # still stored, not yet cleaned up
    assert await kv.get("a") is None
    assert await kv.get_many(["a", "b", "c"]) == {}
    assert not await kv.exists("b")
    assert await kv.ttl("c") is None
    assert await kv.expire("a", 10) is False
    assert await kv.delete("a") is False  # removed, but it was not live
    assert await kv.incr("c") == 1  # an expired counter starts again at 0


async def test_incr_decr(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    assert await kv.incr("n") == 1
    assert await kv.incr("n", 10) == 11
    assert await kv.decr("n", 5) == 6
    assert await kv.decr("m") == -1
    assert await kv.get("n") == 6
    await kv.set("float", 1.5)
    await kv.set("text", "abc")
    await kv.set("raw", b"12")
    for key in ("float", "text", "raw"):
        with pytest.raises(ValidationError, match="not an integer"):
            await kv.incr(key)
    assert await kv.get("text") == "abc"
    with pytest.raises(ValidationError):
        await kv.incr("n", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await kv.incr("n", True)
    await kv.set("t", 5, ttl=100, tags=["x"])
    assert await kv.incr("t") == 6
    ttl = await kv.ttl("t")
    assert ttl is not None and ttl > 90  # TTL kept
    assert await kv.invalidate_tags("x") == 1  # tags kept


async def test_many(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    await kv.set_many({"a": 1, "b": b"two", "c": {"three": 3}})
    assert await kv.get_many(["a", "b", "c", "zzz"]) == {"a": 1, "b": b"two", "c": {"three": 3}}
    assert await kv.delete_many(["a", "c", "zzz"]) == 2
    assert await kv.get_many(["a", "b", "c"]) == {"b": b"two"}


async def test_delete_prefix_treats_wildcards_literally(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    keys = ["user:1", "user:2", "user_1", "userX1", "user%1", "user%%", "us", "x" + "y" * 300]
    for key in keys:
        await kv.set(key, key)
    assert await kv.delete_prefix("user%") == 2
    assert await kv.get_many(keys) == {k: k for k in keys if not k.startswith("user%")}
    assert await kv.delete_prefix("user_") == 1
    assert await kv.get("userX1") == "userX1"
    assert await kv.delete_prefix("user:") == 2
    assert await kv.delete_prefix("x" + "y" * 299) == 1  # longer than the indexed 256
    assert sorted((await kv.get_many(keys)).keys()) == ["us", "userX1"]
    with pytest.raises(ValidationError, match="prefix must not be empty"):
        await kv.delete_prefix("")  # a careless caller must not empty the namespace
    assert await kv.clear() == 2


async def test_invalidate_tags_removes_exactly_the_tagged_keys(
    factory: AsyncRepositoryFactory,
) -> None:
    kv = factory.cache.kv
    await kv.set("a", 1, tags=["user:1", "profile"])
    await kv.set("b", 2, tags=["user:2"])
    await kv.set("c", 3, tags=["profile"])
    await kv.set("d", 4)
    await factory.cache.namespace("other").set("a", 1, tags=["profile"])
    assert await kv.invalidate_tags("profile") == 2
    assert await kv.get_many(["a", "b", "c", "d"]) == {"b": 2, "d": 4}
    assert await kv.invalidate_tags("user:2", "nothing") == 1
    assert await kv.invalidate_tags("nothing") == 0
    assert await factory.cache.namespace("other").get("a") == 1
    with pytest.raises(ValidationError):
        await kv.invalidate_tags()


async def test_namespaces_are_separate(factory: AsyncRepositoryFactory) -> None:
    a, b = factory.cache.namespace("a"), factory.cache.namespace("b")
    await a.set("k", "in a")
    await b.set("k", "in b")
    await factory.cache.kv.set("k", "default")
    assert await a.get("k") == "in a"
    assert await b.get("k") == "in b"
    assert await a.clear() == 1
    assert await a.get("k") is None
    assert await b.get("k") == "in b"
    assert await factory.cache.kv.get("k") == "default"
    with pytest.raises(ValidationError):
        factory.cache.namespace("")


async def test_get_or_set(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    calls: list[int] = []

    def load() -> dict[str, int]:
        calls.append(1)
        return {"v": len(calls)}

    assert await kv.get_or_set("k", load, ttl=60) == {"v": 1}
    assert await kv.get_or_set("k", load, ttl=60) == {"v": 1}
    assert calls == [1]
    ttl = await kv.ttl("k")
    assert ttl is not None and 55 < ttl <= 60

    async def load_async() -> str:
        return "from a coroutine"

    assert await kv.get_or_set("async", load_async) == "from a coroutine"
    assert await kv.get("async") == "from a coroutine"


async def test_get_or_set_raising_loader_caches_nothing(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv

    def boom() -> int:
        raise RuntimeError("loader failed")

    with pytest.raises(RuntimeError, match="loader failed"):
        await kv.get_or_set("k", boom)
    assert _count(raw_conn) == 0
    with pytest.raises(ValidationError):
        await kv.get_or_set("k", lambda: {1, 2})  # not JSON: nothing cached
    assert _count(raw_conn) == 0
    assert await kv.get_or_set("k", lambda: 7) == 7


async def test_bad_input_is_rejected_and_nothing_stored(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    bad_calls = [
        lambda: kv.set("k", object()),
        lambda: kv.set("k", {1, 2}),
        lambda: kv.set("k", math.nan),
        lambda: kv.set("k", 1, ttl=-1),
        lambda: kv.set("k", 1, ttl=0),
        lambda: kv.set("k", 1, ttl=math.nan),
        lambda: kv.set("k", 1, ttl=math.inf),
        lambda: kv.set("k", 1, ttl="10"),  # type: ignore[arg-type]
        lambda: kv.set(1, 1),  # type: ignore[arg-type]
        lambda: kv.set("nul\x00key", 1),
        lambda: kv.set("k", 1, tags="one"),
        lambda: kv.set("k", "lone \ud800 surrogate"),
        lambda: kv.set("k", {"nested": ["x\udfff"]}),
        lambda: kv.set("k", 2**64),
        lambda: kv.set("k", [1.0, math.inf]),
        lambda: kv.add("k", {"a": "\ud800"}),
        lambda: kv.set_many({"a": 1, "b": "\ud800"}),
        lambda: kv.set_many({"a": 1, "b": object()}),
        lambda: kv.get_many("abc"),
        lambda: kv.expire("k", -5),
        lambda: kv.add("k", object()),
        lambda: kv.get_or_set("k", lambda: 1, lock_timeout=0),
        lambda: kv.get(None),  # type: ignore[arg-type]
    ]
    for call in bad_calls:
        with pytest.raises(ValidationError):
            await call()
    assert _count(raw_conn) == 0


async def test_a_hash_collision_never_serves_another_keys_value(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    # Forge the collision: a row for key "b" stored under the hash of key "a".
    raw_conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
        "VALUES (%s, 'default', 'b', '\"value of b\"', 10)",
        (hash_key(KV_PERSON, b"default\x00a"),),
    )
    assert await kv.get("a") is None
    assert await kv.get_many(["a"]) == {}
    assert not await kv.exists("a")
    assert await kv.delete("a") is False
    assert await kv.incr("a") == 1  # the colliding row is replaced, never read as "a"
    assert await kv.get("a") == 1
