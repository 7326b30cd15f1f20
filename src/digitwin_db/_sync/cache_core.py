# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/cache_core.py
"""The internal core of the L2 cache, shared by ``factory.cache`` and every namespace view.

It owns what every cache operation has in common: the in-process hit/miss counters and
their flush, the fail-open policy of reads, the default TTLs and the caps (read from the
registry ``digitwin_db.cache_registry``) with the eviction they trigger. The cache
repository and :class:`~digitwin_db._sync.repositories.cache_kv.KVNamespace` both
hold one core and call down into it; nothing here knows about them. Not public API.

A flush that falls due on a read path never makes the caller wait for a connection: it
takes one only if the pool hands it over at once (``FLUSH_TRY_TIMEOUT``), otherwise the
counts are kept for the next flush. Only :meth:`CacheCore.flush` (``flush_stats()``,
``stats()``, ``close()``) waits, so the counts are exact after it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, LiteralString

from psycopg import Connection, sql

from digitwin_db._sync.database import Database
from digitwin_db._sync.repositories.cache_near import NearReads
from digitwin_db.cache_codec import advisory_lock_ids
from digitwin_db.cache_counters import CacheCounters
from digitwin_db.cache_registry import CACHE_NAMES, CACHES, cache_spec
from digitwin_db.errors import (
    TRANSIENT_ERRORS,
    DatabaseUnavailableError,
    DigitwinDBError,
    TransientError,
)
from digitwin_db.sql import cache as q

__all__ = ["FLUSH_TRY_TIMEOUT", "CacheCore"]

logger = logging.getLogger("digitwin_db.cache")

#: Seconds a flush piggy-backed on a read may wait for a pooled connection: long enough to
#: take an idle one, far shorter than any real wait (psycopg_pool refuses 0).
FLUSH_TRY_TIMEOUT = 0.001


class CacheCore:
    """Counters, fail-open policy, default TTLs, caps and the statistics flush."""

    def __init__(self, db: Database) -> None:
        self.db = db
        settings = db.settings
        self.counters = CacheCounters(settings.cache_stats_flush_interval)
        self._fail_open = settings.cache_fail_open
        #: Default TTL (seconds, None: no expiry) of each cache.
        self.default_ttl: dict[str, float | None] = {
            c.name: getattr(settings, c.ttl_setting) for c in CACHES
        }
        caps = {
            c.name: (
                getattr(settings, c.max_entries_setting),
                getattr(settings, c.max_bytes_setting),
            )
            for c in CACHES
        }
        #: (max entries, max bytes) of the caches that have a cap.
        self.caps: dict[str, tuple[int | None, int | None]] = {
            name: cap for name, cap in caps.items() if cap != (None, None)
        }
        self._cap_check_writes = settings.cache_cap_check_writes
        self._writes = dict.fromkeys(CACHE_NAMES, 0)
        #: The near cache (``Settings.near_cache``; SPEC §2.10): process memory in front of
        #: the tables, shared by the repository and every namespace view.
        self.near = NearReads(self) if settings.near_cache else None

    # ------------------------------------------------------------------ reads
    def read_failed(self, op: str, exc: TransientError | DatabaseUnavailableError) -> None:
        """Log a failed read as a miss, or re-raise it when fail-open is off."""
        if not self._fail_open:
            raise exc
        logger.warning("%s failed, treated as a cache miss: %s", op, exc)

    def read(
        self, op: str, statement: LiteralString, params: Mapping[str, Any], *, many: bool = False
    ) -> Any:
        """The row (``many``: the rows) of a cache lookup, or None (no rows) on a miss;
        a transient database error is a miss too, see :meth:`read_failed`."""
        try:
            with self.db.connection(op) as conn:
                cur = conn.execute(statement, params, binary=True)
                return cur.fetchall() if many else cur.fetchone()
        except TRANSIENT_ERRORS as exc:
            self.read_failed(op, exc)
            return [] if many else None

    def write(
        self,
        op: str,
        statement: LiteralString | sql.SQL | sql.Composed,
        params: Mapping[str, Any],
        cache: str,
        key_hashes: list[Any] | None,
        scope: str | None = None,
    ) -> Any:
        """Run one write statement of ``cache``, then drop this process's near copies of
        what it touched (:meth:`dropped`); its first row, or None when it returns none."""
        with self.db.connection(op) as conn:
            cur = conn.execute(statement, params)
            row = cur.fetchone() if cur.description is not None else None
        self.dropped(cache, key_hashes, scope)
        return row

    def dropped(self, cache: str, key_hashes: list[Any] | None, scope: str | None = None) -> None:
        """This process wrote these keys (None: every key of ``cache``, or of the kv
        namespace ``scope``): drop its near copies now, so that a read after a write sees
        it without waiting for the write's notification (which drops every other
        process's copies)."""
        if self.near is None:
            return
        if key_hashes is None:
            self.near.wrote_scope(cache, scope)
        else:
            self.near.wrote(cache, key_hashes)

    def counted(self, cache: str, *, hits: int = 0, misses: int = 0) -> None:
        """Count lookups of ``cache``; flush without waiting when a flush is due."""
        due = self.counters.hit(cache, hits) if hits else False
        if misses:
            due = self.counters.miss(cache, misses)
        if due:
            self.try_flush()

    # ------------------------------------------------------------------ writes and caps
    def wrote(self, cache: str, rows: int = 1) -> None:
        """Count writes to a capped cache; every ``cache_cap_check_writes`` writes, evict
        the oldest entries above its caps (a failure is logged: the write itself stood)."""
        if cache not in self.caps:
            return
        self._writes[cache] += rows
        if self._writes[cache] < self._cap_check_writes:
            return
        self._writes[cache] = 0
        try:
            self.evict(cache)
        except DigitwinDBError as exc:
            logger.warning("cache eviction of %s failed: %s", cache, exc)

    def evict(self, cache: str) -> int:
        """Delete the oldest entries of ``cache`` above its caps; returns rows evicted."""
        max_entries, max_bytes = self.caps[cache]
        spec = cache_spec(cache)
        statement = q.EVICT_OVER_CAPS.format(
            table=sql.Identifier(spec.table), age=sql.Identifier(spec.age_column)
        )
        with self.db.connection("cache.evict") as conn:
            cur = conn.execute(statement, {"max_entries": max_entries, "max_bytes": max_bytes})
            evicted = cur.rowcount
        if evicted:
            logger.info("cache %s: evicted %d oldest entries above its caps", cache, evicted)
        return evicted

    # ------------------------------------------------------------------ statistics
    def flush(self, *, wait: bool = True) -> bool:
        """Write the counters and LLM hit counts in one statement; True when written (or
        nothing was pending).

        With ``wait`` the pool's usual timeout applies and a failure is raised. Without it
        the flush only runs if a connection is free at once; when none is, the counts stay
        for the next flush and False is returned. Either way failed counts are kept."""
        timeout = None if wait else FLUSH_TRY_TIMEOUT
        if self.near is not None and not self.near.flush_counts(timeout):
            return False
        snapshot = self.counters.take()
        if snapshot.empty:
            return True
        names = [n for n in CACHE_NAMES if snapshot.hits[n] or snapshot.misses[n]]
        llm = sorted(snapshot.llm_hits.items())
        params = {
            "names": names,
            "hits": [snapshot.hits[n] for n in names],
            "misses": [snapshot.misses[n] for n in names],
            "llm_hashes": [h for h, _ in llm],
            "llm_hits": [c for _, c in llm],
        }
        try:
            with self.db.connection("cache.flush_stats", timeout=timeout) as conn:
                conn.execute(q.FLUSH_STATS, params)
        except DatabaseUnavailableError:
            self.counters.restore(snapshot)
            if wait:
                raise
            return False
        except BaseException:
            self.counters.restore(snapshot)
            raise
        return True

    def try_flush(self) -> None:
        """The flush of a read path: never waits for a connection, never raises (a failure
        is logged; the counts are kept)."""
        try:
            if not self.flush(wait=False):
                logger.debug("cache statistics flush skipped: no idle connection")
        except DigitwinDBError as exc:
            logger.warning("cache statistics flush failed (will retry): %s", exc)

    def lock_key(self, conn: Connection[Any], key_hash: int, wait: float) -> None:
        """Take the single-flight lock of a key on ``conn`` (inside its transaction):
        ``pg_advisory_xact_lock`` on the key's ids, released at COMMIT/ROLLBACK (so it works
        behind PgBouncer in transaction mode), waiting at most ``wait`` seconds
        (``TransientError`` after that)."""
        class_id, object_id = advisory_lock_ids(key_hash)
        # At least 1 ms: PostgreSQL reads lock_timeout = 0 as "wait forever".
        timeout_ms = max(1, math.ceil(wait * 1000))
        conn.execute(q.SET_LOCK_TIMEOUT, {"lock_timeout": f"{timeout_ms}"})
        conn.execute(q.ADVISORY_XACT_LOCK, {"class_id": class_id, "object_id": object_id})
