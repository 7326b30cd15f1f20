# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_cache_kv.py
"""The generic key/value store: cache.kv and cache.namespace(name)."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.cache_codec import KV_PERSON, hash_key
from digitwin_db.errors import ValidationError


def _expire_all(raw_conn: psycopg.Connection, table: str = "kv_cache") -> None:
    raw_conn.execute(f"UPDATE {table} SET expires_at = now() - interval '1 second'")


def _count(raw_conn: psycopg.Connection, table: str = "kv_cache") -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_set_get_json_bytes_and_default(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    assert kv.get("missing") is None
    assert kv.get("missing", default=42) == 42
    kv.set("json", {"a": [1, 2.5, "x"], "b": None, "c": True})
    kv.set("bytes", b"\x00\x01\xff")
    kv.set("none", None)
    kv.set("text", "hello")
    assert kv.get("json") == {"a": [1, 2.5, "x"], "b": None, "c": True}
    assert kv.get("bytes") == b"\x00\x01\xff"
    assert kv.get("none", default="absent") is None  # a stored None is a value
    assert kv.get("text") == "hello"
    kv.set("text", ["replaced"])
    assert kv.get("text") == ["replaced"]


def test_keys_of_any_length_and_content(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
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
        kv.set(key, i)
    for i, key in enumerate(keys):
        assert kv.get(key) == i, key[:20]
        assert kv.exists(key)
    assert kv.get_many(keys) == {k: i for i, k in enumerate(keys)}
    assert _count(raw_conn) == len(keys)
    assert kv.delete("k" * 100_000)
    assert kv.get("k" * 100_000) is None
    assert kv.get("k" * 99_999) is None


def test_add_only_when_absent_or_expired(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    assert kv.add("k", 1) is True
    assert kv.add("k", 2) is False
    assert kv.get("k") == 1
    kv.set("e", "old", ttl=60)
    _expire_all(raw_conn)
    assert kv.add("e", "new") is True
    assert kv.get("e") == "new"


def test_delete_exists_ttl_expire_persist(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    kv.set("k", 1, ttl=100)
    ttl = kv.ttl("k")
    assert ttl is not None and 98 < ttl <= 100
    assert kv.expire("k", timedelta(seconds=1000))
    ttl = kv.ttl("k")
    assert ttl is not None and 998 < ttl <= 1000
    assert kv.persist("k")
    assert kv.ttl("k") is None
    assert kv.exists("k")
    assert kv.delete("k") is True
    assert kv.delete("k") is False
    assert not kv.exists("k")
    assert kv.ttl("k") is None
    assert kv.expire("k", 10) is False
    assert kv.persist("k") is False


def test_expired_entries_are_never_returned(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    kv.set("a", 1, ttl=60)
    kv.set_many({"b": 2, "c": 3}, ttl=60)
    _expire_all(raw_conn)
    assert _count(raw_conn) == 3  # still stored, not yet cleaned up
    assert kv.get("a") is None
    assert kv.get_many(["a", "b", "c"]) == {}
    assert not kv.exists("b")
    assert kv.ttl("c") is None
    assert kv.expire("a", 10) is False
    assert kv.delete("a") is False  # removed, but it was not live
    assert kv.incr("c") == 1  # an expired counter starts again at 0


def test_incr_decr(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    assert kv.incr("n") == 1
    assert kv.incr("n", 10) == 11
    assert kv.decr("n", 5) == 6
    assert kv.decr("m") == -1
    assert kv.get("n") == 6
    kv.set("float", 1.5)
    kv.set("text", "abc")
    kv.set("raw", b"12")
    for key in ("float", "text", "raw"):
        with pytest.raises(ValidationError, match="not an integer"):
            kv.incr(key)
    assert kv.get("text") == "abc"
    with pytest.raises(ValidationError):
        kv.incr("n", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        kv.incr("n", True)
    kv.set("t", 5, ttl=100, tags=["x"])
    assert kv.incr("t") == 6
    ttl = kv.ttl("t")
    assert ttl is not None and ttl > 90  # TTL kept
    assert kv.invalidate_tags("x") == 1  # tags kept


def test_many(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    kv.set_many({"a": 1, "b": b"two", "c": {"three": 3}})
    assert kv.get_many(["a", "b", "c", "zzz"]) == {"a": 1, "b": b"two", "c": {"three": 3}}
    assert kv.delete_many(["a", "c", "zzz"]) == 2
    assert kv.get_many(["a", "b", "c"]) == {"b": b"two"}


def test_delete_prefix_treats_wildcards_literally(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    keys = ["user:1", "user:2", "user_1", "userX1", "user%1", "user%%", "us", "x" + "y" * 300]
    for key in keys:
        kv.set(key, key)
    assert kv.delete_prefix("user%") == 2
    assert kv.get_many(keys) == {k: k for k in keys if not k.startswith("user%")}
    assert kv.delete_prefix("user_") == 1
    assert kv.get("userX1") == "userX1"
    assert kv.delete_prefix("user:") == 2
    assert kv.delete_prefix("x" + "y" * 299) == 1  # longer than the indexed 256
    assert sorted((kv.get_many(keys)).keys()) == ["us", "userX1"]
    with pytest.raises(ValidationError, match="prefix must not be empty"):
        kv.delete_prefix("")  # a careless caller must not empty the namespace
    assert kv.clear() == 2


def test_invalidate_tags_removes_exactly_the_tagged_keys(
    factory: RepositoryFactory,
) -> None:
    kv = factory.cache.kv
    kv.set("a", 1, tags=["user:1", "profile"])
    kv.set("b", 2, tags=["user:2"])
    kv.set("c", 3, tags=["profile"])
    kv.set("d", 4)
    factory.cache.namespace("other").set("a", 1, tags=["profile"])
    assert kv.invalidate_tags("profile") == 2
    assert kv.get_many(["a", "b", "c", "d"]) == {"b": 2, "d": 4}
    assert kv.invalidate_tags("user:2", "nothing") == 1
    assert kv.invalidate_tags("nothing") == 0
    assert factory.cache.namespace("other").get("a") == 1
    with pytest.raises(ValidationError):
        kv.invalidate_tags()


def test_namespaces_are_separate(factory: RepositoryFactory) -> None:
    a, b = factory.cache.namespace("a"), factory.cache.namespace("b")
    a.set("k", "in a")
    b.set("k", "in b")
    factory.cache.kv.set("k", "default")
    assert a.get("k") == "in a"
    assert b.get("k") == "in b"
    assert a.clear() == 1
    assert a.get("k") is None
    assert b.get("k") == "in b"
    assert factory.cache.kv.get("k") == "default"
    with pytest.raises(ValidationError):
        factory.cache.namespace("")


def test_get_or_set(factory: RepositoryFactory) -> None:
    kv = factory.cache.kv
    calls: list[int] = []

    def load() -> dict[str, int]:
        calls.append(1)
        return {"v": len(calls)}

    assert kv.get_or_set("k", load, ttl=60) == {"v": 1}
    assert kv.get_or_set("k", load, ttl=60) == {"v": 1}
    assert calls == [1]
    ttl = kv.ttl("k")
    assert ttl is not None and 55 < ttl <= 60

    def load_async() -> str:
        return "from a coroutine"

    assert kv.get_or_set("async", load_async) == "from a coroutine"
    assert kv.get("async") == "from a coroutine"


def test_get_or_set_raising_loader_caches_nothing(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv

    def boom() -> int:
        raise RuntimeError("loader failed")

    with pytest.raises(RuntimeError, match="loader failed"):
        kv.get_or_set("k", boom)
    assert _count(raw_conn) == 0
    with pytest.raises(ValidationError):
        kv.get_or_set("k", lambda: {1, 2})  # not JSON: nothing cached
    assert _count(raw_conn) == 0
    assert kv.get_or_set("k", lambda: 7) == 7


def test_bad_input_is_rejected_and_nothing_stored(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
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
            call()
    assert _count(raw_conn) == 0


def test_a_hash_collision_never_serves_another_keys_value(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    # Forge the collision: a row for key "b" stored under the hash of key "a".
    raw_conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
        "VALUES (%s, 'default', 'b', '\"value of b\"', 10)",
        (hash_key(KV_PERSON, b"default\x00a"),),
    )
    assert kv.get("a") is None
    assert kv.get_many(["a"]) == {}
    assert not kv.exists("a")
    assert kv.delete("a") is False
    assert kv.incr("a") == 1  # the colliding row is replaced, never read as "a"
    assert kv.get("a") == 1
