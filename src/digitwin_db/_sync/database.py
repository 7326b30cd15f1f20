# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/database.py
"""Connection layer: a psycopg_pool pool with error translation and health checks."""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
import pydantic
from psycopg import Connection, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from digitwin_db._sync.batcher import Batcher
from digitwin_db.affinity import (
    CHECK_AFTER,
    HOLD_LIMIT,
    STEAL_AFTER,
    SWEEP_INTERVAL,
    Parked,
    Parking,
)
from digitwin_db.batching import Combiner
from digitwin_db.circuit import CircuitBreaker, outage_cause
from digitwin_db.connect_errors import connect_failure_cause
from digitwin_db.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DigitwinDBError,
    raise_translated,
)
from digitwin_db.migrations import YOYO_TABLE, available_migrations
from digitwin_db.models.common import DatabaseHealth
from digitwin_db.observability import CallStats
from digitwin_db.redaction import redact
from digitwin_db.settings import Settings, describe_settings_error
from digitwin_db.sql import database as q

logger = logging.getLogger("digitwin_db")

_APPLIED_SQL = q.APPLIED_MIGRATIONS.format(table=sql.Identifier(YOYO_TABLE))
# How often close() looks whether checked-out connections came back (seconds).
CLOSE_POLL_INTERVAL = 0.01


