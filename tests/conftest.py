"""Test harness: one embedded PostgreSQL per test session, migrated once; every test starts
from empty tables. Fixtures shared by the async tests (tests/aio) and the sync tests
generated from them (tests/sync) live here; the API-specific ones in each tree's conftest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from digitwin_db import Database, RepositoryFactory, migrations
from digitwin_db.settings import ENV_FILE_VARIABLE
from digitwin_db.testing import EmbeddedPostgres, embedded_postgres, embedded_postgres_servers

# The checkout's own .env (written by scripts/init_db.sh: DATABASE_URL, OWNER_DATABASE_URL,
# MAINTENANCE_DATABASE_URL of the embedded demo server) must never reach the tests or the
# CLI processes they start: a migrate or cleanup would run against the demo server. Point
# every Settings() of this session, and of its subprocesses, at an empty env file; a test of
# the .env rules sets the variable itself (monkeypatch).
os.environ[ENV_FILE_VARIABLE] = os.devnull


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    with embedded_postgres() as server:
        migrations.migrate(server.url)
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: EmbeddedPostgres) -> str:
    return pg_server.url


@pytest.fixture(scope="session")
def shard_servers() -> Iterator[list[EmbeddedPostgres]]:
    """Three more servers, migrated: the cache shards of the sharding tests (issue 16)."""
    with embedded_postgres_servers(3) as servers:
        for server in servers:
            migrations.migrate(server.url)
        yield servers


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
    return any(name in request.fixturenames for name in ("db", "factory", "pg_server", "role_urls"))


@pytest.fixture
def raw_conn(pg_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit psycopg connection, for checking what is really stored."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


# ---------------------------------------------------------------- roles (SPEC §2.12)
APP_ROLE = "digitwin_app"
MAINTENANCE_ROLE = "digitwin_maintenance"


@dataclass(frozen=True)
class RoleUrls:
    """Connection strings of the three roles: the owner (the server's superuser here, who
    ran the migrations), the application role and the maintenance role."""

    owner: str
    app: str
    maintenance: str


@pytest.fixture(scope="session")
def _roles(pg_server: EmbeddedPostgres) -> RoleUrls:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        for role in (APP_ROLE, MAINTENANCE_ROLE):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    return RoleUrls(
        owner=pg_server.url,
        app=make_conninfo(pg_server.url, user=APP_ROLE),
        maintenance=make_conninfo(pg_server.url, user=MAINTENANCE_ROLE),
    )


@pytest.fixture
def role_urls(_roles: RoleUrls) -> RoleUrls:
    """The application and maintenance roles (created once per session), granted with
    ``digitwin_db.privileges.grant`` (what ``python -m digitwin_db grant`` runs) before each
    test, so that whatever a test did to privileges does not leak into the next."""
    from digitwin_db.privileges import grant

    grant(_roles.owner, app=APP_ROLE, maintenance=MAINTENANCE_ROLE)
    return _roles


@pytest.fixture
def app_conn(role_urls: RoleUrls, pg_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection as the application role (not a superuser)."""
    with psycopg.connect(role_urls.app, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app_factory(role_urls: RoleUrls, pg_url: str) -> Iterator[RepositoryFactory]:
    """A sync factory connected as the application role."""
    db = Database(url=role_urls.app, pool_min_size=0, pool_max_size=8, pool_timeout=30.0)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()


@pytest.fixture
def sync_factory(pg_url: str) -> Iterator[RepositoryFactory]:
    """A sync repository factory with room for many threads (a pool of up to 40)."""
    db = Database(url=pg_url, pool_min_size=1, pool_max_size=40, pool_timeout=30.0)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()
    db.close()
