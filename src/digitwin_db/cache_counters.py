"""In-process cache statistics: hits/misses per cache and LLM hit counts per entry.

Counting a lookup is a lock, a dict increment and a clock read: no database write on the
read path. The counts are written in one statement by the repository's flush (on an
interval piggy-backed on calls, on ``flush_stats()``, on ``close()``).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

from digitwin_db.cache_registry import CACHE_NAMES

__all__ = ["CacheCounters", "CounterSnapshot"]


class CounterSnapshot(NamedTuple):
    """Counts taken out of :class:`CacheCounters` for one flush."""

    hits: dict[str, int]
    misses: dict[str, int]
    llm_hits: dict[int, int]

    @property
    def empty(self) -> bool:
        return not (any(self.hits.values()) or any(self.misses.values()) or self.llm_hits)


class CacheCounters:
    """Thread-safe counters (shared by every thread and task of the process).

    ``hit``/``miss``/``llm_hit`` return True once ``flush_interval`` seconds have passed
    since the last :meth:`take`: the caller then flushes.
    """

    def __init__(self, flush_interval: float) -> None:
        self._lock = threading.Lock()
        self._interval = flush_interval
        self._hits = dict.fromkeys(CACHE_NAMES, 0)
        self._misses = dict.fromkeys(CACHE_NAMES, 0)
        self._llm_hits: dict[int, int] = {}
        self._next_flush = time.monotonic() + flush_interval

    def hit(self, cache: str, count: int = 1) -> bool:
        with self._lock:
            self._hits[cache] += count
        return time.monotonic() >= self._next_flush

    def miss(self, cache: str, count: int = 1) -> bool:
        with self._lock:
            self._misses[cache] += count
        return time.monotonic() >= self._next_flush

    def llm_hit(self, key_hash: int) -> tuple[int, bool]:
        """Count a hit of one LLM entry; returns (its unflushed hits, flush due)."""
        with self._lock:
            self._hits["llm_response"] += 1
            pending = self._llm_hits[key_hash] = self._llm_hits.get(key_hash, 0) + 1
        return pending, time.monotonic() >= self._next_flush

    def take(self) -> CounterSnapshot:
        """Remove and return every count; the next flush is due one interval from now."""
        with self._lock:
            snapshot = CounterSnapshot(self._hits, self._misses, self._llm_hits)
            self._hits = dict.fromkeys(CACHE_NAMES, 0)
            self._misses = dict.fromkeys(CACHE_NAMES, 0)
            self._llm_hits = {}
            self._next_flush = time.monotonic() + self._interval
        return snapshot

    def restore(self, snapshot: CounterSnapshot) -> None:
        """Put back the counts of a flush that failed (they go out with the next one)."""
        with self._lock:
            for name, count in snapshot.hits.items():
                self._hits[name] += count
            for name, count in snapshot.misses.items():
                self._misses[name] += count
            for key_hash, count in snapshot.llm_hits.items():
                self._llm_hits[key_hash] = self._llm_hits.get(key_hash, 0) + count