def _check_alive(conn: Connection[Any]) -> None:
    """Pool ``check`` callback: detect a connection the server has closed, without a round trip.

    An idle connection should have nothing to read. After a server restart (or
    ``pg_terminate_backend``) the socket turns readable: an error message and/or EOF. A
    zero-timeout ``select`` costs microseconds, so every checkout can afford it, and the
    pool then replaces the dead connection instead of handing it to the caller.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        # Close it so that the pool discards it instead of putting it back.
        conn.close()
        raise psycopg.OperationalError("server closed the connection (data on idle socket)")


def _is_alive(conn: Connection[Any]) -> bool:
    """:func:`_check_alive` as a boolean (a dead connection is closed)."""
    try:
        _check_alive(conn)
    except psycopg.OperationalError:
        return False
    return True


class ConnectionScope:
    """``with db.connection(op) as conn``: check a connection out, hand it back.

    A plain class rather than a generator-based context manager plus ``pool.connection()``:
    this is
    on the path of every call (a cache hit is one round trip of ~50 µs), and the generator
    machinery of two nested context managers cost more than the pool checkout itself.

    Connection affinity (:mod:`digitwin_db.affinity`): a scope that ends cleanly parks its
    connection for the calling thread's next scope instead of returning it to the pool.
    """

    __slots__ = ("_conn", "_db", "_op", "_since", "_start", "_timeout")

    def __init__(self, db: Database, op: str, timeout: float | None = None) -> None:
        self._db = db
        self._op = op
        self._timeout = timeout
        self._conn: Connection[Any] | None = None
        self._start = 0.0
        self._since = 0.0

    def __enter__(self) -> Connection[Any]:
        db = self._db
        db._ensure_open()
        self._start = start = time.perf_counter()
        # This thread's own parked connection first: the sweep returns only the others'
        # (the first call after a pause reuses its connection instead of a pool round trip).
        parked = db._parking.take(threading.get_ident())
        if start >= db._parking.next_sweep:
            db._sweep_parked(start)
        if parked is not None:
            conn = parked.conn
            if start - parked.parked_at < CHECK_AFTER or (
                start - parked.checked_out_at < HOLD_LIMIT and _is_alive(conn)
            ):
                self._conn = conn
                self._since = parked.checked_out_at
                return conn
            db._pool.putconn(conn)  # the pool checks, replaces or keeps it
        try:
            db.breaker.before_call()  # fails fast while the server is known to be down
        except DatabaseUnavailableError:
            self._record(failed=True)  # a refused call is a failed call in the statistics
            raise
        try:
            self._conn = db._getconn(self._timeout)
        except (psycopg.Error, psycopg_pool.PoolClosed) as exc:
            self._record(failed=True)
            cause = outage_cause(exc)
            if cause is not None:  # no connection could be had: the server is down
                db.breaker.record_failure(cause)
            else:
                db.breaker.release_probe()
            raise_translated(exc, self._op)
        self._since = start
        return self._conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None and (exc is not None or not self._db._park(conn, self._since)):
                # The pool rolls back a connection left in a transaction and discards a
                # broken one.
                self._db._pool.putconn(conn)
        finally:
            self._record(failed=exc is not None)
            self._breaker_outcome(exc)
        if isinstance(exc, psycopg.Error | psycopg_pool.PoolClosed):
            raise_translated(exc, self._op)

    def _breaker_outcome(self, exc: BaseException | None) -> None:
        # After a checkout: the server answered (success), or the connection broke during
        # the call — one killed backend says nothing about the server, so it does not open
        # the breaker (only a failed checkout does); nor does a cancelled call.
        if exc is None or (isinstance(exc, psycopg.Error) and outage_cause(exc) is None):
            self._db.breaker.record_success()
        else:
            self._db.breaker.release_probe()

    def _record(self, *, failed: bool) -> None:
        if self._op:
            elapsed_ms = (time.perf_counter() - self._start) * 1000.0
            self._db.stats.record(self._op, elapsed_ms, failed=failed)


class Database:
    """A pool of connections to one PostgreSQL database.

    Build it from ``Settings`` or a URL, then ``db.open()`` (or use ``with``).
    Pooled connections run in autocommit mode: a single statement is its own transaction
    and costs one round trip; use :meth:`transaction` for several statements.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        **overrides: Any,
    ) -> None:
        try:
            if settings is None:
                settings = Settings() if url is None else Settings(database_url=url, **overrides)
            elif url is not None or overrides:
                settings = Settings(
                    **{
                        **settings.model_dump(exclude={"database_url"}),
                        "database_url": url or settings.url,
                        **overrides,
                    }
                )
        except pydantic.ValidationError as exc:
            raise ConfigurationError(
                f"invalid database settings: {describe_settings_error(exc)}"
            ) from None
        self.settings = settings
        self.safe_url = settings.safe_url
        self.stats = CallStats(slow_call_ms=settings.slow_call_ms)
        try:
            params = conninfo_to_dict(settings.url)
        except psycopg.ProgrammingError as exc:
            # libpq's message may quote the string (and its password): redacted, not chained.
            raise ConfigurationError(
                f"invalid DATABASE_URL {self.safe_url}: {redact(exc)}"
            ) from None
        # An unencoded "@" in a URL's password makes libpq read its tail as the host: show
        # only what follows the last "@".
        host = str(params.get("host") or "localhost").rsplit("@", 1)[-1]
        self._target = f"{host}:{params.get('port') or 5432}"
        # Fails calls fast while the server is known to be down (digitwin_db.circuit).
        self.breaker = CircuitBreaker(
            failure_threshold=settings.circuit_breaker_failures,
            open_seconds=settings.circuit_breaker_open_seconds,
            name=f"database {self._target}",
        )
        options = [f"-c statement_timeout={settings.statement_timeout_ms}"]
        options.append(f"-c lock_timeout={settings.lock_timeout_ms}")
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": settings.prepare_threshold,
            "connect_timeout": max(1, round(settings.connect_timeout)),
            "application_name": settings.application_name,
            # Behind PgBouncer, add "options" to ignore_startup_parameters (see SETUP.md).
            "options": " ".join(options),
        }
        self._pool_kwargs = kwargs
        self._pool: ConnectionPool[Connection[TupleRow]] = self._new_pool()
        self._opened = False
        self._pool_was_opened = False
        # Connection affinity (see digitwin_db.affinity): connections parked per thread
        # between calls, and how many callers are waiting for a pool connection.
        self._parking: Parking[Connection[Any]] = Parking()
        self._waiting = 0
        self._batchers: dict[str, Batcher] = {}

    def _new_pool(self) -> ConnectionPool[Connection[TupleRow]]:
        settings = self.settings
        return ConnectionPool(
            settings.url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout,
            max_idle=settings.pool_max_idle,
            max_lifetime=settings.pool_max_lifetime,
            reconnect_timeout=max(settings.connect_timeout * 6, 30.0),
            kwargs=self._pool_kwargs,
            check=_check_alive,
            open=False,
            name="digitwin-db",
        )

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"<{type(self).__name__} {self.safe_url} ({state})>"

    @property
    def target(self) -> str:
        """``host:port`` of the server (no credentials)."""
        return self._target

    @property
    def is_open(self) -> bool:
        return self._opened

    # ------------------------------------------------------------------ lifecycle
    def open(self, *, wait: bool = True) -> None:
        """Open the pool. With ``wait`` (default) fail fast when the server is unreachable.

        Raises ``DatabaseUnavailableError`` naming host and port (never the password) when no
        connection can be made within ``Settings.connect_timeout``.
        """
        if self._opened:
            return
        if self._pool.closed and self._pool_was_opened:
            self._pool = self._new_pool()  # a closed psycopg pool cannot be reopened
        self._pool_was_opened = True
        try:
            self._pool.open(wait=False)
            if wait:
                # One real connection proves the server answers; the pool fills the rest
                # in the background.
                if self.settings.pool_min_size > 0:
                    self._pool.wait(timeout=self.settings.connect_timeout)
                else:
                    self._probe()
        except (psycopg.Error, DigitwinDBError) as exc:
            self._pool.close(timeout=0)
            cause = self._connect_failure_cause()
            raise DatabaseUnavailableError(
                f"cannot connect to PostgreSQL at {self._target} "
                f"within {self.settings.connect_timeout:g}s: {cause} ({type(exc).__name__})"
            ) from None
        self._opened = True

    def _connect_failure_cause(self) -> str:
        """Why connecting fails: one direct attempt (the pool only says "timeout")."""
        kwargs = {
            **self._pool_kwargs,
            "connect_timeout": max(1, round(self.settings.connect_timeout)),
        }
        try:
            conn = Connection.connect(self.settings.url, **kwargs)
        except psycopg.Error as exc:
            return connect_failure_cause(exc)
        conn.close()
        return "the server answered on a second attempt (it was starting, or busy)"

    def _probe(self) -> None:
        with self._pool.connection(timeout=self.settings.connect_timeout) as conn:
            conn.execute(q.PING)

    def close(self, timeout: float | None = None) -> None:
        """Close the pool gracefully.

        New calls are refused at once (``DatabaseUnavailableError``); connections still
        checked out get up to ``timeout`` seconds (default ``Settings.pool_close_timeout``)
        to come back before the pool closes them.
        """
        if not self._opened:
            return
        self._opened = False
        wait = self.settings.pool_close_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        for conn in self._parking.drain():
            self._pool.putconn(conn)
        # psycopg_pool signals no event when a connection comes back: poll its counters.
        while self.connections_in_use() and time.monotonic() < deadline:
            time.sleep(CLOSE_POLL_INTERVAL)
        self._pool.close(timeout=max(0.0, deadline - time.monotonic()))

    def connections_in_use(self) -> int:
        """Connections currently checked out of the pool."""
        stats = self._pool.get_stats()
        used = stats.get("pool_size", 0) - stats.get("pool_available", 0) - len(self._parking)
        return max(0, used)

    def __enter__(self) -> Database:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ connections
    def _ensure_open(self) -> None:
        if not self._opened:
            raise DatabaseUnavailableError(
                f"database {self._target} is not open: call open() or use it as a context manager"
            )

    def _getconn(self, timeout: float | None = None) -> Connection[Any]:
        """A connection from the pool (waiting at most ``timeout`` seconds, default the
        pool's). While this waits nothing is parked; when the pool stays empty for
        ``STEAL_AFTER`` seconds, a connection parked by another thread goes back to
        the pool first."""
        self._waiting += 1
        try:
            if len(self._parking):
                first = STEAL_AFTER if timeout is None else min(timeout, STEAL_AFTER)
                try:
                    return self._pool.getconn(timeout=first)
                except psycopg_pool.PoolTimeout:
                    stolen = self._parking.steal()
                    if stolen is not None:
                        self._pool.putconn(stolen.conn)
                    elif timeout is not None and timeout <= first:
                        raise
                if timeout is not None:
                    timeout = max(0.0, timeout - first)
            return self._pool.getconn(timeout)
        finally:
            self._waiting -= 1

    def _park(self, conn: Connection[Any], checked_out_at: float) -> bool:
        """Keep ``conn`` for this thread's next call; False when it must go back to the
        pool instead (closing, a caller waiting, held long enough, not idle, nested)."""
        now = time.perf_counter()
        if (
            not self._opened
            or self._waiting
            or now - checked_out_at >= HOLD_LIMIT
            or conn.pgconn.transaction_status != TransactionStatus.IDLE
        ):
            return False
        ident = threading.get_ident()
        if not self._parking.park(ident, Parked(conn, now, checked_out_at)):
            return False
        if self._waiting or not self._opened:  # a waiter or close() came in between
            return not self._parking.unpark(ident, conn)
        return True

    def _sweep_parked(self, now: float) -> None:
        """Return connections parked unused for ``IDLE_RETURN`` seconds."""
        self._parking.next_sweep = now + SWEEP_INTERVAL
        for conn in self._parking.due(now):
            self._pool.putconn(conn)

    def connection(self, op: str = "", *, timeout: float | None = None) -> ConnectionScope:
        """A pooled autocommit connection, as a context manager; psycopg errors
        raised inside become digitwin_db errors.

        ``op`` (e.g. ``"users.get"``) names the operation in error messages and statistics.
        Raises ``DatabaseUnavailableError`` after ``timeout`` seconds (default
        ``Settings.pool_timeout``) without a free connection.
        """
        return ConnectionScope(self, op, timeout)

    def batcher(self, op: str, combiner: Combiner | None = None) -> Batcher:
        """The group-commit batcher of operation ``op`` (see :mod:`digitwin_db._sync.batcher`),
        created with ``combiner`` on first use: its single-row statements issued
        concurrently run as one statement, one commit."""
        batcher = self._batchers.get(op)
        if batcher is None:
            if combiner is None:
                raise ConfigurationError(f"no batcher for {op!r} yet (give its combiner)")
            batcher = self._batchers[op] = Batcher(self, op, combiner)
        return batcher

    @contextmanager
    def transaction(self, op: str = "") -> Iterator[Connection[Any]]:
        """A pooled connection inside one transaction: committed on normal exit, rolled
        back on any exception."""
        with self.connection(op) as conn, conn.transaction():
            yield conn

    # ------------------------------------------------------------------ health
    def pending_migrations(self) -> list[str]:
        """Migrations on disk that the database has not applied."""
        with self.connection("database.pending_migrations") as conn:
            cur = conn.execute(q.TABLE_EXISTS, {"table": YOYO_TABLE})
            row = cur.fetchone()
            applied: set[str] = set()
            if row is not None and row[0]:
                cur = conn.execute(_APPLIED_SQL)
                applied = {r[0] for r in cur.fetchall()}
        return [m for m in available_migrations() if m not in applied]

    def health_check(self) -> DatabaseHealth:
        """Round-trip latency, server version, pending migrations and pool statistics.

        Never raises for a database problem: the report says ``ok=False`` and why.
        """
        now = datetime.now(UTC)
        try:
            start = time.perf_counter()
            with self.connection("database.health_check") as conn:
                conn.execute(q.PING)
                latency = (time.perf_counter() - start) * 1000.0
                version = conn.info.parameter_status("server_version") or ""
            pending = self.pending_migrations()
        except DigitwinDBError as exc:
            return DatabaseHealth(ok=False, error=str(exc), pool=self.pool_stats(), checked_at=now)
        return DatabaseHealth(
            ok=not pending,
            latency_ms=round(latency, 3),
            server_version=version,
            pending_migrations=pending,
            pool=self.pool_stats(),
            checked_at=now,
        )

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's counters: pool_size, pool_available, requests_waiting, …; and
        ``connections_parked``: checked out but idle, kept by a thread for its next call."""
        return {**self._pool.get_stats(), "connections_parked": len(self._parking)}
