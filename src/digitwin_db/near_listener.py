"""The near cache's listener: one thread per tier, on its own direct connection.

A thread with a sync psycopg connection serves both APIs: the tier it feeds is a
thread-safe in-memory structure, so an asyncio program needs no second implementation
(and no task that a blocked event loop would starve). The connection is not pooled: LISTEN
belongs to a session, which PgBouncer in transaction mode does not keep — hence
``Settings.listen_url`` (a direct URL; defaults to ``DATABASE_URL``).

Life cycle: connect, ``LISTEN digitwin_cache``, then :meth:`NearCache.set_listening`
(True) — only from then on is a commit guaranteed to reach us. On any connection error the
tier is emptied and bypassed at once (``set_listening(False)``), and the thread reconnects
with a capped backoff. TCP keepalives notice a silent peer (a half-open connection).
Lookups also apply what already reached the socket (``poll``), so a process whose main
thread never lets the listener thread run still stops serving a copy at once.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from digitwin_db.near_cache import NearCache
from digitwin_db.sql import near_cache as nq

__all__ = ["NearListener"]

logger = logging.getLogger("digitwin_db.near_cache")

#: How long one wait for notifications lasts (bounds how long close() waits).
POLL: Final = 0.1
#: TCP keepalives of the listener's connection: a dead peer is noticed within about
#: idle + interval * count = 25 s.
KEEPALIVE_IDLE: Final = 10
KEEPALIVE_INTERVAL: Final = 5
KEEPALIVE_COUNT: Final = 3
#: Reconnect backoff: first and longest wait (seconds).
BACKOFF_MIN: Final = 0.05
BACKOFF_MAX: Final = 2.0

_LISTENERS: weakref.WeakSet[NearListener] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The thread does not exist in a forked child: its tiers must not serve copies that
    # nothing invalidates any more. Build the factory after forking to get a listener.
    for listener in list(_LISTENERS):
        listener._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _password(url: str) -> str | None:
    """The password in a connection URL (kept out of the error messages shown)."""
    try:
        value = conninfo_to_dict(url).get("password")
    except psycopg.Error:  # an unparseable URL: the connection attempt reports it
        return None
    return str(value) if value else None


class NearListener:
    """``LISTEN digitwin_cache`` in a daemon thread, applying payloads to ``tier``.

    ``state`` is ``"starting"``, ``"listening"``, ``"reconnecting"`` or ``"stopped"``.
    """

    def __init__(
        self,
        tier: NearCache,
        url: str,
        *,
        connect_timeout: float = 5.0,
        application_name: str = "digitwin-db",
    ) -> None:
        self.tier = tier
        self._url = url
        self._password = _password(url)
        self._connect_timeout = max(1, round(connect_timeout))
        self._application_name = f"{application_name[:50]} listener"
        self._stop = threading.Event()
        self._observers: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        # Serialises every use of the connection: the thread's reads and lookups' polls.
        self._io_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self.state = "starting"
        self.since = time.time()
        self.backend_pid: int | None = None
        self.notifications = 0
        self.reconnects = 0
        self.last_error: str | None = None
        _LISTENERS.add(self)

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="digitwin-near-cache-listener", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (waits up to ``timeout``); the tier is emptied and bypassed."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.tier.set_listening(False)
        self._set_state("stopped")

    def add_observer(self, observer: Callable[[str], None]) -> None:
        """Call ``observer(payload)`` on the listener thread after each payload is applied
        (diagnostics, benchmarks, tests). It must be quick and must not raise."""
        self._observers.append(observer)

    def wait_listening(self, timeout: float) -> bool:
        """Wait until the listener is up; True when it is."""
        deadline = time.monotonic() + timeout
        while not self.tier.listening:
            if time.monotonic() >= deadline or self._stop.is_set():
                return False
            time.sleep(0.005)
        return True

    def describe(self) -> dict[str, Any]:
        """State for ``factory.health()`` (no credentials)."""
        return {
            "state": self.state,
            "since": self.since,
            "backend_pid": self.backend_pid,
            "notifications": self.notifications,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ the thread
    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()

    def _forked(self) -> None:
        self._stop.set()
        self._thread = None
        self.tier.set_listening(False)
        self._set_state("stopped")
        self.last_error = "process forked: build the factory in the child to use the near cache"

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = BACKOFF_MIN
            except Exception as exc:
                # Whatever failed (the connection, or a bug in applying a payload): the
                # tier must never go on serving without a working listener.
                self.tier.set_listening(False)
                self.backend_pid = None
                if not isinstance(exc, psycopg.Error | OSError):
                    logger.exception("near cache listener failed; reconnecting")
                message = str(exc).strip().splitlines()[0] if str(exc) else ""
                if self._password:
                    message = message.replace(self._password, "***")
                self.last_error = f"{type(exc).__name__}: {message}"
                if self._stop.is_set():
                    break
                if self.state == "listening":
                    logger.warning(
                        "near cache listener lost its connection (%s); the near cache is "
                        "bypassed until it is back",
                        self.last_error,
                    )
                    self.reconnects += 1
                    backoff = BACKOFF_MIN
                self._set_state("reconnecting")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                with self._io_lock:
                    conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()
        self.tier.set_listening(False)
        self._set_state("stopped")

    def _listen(self) -> None:
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name=self._application_name,
            # A silent peer (network partition) is noticed by TCP keepalives: the listener
            # never sends anything itself, so nothing else would notice it.
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE,
            keepalives_interval=KEEPALIVE_INTERVAL,
            keepalives_count=KEEPALIVE_COUNT,
        )
        self._conn = conn
        conn.execute(nq.LISTEN)
        self.backend_pid = conn.info.backend_pid
        # Only now is every later commit's notification guaranteed to reach us.
        self.tier.set_listening(True)
        self.tier.set_poller(self.poll)
        self._set_state("listening")
        self.last_error = None
        sock = conn.pgconn.socket
        try:
            while not self._stop.is_set():
                # Waits without the GIL; a notification (or EOF) makes the socket readable.
                readable, _, _ = select.select([sock], [], [], POLL)
                if readable:
                    with self._io_lock:
                        self._drain(conn)
        finally:
            self.tier.set_poller(None)

    def poll(self) -> None:
        """Apply what has reached the socket (called by lookups of any thread, see
        ``NearCache.set_poller``): non-blocking I/O, microseconds when nothing is there."""
        with self._io_lock:
            conn = self._conn
            if conn is None or conn.closed:
                return
            try:
                readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
                if readable:
                    self._drain(conn)
            except Exception:
                # Broken connection, or a payload that could not be applied: bypass now and
                # close the connection, so that the listener thread starts over (the
                # caller's read goes on, to the table).
                self.tier.set_listening(False)
                conn.close()
                logger.warning("near cache: applying notifications failed", exc_info=True)

    def _drain(self, conn: psycopg.Connection[Any]) -> None:
        """Read what the server sent and apply every notification in it (io lock held)."""
        pgconn = conn.pgconn
        pgconn.consume_input()
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the listener's connection is broken")
        tier = self.tier
        while (notify := pgconn.notifies()) is not None:
            payload = notify.extra.decode()
            tier.apply(payload)
            self.notifications += 1
            for observer in self._observers:
                observer(payload)
