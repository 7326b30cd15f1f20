"""Placement of cache keys and rate-limit subjects on shards (pure, no I/O).

``Settings.cache_shard_urls`` lists the servers that hold the cache tables and the
rate-limit buckets. Each server has a stable **identity**, ``host:port/dbname`` read from
its URL (never the user or password, never its position in the list), and a key goes to
the server chosen by **rendezvous (highest-random-weight) hashing** over a fixed set of
:data:`SLOTS` slots:

* a key's slot is the low 14 bits of the CRC-32 of its bytes (as Redis Cluster's key
  slots use CRC16): for a kv entry ``namespace NUL key``, for an embedding ``model NUL
  text``, for a search or LLM entry the bytes its ``key_hash`` digests, for a rate-limit
  subject its canonical text — each behind a fixed prefix (:func:`key_seed`). CRC-32 is not
  a secure hash, it need not be: it spreads keys evenly (sequential keys more evenly than
  chance) and costs a quarter of a blake2b digest, which shows in ``get_many``;
* each slot goes to the shard whose ``blake2b(identity ‖ slot)`` score is highest. The
  table of 16,384 owners is computed once per set of shards (about 50k digests for three
  shards: a few tens of milliseconds), so placing a key is one table lookup.

Properties (tested in ``tests/test_sharding_placement.py``): adding an N+1th shard moves
exactly the slots the new shard now wins — about 1/(N+1) of the keys, every one of them *to*
the new shard; removing a shard moves only its own keys; reordering the list moves nothing;
moving a server to a new address moves its keys (its identity changed) unless it keeps
host, port and database name.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from hashlib import blake2b

import psycopg
from psycopg.conninfo import conninfo_to_dict

from digitwin_db.cache_codec import check_text
from digitwin_db.errors import ConfigurationError

__all__ = [
    "LOCK_SEED",
    "SLOTS",
    "SUBJECT_SEED",
    "ShardRing",
    "key_seed",
    "key_text_bytes",
    "shard_identity",
    "shard_urls",
]

#: Number of slots (a power of two): fine enough that N shards get equal shares within a
#: fraction of a percent, small enough that the owner table is built in milliseconds.
SLOTS = 16_384
_SLOT_MASK = SLOTS - 1
_SCORE_PERSON = b"dtw-shard-hrw"


def shard_identity(url: str) -> str:
    """The stable identity of a shard: ``host:port/dbname`` of its URL (a URL or a libpq
    ``key=value`` string). Neither the user nor the password is part of it, so changing
    credentials moves no key. ``ConfigurationError`` (without the URL) when unparseable."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        raise ConfigurationError("CACHE_SHARD_URLS: an entry is not a valid URL") from None
    # An unencoded "@" in a password makes libpq read its tail as the host: keep only
    # what follows the last "@" (as AsyncDatabase.target does).
    host = str(params.get("host") or "localhost").rsplit("@", 1)[-1]
    port = str(params.get("port") or 5432)
    dbname = str(params.get("dbname") or params.get("user") or "")
    return f"{host}:{port}/{dbname}"


def shard_urls(urls: Sequence[object]) -> list[tuple[str, str]]:
    """``(identity, url)`` of each entry of ``Settings.cache_shard_urls`` (``SecretStr``s
    or strings; the url is the secret value: never log it)."""
    out = []
    for entry in urls:
        get = getattr(entry, "get_secret_value", None)
        url = str(get() if callable(get) else entry)
        out.append((shard_identity(url), url))
    return out


def key_text_bytes(value: object, what: str) -> bytes:
    """``value`` validated as cache key text (``ValidationError`` otherwise), as UTF-8."""
    if type(value) is not str or "\x00" in value:
        value = check_text(value, what)
    try:
        return value.encode()
    except UnicodeEncodeError:
        check_text(value, what)
        raise


def key_seed(prefix: bytes) -> int:
    """The running CRC-32 of ``prefix``: ``ShardRing.shard_of(data, key_seed(prefix))``
    places ``prefix + data`` without concatenating them."""
    return zlib.crc32(prefix)


#: Seed of rate-limit subjects (their canonical text) and of lock names.
SUBJECT_SEED = key_seed(b"rate-limit subject\x00")
LOCK_SEED = key_seed(b"lock\x00")


@functools.lru_cache(maxsize=16)
def _owners(identities: tuple[str, ...]) -> bytes:
    """Owner (index into ``identities``) of every slot, by highest score."""
    states = [blake2b(i.encode(), digest_size=8, person=_SCORE_PERSON) for i in identities]
    owners = bytearray(SLOTS)
    from_bytes = int.from_bytes
    for slot in range(SLOTS):
        data = slot.to_bytes(2, "big")
        best = -1
        owner = 0
        for index, state in enumerate(states):
            scored = state.copy()
            scored.update(data)
            score = from_bytes(scored.digest(), "big")
            # Ties (astronomically rare) go to the smaller identity: order-independent.
            if score > best or (score == best and identities[index] < identities[owner]):
                best, owner = score, index
        owners[slot] = owner
    return bytes(owners)


class ShardRing:
    """Which shard holds a key: ``ShardRing(identities).shard_of(key_hash)`` is an index into
    ``identities``. At most 255 shards; identities must be distinct."""

    __slots__ = ("_owners", "identities")

    def __init__(self, identities: Sequence[str]) -> None:
        names = tuple(identities)
        if not names:
            raise ConfigurationError("a shard ring needs at least one shard")
        if len(names) > 255:
            raise ConfigurationError("at most 255 cache shards are supported")
        if len(set(names)) != len(names):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            raise ConfigurationError(
                "CACHE_SHARD_URLS names the same server twice (host:port/dbname): "
                + ", ".join(duplicated)
            )
        self.identities = names
        # Computed over the sorted identities, so the list's order changes nothing.
        ordered = tuple(sorted(names))
        by_sorted = _owners(ordered)
        remap = bytes(names.index(n) for n in ordered)
        self._owners = by_sorted.translate(remap + bytes(256 - len(remap)))

    def __len__(self) -> int:
        return len(self.identities)

    def __repr__(self) -> str:
        return f"<ShardRing {list(self.identities)!r}>"

    @staticmethod
    def slot_of(data: bytes, seed: int = 0) -> int:
        """The slot of ``data`` (behind the prefix whose :func:`key_seed` is ``seed``)."""
        return zlib.crc32(data, seed) & _SLOT_MASK

    def shard_of(self, data: bytes, seed: int = 0) -> int:
        """Index (into ``identities``) of the shard that holds ``data``."""
        return self._owners[zlib.crc32(data, seed) & _SLOT_MASK]

    def owner_of_slot(self, slot: int) -> int:
        return self._owners[slot]

    def group(self, texts: Sequence[str], seed: int = 0) -> dict[int, list[int]]:
        """Positions in ``texts`` (valid UTF-8 strings) grouped by shard index (shards
        without any left out)."""
        owners = self._owners
        crc = zlib.crc32
        groups: dict[int, list[int]] = {}
        for position, text in enumerate(texts):
            owner = owners[crc(text.encode(), seed) & _SLOT_MASK]
            found = groups.get(owner)
            if found is None:
                groups[owner] = [position]
            else:
                found.append(position)
        return groups

    def slot_shares(self) -> list[float]:
        """The fraction of slots each shard owns (in ``identities`` order)."""
        counts = [0] * len(self.identities)
        for owner in self._owners:
            counts[owner] += 1
        return [c / SLOTS for c in counts]
