"""The error tree, and the one place that turns psycopg exceptions into it.

Public methods never leak raw psycopg exceptions: every pooled connection scope
(``Database.connection``) passes them to :func:`raise_translated`, which maps by SQLSTATE
class (never by message text). :data:`TRANSIENT_ERRORS` are the failures after which the
database may answer again: cache reads fail open on them and the rate limiter applies
``Settings.rate_limit_on_error``.
"""

from __future__ import annotations

from typing import NoReturn

import psycopg
import psycopg_pool
from psycopg import errors as pg

__all__ = [
    "TRANSIENT_ERRORS",
    "ConfigurationError",
    "ConflictError",
    "DatabaseUnavailableError",
    "DigitwinDBError",
    "NotFoundError",
    "QueryError",
    "RateLimitUnavailableError",
    "TransientError",
    "ValidationError",
    "raise_translated",
]


class DigitwinDBError(Exception):
    """Root of every error raised by digitwin_db."""


class NotFoundError(DigitwinDBError):
    """The requested row does not exist (or is soft-deleted)."""


class ConflictError(DigitwinDBError):
    """A unique constraint would be violated; ``constraint`` names it."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class ValidationError(DigitwinDBError, ValueError):
    """Bad input: raised before any SQL runs where possible, or on a CHECK violation."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class DatabaseUnavailableError(DigitwinDBError):
    """Cannot connect, the pool timed out, or the server went away."""


class TransientError(DigitwinDBError):
    """A retryable failure: statement/lock timeout, deadlock, serialization failure."""


class QueryError(DigitwinDBError):
    """Any other database error (a bug or an unexpected server state)."""


class RateLimitUnavailableError(DatabaseUnavailableError):
    """The rate limiter could not reach a decision (see ``Settings.rate_limit_on_error``)."""


#: The failures after which the database may answer again (a timeout, a lock, a deadlock,
#: no connection): the one tuple every "degrade instead of fail" catch site uses.
TRANSIENT_ERRORS: tuple[type[TransientError], type[DatabaseUnavailableError]] = (
    TransientError,
    DatabaseUnavailableError,
)


def _constraint(exc: psycopg.Error) -> str | None:
    return exc.diag.constraint_name if exc.diag is not None else None


def raise_translated(exc: BaseException, context: str = "") -> NoReturn:
    """Raise the digitwin_db error for ``exc`` (a psycopg / psycopg_pool error), chained
    to it; re-raise ``exc`` itself when it is not a database error."""
    where = f"{context}: " if context else ""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        raise DatabaseUnavailableError(
            f"{where}no database connection available within the pool timeout"
        ) from exc
    if isinstance(exc, psycopg_pool.PoolClosed):
        raise DatabaseUnavailableError(f"{where}the connection pool is closed") from exc
    if isinstance(exc, pg.UniqueViolation | pg.ExclusionViolation):
        name = _constraint(exc)
        raise ConflictError(
            f"{where}conflicts with an existing row (constraint {name})", constraint=name
        ) from exc
    if isinstance(exc, pg.ForeignKeyViolation):
        name = _constraint(exc)
        raise NotFoundError(f"{where}a referenced row does not exist ({name})") from exc
    if isinstance(
        exc,
        # psycopg.DataError is SQLSTATE class 22 (invalid text representation, numeric
        # out of range, character not in repertoire, …): bad input that reached SQL.
        pg.CheckViolation | pg.NotNullViolation | psycopg.DataError | pg.RaiseException,
    ):
        name = _constraint(exc)
        detail = exc.diag.message_primary if exc.diag is not None else None
        suffix = f" (constraint {name})" if name else ""
        raise ValidationError(f"{where}invalid value{suffix}: {detail}", constraint=name) from exc
    if isinstance(
        exc,
        pg.QueryCanceled  # statement_timeout (57014)
        | pg.LockNotAvailable  # lock_timeout (55P03)
        | pg.DeadlockDetected
        | pg.SerializationFailure,
    ):
        raise TransientError(f"{where}{type(exc).__name__}: retry may succeed") from exc
    if isinstance(
        exc,
        psycopg.OperationalError  # connection failures, admin shutdown (57P01), …
        | pg.AdminShutdown
        | pg.CannotConnectNow,
    ):
        raise DatabaseUnavailableError(
            f"{where}database unavailable ({type(exc).__name__})"
        ) from exc
    if isinstance(exc, psycopg.InterfaceError):
        raise DatabaseUnavailableError(f"{where}connection unusable ({exc})") from exc
    if isinstance(exc, psycopg.Error):
        raise QueryError(f"{where}{type(exc).__name__}: {exc}") from exc
    raise exc


class ConfigurationError(DigitwinDBError):
    """The library was set up inconsistently (e.g. a second Database for the singleton)."""
