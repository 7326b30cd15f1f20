"""Fail fast while the database is known to be down: a circuit breaker (pure logic, no I/O).

- **closed** (normal): every call goes through. ``failure_threshold`` consecutive failed
  checkouts (the pool could not hand out a connection within ``pool_timeout``: the server
  refuses, is gone, or — under overload — every connection stayed busy) open it. A
  connection that breaks during a call (one killed backend) does not: it says nothing
  about the server.
- **open**: calls fail at once with :class:`CircuitOpenError` (a
  ``DatabaseUnavailableError`` naming the last cause) instead of each waiting the full
  ``pool_timeout``, for ``open_seconds``.
- **half-open**: then exactly one caller is let through as a probe; the others keep failing
  fast until it reports. Its success closes the breaker (the first call after the server is
  back succeeds); its failure opens it again for another ``open_seconds``.

Thread-safe (one short lock); the async API uses it the same way (no awaiting under it).
``Database`` consults it around every pool checkout (``Settings.circuit_breaker_*``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import psycopg_pool
from psycopg import errors as pg

from digitwin_db.connect_errors import connect_failure_cause
from digitwin_db.errors import DatabaseUnavailableError

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitOpenError", "outage_cause"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def outage_cause(exc: BaseException) -> str | None:
    """Why ``exc`` says the server is unreachable, or None when it does not (a query the
    server refused, a statement or lock timeout, a deadlock: the server answered)."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "no connection within the pool timeout"
    if isinstance(
        exc, pg.QueryCanceled | pg.LockNotAvailable | pg.DeadlockDetected | pg.SerializationFailure
    ):
        return None
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return connect_failure_cause(exc)
    return None


class CircuitOpenError(DatabaseUnavailableError):
    """Refused without trying: the database failed recently (the breaker is open)."""


class CircuitBreaker:
    """See the module docstring. ``failure_threshold`` 0 disables the breaker."""

    def __init__(
        self,
        *,
        failure_threshold: int = 1,
        open_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "database",
    ) -> None:
        if failure_threshold < 0 or open_seconds < 0:
            raise ValueError("failure_threshold and open_seconds must not be negative")
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False
        self._cause = ""
        #: How many calls were refused without trying (for statistics and tests).
        self.refused = 0

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.open_seconds:
                return HALF_OPEN
            return self._state

    def before_call(self) -> bool:
        """Let a call through (True when it is the half-open probe) or raise
        :class:`CircuitOpenError`."""
        if self._state == CLOSED or self.failure_threshold == 0:
            return False  # the common case, without the lock
        with self._lock:
            if self._state == CLOSED:
                return False
            elapsed = self._clock() - self._opened_at
            if elapsed >= self.open_seconds and not self._probe_out:
                self._state = HALF_OPEN
                self._probe_out = True
                return True
            self.refused += 1
            wait = max(0.0, self.open_seconds - elapsed)
            cause = self._cause
        hint = "a probe is in flight" if wait == 0 else f"next try in {wait:.1f}s"
        raise CircuitOpenError(f"{self.name} unavailable (failing fast, {hint}): {cause}")

    def record_success(self) -> None:
        if (self._state == CLOSED and self._failures == 0) or self.failure_threshold == 0:
            return  # the common case, without the lock
        with self._lock:
            self._state = CLOSED
            self._failures = 0
            self._probe_out = False

    def record_failure(self, cause: str) -> None:
        if self.failure_threshold == 0:
            return
        with self._lock:
            self._failures += 1
            self._cause = cause
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = OPEN
                self._opened_at = self._clock()
                self._probe_out = False

    def release_probe(self) -> None:
        """The probe ended without telling anything about the server (e.g. a query error):
        let the next caller probe."""
        with self._lock:
            if self._state == HALF_OPEN:
                self._probe_out = False
                self._state = OPEN
                self._opened_at = self._clock() - self.open_seconds
