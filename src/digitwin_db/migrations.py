"""Schema migrations: a thin layer over yoyo's Python API (plain ``.sql`` files).

Migrations are package resources: ``digitwin_db/data/migrations`` (read with
``importlib.resources``), so an installed wheel carries them. In the repository that
directory is a symlink to the top-level ``migrations/`` where the files are written; the
wheel holds copies. ``MIGRATIONS_DIR`` overrides the location. Each ``NNNN_name.sql`` has a
``NNNN_name.rollback.sql``. yoyo takes a lock table around apply and rollback, so two
migrators started at once serialize instead of corrupting anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from digitwin_db.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DigitwinDBError,
    TransientError,
    ValidationError,
    raise_translated,
)
from digitwin_db.settings import redact_url

__all__ = [
    "MigrationStatus",
    "available_migrations",
    "ensure_partitions",
    "migrate",
    "migrations_dir",
    "rollback",
    "status",
    "yoyo_url",
]

# Name of the table in which yoyo records applied migrations.
YOYO_TABLE = "_yoyo_migration"
# Seconds a migrator waits for another migrator's lock before giving up.
LOCK_TIMEOUT = 60


@dataclass(frozen=True)
class MigrationStatus:
    id: str
    applied: bool


def migrations_dir() -> Path:
    """Directory holding the ``.sql`` migrations: ``MIGRATIONS_DIR`` when set, else the
    package's own resource directory (the package is installed as files, never zipped)."""
    configured = os.environ.get("MIGRATIONS_DIR")
    packaged = resources.files("digitwin_db").joinpath("data", "migrations")
    path = Path(configured) if configured else packaged
    if not isinstance(path, Path) or not path.is_dir():
        raise ConfigurationError(
            f"migrations directory {path} not found: set MIGRATIONS_DIR, or reinstall the "
            "package (its data/migrations resource is missing)"
        )
    return path


def available_migrations(directory: Path | None = None) -> list[str]:
    """IDs of every migration on disk, in apply order."""
    directory = directory or migrations_dir()
    return sorted(
        p.name.removesuffix(".sql")
        for p in directory.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def yoyo_url(url: str) -> str:
    """yoyo selects psycopg 3 through the ``postgresql+psycopg://`` scheme."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ConfigurationError("migrations need DATABASE_URL in postgresql:// URL form")


def _backend_and_migrations(url: str, directory: Path | None) -> tuple[Any, Any]:
    from yoyo import get_backend, read_migrations

    try:
        backend = get_backend(yoyo_url(url))
    except DigitwinDBError:
        raise
    except Exception as exc:  # yoyo/psycopg raise many types on connect failure
        raise DatabaseUnavailableError(
            f"cannot connect to {redact_url(url)} to migrate: {type(exc).__name__}"
        ) from exc
    with _typed("read migrations"):
        return backend, read_migrations(str(directory or migrations_dir()))


@contextmanager
def _typed(action: str) -> Iterator[None]:
    """Turn what yoyo (or psycopg under it) raises during ``action`` into digitwin_db errors:
    another migrator holding the lock too long is a ``TransientError``, an unreadable or
    conflicting migration a ``ConfigurationError``, a failing statement the translated
    database error (``QueryError``, ``ValidationError``…). The migration's own transaction
    has been rolled back by then."""
    from yoyo import exceptions as yoyo_errors
    from yoyo.topologicalsort import CycleError

    try:
        yield
    except DigitwinDBError:
        raise
    except yoyo_errors.LockTimeout as exc:
        raise TransientError(
            f"{action}: another migrator held the lock for more than {LOCK_TIMEOUT}s"
        ) from exc
    except (yoyo_errors.BadMigration, yoyo_errors.MigrationConflict, CycleError) as exc:
        raise ConfigurationError(f"{action}: {type(exc).__name__}: {exc}") from exc
    except psycopg.Error as exc:
        raise_translated(exc, action)


def migrate(url: str, *, directory: Path | None = None) -> list[str]:
    """Apply every pending migration; return the IDs applied (empty when up to date)."""
    backend, migrations = _backend_and_migrations(url, directory)
    with _typed("migrate"), backend.lock(LOCK_TIMEOUT):
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    ensure_partitions(url)
    return [m.id for m in pending]


def ensure_partitions(url: str, months_ahead: int = 3) -> int:
    """Create the coming month partitions of the partitioned tables (a no-op before the
    migration that partitions them); return how many were created. ``migrate`` calls it,
    so every deploy prepares the next months (the cleanup job does it too, with
    ``Settings.partition_months_ahead``)."""
    import psycopg

    from digitwin_db.sql import partitions as q

    created = 0
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for _table, installed, ensure in q.ENSURE_AHEAD:
                row = conn.execute(installed).fetchone()
                if row and row[0]:
                    row = conn.execute(ensure, {"months_ahead": months_ahead}).fetchone()
                    created += int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(
            f"cannot prepare partitions on {redact_url(url)}: {type(exc).__name__}"
        ) from exc
    return created


def rollback(url: str, *, count: int | None = 1, directory: Path | None = None) -> list[str]:
    """Roll back the newest ``count`` applied migrations (all when ``count`` is None)."""
    if count is not None and (type(count) is not int or count < 1):
        raise ValidationError(f"count must be an integer >= 1 or None, got {count!r}")
    backend, migrations = _backend_and_migrations(url, directory)
    with _typed("rollback"), backend.lock(LOCK_TIMEOUT):
        applied = backend.to_rollback(migrations)  # newest first
        chosen = applied if count is None else applied[:count]
        backend.rollback_migrations(chosen)
    return [m.id for m in chosen]


def status(url: str, *, directory: Path | None = None) -> list[MigrationStatus]:
    """Every migration on disk and whether it is applied."""
    backend, migrations = _backend_and_migrations(url, directory)
    with _typed("status"):
        return [MigrationStatus(m.id, backend.is_applied(m)) for m in migrations]
