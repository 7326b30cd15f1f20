"""A ``limits`` storage in PostgreSQL, registered for the URI schemes of
:data:`~digitwin_db.contrib.limits_rules.STORAGE_SCHEMES` by importing
:mod:`digitwin_db.contrib.limits` (the other API's twin has its own scheme).

It implements limits' storage contract and both optional capabilities, so all three
strategies work: fixed window (``incr``/``get``/``get_expiry``), moving window
(``MovingWindowSupport``) and sliding-window counter (``SlidingWindowCounterSupport``).
Each decision is one atomic statement on the server's clock (see
:mod:`digitwin_db.sql.limits_storage`); the storage shares the package's pool settings and
error translation. ``base_exceptions`` is ``DigitwinDBError``, so limits' ``wrap_exceptions``
turns every error of the package into ``limits.errors.StorageError``.
"""

from __future__ import annotations

import time
from typing import Any

from limits.aio.storage import MovingWindowSupport as AsyncMovingWindowSupport
from limits.aio.storage import SlidingWindowCounterSupport as AsyncSlidingWindowCounterSupport
from limits.aio.storage import Storage as AsyncStorage
from limits.storage.base import TimestampedSlidingWindow

from digitwin_db._async.database import AsyncDatabase
from digitwin_db.contrib.limits_rules import (
    ASYNC_STORAGE_SCHEMES,
    DENY_COUNT,
    acquire_params,
    check_amount,
    check_expiry,
    check_key,
    check_limit,
    on_error,
    sliding_window,
)
from digitwin_db.contrib.limits_shared import AsyncSharedDatabases
from digitwin_db.errors import (
    DatabaseUnavailableError,
    DigitwinDBError,
    QueryError,
    TransientError,
)
from digitwin_db.sql import limits_storage as q

__all__ = ["AsyncPostgresStorage"]

#: Rows deleted per table and statement by ``cleanup_expired``.
CLEANUP_BATCH = 5000


