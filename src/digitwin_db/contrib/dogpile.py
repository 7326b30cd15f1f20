"""A dogpile.cache backend on the kv cache (extra ``dogpile``), registered as
``"digitwin_db"`` when this module is imported::

    import digitwin_db.contrib.dogpile  # registers the backend
    region = make_region().configure(
        "digitwin_db", expiration_time=300,
        arguments={"url": "postgresql://…", "namespace": "dogpile"},
    )

Arguments: ``url`` (a database URL; one pool per URL is shared by every region in the
process) or ``factory`` (a ``RepositoryFactory`` you own); ``namespace`` (kv namespace,
default ``"dogpile"``); ``ttl`` (seconds a stored value lives in PostgreSQL, default none:
dogpile's ``expiration_time`` decides freshness, the TTL only bounds storage);
``lock_ttl`` (seconds a creation lock lives if its holder dies, default 30). Other
arguments are ignored. The mutex is ``cache.lock()``: distributed across processes and
hosts, and safe behind PgBouncer in transaction mode.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable, Mapping
from hashlib import blake2b
from typing import Any

from dogpile.cache import register_backend
from dogpile.cache.api import NO_VALUE, BytesBackend, CacheMutex, NoValueType

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db._sync.repositories.cache_lock import CacheLock
from digitwin_db.cache_lock_policy import LockNotOwnedError
from digitwin_db.errors import ConfigurationError

__all__ = ["DigitwinDBBackend", "DigitwinDBMutex", "close_pools"]

logger = logging.getLogger("digitwin_db.contrib.dogpile")

#: Longest lock name built from a key as is; longer keys are hashed (lock names are short).
_MAX_PLAIN_NAME = 150

_factories: dict[str, RepositoryFactory] = {}
_factories_lock = threading.Lock()


def _factory_for(url: str) -> RepositoryFactory:
    """One pool per URL for the whole process, closed at exit."""
    with _factories_lock:
        factory = _factories.get(url)
        if factory is None:
            db = Database(url=url)
            db.open()
            factory = _factories[url] = RepositoryFactory(db)
        return factory


@atexit.register
def close_pools() -> None:
    """Close the pools opened for ``url`` arguments (also done at interpreter exit); a
    region used afterwards opens a new one."""
    with _factories_lock:
        for factory in _factories.values():
            factory.close()
            factory.db.close()
        _factories.clear()


class DigitwinDBMutex(CacheMutex):
    """dogpile's mutex over :class:`~digitwin_db.CacheLock` (an owner-token lock row).

    dogpile shares one mutex object per key among the threads of a process (and may
    release it from another thread, for async creation), so a local ``threading.Lock``
    orders this process's holders and the lock row orders processes and hosts. A release
    after the row expired (the creator outlived ``lock_ttl``) is logged, not raised: the
    value was created all the same.
    """

    def __init__(self, lock: CacheLock) -> None:
        self._lock = lock
        self._local = threading.Lock()

    def acquire(self, wait: bool = True) -> bool:
        if not self._local.acquire(wait):
            return False
        try:
            taken = self._lock.acquire(blocking=wait, timeout=None)
        except BaseException:
            self._local.release()
            raise
        if not taken:
            self._local.release()
        return taken

    def release(self) -> None:
        try:
            self._lock.release()
        except LockNotOwnedError as exc:
            logger.warning("dogpile mutex: %s", exc)
        finally:
            self._local.release()

    def locked(self) -> bool:
        return self._lock.locked()


class DigitwinDBBackend(BytesBackend):
    """Values are dogpile's serialized bytes, stored raw in one kv namespace."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        factory = arguments.get("factory")
        url = arguments.get("url")
        if factory is None:
            if not isinstance(url, str) or not url:
                raise ConfigurationError("the digitwin_db backend needs a 'url' or a 'factory'")
            factory = _factory_for(url)
        if not isinstance(factory, RepositoryFactory):
            raise ConfigurationError("'factory' must be a digitwin_db.RepositoryFactory")
        self._cache = factory.cache
        self.namespace = str(arguments.get("namespace", "dogpile"))
        self._kv = self._cache.namespace(self.namespace)
        self._ttl = arguments.get("ttl")
        self._lock_ttl = float(arguments.get("lock_ttl", 30.0))

    def has_lock_timeout(self) -> bool:
        return True  # a lock whose holder died is taken over after lock_ttl seconds

    def get_mutex(self, key: str) -> DigitwinDBMutex:
        name = f"dogpile:{self.namespace}:{key}"
        if len(name) > _MAX_PLAIN_NAME:
            name = "dogpile:" + blake2b(name.encode(), digest_size=20).hexdigest()
        return DigitwinDBMutex(self._cache.lock(name, ttl=self._lock_ttl))

    def get_serialized(self, key: str) -> bytes | NoValueType:
        value = self._kv.get(key, NO_VALUE)
        return value if isinstance(value, bytes) else NO_VALUE

    def get_serialized_multi(self, keys: Iterable[str]) -> list[bytes | NoValueType]:
        keys = list(keys)
        found = self._kv.get_many(keys)
        return [v if isinstance(v := found.get(k), bytes) else NO_VALUE for k in keys]

    def set_serialized(self, key: str, value: bytes) -> None:
        self._kv.set(key, value, ttl=self._ttl)

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        self._kv.set_many(mapping, ttl=self._ttl)

    def delete(self, key: str) -> None:
        self._kv.delete(key)

    def delete_multi(self, keys: Iterable[str]) -> None:
        self._kv.delete_many(list(keys))


register_backend("digitwin_db", __name__, "DigitwinDBBackend")  # type: ignore[no-untyped-call]
