"""Placement of keys on cache shards (digitwin_db.sharding, issue 16): spread, what moves
when a shard is added or the list reordered, shard identities, and the setting."""

from __future__ import annotations

import math
import random

import pydantic
import pytest

from digitwin_db.errors import ConfigurationError
from digitwin_db.settings import Settings
from digitwin_db.sharding import (
    SLOTS,
    SUBJECT_SEED,
    ShardRing,
    key_seed,
    shard_identity,
    shard_urls,
)

KEYS = 30_000
# Three shards as a deployment would name them (random ports: a fresh set every run).
_rng = random.Random()
PORTS = _rng.sample(range(5433, 6000), 4)
THREE = [f"10.0.0.{i + 1}:{PORTS[i]}/cache" for i in range(3)]
FOURTH = f"10.0.0.9:{PORTS[3]}/cache"


SEED = key_seed(b"default\x00")  # kv keys of namespace "default", as the cache places them


def _keys(count: int) -> list[bytes]:
    """``count`` keys: half random, half sequential (``user:<n>``, the common shape)."""
    start = _rng.randrange(10**9)
    random_keys = [f"{_rng.getrandbits(64):x}".encode() for _ in range(count // 2)]
    return random_keys + [f"user:{start + i}".encode() for i in range(count - count // 2)]


def _six_sigma(count: int, shards: int) -> float:
    """6 standard deviations of one shard's key count: the binomial spread of the keys over
    the slots plus that of the slots over the shards."""
    p = 1 / shards
    keys = count * p * (1 - p)
    slots = (count / SLOTS) ** 2 * SLOTS * p * (1 - p)
    return 6 * math.sqrt(keys + slots)


def test_30k_keys_spread_evenly_over_three_shards() -> None:
    ring = ShardRing(THREE)
    keys = _keys(KEYS)
    counts = [0, 0, 0]
    for h in keys:
        counts[ring.shard_of(h, SEED)] += 1
    expected = KEYS / 3
    tolerance = _six_sigma(KEYS, 3)
    print(
        f"\nkeys per shard ({KEYS} keys): "
        + ", ".join(f"{n}: {c} ({c / KEYS:.2%})" for n, c in zip(THREE, counts, strict=True))
        + f"; slots: {[round(s, 4) for s in ring.slot_shares()]}; "
        f"bound ±{tolerance:.0f} keys (6 sigma, {tolerance / expected:.1%})"
    )
    assert sum(counts) == KEYS
    for count in counts:
        assert abs(count - expected) <= tolerance  # ≈ ±8%: inside ±15%


def test_adding_a_fourth_shard_moves_a_quarter_of_the_keys_all_to_it() -> None:
    three, four = ShardRing(THREE), ShardRing([*THREE, FOURTH])
    keys = _keys(KEYS)
    moved = 0
    for h in keys:
        before, after = THREE[three.shard_of(h, SEED)], four.identities[four.shard_of(h, SEED)]
        if before != after:
            moved += 1
            assert after == FOURTH  # a key only ever moves to the new shard
    print(f"\nadding a 4th shard moved {moved}/{KEYS} keys ({moved / KEYS:.2%}; ideal 25%)")
    assert 0.20 <= moved / KEYS <= 0.30
    # Removing it again puts every key back where it was.
    assert all(
        THREE[three.shard_of(h, SEED)] == THREE[ShardRing(THREE).shard_of(h, SEED)] for h in keys
    )


def test_removing_a_shard_moves_only_its_keys() -> None:
    three, two = ShardRing(THREE), ShardRing(THREE[:2])
    for h in _keys(5000):
        before = THREE[three.shard_of(h, SEED)]
        if before != THREE[2]:
            assert two.identities[two.shard_of(h, SEED)] == before


def test_reordering_the_list_moves_nothing() -> None:
    rings = [ShardRing(order) for order in (THREE, THREE[::-1], [THREE[1], THREE[2], THREE[0]])]
    for h in _keys(5000):
        owners = {ring.identities[ring.shard_of(h, SEED)] for ring in rings}
        assert len(owners) == 1
    for slot in range(SLOTS):
        assert len({r.identities[r.owner_of_slot(slot)] for r in rings}) == 1


def test_group_keeps_positions_per_shard() -> None:
    ring = ShardRing(THREE)
    keys = [k.decode() for k in _keys(100)]
    groups = ring.group(keys, SEED)
    assert sorted(p for positions in groups.values() for p in positions) == list(range(100))
    for shard, positions in groups.items():
        assert all(ring.shard_of(keys[p].encode(), SEED) == shard for p in positions)


def test_identity_is_host_port_dbname_never_credentials() -> None:
    url = "postgresql://app:s3cret-pw@db1.internal:6432/cache?sslmode=require"
    assert shard_identity(url) == "db1.internal:6432/cache"
    assert shard_identity("postgresql://other:pw2@db1.internal:6432/cache") == shard_identity(url)
    assert shard_identity("host=db2 port=5433 dbname=c user=u password=zz") == "db2:5433/c"
    assert "s3cret" not in shard_identity(url)
    # The same server twice is refused (its keys would have two owners).
    with pytest.raises(ConfigurationError, match="same server twice") as info:
        ShardRing([shard_identity(url), shard_identity(url.replace("app", "x"))])
    assert "s3cret" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        shard_identity("postgresql://u:pw-in-bad-url@h/x?no_such_option=1")
    assert "pw-in-bad-url" not in str(info.value)


def test_subjects_spread() -> None:
    ring = ShardRing(THREE)
    counts = [0, 0, 0]
    for i in range(3000):
        counts[ring.shard_of(f"subject-{i}".encode(), SUBJECT_SEED)] += 1
    assert all(abs(c - 1000) <= _six_sigma(3000, 3) for c in counts)


def test_setting_parses_like_replica_urls_and_hides_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = ["postgresql://u:pw-one@h1:5432/c", "postgresql://u:pw-two@h2:5432/c"]
    monkeypatch.setenv("CACHE_SHARD_URLS", ",".join(urls))
    settings = Settings()
    assert [s.get_secret_value() for s in settings.cache_shard_urls] == urls
    assert "pw-one" not in repr(settings) and "pw-one" not in str(settings.model_dump())
    assert [i for i, _ in shard_urls(settings.cache_shard_urls)] == ["h1:5432/c", "h2:5432/c"]
    monkeypatch.setenv("CACHE_SHARD_URLS", '["postgresql://u:pw-three@h3/c"]')
    assert len(Settings().cache_shard_urls) == 1
    monkeypatch.setenv("CACHE_SHARD_URLS", "")
    assert Settings().cache_shard_urls == []
    monkeypatch.setenv("CACHE_SHARD_URLS", "mysql://u:pw-bad@h/c")
    with pytest.raises(pydantic.ValidationError) as info:
        Settings()
    assert "CACHE_SHARD_URLS" in str(info.value) and "pw-bad" not in str(info.value)
