"""The kv and cache API of issue 14: value codec and serializers, keys(), incr with a TTL,
compare_and_set / delete_if, cache.lock, delete_llm_response, clear(kind), empty batches and
str subclasses as keys — each with hostile input (typed error, nothing changed)."""

from __future__ import annotations

import enum
import json
import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pydantic
import pytest

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.cache_lock_policy import LockError, LockNotOwnedError, LockTimeoutError
from digitwin_db.errors import ValidationError


def _rows(raw_conn: psycopg.Connection, table: str = "kv_cache") -> list[tuple[Any, ...]]:
    return raw_conn.execute(
        f"SELECT namespace, key, value_json::text, value_bytes, expires_at FROM {table} "
        "ORDER BY namespace, key"
    ).fetchall()


def _count(raw_conn: psycopg.Connection, table: str) -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


class Color(str, enum.Enum):  # noqa: UP042 - str() of this mix-in is "Color.RED"
    RED = "red"


class Point(pydantic.BaseModel):
    x: int
    label: str


# ---------------------------------------------------------------- the "json" codec


async def test_json_values_round_trip_with_their_types(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    value = {"z": 1e16, "a": 1.0, "n": None, "big": 2**63, "neg": -(2**63), "t": "x\x00y"}
    await kv.set("k", value)
    got = await kv.get("k")
    assert got == value
    assert isinstance(got["z"], float)  # 1e16 stays a float (jsonb made it an int)
    assert isinstance(got["a"], float)
    assert list(got) == ["z", "a", "n", "big", "neg", "t"]  # dict order kept
    await kv.set("f", 1e16)
    assert repr(await kv.get("f")) == "1e+16"
    assert (await kv.get_many(["f"]))["f"] == 1e16
    assert isinstance((await kv.get_many(["f"]))["f"], float)
    await kv.set("b", b"\x00\xff raw")
    assert await kv.get("b") == b"\x00\xff raw"


async def test_json_converts_the_documented_types(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await kv.set(
        "k",
        {
            "tuple": (1, 2),
            "uuid": uid,
            "when": when,
            "decimal": Decimal("1.10"),
            "model": Point(x=1, label="p"),
            "enum": Color.RED,
            1: "int key",
        },
    )
    assert await kv.get("k") == {
        "tuple": [1, 2],
        "uuid": str(uid),
        "when": "2026-01-02T03:04:05+00:00",
        "decimal": "1.10",
        "model": {"x": 1, "label": "p"},
        "enum": "red",
        "1": "int key",
    }


@pytest.mark.parametrize(
    "bad",
    [
        "lone \ud800 surrogate",
        {"nested": ["ok", {"deep": "x\udfff"}]},
        {"key \ud800": 1},
        math.nan,
        {"a": [1.0, -math.inf]},
        2**64,
        -(2**63) - 1,
        {1, 2},
        object(),
        Decimal("NaN"),
    ],
    ids=[
        "surrogate",
        "nested-surrogate",
        "surrogate-key",
        "nan",
        "nested-inf",
        "big-int",
        "small-int",
        "set",
        "object",
        "decimal-nan",
    ],
)
async def test_unstorable_values_are_validation_errors_and_nothing_is_stored(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection, bad: object
) -> None:
    kv = factory.cache.kv
    await kv.set("keep", "old")
    before = _rows(raw_conn)
    with pytest.raises(ValidationError):
        await kv.set("k", bad)
    with pytest.raises(ValidationError):
        await kv.set("keep", bad)
    with pytest.raises(ValidationError):
        await kv.add("k", bad)
    with pytest.raises(ValidationError):
        await kv.set_many({"a": 1, "b": bad})
    with pytest.raises(ValidationError):
        await kv.get_or_set("k", lambda: {"loaded": [bad]})
    with pytest.raises(ValidationError):
        await kv.compare_and_set("keep", "old", bad)
    assert _rows(raw_conn) == before
    assert await kv.get("keep") == "old"


async def test_get_or_set_returns_on_a_miss_what_a_hit_returns(
    factory: AsyncRepositoryFactory,
) -> None:
    kv = factory.cache.kv
    loaded = {"pair": (1, 2), "when": datetime(2026, 1, 1, tzinfo=UTC)}
    miss = await kv.get_or_set("k", lambda: loaded)
    hit = await kv.get_or_set("k", lambda: loaded)
    assert miss == hit == {"pair": [1, 2], "when": "2026-01-01T00:00:00+00:00"}
    ns = factory.cache.namespace("p", serializer="pickle")
    value = {"pair": (1, 2)}
    got = await ns.get_or_set("k", lambda: value)
    assert got == value and got is not value  # a copy: the loader's object is not shared
    assert await kv.get_or_set("b", lambda: bytearray(b"x")) == b"x"


async def test_deep_nesting_is_stored_up_to_the_limit(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    deep: list[Any] = []
    inner = deep
    for _ in range(500):  # past orjson's 254 levels: the standard library writes it
        inner.append([])
        inner = inner[0]
    await kv.set("deep", deep)
    assert await kv.get("deep") == deep
    hostile: list[Any] = []
    inner = hostile
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(ValidationError, match="nested too deeply"):
        await kv.set("hostile", hostile)
    assert not await kv.exists("hostile")


# ---------------------------------------------------------------- serializers


class _Upper:
    """A serializer with dumps/loads of its own (text in, text out)."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value).upper()

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode().lower())


class _ReturnsInt:
    """A broken serializer: dumps() gives an int (or, for a str, the str itself)."""

    def dumps(self, value: Any) -> Any:
        return value if isinstance(value, str) else 1

    def loads(self, data: bytes) -> Any:
        return data


async def test_pickle_namespace_keeps_python_types(factory: AsyncRepositoryFactory) -> None:
    ns = factory.cache.namespace("pickled", serializer="pickle")
    value = {
        "tuple": (1, 2),
        "uuid": uuid.uuid4(),
        "when": datetime.now(UTC),
        "decimal": Decimal("1.10"),
        "set": {1, 2},
        1: "int key",
    }
    await ns.set("k", value)
    assert await ns.get("k") == value
    assert await ns.get_many(["k", "absent"]) == {"k": value}
    assert await ns.get_or_set("k2", lambda: (3, 4)) == (3, 4)
    assert await ns.get("k2") == (3, 4)
    assert await ns.incr("n") == 1  # counters are JSON whatever the serializer
    assert await ns.get("n") == 1


async def test_custom_serializer_and_bad_serializers(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    ns = factory.cache.namespace("upper", serializer=_Upper())
    await ns.set("k", ["abc"])
    assert bytes(_rows(raw_conn)[0][3]) == b'["ABC"]'
    assert await ns.get("k") == ["abc"]
    for bad in ["yaml", 42, object(), None]:
        with pytest.raises(ValidationError):
            factory.cache.namespace("x", serializer=bad)
    # dumps() raising or returning a non-bytes: a ValidationError, nothing stored.
    with pytest.raises(ValidationError, match="cannot be serialised"):
        await ns.set("bad", object())
    returns_int = factory.cache.namespace("int", serializer=_ReturnsInt())
    with pytest.raises(ValidationError, match="not bytes or str"):
        await returns_int.set("bad", 1)
    with pytest.raises(ValidationError, match="lone surrogate"):
        await returns_int.set("bad", "\ud800")
    assert len(_rows(raw_conn)) == 1
    # A row written by another serializer that this one cannot read: a typed error.
    await factory.cache.namespace("upper", serializer="pickle").set("p", {1, 2})
    with pytest.raises(ValidationError, match="cannot be read"):
        await ns.get("p")


# ---------------------------------------------------------------- keys()


async def test_keys_lists_live_keys_of_the_namespace_in_pages(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    await kv.set_many({f"user:{i}": i for i in range(25)})
    await kv.set_many({"user%x": 1, "user_x": 2, "other": 3})
    await factory.cache.namespace("elsewhere").set("user:99", 1)
    await kv.set("user:expired", 1, ttl=60)
    raw_conn.execute(
        "UPDATE kv_cache SET expires_at = now() - interval '1 s' WHERE key = 'user:expired'"
    )
    listed = [k async for k in kv.keys("user:", page_size=4)]
    assert sorted(listed) == sorted(f"user:{i}" for i in range(25))
    assert len(listed) == 25  # each exactly once across 7 pages
    assert sorted([k async for k in kv.keys("user%")]) == ["user%x"]  # % is literal
    assert sorted([k async for k in kv.keys("user_")]) == ["user_x"]  # _ is literal
    assert len([k async for k in kv.keys("")]) == 28
    assert [k async for k in kv.keys("nothing")] == []
    for bad_prefix in [None, 1, "nul\x00", "\ud800"]:
        with pytest.raises(ValidationError):
            [k async for k in kv.keys(bad_prefix)]  # type: ignore[arg-type]
    for bad_size in [0, -1, 1.5, "10", 10**6]:
        with pytest.raises(ValidationError):
            [k async for k in kv.keys("", page_size=bad_size)]  # type: ignore[arg-type]


# ---------------------------------------------------------------- incr with a TTL


async def test_incr_ttl_applies_when_the_call_creates_the_key(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    assert await kv.incr("window", ttl=60) == 1
    ttl = await kv.ttl("window")
    assert ttl is not None and 59 < ttl <= 60
    await kv.expire("window", 1000)
    assert await kv.incr("window", 5, ttl=60) == 6  # a live key keeps its expiry
    ttl = await kv.ttl("window")
    assert ttl is not None and ttl > 900
    # Expired: the next incr recreates the counter at amount, with the new TTL.
    raw_conn.execute("UPDATE kv_cache SET expires_at = now() - interval '1 s'")
    assert await kv.decr("window", 2, ttl=30) == -2
    ttl = await kv.ttl("window")
    assert ttl is not None and 29 < ttl <= 30
    await kv.set("float", 1e16)
    before = _rows(raw_conn)
    for call in [
        lambda: kv.incr("float"),
        lambda: kv.incr("k", ttl=0),
        lambda: kv.incr("k", ttl=-1),
        lambda: kv.incr("k", ttl=math.nan),
        lambda: kv.incr("k", ttl="5"),  # type: ignore[arg-type]
        lambda: kv.decr("k", ttl=math.inf),
    ]:
        with pytest.raises(ValidationError):
            await call()
    assert _rows(raw_conn) == before


# ---------------------------------------------------------------- compare_and_set, delete_if


async def test_compare_and_set(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    await kv.set("k", {"v": 1, "pair": (1, 2)}, ttl=100)
    assert not await kv.compare_and_set("k", {"v": 2}, "new")
    assert await kv.get("k") == {"v": 1, "pair": [1, 2]}
    # The tuple matches the list it was stored as; ttl=None keeps the expiry.
    assert await kv.compare_and_set("k", {"pair": (1, 2), "v": 1}, "new")
    assert await kv.get("k") == "new"
    ttl = await kv.ttl("k")
    assert ttl is not None and 99 < ttl <= 100
    assert await kv.compare_and_set("k", "new", "newer", ttl=5)
    ttl = await kv.ttl("k")
    assert ttl is not None and ttl <= 5
    assert not await kv.compare_and_set("absent", None, 1)  # absent never matches
    assert not await kv.exists("absent")
    await kv.set("none", None)
    assert await kv.compare_and_set("none", None, 0)  # a stored None is a value
    await kv.set("bytes", b"\x01")
    assert await kv.compare_and_set("bytes", bytearray(b"\x01"), b"\x02")
    assert await kv.get("bytes") == b"\x02"
    before = _rows(raw_conn)
    for call in [
        lambda: kv.compare_and_set("k", "newer", 1, ttl=-1),
        lambda: kv.compare_and_set("k", "newer", object()),
        lambda: kv.compare_and_set("k", "\ud800", 1),
        lambda: kv.compare_and_set(None, 1, 2),  # type: ignore[arg-type]
        lambda: kv.delete_if("k\x00", "newer"),
        lambda: kv.delete_if("k", {1, 2}),
    ]:
        with pytest.raises(ValidationError):
            await call()
    assert _rows(raw_conn) == before


async def test_delete_if(factory: AsyncRepositoryFactory) -> None:
    kv = factory.cache.kv
    await kv.set("lock", "token-a")
    assert not await kv.delete_if("lock", "token-b")
    assert await kv.get("lock") == "token-a"
    assert await kv.delete_if("lock", "token-a")
    assert not await kv.exists("lock")
    assert not await kv.delete_if("lock", "token-a")


# ---------------------------------------------------------------- keys, batches, clearing


async def test_str_subclasses_are_keys_and_empty_batches_do_nothing(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    kv = factory.cache.kv
    await kv.set(Color.RED, 1)
    assert await kv.get("red") == 1
    assert await kv.get_many([Color.RED]) == {"red": 1}
    assert [k async for k in kv.keys(Color.RED)] == ["red"]
    assert _rows(raw_conn)[0][1] == "red"
    ns = factory.cache.namespace(Color.RED)
    assert ns.name == "red" and type(ns.name) is str
    assert await kv.get_many([]) == {}
    assert await kv.get_many(()) == {}
    await kv.set_many({})
    assert await kv.delete_many([]) == 0
    assert await factory.cache.get_embeddings([], model="m") == []
    await factory.cache.set_embeddings({}, model="m")
    assert len(_rows(raw_conn)) == 1


async def test_delete_llm_response_and_clear_by_kind(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    await cache.set_llm_response("p", "r1", model="m", params={"temperature": 0})
    await cache.set_llm_response("p", "r2", model="m", params={"temperature": 1})
    assert not await cache.delete_llm_response("p", model="m", params={"temperature": 2})
    assert await cache.delete_llm_response("p", model="m", params={"temperature": 0})
    assert await cache.get_llm_response("p", model="m", params={"temperature": 0}) is None
    got = await cache.get_llm_response("p", model="m", params={"temperature": 1})
    assert got is not None and got.response == "r2"
    assert not await cache.delete_llm_response("p", model="m", params={"temperature": 0})
    await cache.set_embedding("t", [1.0], model="m")
    await cache.set_search_results("q", [("a", 1.0)], index="i")
    await cache.kv.set("a", 1)
    await cache.namespace("other").set("b", 2)
    for bad in ["llms", "", None, "KV"]:
        with pytest.raises(ValidationError):
            await cache.clear(bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await cache.delete_llm_response("\ud800", model="m")
    assert await cache.clear("kv") == 2
    assert await cache.clear("llm") == 1
    assert await cache.clear("embedding") == 1
    assert await cache.clear("search") == 1
    for table in ["kv_cache", "llm_response_cache", "embedding_cache", "vector_search_cache"]:
        assert _count(raw_conn, table) == 0


# ---------------------------------------------------------------- cache.lock


async def test_lock_is_held_by_one_owner_and_released_only_by_it(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    first = cache.lock("job", ttl=30)
    second = cache.lock("job", ttl=30)
    assert await first.acquire()
    assert first.held and await first.owned() and await second.locked()
    assert not await second.acquire(blocking=False)
    assert not await second.acquire(timeout=0.05)
    with pytest.raises(LockError):
        await second.release()  # not its lock: refused, the holder keeps it
    with pytest.raises(LockError):
        await first.acquire()  # not reentrant
    assert await first.owned()
    await first.release()
    assert not await second.locked()
    async with second:
        assert await second.owned()
        with pytest.raises(LockTimeoutError):
            async with cache.lock("job", ttl=30, timeout=0.05):
                pass
    assert _count(raw_conn, "cache_locks") == 0


async def test_an_expired_lock_is_taken_over_and_its_old_owner_cannot_release_it(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    old = cache.lock("job", ttl=30)
    assert await old.acquire()
    raw_conn.execute("UPDATE cache_locks SET expires_at = now() - interval '1 s'")
    new = cache.lock("job", ttl=30)
    assert await new.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        await old.release()
    assert await new.owned()  # the old owner's release did not remove the new holder
    await new.extend(120)
    row = raw_conn.execute("SELECT expires_at - now() FROM cache_locks").fetchone()
    assert row is not None and row[0].total_seconds() > 100
    raw_conn.execute("UPDATE cache_locks SET expires_at = now() - interval '1 s'")
    with pytest.raises(LockNotOwnedError):
        await new.extend()
    with pytest.raises(LockNotOwnedError):
        async with cache.lock("other", ttl=30) as held:
            raw_conn.execute("UPDATE cache_locks SET expires_at = now() - interval '1 s'")
            assert held.held


async def test_lock_hostile_input_changes_nothing(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    for bad in [
        lambda: cache.lock("", ttl=1),
        lambda: cache.lock("x" * 201, ttl=1),
        lambda: cache.lock("nul\x00", ttl=1),
        lambda: cache.lock("\ud800", ttl=1),
        lambda: cache.lock(None, ttl=1),  # type: ignore[arg-type]
        lambda: cache.lock("x", ttl=0),
        lambda: cache.lock("x", ttl=math.inf),
        lambda: cache.lock("x", ttl=1, timeout=-1),
        lambda: cache.lock("x", ttl=1, timeout=math.nan),
    ]:
        with pytest.raises(ValidationError):
            bad()
    lock = cache.lock("x", ttl=1)
    with pytest.raises(ValidationError):
        await lock.acquire(timeout=-5)
    assert await lock.acquire()
    with pytest.raises(ValidationError):
        await lock.extend(-1)
    assert await lock.owned()
    await lock.release()
    assert _count(raw_conn, "cache_locks") == 0


# ---------------------------------------------------------------- LLM single-flight


async def test_get_or_set_llm_response_generates_on_a_miss_only(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    calls: list[str] = []

    async def generate() -> tuple[str, dict[str, int]]:
        calls.append("x")
        return "answer", {"tokens": 3}

    first = await cache.get_or_set_llm_response("p", generate, model="m", ttl=60)
    assert (first.response, first.metadata, first.hit_count) == ("answer", {"tokens": 3}, 0)
    second = await cache.get_or_set_llm_response("p", generate, model="m")
    assert second.response == "answer" and second.hit_count == 1
    assert calls == ["x"]
    other = await cache.get_or_set_llm_response("p", lambda: "plain", model="m", params={"t": 1})
    assert other.response == "plain" and other.metadata == {}
    assert _count(raw_conn, "llm_response_cache") == 2
