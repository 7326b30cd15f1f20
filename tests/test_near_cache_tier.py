"""The near cache's pure parts: the tier (payloads, bounds, fill guard) and its settings.
The tier is driven here directly; everything that involves the database is in
tests/aio/test_near_cache.py and tests/test_near_cache_processes.py."""

from __future__ import annotations

import pydantic
import pytest

from digitwin_db.near_cache import ENTRY_OVERHEAD, NearCache, freeze, thaw
from digitwin_db.settings import Settings, describe_settings_error


def _tier(**bounds: int) -> NearCache:
    tier = NearCache(
        max_entries=bounds.get("max_entries", 100),
        max_bytes=bounds.get("max_bytes", 1 << 20),
        max_age=60.0,
    )
    tier.set_listening(True)
    return tier


def _put(tier: NearCache, key: str, key_hash: int, value: object = "v", scope: str = "ns") -> None:
    token = tier.begin("kv", key_hash)
    assert token is not None
    stored, size = freeze(value)
    assert tier.fill(token, ("k", scope, key), stored, size, None, scope)


def test_payload_with_negative_and_positive_hashes_drops_exactly_those_keys() -> None:
    tier = _tier()
    _put(tier, "a", -5)
    _put(tier, "b", 7)
    _put(tier, "c", 8)
    tier.apply("k:fffffffffffffffb,7")  # -5 in two's complement, and 7
    assert tier.lookup(("k", "ns", "a")) is None
    assert tier.lookup(("k", "ns", "b")) is None
    assert tier.lookup(("k", "ns", "c")) is not None
    tier.apply("e:8")  # the same hash in another cache: kv keeps its copy
    assert tier.lookup(("k", "ns", "c")) is not None
    assert tier.take_counts()["kv"].invalidations == 2


def test_namespace_drop_cache_drop_fence_and_unknown_payloads() -> None:
    tier = _tier()
    _put(tier, "a", 1, scope="one")
    _put(tier, "b", 2, scope="two")
    tier.apply("!w17")  # a fence drops nothing
    assert len(tier) == 2
    tier.apply("k*one")
    assert tier.lookup(("k", "one", "a")) is None
    assert tier.lookup(("k", "two", "b")) is not None
    tier.apply("k*")
    assert len(tier) == 0
    _put(tier, "a", 1)
    tier.apply("k:not-hex")  # malformed: everything goes
    assert len(tier) == 0
    _put(tier, "a", 1)
    tier.apply("?")
    assert len(tier) == 0
    assert tier.bytes == 0


def test_bounds_evict_least_recently_used_and_bytes_stay_exact() -> None:
    value = "x" * 100
    tier = _tier(max_entries=3)
    for i in range(3):
        _put(tier, f"k{i}", i, value)
    assert tier.lookup(("k", "ns", "k0")) is not None  # k0 is now the most recent
    _put(tier, "k3", 3, value)
    assert tier.lookup(("k", "ns", "k1")) is None  # the least recently used went
    assert tier.lookup(("k", "ns", "k0")) is not None
    assert tier.bytes == 3 * (100 + ENTRY_OVERHEAD)
    tier.invalidate("kv", [0, 2, 3])
    assert (len(tier), tier.bytes) == (0, 0)
    assert tier.take_counts()["kv"].evictions == 1


def test_bypassed_tier_serves_and_stores_nothing() -> None:
    tier = NearCache(max_entries=10, max_bytes=1 << 20, max_age=60.0)
    assert tier.begin("kv", 1) is None  # not listening yet
    tier.set_listening(True)
    token = tier.begin("kv", 1)
    assert token is not None
    tier.set_listening(False)  # the listener went down while the row was read
    assert not tier.fill(token, ("k", "ns", "a"), "v", 1, None, "ns")
    assert tier.lookup(("k", "ns", "a")) is None


def test_time_left_and_max_age_bound_a_copy() -> None:
    tier = _tier()
    token = tier.begin("kv", 1)
    assert token is not None
    assert not tier.fill(token, ("k", "ns", "a"), "v", 1, 0.0, "ns")  # no time left
    token = tier.begin("kv", 1)
    assert token is not None
    assert not tier.fill(token, ("k", "ns", "a"), "v", 1 << 21, None, "ns")  # over max_bytes


def test_frozen_values_are_fresh_each_time() -> None:
    stored, size = freeze({"a": [1, 2.5, None, True, "x"]})
    first, second = thaw(stored), thaw(stored)
    assert first == second == {"a": [1, 2.5, None, True, "x"]}
    assert first is not second and first["a"] is not second["a"]
    assert size > 0
    assert freeze(b"raw") == (b"raw", 3)
    assert thaw(freeze("text")[0]) == "text"


def test_near_cache_settings() -> None:
    settings = Settings(
        database_url="postgresql://app:pw1@bouncer:6432/db",
        near_cache=True,
        listen_url="postgresql://app:pw2@primary:5432/db",
    )
    assert settings.near_listen_url == "postgresql://app:pw2@primary:5432/db"
    assert "pw2" not in repr(settings) and "pw2" not in str(settings.model_dump())
    default = Settings(database_url="postgresql://app:pw1@h/db", listen_url="")
    assert default.listen_url is None
    assert default.near_listen_url == "postgresql://app:pw1@h/db"
    assert (default.near_cache, default.near_cache_max_entries) == (False, 10_000)
    assert (default.near_cache_max_bytes, default.near_cache_max_age) == (64 * 1024 * 1024, 60.0)
    with pytest.raises(pydantic.ValidationError, match="LISTEN_URL") as err:
        Settings(listen_url="mysql://root:pw3@h/db")
    # As for DATABASE_URL: the message the package shows never holds the value.
    assert "pw3" not in describe_settings_error(err.value)
    with pytest.raises(pydantic.ValidationError):
        Settings(near_cache_max_entries=0)
    with pytest.raises(pydantic.ValidationError):
        Settings(near_cache_max_age=0)
