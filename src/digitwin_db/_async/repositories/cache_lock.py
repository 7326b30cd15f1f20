"""``cache.lock(name, ttl=, timeout=)``: a distributed lock held across calls.

A lock is a row of ``cache_locks`` (name, owner token, expiry). Taking it is one
autocommit upsert that succeeds when no row exists or the existing row has expired (the
expired holder's row is taken over in the same statement); releasing and extending name the
owner token, so only the holder can do either. No session state and no transaction is kept
between calls: the lock works behind PgBouncer in transaction mode, and holding it does not
hold a pooled connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING

from digitwin_db.cache_codec import Seconds, check_name, check_positive_seconds
from digitwin_db.cache_lock_policy import (
    LockError,
    LockNotOwnedError,
    LockTimeoutError,
    check_lock_timeout,
    new_owner_token,
    next_delay,
)
from digitwin_db.sql import cache as q

if TYPE_CHECKING:
    from digitwin_db._async.database import AsyncDatabase

__all__ = ["AsyncCacheLock"]

logger = logging.getLogger("digitwin_db.cache")

_DEFAULT: object = object()


class AsyncCacheLock:
    """A named distributed lock (``cache.lock(name, ttl=30, timeout=5)``).

    ``async with cache.lock(...)`` acquires it (waiting at most ``timeout`` seconds; None
    waits for ever; ``LockTimeoutError`` when not acquired) and releases it on exit. The
    lock expires ``ttl`` seconds after it was taken (or last :meth:`extend`-ed): a holder
    that dies never blocks others for longer than that, and a holder that outlives its
    TTL may lose the lock to another — its release then raises ``LockNotOwnedError``.
    Not reentrant: acquiring a lock object that is held raises ``LockError``.
    """

    def __init__(
        self, db: AsyncDatabase, name: str, *, ttl: Seconds, timeout: Seconds | None = None
    ) -> None:
        self.name = check_name(name, "lock name")
        self.ttl = check_positive_seconds(ttl, "ttl")
        self.timeout = check_lock_timeout(timeout)
        self._db = db
        self._token: str | None = None

    def __repr__(self) -> str:
        state = "held" if self._token else "not held"
        return f"<{type(self).__name__} {self.name[:100]!r} {state}>"

    @property
    def held(self) -> bool:
        """Whether this object acquired the lock and has not released it (it may have
        expired since: :meth:`owned` asks the database)."""
        return self._token is not None

    async def acquire(self, *, blocking: bool = True, timeout: object = _DEFAULT) -> bool:
        """Take the lock; True when taken. ``blocking=False`` tries once; otherwise retry
        (with jittered back-off, 2 ms to 100 ms) until ``timeout`` seconds have passed
        (default: the lock's ``timeout``; None waits for ever)."""
        if self._token is not None:
            raise LockError(f"lock {self.name[:100]!r} is already held by this lock object")
        wait = self.timeout if timeout is _DEFAULT else check_lock_timeout(timeout)
        if not blocking:
            wait = 0.0
        deadline = None if wait is None else time.monotonic() + wait
        token = new_owner_token()
        params = {"name": self.name, "owner": token, "ttl": self.ttl}
        delay = 0.0
        while True:
            async with self._db.connection("cache.lock.acquire") as conn:
                cur = await conn.execute(q.LOCK_ACQUIRE, params)
                taken = await cur.fetchone() is not None
            if taken:
                self._token = token
                return True
            delay = next_delay(delay)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                delay = min(delay, remaining)
            await asyncio.sleep(delay)

    async def release(self) -> None:
        """Release the lock. ``LockNotOwnedError`` when it had expired meanwhile (its row is
        removed only if no one took it over); ``LockError`` when this object does not hold
        it."""
        token = self._require_token("release")
        self._token = None
        async with self._db.connection("cache.lock.release") as conn:
            cur = await conn.execute(q.LOCK_RELEASE, {"name": self.name, "owner": token})
            row = await cur.fetchone()
        if row is None or not row[0]:
            raise LockNotOwnedError(
                f"lock {self.name[:100]!r} expired before it was released "
                f"(ttl {self.ttl:g}s): the work under it may have overlapped another holder"
            )

    async def extend(self, ttl: Seconds | None = None) -> None:
        """Push the expiry to ``ttl`` seconds from now (default: the lock's ttl).
        ``LockNotOwnedError`` when the lock has expired or was taken over."""
        token = self._require_token("extend")
        seconds = self.ttl if ttl is None else check_positive_seconds(ttl, "ttl")
        params = {"name": self.name, "owner": token, "ttl": seconds}
        async with self._db.connection("cache.lock.extend") as conn:
            cur = await conn.execute(q.LOCK_EXTEND, params)
            extended = await cur.fetchone() is not None
        if not extended:
            self._token = None
            raise LockNotOwnedError(f"lock {self.name[:100]!r} expired before it was extended")

    async def locked(self) -> bool:
        """Whether anyone holds the lock (unexpired) right now."""
        return await self._state() is not None

    async def owned(self) -> bool:
        """Whether this object holds the lock (unexpired) right now."""
        return self._token is not None and bool(await self._state())

    async def _state(self) -> bool | None:
        params = {"name": self.name, "owner": self._token or ""}
        async with self._db.connection("cache.lock.state") as conn:
            cur = await conn.execute(q.LOCK_STATE, params)
            row = await cur.fetchone()
        return None if row is None else bool(row[0])

    def _require_token(self, what: str) -> str:
        if self._token is None:
            raise LockError(f"cannot {what} lock {self.name[:100]!r}: this object does not hold it")
        return self._token

    async def __aenter__(self) -> AsyncCacheLock:
        if not await self.acquire():
            wait = "ever" if self.timeout is None else f"{self.timeout:g}s"
            raise LockTimeoutError(f"lock {self.name[:100]!r} not acquired within {wait}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is None:
            return
        try:
            await self.release()
        except LockNotOwnedError:
            if exc is None:
                raise
            logger.warning("lock %r had expired when its block raised", self.name[:100])