class AsyncPostgresStorage(
    AsyncStorage,
    AsyncMovingWindowSupport,
    AsyncSlidingWindowCounterSupport,
    TimestampedSlidingWindow,
):
    """limits storage on digitwin-db's tables (migration 0008).

    ``uri`` is ``<scheme>://user:password@host:port/dbname`` (the scheme alone uses
    ``DATABASE_URL``). ``options`` are ``digitwin_db.Settings`` fields (``pool_min_size``,
    ``statement_timeout_ms``, ``rate_limit_on_error``, …); storages with the same URI and
    options share one pool (how: :mod:`digitwin_db.contrib.limits_shared`). ``database=``
    uses a given, already built database instead (its settings apply; the storage opens it
    if needed, never closes it).

    When the database cannot answer, ``Settings.rate_limit_on_error`` decides: ``"raise"``
    raises ``RateLimitUnavailableError`` (limits' ``StorageError`` with
    ``wrap_exceptions=True``), ``"allow"`` answers as if every window were empty,
    ``"deny"`` as if it were full. ``check()`` answers False; ``clear``/``reset`` raise.
    """

    STORAGE_SCHEME = ASYNC_STORAGE_SCHEMES

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        database: AsyncDatabase | None = None,
        **options: Any,
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._database = database
        self._shared = None if database is not None else AsyncSharedDatabases(uri, options)
        settings = self._shared.settings if self._shared is not None else database.settings  # type: ignore[union-attr]
        #: ``Settings.rate_limit_on_error`` of this storage.
        self.on_error_policy = settings.rate_limit_on_error

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return DigitwinDBError

    async def _db(self) -> AsyncDatabase:
        if self._database is not None:
            if not self._database.is_open:
                await self._database.open()
            return self._database
        if self._shared is None:  # the constructor sets one of the two
            raise QueryError("limits storage without a database")
        return await self._shared.get()

    async def _row(self, op: str, query: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run one statement and return its first row (None when it returned none)."""
        db = await self._db()
        async with db.connection(op) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    async def _execute(self, op: str, query: Any, params: dict[str, Any]) -> None:
        """Run one statement that returns no rows."""
        db = await self._db()
        async with db.connection(op) as conn:
            await conn.execute(query, params)

    async def _acquire(
        self, op: str, query: Any, key: str, limit: int, expiry: int, amount: int
    ) -> bool:
        """Run an acquiring statement: True when it returned its row (admitted)."""
        params = acquire_params(key, limit, expiry, amount)
        if amount > limit:  # could never be admitted: limits' storages answer False
            return False
        try:
            row = await self._row(f"limits.{op}", query, params)
        except (DatabaseUnavailableError, TransientError) as exc:
            return on_error(self.on_error_policy, op, exc)
        return row is not None

    # ------------------------------------------------------------------ fixed window
    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the key's counter (a new or expired one restarts with a window
        of ``expiry`` seconds) and return the new count."""
        params = {"key": check_key(key), "expiry": check_expiry(expiry)}
        params["amount"] = check_amount(amount)
        try:
            row = await self._row("limits.incr", q.INCR, params)
        except (DatabaseUnavailableError, TransientError) as exc:
            return 0 if on_error(self.on_error_policy, "incr", exc) else DENY_COUNT
        if row is None:
            raise QueryError("limits.incr: no row returned")
        return int(row[0])

    async def get(self, key: str) -> int:
        """The key's count in its live window (0 when none)."""
        params = {"key": check_key(key)}
        try:
            row = await self._row("limits.get", q.GET, params)
        except (DatabaseUnavailableError, TransientError) as exc:
            return 0 if on_error(self.on_error_policy, "get", exc) else DENY_COUNT
        return 0 if row is None else int(row[0])

    async def get_expiry(self, key: str) -> float:
        """When the key's window ends (epoch seconds, server clock); now when it has none."""
        params = {"key": check_key(key)}
        try:
            row = await self._row("limits.get_expiry", q.GET_EXPIRY, params)
        except (DatabaseUnavailableError, TransientError) as exc:
            on_error(self.on_error_policy, "get_expiry", exc)
            return time.time()  # no server clock to ask: the window ends now
        if row is None:
            raise QueryError("limits.get_expiry: no row returned")
        return float(row[0])

    # ------------------------------------------------------------------ moving window
    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit ``amount`` if at most ``limit - amount`` were acquired in the last
        ``expiry`` seconds; a denial stores nothing."""
        return await self._acquire("acquire_entry", q.ACQUIRE_ENTRY, key, limit, expiry, amount)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """``(oldest acquisition in the window, amount acquired in it)``; ``(now, 0)`` when
        the window is empty. Times are epoch seconds of the server's clock."""
        params = {"key": check_key(key), "expiry": check_expiry(expiry)}
        check_limit(limit)
        try:
            row = await self._row("limits.get_moving_window", q.GET_MOVING_WINDOW, params)
        except (DatabaseUnavailableError, TransientError) as exc:
            allow = on_error(self.on_error_policy, "get_moving_window", exc)
            return time.time(), (0 if allow else limit)
        if row is None:
            raise QueryError("limits.get_moving_window: no row returned")
        return float(row[0]), int(row[1])

    # ------------------------------------------------------------------ sliding window
    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Admit ``amount`` if the weighted count of the previous and current windows plus
        ``amount`` stays within ``limit``; a denial stores nothing."""
        return await self._acquire(
            "acquire_sliding_window_entry", q.ACQUIRE_SLIDING, key, limit, expiry, amount
        )

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """``(previous count, previous TTL, current count, current TTL)``, windows aligned
        on multiples of ``expiry`` seconds of the server's clock."""
        seconds = check_expiry(expiry)
        params = {"key": check_key(key)}
        try:
            row = await self._row("limits.get_sliding_window", q.GET_SLIDING_WINDOW, params)
        except (DatabaseUnavailableError, TransientError) as exc:
            allow = on_error(self.on_error_policy, "get_sliding_window", exc)
            return 0, 0.0, (0 if allow else DENY_COUNT), seconds
        return sliding_window(row, seconds)

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Forget the key's sliding-window counts."""
        check_expiry(expiry)
        await self._execute("limits.clear_sliding_window", q.CLEAR_SLIDING, {"key": check_key(key)})

    # ------------------------------------------------------------------ maintenance
    async def clear(self, key: str) -> None:
        """Forget the key (every strategy)."""
        await self._execute("limits.clear", q.CLEAR, {"key": check_key(key)})

    async def reset(self) -> int | None:
        """Forget every key of every strategy; returns how many were removed."""
        row = await self._row("limits.reset", q.RESET, {})
        return 0 if row is None else int(row[0])

    async def check(self) -> bool:
        """True when the database answers."""
        try:
            await self._row("limits.check", q.CHECK, {})
        except (DatabaseUnavailableError, TransientError):
            return False
        return True

    async def cleanup_expired(self) -> int:
        """Delete rows whose windows have expired (they would count nothing), in batches
        that skip rows a hit holds; safe while services run. Returns the number deleted."""
        deleted = 0
        while True:
            row = await self._row("limits.cleanup", q.DELETE_EXPIRED, {"batch": CLEANUP_BATCH})
            batch = 0 if row is None else int(row[0])
            deleted += batch
            if batch == 0:
                return deleted
