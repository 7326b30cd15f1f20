"""Append-only by privilege (SPEC §2.12), tested as the application role, never as the
superuser: every way around the append-only audit trail is refused and changes nothing; the
retention purge and GDPR anonymisation run only as the maintenance role; the whole package
works as the application role; ``grant`` gives exactly these privileges."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from digitwin_db import Database, RepositoryFactory, ValidationError
from digitwin_db._sync.cleanup import CleanupJob
from digitwin_db.errors import QueryError
from digitwin_db.privileges import grant
from digitwin_db.seed import seed
from tests.conftest import APP_ROLE, MAINTENANCE_ROLE, RoleUrls

_SNAPSHOT = "SELECT * FROM audit_logs ORDER BY id"


@pytest.fixture
def maintenance_factory(role_urls: RoleUrls, pg_url: str) -> Iterator[RepositoryFactory]:
    db = Database(url=role_urls.maintenance, pool_min_size=0, pool_max_size=2)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()


def _old_rows(raw_conn: psycopg.Connection, n: int, days: float) -> None:
    # The owner (superuser) may INSERT with an explicit created_at, to fake old entries.
    for i in range(n):
        raw_conn.execute(
            "INSERT INTO audit_logs (action, created_at, metadata) VALUES (%s, %s, %s)",
            ("old.entry", datetime.now(UTC) - timedelta(days=days, minutes=i), Jsonb({"i": i})),
        )


# Each statement the application role might try against the trail, with the error it gets.
BYPASSES: list[tuple[str, str]] = [
    ("UPDATE audit_logs SET action = 'forged'", "permission denied"),
    ("UPDATE audit_logs SET result = 'success' WHERE result = 'denied'", "permission denied"),
    ("DELETE FROM audit_logs", "permission denied"),
    ("TRUNCATE audit_logs", "permission denied"),
    ("ALTER TABLE audit_logs DISABLE TRIGGER ALL", "must be owner"),
    ("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only_row", "must be owner"),
    ("DROP TRIGGER audit_logs_append_only_row ON audit_logs", "must be owner"),
    ("DROP TABLE audit_logs", "must be owner"),
    ("ALTER TABLE audit_logs ADD COLUMN x int", "must be owner"),
    ("SET session_replication_role = replica", "permission denied"),
    ("SELECT digitwin_audit_purge(0, 1000)", "permission denied"),
    ("SELECT digitwin_audit_purge(1000, 1000)", "permission denied"),
    (f"SELECT digitwin_audit_anonymise('{uuid.uuid4()}')", "permission denied"),
    ("SELECT digitwin_audit_process_erasures(10)", "permission denied"),
    ("UPDATE audit_policy SET min_retention_days = 1", "permission denied"),
    ("DELETE FROM audit_erasure_requests", "permission denied"),
    (
        "CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
        "permission denied for schema",
    ),
    ("ALTER TABLE audit_logs OWNER TO digitwin_app", "must be owner"),
    ("SET ROLE postgres", "permission denied"),
]

# Session settings the application role can set (or tries to): none of them opens the trail.
SETTINGS: list[str] = [
    "SET digitwin.audit_maintenance = 'purge'",
    "SET digitwin.audit_maintenance = 'erase'",
    "SELECT set_config('digitwin.audit_maintenance', 'purge', false)",
    "SET LOCAL digitwin.audit_maintenance = 'erase'",
    "SET search_path = pg_temp, public",
    "SET application_name = 'digitwin_audit_purge'",
    "SET row_security = off",
]


def test_every_bypass_is_refused_and_changes_nothing(
    app_factory: RepositoryFactory, app_conn: psycopg.Connection, raw_conn: psycopg.Connection
) -> None:
    app_factory.audit_logs.log("login", result="denied", metadata={"ip": "x"})
    app_factory.audit_logs.log("user.created", user_id=uuid.uuid4())
    before = raw_conn.execute(_SNAPSHOT).fetchall()
    refused = 0
    for statement, message in BYPASSES:
        with pytest.raises(psycopg.Error, match=message):
            app_conn.execute(statement)
        refused += 1
    assert refused == len(BYPASSES)
    assert raw_conn.execute(_SNAPSHOT).fetchall() == before
    # The triggers are still enabled, the policy floor untouched.
    enabled = raw_conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_logs'::regclass "
        "AND NOT tgisinternal AND tgenabled = 'O'"
    ).fetchone()
    assert enabled is not None and enabled[0] >= 2


@pytest.mark.parametrize("setting", SETTINGS)
def test_no_session_setting_opens_the_trail(
    app_factory: RepositoryFactory,
    app_conn: psycopg.Connection,
    raw_conn: psycopg.Connection,
    setting: str,
) -> None:
    app_factory.audit_logs.log("login", user_id=uuid.uuid4())
    before = raw_conn.execute(_SNAPSHOT).fetchall()
    for change in ("UPDATE audit_logs SET action = 'forged'", "DELETE FROM audit_logs"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
            app_conn.execute(setting)
            app_conn.execute(change)
    assert raw_conn.execute(_SNAPSHOT).fetchall() == before


def test_the_application_role_may_append_and_read(
    app_factory: RepositoryFactory, app_conn: psycopg.Connection
) -> None:
    entry = app_factory.audit_logs.log("document.read", resource_id="d1")
    page = app_factory.audit_logs.query(action="document.read")
    assert [e.id for e in page.items] == [entry.id]
    # ... also with raw SQL on its own connection.
    app_conn.execute("INSERT INTO audit_logs (action) VALUES ('raw.insert')")
    row = app_conn.execute("SELECT count(*) FROM audit_logs").fetchone()
    assert row == (2,)


def test_the_package_works_as_the_application_role(
    app_factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    report = seed(app_factory)
    assert report.created["users"] == 2
    user = app_factory.users.create(email="carol@example.com", name="Carol")
    voice = app_factory.voice_models.create(
        user_id=user.id, name="v", provider="p", model_ref="r", status="ready"
    )
    app_factory.voice_models.activate(voice.id)
    session = app_factory.sessions.start(user_id=user.id)
    app_factory.sessions.add_turn(session.id, role="user", content="hello")
    app_factory.sessions.end(session.id)
    doc = app_factory.documents.create(user_id=user.id, title="t", content="some words")
    assert app_factory.documents.search(user.id, "words")[0].id == doc.id
    app_factory.cache.kv.set("k", {"v": 1})
    assert app_factory.cache.kv.get("k") == {"v": 1}
    app_factory.cache.set_embedding("hello", [0.5, 0.25], model="m")
    assert app_factory.cache.get_embedding("hello", model="m") == [0.5, 0.25]
    decision = app_factory.rate_limits.check_and_consume(
        user.id, "api", capacity=2, window_seconds=60
    )
    assert decision.allowed
    assert app_factory.users.export(user.id)["user"]["email"] == "carol@example.com"
    app_factory.users.soft_delete(user.id)
    app_factory.users.restore(user.id)
    assert app_factory.audit_logs.statistics().total >= 1
    health = app_factory.health()
    assert health.ok, health
    # GDPR erasure as the application role: the user and their data are gone at once; the
    # anonymisation of their audit rows is queued for the maintenance role.
    app_factory.audit_logs.log("login", user_id=user.id, ip_address="10.0.0.1")
    app_factory.users.erase(user.id)
    assert raw_conn.execute("SELECT count(*) FROM users WHERE id = %s", (user.id,)).fetchone() == (
        0,
    )
    queued = raw_conn.execute("SELECT user_id FROM audit_erasure_requests").fetchall()
    assert queued == [(user.id,)]
    erased = app_factory.audit_logs.query(action="user.erased").items[0]
    assert erased.metadata["audit_rows_anonymised"] == "queued"


def test_queued_erasures_are_anonymised_by_the_maintenance_job(
    app_factory: RepositoryFactory,
    maintenance_factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
) -> None:
    user = app_factory.users.create(email="dave@example.com", name="Dave")
    other = app_factory.users.create(email="erin@example.com", name="Erin")
    for _ in range(3):
        app_factory.audit_logs.log(
            "login", user_id=user.id, ip_address="10.0.0.9", user_agent="ua", metadata={"a": 1}
        )
    app_factory.audit_logs.log("login", user_id=other.id, ip_address="10.0.0.8")
    app_factory.users.erase(user.id)
    report = CleanupJob(maintenance_factory).run_once()
    assert report.errors == {}
    assert report.audit_erasures == 1
    rows = raw_conn.execute(
        "SELECT user_id, host(ip_address), user_agent, metadata FROM audit_logs "
        "WHERE action = 'login' ORDER BY id"
    ).fetchall()
    assert rows == [(None, None, None, {})] * 3 + [(other.id, "10.0.0.8", None, {})]
    assert raw_conn.execute("SELECT count(*) FROM audit_erasure_requests").fetchone() == (0,)
    assert CleanupJob(maintenance_factory).run_once().audit_erasures == 0


def test_turn_retention_runs_as_the_maintenance_role(
    role_urls: RoleUrls, raw_conn: psycopg.Connection
) -> None:
    # An old month of turns, in its own partition (created ahead of the insert).
    user_id = raw_conn.execute(
        "INSERT INTO users (email, name) VALUES ('old@example.com', 'Old') RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    session_id = raw_conn.execute(
        "INSERT INTO conversation_sessions (user_id) VALUES (%s) RETURNING id", (user_id,)
    ).fetchone()[0]  # type: ignore[index]
    raw_conn.execute("SELECT conversation_turns_create_partition(now() - interval '400 days')")
    raw_conn.execute(
        "INSERT INTO conversation_turns (session_id, turn_number, role, content, created_at) "
        "VALUES (%s, 1, 'user', 'hi', now() - interval '400 days')",
        (session_id,),
    )
    db = Database(
        url=role_urls.maintenance, pool_min_size=0, pool_max_size=2, turn_retention_days=90
    )
    db.open()
    try:
        report = CleanupJob(RepositoryFactory(db)).run_once()
    finally:
        db.close()
    assert report.errors == {}
    assert report.removed["conversation_turns"] == 1
    assert raw_conn.execute("SELECT count(*) FROM conversation_turns").fetchone() == (0,)


def test_anonymise_refuses_a_user_who_still_exists(
    app_factory: RepositoryFactory, role_urls: RoleUrls, raw_conn: psycopg.Connection
) -> None:
    user = app_factory.users.create(email="fred@example.com", name="Fred")
    app_factory.audit_logs.log("login", user_id=user.id)
    before = raw_conn.execute(_SNAPSHOT).fetchall()
    with (
        psycopg.connect(role_urls.maintenance) as conn,
        pytest.raises(psycopg.errors.InvalidParameterValue, match="still exists"),
    ):
        conn.execute("SELECT digitwin_audit_anonymise(%s)", (user.id,))
    assert raw_conn.execute(_SNAPSHOT).fetchall() == before


def test_the_purge_runs_as_maintenance_and_never_inside_retention(
    app_factory: RepositoryFactory,
    maintenance_factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
) -> None:
    _old_rows(raw_conn, 4, days=40)
    _old_rows(raw_conn, 3, days=10)
    app_factory.audit_logs.log("fresh.entry")
    # The application role may not purge at all, whatever the retention.
    with pytest.raises(QueryError, match="permission denied"):
        app_factory.audit_logs.purge_older_than(365)
    # The maintenance role may not purge inside the floor (30 days by default).
    for days in (0, 0.0001, 29.9):
        with pytest.raises(ValidationError, match="at least 30 days"):
            maintenance_factory.audit_logs.purge_older_than(days)
    assert raw_conn.execute("SELECT count(*) FROM audit_logs").fetchone() == (8,)
    assert app_factory.audit_logs.retention_floor() == 30
    assert maintenance_factory.audit_logs.purge_older_than(30, batch_size=3) == 4
    assert raw_conn.execute("SELECT count(*) FROM audit_logs").fetchone() == (4,)
    # The owner may raise the floor; then a 30-day purge is refused too.
    raw_conn.execute(
        "INSERT INTO audit_policy (min_retention_days) VALUES (365) "
        "ON CONFLICT (singleton) DO UPDATE SET min_retention_days = 365"
    )
    try:
        assert app_factory.audit_logs.retention_floor() == 365
        with pytest.raises(ValidationError, match="at least 365 days"):
            maintenance_factory.audit_logs.purge_older_than(30)
    finally:
        raw_conn.execute("UPDATE audit_policy SET min_retention_days = 30")


def test_the_owner_cannot_change_rows_by_accident(raw_conn: psycopg.Connection) -> None:
    # The trigger refuses everyone outside the purge / anonymise functions, the owner
    # (here a superuser) included; no session setting opens it.
    raw_conn.execute("INSERT INTO audit_logs (action) VALUES ('x')")
    for statement in ("UPDATE audit_logs SET action = 'y'", "DELETE FROM audit_logs"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            raw_conn.execute(statement)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), raw_conn.transaction():
        raw_conn.execute("SET LOCAL digitwin.audit_maintenance = 'purge'")
        raw_conn.execute("DELETE FROM audit_logs")
    assert raw_conn.execute("SELECT action FROM audit_logs").fetchall() == [("x",)]


def test_grant_gives_exactly_these_privileges(role_urls: RoleUrls, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def privileges(role: str, table: str) -> set[str]:
            rows = conn.execute(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = %s AND table_name = %s",
                (role, table),
            ).fetchall()
            return {r[0] for r in rows}

        for role in (APP_ROLE, MAINTENANCE_ROLE):
            assert privileges(role, "audit_logs") == {"INSERT", "SELECT"}
            assert privileges(role, "audit_erasure_requests") == {"INSERT"}
            assert privileges(role, "users") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
            assert privileges(role, "kv_cache") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
        execute = conn.execute(
            "SELECT has_function_privilege(%s, 'digitwin_audit_purge(double precision, integer)',"
            " 'EXECUTE'), has_function_privilege(%s, 'digitwin_audit_purge(double precision, "
            "integer)', 'EXECUTE')",
            (APP_ROLE, MAINTENANCE_ROLE),
        ).fetchone()
        assert execute == (False, True)
        # An extra privilege given by hand is taken back by the next run.
        conn.execute(sql.SQL("GRANT UPDATE ON audit_logs TO {}").format(sql.Identifier(APP_ROLE)))
        grant(pg_url, app=APP_ROLE, maintenance=MAINTENANCE_ROLE)
        assert privileges(APP_ROLE, "audit_logs") == {"INSERT", "SELECT"}


@pytest.mark.parametrize(
    ("app", "maintenance", "message"),
    [
        ("no_such_role", MAINTENANCE_ROLE, "does not exist"),
        (APP_ROLE, APP_ROLE, "different roles"),
        ("postgres", MAINTENANCE_ROLE, "superuser|does not exist"),
        ("", MAINTENANCE_ROLE, "1 to 63"),
    ],
)
def test_grant_refuses_bad_roles(
    role_urls: RoleUrls, pg_url: str, app: str, maintenance: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        grant(pg_url, app=app, maintenance=maintenance)


def test_grant_command(role_urls: RoleUrls, pg_url: str) -> None:
    env: dict[str, Any] = {
        **os.environ,
        "DATABASE_URL": role_urls.app,
        "OWNER_DATABASE_URL": pg_url,
    }
    command = [sys.executable, "-m", "digitwin_db", "grant", "--app", APP_ROLE]
    done = subprocess.run(
        [*command, "--maintenance", MAINTENANCE_ROLE], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"audit_logs: SELECT, INSERT to {APP_ROLE}" in done.stdout
    assert f"EXECUTE to {MAINTENANCE_ROLE} only" in done.stdout
    # As the application role (no OWNER_DATABASE_URL) the grant fails: it is not the owner.
    env.pop("OWNER_DATABASE_URL")
    done = subprocess.run(
        [*command, "--maintenance", MAINTENANCE_ROLE], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "grant" in done.stderr, done.stderr
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 2
