"""The audit hash chain (SPEC §2.12): every row links to the previous one; ``audit verify``
finds the first row the owner altered, deleted or inserted out of band, and stays green
across retention purges and GDPR anonymisation; ``audit head`` prints the newest link."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from digitwin_db import Database, RepositoryFactory, migrations
from digitwin_db.audit_chain import GENESIS
from tests.conftest import RoleUrls


@pytest.fixture
def owner(raw_conn: psycopg.Connection) -> psycopg.Connection:
    """The owner's connection, as an attacker with the owner's password would use it."""
    return raw_conn


def _log_some(factory: RepositoryFactory, n: int) -> list[int]:
    return [
        factory.audit_logs.log(
            "document.read",
            user_id=uuid.uuid4(),
            resource_type="document",
            resource_id=f"d{i}",
            ip_address="192.0.2.7",
            user_agent="agent/1.0",
            metadata={"i": i, "note": "é ü 日本", "nested": {"x": [1, 2.5, None]}},
        ).id
        for i in range(n)
    ]


def _tamper(owner: psycopg.Connection, statement: str, *params: object) -> None:
    """Run ``statement`` with the audit triggers off, as only the owner can."""
    with owner.transaction():
        owner.execute("ALTER TABLE audit_logs DISABLE TRIGGER USER")
        owner.execute(statement, params)
        owner.execute("ALTER TABLE audit_logs ENABLE TRIGGER USER")


def _verify_cli(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "digitwin_db", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rows_form_a_gap_free_chain(
    app_factory: RepositoryFactory, owner: psycopg.Connection
) -> None:
    ids = _log_some(app_factory, 5)
    rows = owner.execute(
        "SELECT id, chain_seq, prev_hash, row_hash FROM audit_logs ORDER BY chain_seq"
    ).fetchall()
    assert [r[0] for r in rows] == ids
    assert [r[1] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0][2] == GENESIS
    assert all(rows[i][2] == rows[i - 1][3] for i in range(1, 5))
    report = app_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 5, report
    head = app_factory.audit_logs.chain_head()
    assert head is not None and head.seq == 5 and head.row_hash == bytes(rows[4][3]).hex()


def test_concurrent_appends_keep_one_chain(app_factory: RepositoryFactory) -> None:
    threads, per_thread = 8, 25
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _log_some(app_factory, per_thread)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    report = app_factory.audit_logs.verify_chain()
    assert report.ok, report
    assert report.rows_checked == threads * per_thread
    assert report.head is not None and report.head.seq == threads * per_thread


def test_the_application_role_cannot_forge_links(
    app_conn: psycopg.Connection, app_factory: RepositoryFactory, owner: psycopg.Connection
) -> None:
    _log_some(app_factory, 2)
    # Whatever it writes into the chain columns is overwritten by the trigger.
    app_conn.execute(
        "INSERT INTO audit_logs (action, chain_seq, prev_hash, row_hash) VALUES ('x', 1, %s, %s)",
        (b"\x01" * 32, b"\x02" * 32),
    )
    for statement in (
        "UPDATE audit_chain_head SET seq = 1",
        "DELETE FROM audit_chain_head",
        "INSERT INTO audit_chain_anchors (seq, row_hash) VALUES (99, '\\x00')",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(statement)
    report = app_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 3, report


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("UPDATE audit_logs SET action = 'forged' WHERE chain_seq = 3", "altered"),
        ("UPDATE audit_logs SET result = 'denied' WHERE chain_seq = 3", "altered"),
        (
            "UPDATE audit_logs SET created_at = created_at - interval '1 day' WHERE chain_seq = 3",
            "altered",
        ),
        ("UPDATE audit_logs SET ip_address = '10.9.9.9' WHERE chain_seq = 3", "personal fields"),
        ("UPDATE audit_logs SET metadata = '{\"i\": 99}' WHERE chain_seq = 3", "personal fields"),
        ("DELETE FROM audit_logs WHERE chain_seq = 3", "missing"),
        ("INSERT INTO audit_logs (action) VALUES ('sneaked.in')", "no chain link"),
        # Re-linking the rest after a deletion needs every later hash recomputed: the next
        # row's prev_hash no longer matches.
        ("UPDATE audit_logs SET chain_seq = chain_seq - 1 WHERE chain_seq > 3", "appears twice"),
    ],
)
def test_verify_finds_the_first_tampered_row(
    app_factory: RepositoryFactory,
    owner: psycopg.Connection,
    role_urls: RoleUrls,
    statement: str,
    reason: str,
) -> None:
    ids = _log_some(app_factory, 5)
    assert _verify_cli(role_urls.app).returncode == 0
    _tamper(owner, statement)
    report = app_factory.audit_logs.verify_chain()
    assert not report.ok
    assert reason in (report.reason or "")
    if "no chain link" in reason:
        assert report.broken_id not in ids and report.broken_seq is None
    else:
        assert report.broken_seq in (3, 4)  # the row changed, or the one after a deletion
    done = _verify_cli(role_urls.app)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout and f"row id {report.broken_id}" in done.stdout


def test_deleting_the_newest_rows_is_found(
    app_factory: RepositoryFactory, owner: psycopg.Connection
) -> None:
    _log_some(app_factory, 4)
    _tamper(owner, "DELETE FROM audit_logs WHERE chain_seq = 4")
    report = app_factory.audit_logs.verify_chain()
    assert (
        not report.ok and report.broken_id is None and "4..4 are missing" in (report.reason or "")
    )


def test_the_chain_survives_retention_purges(
    app_factory: RepositoryFactory, owner: psycopg.Connection
) -> None:
    old = datetime.now(UTC) - timedelta(days=100)
    # Old rows (the owner back-dates them), a fresh one, old ones again, fresh ones.
    for i in range(7):
        owner.execute(
            "INSERT INTO audit_logs (action, created_at, metadata) VALUES ('old', %s, %s)",
            (old + timedelta(minutes=i), Jsonb({"i": i})),
        )
    _log_some(app_factory, 1)
    for i in range(3):
        owner.execute(
            "INSERT INTO audit_logs (action, created_at) VALUES ('old', %s)",
            (old + timedelta(hours=1, minutes=i),),
        )
    _log_some(app_factory, 2)
    # Purge in small batches (each a separate transaction): runs 1..7 and 9..11 go.
    with Database(url=owner.info.dsn, pool_min_size=0) as db:
        assert RepositoryFactory(db).audit_logs.purge_older_than(90, batch_size=4) == 10
    left = owner.execute("SELECT chain_seq FROM audit_logs ORDER BY chain_seq").fetchall()
    assert [r[0] for r in left] == [8, 12, 13]
    anchors = owner.execute("SELECT seq FROM audit_chain_anchors ORDER BY seq").fetchall()
    assert [r[0] for r in anchors] == [7, 11]  # one per purged run, no more
    report = app_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 3 and report.anchors == 2, report
    # New rows keep chaining; a deletion next to the purged run is still found.
    _log_some(app_factory, 1)
    assert app_factory.audit_logs.verify_chain().ok
    _tamper(owner, "DELETE FROM audit_logs WHERE chain_seq = 12")
    report = app_factory.audit_logs.verify_chain()
    assert not report.ok and report.broken_seq == 13


def test_purging_every_row_keeps_the_head(
    app_factory: RepositoryFactory, owner: psycopg.Connection
) -> None:
    for i in range(3):
        owner.execute(
            "INSERT INTO audit_logs (action, created_at) VALUES ('old', %s)",
            (datetime.now(UTC) - timedelta(days=200, minutes=i),),
        )
    with Database(url=owner.info.dsn, pool_min_size=0) as db:
        assert RepositoryFactory(db).audit_logs.purge_older_than(90) == 3
    report = app_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 0 and report.head is not None
    assert report.head.seq == 3
    entry = _log_some(app_factory, 1)
    row = owner.execute("SELECT chain_seq FROM audit_logs WHERE id = %s", (entry[0],)).fetchone()
    assert row == (4,)
    assert app_factory.audit_logs.verify_chain().ok


def test_the_chain_survives_gdpr_anonymisation(
    app_factory: RepositoryFactory, owner: psycopg.Connection
) -> None:
    user = app_factory.users.create(email="gina@example.com", name="Gina")
    app_factory.audit_logs.log("login", user_id=user.id, ip_address="10.1.1.1", user_agent="ua")
    _log_some(app_factory, 2)
    with Database(url=owner.info.dsn, pool_min_size=0) as db:
        RepositoryFactory(db).users.erase(user.id)
    anonymised = owner.execute(
        "SELECT count(*) FROM audit_logs WHERE anonymised_at IS NOT NULL"
    ).fetchone()
    assert anonymised is not None and anonymised[0] >= 2  # user.created + login
    report = app_factory.audit_logs.verify_chain()
    assert report.ok, report
    # Changing a non-personal field of an anonymised row is still found.
    _tamper(owner, "UPDATE audit_logs SET action = 'forged' WHERE action = 'login'")
    assert not app_factory.audit_logs.verify_chain().ok


def test_audit_head_and_verify_commands(
    app_factory: RepositoryFactory, role_urls: RoleUrls
) -> None:
    env = {**os.environ, "DATABASE_URL": role_urls.app}
    command = [sys.executable, "-m", "digitwin_db", "audit"]
    empty = subprocess.run([*command, "head"], env=env, capture_output=True, text=True)
    assert empty.returncode == 0 and "empty" in empty.stdout
    _log_some(app_factory, 3)
    head = app_factory.audit_logs.chain_head()
    assert head is not None
    done = subprocess.run([*command, "head"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and f"seq 3 sha256 {head.row_hash}" in done.stdout
    done = _verify_cli(role_urls.app)
    assert done.returncode == 0 and "intact: 3 rows" in done.stdout, done.stdout + done.stderr
    bad = subprocess.run([*command, "nope"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2


def test_migration_chains_existing_rows(pg_url: str) -> None:
    name = f"chain_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        migrations.migrate(url)
        while any(s.id == "0006_audit_chain" and s.applied for s in migrations.status(url)):
            migrations.rollback(url, count=1)
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(4):
                conn.execute(
                    "INSERT INTO audit_logs (action, metadata) VALUES ('before.chain', %s)",
                    (Jsonb({"i": i}),),
                )
        migrations.migrate(url)
        with Database(url=url, pool_min_size=0) as db:
            factory = RepositoryFactory(db)
            factory.audit_logs.log("after.chain")
            report = factory.audit_logs.verify_chain()
        assert report.ok and report.rows_checked == 5, report
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
