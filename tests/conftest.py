"""Test harness: one embedded PostgreSQL per test session, migrated once; every test starts
from empty tables. Fixtures shared by the async tests (tests/aio) and the sync tests
generated from them (tests/sync) live here; the API-specific ones in each tree's conftest.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from digitwin_db import Database, RepositoryFactory, migrations
from digitwin_db.testing import EmbeddedPostgres, embedded_postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    with embedded_postgres() as server:
        migrations.migrate(server.url)
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: EmbeddedPostgres) -> str:
    return pg_server.url


def _application_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename NOT LIKE %s ORDER BY tablename",
        ("\\_yoyo%",),
    ).fetchall()
    return [r[0] for r in rows if r[0] != "yoyo_lock"]


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Truncate every application table before each test that uses the database."""
    if "pg_url" not in request.fixturenames and not _uses_db(request):
        yield
        return
    url: str = request.getfixturevalue("pg_url")
    with psycopg.connect(url, autocommit=True) as conn:
        tables = _application_tables(conn)
        if tables:
            # replica mode skips the audit_logs append-only triggers, for this cleanup only.
            conn.execute("SET session_replication_role = replica")
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                )
            )
    yield


def _uses_db(request: pytest.FixtureRequest) -> bool:
    return any(name in request.fixturenames for name in ("db", "factory", "pg_server"))


@pytest.fixture
def raw_conn(pg_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit psycopg connection, for checking what is really stored."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def sync_factory(pg_url: str) -> Iterator[RepositoryFactory]:
    """A sync repository factory with room for many threads (a pool of up to 40)."""
    db = Database(url=pg_url, pool_min_size=1, pool_max_size=40, pool_timeout=30.0)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()
    db.close()
