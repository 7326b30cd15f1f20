"""Schema migrations: a thin layer over yoyo's Python API (plain ``.sql`` files).

Migrations live in the repository's top-level ``migrations/`` directory (override with the
``MIGRATIONS_DIR`` environment variable, e.g. for an installed wheel). Each ``NNNN_name.sql``
has a ``NNNN_name.rollback.sql``. yoyo takes a lock table around apply and rollback, so two
migrators started at once serialize instead of corrupting anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitwin_db.errors import ConfigurationError, DatabaseUnavailableError, DigitwinDBError
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
    """Directory holding the ``.sql`` migrations."""
    configured = os.environ.get("MIGRATIONS_DIR")
    if configured:
        path = Path(configured)
    else:
        # src/digitwin_db/migrations.py -> <repo>/migrations
        path = Path(__file__).resolve().parents[2] / "migrations"
    if not path.is_dir():
        raise ConfigurationError(
            f"migrations directory {path} not found; set MIGRATIONS_DIR to the repository's "
            "migrations/ folder"
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
    return backend, read_migrations(str(directory or migrations_dir()))


def migrate(url: str, *, directory: Path | None = None) -> list[str]:
    """Apply every pending migration; return the IDs applied (empty when up to date)."""
    backend, migrations = _backend_and_migrations(url, directory)
    with backend.lock(LOCK_TIMEOUT):
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

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(q.TURNS_PARTITIONED).fetchone()
            if not (row and row[0]):
                return 0
            row = conn.execute(q.ENSURE_TURN_PARTITIONS, {"months_ahead": months_ahead}).fetchone()
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(
            f"cannot prepare partitions on {redact_url(url)}: {type(exc).__name__}"
        ) from exc
    return int(row[0]) if row else 0


def rollback(url: str, *, count: int | None = 1, directory: Path | None = None) -> list[str]:
    """Roll back the newest ``count`` applied migrations (all when ``count`` is None)."""
    if count is not None and count < 1:
        raise ValueError("count must be >= 1 or None")
    backend, migrations = _backend_and_migrations(url, directory)
    with backend.lock(LOCK_TIMEOUT):
        applied = backend.to_rollback(migrations)  # newest first
        chosen = applied if count is None else applied[:count]
        backend.rollback_migrations(chosen)
    return [m.id for m in chosen]


def status(url: str, *, directory: Path | None = None) -> list[MigrationStatus]:
    """Every migration on disk and whether it is applied."""
    backend, migrations = _backend_and_migrations(url, directory)
    return [MigrationStatus(m.id, backend.is_applied(m)) for m in migrations]
