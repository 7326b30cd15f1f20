"""The near cache: a bounded in-process copy of hot L2 cache entries (pure Python, no I/O).

One :class:`NearCache` per cache repository, shared by every thread and task of the
process (one lock; never held across I/O). It is kept coherent by the database: a trigger
on each cache table sends ``NOTIFY digitwin_cache`` with the key hashes a statement wrote
(migration 0010), and the listener (``digitwin_db.near_listener``) hands each payload to
:meth:`NearCache.apply`.

Coherence rules, all enforced here:

- An entry lives at most ``max_age`` seconds and never past its row's ``expires_at`` (the
  time left is read from the server, so clocks that differ between hosts do not matter).
- A fill is two steps: :meth:`begin` before the SELECT is sent, :meth:`fill` after. An
  invalidation of the key (or a drop of its cache, or the listener going down) between the
  two makes the fill a no-op, so a value read before a write can never be installed after
  that write's notification was applied. Per-key generations are kept only while a fill of
  the key is in flight, so they cost no memory otherwise.
- While the listener is not listening the tier is empty and bypassed (:meth:`set_listening`);
  coming back bumps the epoch, so fills begun while it was down are refused too.
- Stored forms are immutable (bytes, str, numbers, tuples, or ``marshal`` bytes of JSON
  data decoded again on every hit): a caller can never mutate another caller's value.
"""

from __future__ import annotations

import marshal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

__all__ = [
    "CACHE_CODES",
    "CHANNEL",
    "ENTRY_OVERHEAD",
    "POLL_EVERY",
    "FillToken",
    "Frozen",
    "Key",
    "NearCache",
    "NearCounts",
    "freeze",
    "thaw",
]

#: The notification channel of the cache-table triggers (migration 0010).
CHANNEL: Final = "digitwin_cache"
#: One-letter code of each cache in notification payloads.
CACHE_CODES: Final[dict[str, str]] = {
    "embedding": "e",
    "vector_search": "s",
    "llm_response": "l",
    "kv": "k",
}
_CACHE_OF_CODE: Final = {code: name for name, code in CACHE_CODES.items()}
#: Bytes charged per entry on top of its key and value (dict slot, entry object, tuples):
#: what keeps ``max_bytes`` honest for many small entries.
ENTRY_OVERHEAD: Final = 200
_SIGN: Final = 1 << 63
#: A lookup first applies the notifications already received, at most this often
#: (seconds): see :meth:`NearCache.set_poller`.
POLL_EVERY: Final = 0.0002
_IMMUTABLE: Final = (str, int, float, bool, bytes, type(None))


class Frozen:
    """JSON data (dicts, lists) kept as ``marshal`` bytes; :func:`thaw` builds a new copy.

    ``marshal`` round-trips exactly the JSON types (dict, list, str, int, float, bool,
    None) and decodes ~3x faster than ``json.loads`` and ~10x faster than ``copy.deepcopy``
    (bench: "near cache: value copy"). The bytes are made here from our own objects, never
    read from outside the process.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def freeze(value: object) -> tuple[object, int]:
    """(an immutable stored form of ``value``, its size in bytes)."""
    if isinstance(value, _IMMUTABLE):
        if isinstance(value, str | bytes):
            return value, len(value)
        return value, 8
    data = marshal.dumps(value)  # type: ignore[arg-type]  # JSON data (see Frozen)
    return Frozen(data), len(data)


def thaw(stored: object) -> Any:
    """The value of a stored form: a fresh object for JSON containers, else the value."""
    if type(stored) is Frozen:
        return marshal.loads(stored.data)
    return stored


class FillToken(NamedTuple):
    """What :meth:`NearCache.begin` hands to :meth:`NearCache.fill`."""

    slot: tuple[str, int]  # (cache code, key_hash)
    epoch: int
    generation: int
    started: float  # time.monotonic() before the read was sent


#: An entry's key: the cache code followed by the full key, e.g. ``("k", namespace, key)``.
#: Keying by the full key (not its hash) means a hit needs no hashing, and two keys that
#: share a 64-bit hash can never be confused.
Key = tuple[str, ...]


@dataclass(slots=True)
class _Entry:
    key_hash: int
    stored: object
    size: int
    deadline: float  # time.monotonic() after which the entry is dead
    scope: str | None  # the kv namespace (for "drop this namespace")
    hits: int = 0  # hits served from this copy (LLM hit counts)


@dataclass
class NearCounts:
    """Counters of one cache's near tier since the last :meth:`NearCache.take_counts`."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    evictions: int = 0
    #: Of ``hits``, those the caller also counted as cache hits itself (LLM responses,
    #: get_or_set); the others are added to the cache's hits when flushed.
    counted: int = 0

    def add(self, other: NearCounts) -> None:
        self.counted += other.counted
        self.hits += other.hits
        self.misses += other.misses
        self.invalidations += other.invalidations
        self.evictions += other.evictions


