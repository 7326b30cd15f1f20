"""yoyo's failures during migrate/rollback come out as digitwin_db errors (typed), and a
failed migration leaves nothing of itself behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from digitwin_db import migrations
from digitwin_db.errors import ConfigurationError, QueryError, ValidationError


@pytest.fixture
def empty_url(pg_url: str) -> Iterator[str]:
    name = f"migerr_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _write(directory: Path, name: str, up: str, down: str) -> None:
    (directory / f"{name}.sql").write_text(up, encoding="utf-8")
    (directory / f"{name}.rollback.sql").write_text(down, encoding="utf-8")


def test_a_failing_migration_is_a_query_error_and_leaves_nothing(
    empty_url: str, tmp_path: Path
) -> None:
    _write(tmp_path, "0001_ok", "CREATE TABLE ok_table (x int);", "DROP TABLE ok_table;")
    _write(
        tmp_path,
        "0002_bad",
        "-- depends: 0001_ok\nCREATE TABLE bad_table (x int);\nCREATE TABLE t (x no_such_type);",
        "DROP TABLE bad_table;",
    )
    with pytest.raises(QueryError, match="migrate"):
        migrations.migrate(empty_url, directory=tmp_path)
    state = {s.id: s.applied for s in migrations.status(empty_url, directory=tmp_path)}
    assert state == {"0001_ok": True, "0002_bad": False}
    with psycopg.connect(empty_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert "ok_table" in tables and "bad_table" not in tables


def test_a_failing_rollback_is_typed_and_keeps_the_migration_applied(
    empty_url: str, tmp_path: Path
) -> None:
    _write(tmp_path, "0001_ok", "CREATE TABLE ok_table (x int);", "DROP TABLE no_such_table;")
    assert migrations.migrate(empty_url, directory=tmp_path) == ["0001_ok"]
    with pytest.raises(QueryError, match="rollback"):
        migrations.rollback(empty_url, directory=tmp_path)
    state = {s.id: s.applied for s in migrations.status(empty_url, directory=tmp_path)}
    assert state == {"0001_ok": True}


def test_conflicting_migrations_are_a_configuration_error(empty_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a", "-- depends: 0002_b\nSELECT 1;", "SELECT 1;")
    _write(tmp_path, "0002_b", "-- depends: 0001_a\nSELECT 1;", "SELECT 1;")
    with pytest.raises(ConfigurationError):
        migrations.migrate(empty_url, directory=tmp_path)


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_a_bad_rollback_count_is_a_validation_error(pg_url: str, count: object) -> None:
    with pytest.raises(ValidationError, match="count"):
        migrations.rollback(pg_url, count=count)  # type: ignore[arg-type]


def test_a_missing_migrations_directory_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIGRATIONS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="MIGRATIONS_DIR"):
        migrations.migrations_dir()
    monkeypatch.delenv("MIGRATIONS_DIR")
    packaged = migrations.migrations_dir()  # the package resource
    assert packaged.parts[-2:] == ("data", "migrations")
    assert migrations.available_migrations(packaged)[0] == "0001_core"
