"""Which pool a ``limits`` storage uses: one per URL and options, shared by its storages.

limits, Flask-Limiter and slowapi build storages freely (limits' own tests build one per
test), so each storage must not open a pool of its own: storages with the same URL and
options share one ``Database``, opened on first use. The two twins differ here, and only
here, which is why this module is written by hand rather than generated:

* sync: one ``Database`` per process (keyed by pid, so a forked worker opens its own),
  closed at interpreter exit;
* async: an asyncio pool belongs to the event loop that opened it, so one ``AsyncDatabase``
  per running loop, closed when the loop shuts down.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._sync.database import Database
from digitwin_db.contrib.limits_rules import storage_settings
from digitwin_db.settings import Settings

__all__ = ["AsyncSharedDatabases", "SharedDatabases"]


def _options_key(uri: str | None, options: dict[str, Any]) -> tuple[Any, ...]:
    return (uri or "", *sorted((k, repr(v)) for k, v in options.items()))


class SharedDatabases:
    """The process-wide ``Database`` of one (URL, options), opened on first :meth:`get`."""

    _lock = threading.Lock()
    _databases: dict[tuple[Any, ...], Database] = {}

    def __init__(self, uri: str | None, options: dict[str, Any]) -> None:
        self.settings: Settings = storage_settings(uri, options)
        self._key = _options_key(uri, options)

    def get(self) -> Database:
        """The open shared ``Database``; ``DatabaseUnavailableError`` when it cannot open."""
        key = (os.getpid(), *self._key)
        db = self._databases.get(key)
        if db is not None and db.is_open:
            return db
        with self._lock:
            db = self._databases.get(key)
            if db is None:
                db = self._databases[key] = Database(self.settings)
            db.open()  # no-op when open
            return db

    @classmethod
    def close_all(cls) -> None:
        """Close this process's shared databases (at exit; tests)."""
        pid = os.getpid()
        with cls._lock:
            for key in [k for k in cls._databases if k[0] == pid]:
                cls._databases.pop(key).close()


atexit.register(SharedDatabases.close_all)


class _LoopDatabases:
    """The shared databases of one event loop, closed when the loop shuts down.

    An asyncio pool cannot outlive its loop, and ``asyncio.run()`` (or ``asyncio.Runner``)
    gives no "loop closing" callback, but it does ``shutdown_asyncgens()`` first: the loop
    then closes every async generator it has seen. ``_guard`` is such a generator, started
    once and kept here; its ``finally`` closes the loop's databases, inside the loop, so
    repeated ``asyncio.run()`` calls (a worker per task, tests) leave no connection open.
    """

    def __init__(self) -> None:
        self.databases: dict[tuple[Any, ...], AsyncDatabase] = {}
        self.lock = asyncio.Lock()
        self.guard = self._guard()

    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.close(loop_ending=True)

    async def close(self, *, loop_ending: bool = False) -> None:
        databases, self.databases = list(self.databases.values()), {}
        for db in databases:
            if not loop_ending:
                await db.close()
                continue
            # asyncio.run() cancelled every task, the pool's workers too, before it closes
            # the async generators; psycopg_pool's close() then raises CancelledError while
            # waiting for its workers, before it closes its idle connections. drain() closes
            # them first (the replacements it asks for go to the dead workers).
            await db._pool.drain()
            with contextlib.suppress(asyncio.CancelledError):
                await db.close(timeout=0)


class AsyncSharedDatabases:
    """The ``AsyncDatabase`` of one (URL, options) in the running event loop."""

    _per_loop: dict[asyncio.AbstractEventLoop, _LoopDatabases] = {}

    def __init__(self, uri: str | None, options: dict[str, Any]) -> None:
        self.settings: Settings = storage_settings(uri, options)
        # A fixed pool of pool_min_size connections (at least 1), opened full and never
        # grown: psycopg_pool adds connections in tasks of the loop, and a connection being
        # added when asyncio.run() cancels the loop's tasks is taken for a failed connect and
        # retried, so the loop's shutdown never ends. Not pool_max_size: the pool hands its
        # idle connections out in turn, and on a busy host a check through one of many idle
        # server processes was measured 6x slower than through one of two.
        size = max(1, self.settings.pool_min_size)
        self._pool_settings = self.settings.model_copy(
            update={"pool_min_size": size, "pool_max_size": size}
        )
        self._key = _options_key(uri, options)

    async def get(self) -> AsyncDatabase:
        """The open ``AsyncDatabase`` of the running loop; ``DatabaseUnavailableError`` when
        it cannot open."""
        loop = asyncio.get_running_loop()
        entry = self._per_loop.get(loop)
        if entry is None:
            entry = await self._register(loop)
        db = entry.databases.get(self._key)
        if db is not None and db.is_open:
            return db
        async with entry.lock:
            db = entry.databases.get(self._key)
            if db is None:
                db = entry.databases[self._key] = AsyncDatabase(self._pool_settings)
            await db.open()  # no-op when open
            return db

    @classmethod
    async def _register(cls, loop: asyncio.AbstractEventLoop) -> _LoopDatabases:
        # Loops closed without shutdown_asyncgens(): forget them (their pools go with them).
        for old in [lp for lp in cls._per_loop if lp.is_closed()]:
            del cls._per_loop[old]
        entry = cls._per_loop[loop] = _LoopDatabases()
        await anext(entry.guard)  # the loop now knows the generator and will close it
        return entry

    @classmethod
    async def close_all(cls) -> None:
        """Close the running loop's shared databases now."""
        entry = cls._per_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry.close()