def _fresh_counts() -> dict[str, NearCounts]:
    return {code: NearCounts() for code in _CACHE_OF_CODE}


class NearCache:
    """A thread-safe LRU of cache entries, bounded by entries, bytes and age.

    Entries are keyed by :data:`Key` (cache code + full key) and indexed by ``(code,
    key_hash)``, the form invalidations arrive in. Starts bypassed (not listening):
    nothing is served or stored until the listener calls :meth:`set_listening` (True).
    ``flush_due`` turns true once ``flush_interval`` seconds passed since the last
    :meth:`take_counts` (checked on hits, so near hits alone still get flushed).
    """

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        max_age: float,
        flush_interval: float = 10.0,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        # (code, key_hash) -> the keys of the entries with that hash (almost always one).
        self._by_hash: dict[tuple[str, int], list[Key]] = {}
        self._bytes = 0
        self._listening = False
        self._epoch = 0
        # (code, key_hash) -> [generation, fills in flight]; only while a fill is in flight.
        self._inflight: dict[tuple[str, int], list[int]] = {}
        self._counts = _fresh_counts()
        self._flush_interval = flush_interval
        self._next_flush = time.monotonic() + flush_interval
        self.flush_due = False
        self._poller: Callable[[], None] | None = None
        self._next_poll = 0.0

    def set_poller(self, poller: Callable[[], None] | None) -> None:
        """``poller()`` applies the notifications that reached the process but not the
        listener thread yet; lookups call it first (at most every ``POLL_EVERY``
        seconds). A thread that never blocks keeps the listener thread from the GIL for
        a whole switch interval (5 ms): its own reads still see invalidations at once."""
        self._poller = poller

    # ------------------------------------------------------------------ reads
    def lookup(self, key: Key, *, counted: bool = False) -> _Entry | None:
        """The live entry of ``key`` (counted as a near hit), or None (a near miss).
        ``counted``: the caller counts this hit as a cache hit itself."""
        poller = self._poller
        if poller is not None:
            now = time.monotonic()
            if now >= self._next_poll:
                self._next_poll = now + POLL_EVERY
                poller()
        with self._lock:
            entry = self._entries.get(key)
            counts = self._counts[key[0]]
            now = time.monotonic()
            if now >= self._next_flush:
                self.flush_due = True
            if entry is None:
                counts.misses += 1
                return None
            if entry.deadline <= now:  # past max_age or expires_at
                self._remove(key, entry)
                counts.misses += 1
                return None
            self._entries.move_to_end(key)
            entry.hits += 1
            counts.hits += 1
            counts.counted += counted
            return entry

    @property
    def listening(self) -> bool:
        return self._listening

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def entries_of(self, cache: str) -> int:
        code = CACHE_CODES[cache]
        with self._lock:
            return sum(1 for key in self._entries if key[0] == code)

    # ------------------------------------------------------------------ fills
    def begin(self, cache: str, key_hash: int) -> FillToken | None:
        """Call before reading the key from the database; None while bypassed (then do
        not fill). Every token must end in :meth:`fill` or :meth:`abort`."""
        if not self._listening:
            return None
        slot_key = (CACHE_CODES[cache], key_hash)
        with self._lock:
            slot = self._inflight.get(slot_key)
            if slot is None:
                slot = self._inflight[slot_key] = [0, 0]
            slot[1] += 1
            return FillToken(slot_key, self._epoch, slot[0], time.monotonic())

    def fill(
        self,
        token: FillToken,
        key: Key,
        stored: object,
        size: int,
        ttl_left: float | None,
        scope: str | None = None,
    ) -> bool:
        """Install a value read after :meth:`begin`, unless the key was invalidated (or
        the tier dropped or bypassed) in between. ``ttl_left``: seconds the row had left
        by the server's clock when it was read (None: no expiry). Counted from the
        token's start — before the read was sent — the copy dies no later than its row,
        whatever the difference between this host's clock and the server's.
        True when installed."""
        now = time.monotonic()
        deadline = token.started + self.max_age
        if ttl_left is not None:
            deadline = min(deadline, token.started + ttl_left)
        size += ENTRY_OVERHEAD
        with self._lock:
            current = self._release(token)
            if not current or deadline <= now or size > self.max_bytes:
                return False
            old = self._entries.get(key)
            if old is not None:
                self._remove(key, old)
            key_hash = token.slot[1]
            self._entries[key] = _Entry(key_hash, stored, size, deadline, scope)
            keys = self._by_hash.setdefault(token.slot, [])
            keys.append(key)
            self._bytes += size
            self._evict_over_bounds()
            return True

    def abort(self, token: FillToken | None) -> None:
        """End a fill that will not happen (the read failed or found nothing)."""
        if token is not None:
            with self._lock:
                self._release(token)

    def _release(self, token: FillToken) -> bool:
        """Drop the token's in-flight mark; True when it is still current. Lock held."""
        slot = self._inflight.get(token.slot)
        if slot is None:  # cannot happen: begin() registered it
            return False
        slot[1] -= 1
        if slot[1] == 0:
            del self._inflight[token.slot]
        return self._listening and token.epoch == self._epoch and token.generation == slot[0]

    def _evict_over_bounds(self) -> None:
        entries = self._entries
        while len(entries) > self.max_entries or self._bytes > self.max_bytes:
            key, entry = next(iter(entries.items()))
            self._remove(key, entry)
            self._counts[key[0]].evictions += 1

    def _remove(self, key: Key, entry: _Entry) -> None:
        """Forget one entry (lock held)."""
        del self._entries[key]
        self._bytes -= entry.size
        slot = (key[0], entry.key_hash)
        keys = self._by_hash.get(slot)
        if keys is not None:
            keys.remove(key)
            if not keys:
                del self._by_hash[slot]

    # ------------------------------------------------------------------ invalidation
    def invalidate(self, cache: str, key_hashes: Iterable[int]) -> int:
        """Drop the copies of these keys and refuse fills of them in flight."""
        code = CACHE_CODES[cache]
        dropped = 0
        with self._lock:
            for key_hash in key_hashes:
                slot_key = (code, key_hash)
                for key in self._by_hash.pop(slot_key, ()):
                    entry = self._entries.pop(key)
                    self._bytes -= entry.size
                    dropped += 1
                slot = self._inflight.get(slot_key)
                if slot is not None:
                    slot[0] += 1
            self._counts[code].invalidations += dropped
        return dropped

    def drop(self, cache: str, scope: str | None = None) -> int:
        """Drop every copy of a cache (or of one kv namespace) and refuse every fill in
        flight (a rare event: a statement too large to list its keys, TRUNCATE)."""
        code = CACHE_CODES[cache]
        with self._lock:
            self._epoch += 1
            victims = [
                (key, entry)
                for key, entry in self._entries.items()
                if key[0] == code and (scope is None or entry.scope == scope)
            ]
            for key, entry in victims:
                self._remove(key, entry)
            self._counts[code].invalidations += len(victims)
        return len(victims)

    def clear(self) -> None:
        """Drop everything and refuse every fill in flight (not counted as invalidations)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._by_hash.clear()
        self._bytes = 0

    def set_listening(self, listening: bool) -> None:
        """The listener is up (True: serve and fill again) or down (False: empty the tier
        and bypass it). Both bump the epoch: a fill begun before the change is refused."""
        with self._lock:
            self._clear()
            self._listening = listening

    def apply(self, payload: str) -> None:
        """Apply one notification payload of the cache triggers:

        - ``<code>:<hex>,<hex>,…`` — drop these key hashes (hex of the 64-bit two's
          complement) of that cache;
        - ``<code>*`` — drop the whole cache; ``k*<namespace>`` — one kv namespace;
        - ``!<anything>`` — a fence (nothing to drop; observers of the listener see it).

        Anything else drops everything: an unknown payload must never leave a stale copy.
        """
        if payload[:1] == "!":
            return
        cache = _CACHE_OF_CODE.get(payload[:1])
        kind = payload[1:2]
        if cache is not None and kind == ":":
            try:
                hashes = [int(h, 16) for h in payload[2:].split(",")]
            except ValueError:
                self.clear()
                return
            self.invalidate(cache, [h - (1 << 64) if h >= _SIGN else h for h in hashes])
        elif cache is not None and kind == "*":
            self.drop(cache, payload[2:] if cache == "kv" and len(payload) > 2 else None)
        else:
            self.clear()

    # ------------------------------------------------------------------ statistics
    def take_counts(self) -> dict[str, NearCounts]:
        """Remove and return the counters per cache name (for a statistics flush)."""
        with self._lock:
            counts, self._counts = self._counts, _fresh_counts()
            self._next_flush = time.monotonic() + self._flush_interval
            self.flush_due = False
        return {_CACHE_OF_CODE[code]: c for code, c in counts.items()}

    def restore_counts(self, counts: dict[str, NearCounts]) -> None:
        """Put back counters whose flush failed."""
        with self._lock:
            for name, c in counts.items():
                self._counts[CACHE_CODES[name]].add(c)
