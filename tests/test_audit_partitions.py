"""Month partitions of ``audit_logs`` (§2.13, migration 0015): the conversion of a trail with
data in place (its hash chain still verifying), the default partition, partitions created
ahead by ``migrate`` and the cleanup job, retention by dropping whole partitions as the
maintenance role only, and the chain anchored across a dropped partition (tampering with a
surviving row or with the anchor is still found)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from digitwin_db import Database, RepositoryFactory, ValidationError, migrations
from digitwin_db._sync.cleanup import CleanupJob
from digitwin_db.errors import QueryError
from tests.conftest import APP_ROLE, MAINTENANCE_ROLE, RoleUrls
from tests.helpers import month_start, roll_back_to_before, scratch_database

MIGRATION = "0015_audit_partitions"

# Every column of every row, in id order: the conversion must keep them all, verbatim.
ROWS_DIGEST = "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY a.id)) FROM audit_logs a"


@pytest.fixture
def scratch_url(pg_url: str) -> Iterator[str]:
    with scratch_database(pg_url) as url:
        yield url


@pytest.fixture
def maintenance_factory(role_urls: RoleUrls) -> Iterator[RepositoryFactory]:
    db = Database(url=role_urls.maintenance, pool_min_size=0, pool_max_size=2)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()


def _partition_names(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_logs'::regclass ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _verify(url: str) -> tuple[bool, int, str | None]:
    with Database(url=url, pool_min_size=0) as db:
        factory = RepositoryFactory(db)
        report = factory.audit_logs.verify_chain()
        factory.close()
    return report.ok, report.rows_checked, report.reason


def _old_row(conn: psycopg.Connection, at: datetime, i: int) -> None:
    """An audit row with a chosen timestamp (the owner may back-date; the chain trigger
    still links it)."""
    conn.execute(
        "INSERT INTO audit_logs (action, user_id, ip_address, metadata, created_at) "
        "VALUES ('old.entry', %s, '192.0.2.1', %s, %s)",
        (uuid.uuid4(), Jsonb({"i": i, "note": "é 日本"}), at),
    )


def _tamper(owner: psycopg.Connection, statement: str) -> None:
    """What a compromised owner could do: change a row with the triggers off."""
    with owner.transaction():
        owner.execute("ALTER TABLE audit_logs DISABLE TRIGGER USER")
        owner.execute(statement)
        owner.execute("ALTER TABLE audit_logs ENABLE TRIGGER USER")


def test_the_migration_converts_the_trail_with_data_in_place(scratch_url: str) -> None:
    migrations.migrate(scratch_url)
    roll_back_to_before(scratch_url, MIGRATION)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'audit_logs'"
        ).fetchone() == ("r",)
        # A chained trail over 13 months (one row every 5 days for a year, not in time
        # order), an anonymised row, and what operators may have added: a grant, an index.
        for g in range(75):
            _old_row(conn, datetime.now(UTC) - timedelta(days=(g * 37) % 370), g)
        conn.execute("SELECT digitwin_audit_anonymise(user_id) FROM audit_logs WHERE chain_seq = 3")
        conn.execute("DROP ROLE IF EXISTS audit_reader")
        conn.execute("CREATE ROLE audit_reader")
        conn.execute("GRANT SELECT ON audit_logs TO audit_reader")
        conn.execute("CREATE INDEX audit_logs_result_idx ON audit_logs (result)")
        before = conn.execute(ROWS_DIGEST).fetchone()
        months = conn.execute(
            "SELECT count(DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')) "
            "FROM audit_logs"
        ).fetchone()
        last_id = conn.execute("SELECT max(id) FROM audit_logs").fetchone()
    assert before is not None and before[0] == 75 and months is not None and last_id is not None
    assert _verify(scratch_url) == (True, 75, None)

    assert MIGRATION in migrations.migrate(scratch_url)
    try:
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            assert conn.execute(ROWS_DIGEST).fetchone() == before  # every row, unchanged
            assert conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'audit_logs'"
            ).fetchone() == ("p",)
            names = _partition_names(conn)
            assert "audit_logs_default" in names
            for offset in range(4):  # this month and three ahead
                assert f"audit_logs_p{month_start(offset):%Y%m}" in names
            # Every month with rows got its partition; the default partition is empty.
            assert conn.execute("SELECT count(DISTINCT tableoid) FROM audit_logs").fetchone() == (
                months
            )
            assert conn.execute("SELECT count(*) FROM audit_logs_default").fetchone() == (0,)
            assert conn.execute(
                "SELECT has_table_privilege('audit_reader', 'audit_logs', 'SELECT')"
            ).fetchone() == (True,)
            assert conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_logs' "
                "AND indexname IN ('audit_logs_result_idx', 'audit_logs_chain_seq_idx')"
            ).fetchone() == (2,)
            keys = conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'audit_logs'::regclass AND contype = 'p'"
            ).fetchall()
            assert keys == [("PRIMARY KEY (id, created_at)",)]
            # Still append-only, on every partition.
            for statement in ("DELETE FROM audit_logs", "UPDATE audit_logs SET action = 'x'"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    conn.execute(statement)
            for name in names:
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(name)))
        # The chain verifies, and new entries continue it (ids continue too).
        assert _verify(scratch_url) == (True, 75, None)
        with Database(url=scratch_url, pool_min_size=0) as db:
            factory = RepositoryFactory(db)
            entry = factory.audit_logs.log("after.conversion", ip_address="::1")
            factory.close()
        assert entry.id == last_id[0] + 1
        assert _verify(scratch_url) == (True, 76, None)
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            before = conn.execute(ROWS_DIGEST).fetchone()

        # And back: one plain table with every row, the original key, the chain intact.
        roll_back_to_before(scratch_url, MIGRATION)
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            assert conn.execute(ROWS_DIGEST).fetchone() == before
            assert conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'audit_logs'"
            ).fetchone() == ("r",)
            keys = conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'audit_logs'::regclass AND contype = 'p'"
            ).fetchall()
            assert keys == [("PRIMARY KEY (id)",)]
            assert conn.execute(
                "SELECT has_table_privilege('audit_reader', 'audit_logs', 'SELECT')"
            ).fetchone() == (True,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute("DELETE FROM audit_logs")
            assert conn.execute(
                "SELECT to_regprocedure('digitwin_audit_drop_partitions(float8, integer)')"
            ).fetchone() == (None,)
        assert _verify(scratch_url) == (True, 76, None)
        with Database(url=scratch_url, pool_min_size=0) as db:
            factory = RepositoryFactory(db)
            again = factory.audit_logs.log("after.rollback")
            factory.close()
        assert again.id == entry.id + 1
        # And forward once more: every row again.
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            before = conn.execute(ROWS_DIGEST).fetchone()
        assert MIGRATION in migrations.migrate(scratch_url)
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            assert conn.execute(ROWS_DIGEST).fetchone() == before
        assert _verify(scratch_url) == (True, 77, None)
    finally:
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            conn.execute("REVOKE ALL ON audit_logs FROM audit_reader")
            conn.execute("DROP ROLE audit_reader")


def test_entries_land_in_their_months_partition_or_the_default(
    app_factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    entry = app_factory.audit_logs.log("document.read")
    where = raw_conn.execute(
        "SELECT tableoid::regclass::text FROM audit_logs WHERE id = %s", (entry.id,)
    ).fetchone()
    assert where == (f"audit_logs_p{entry.created_at.astimezone(UTC):%Y%m}",)
    # A timestamp with no partition never fails an insert: it lands in the default one.
    far = datetime(2199, 5, 17, 12, 0, tzinfo=UTC)
    _old_row(raw_conn, far, 1)
    app_factory.audit_logs.log("document.read")
    where = raw_conn.execute(
        "SELECT tableoid::regclass::text FROM audit_logs WHERE created_at = %s", (far,)
    ).fetchone()
    assert where == ("audit_logs_default",)
    # Creating that month moves the row out of the default partition, unchanged.
    digest = raw_conn.execute(ROWS_DIGEST).fetchone()
    raw_conn.execute("SELECT audit_logs_create_partition(%s)", (far,))
    try:
        where = raw_conn.execute(
            "SELECT tableoid::regclass::text FROM audit_logs WHERE created_at = %s", (far,)
        ).fetchone()
        assert where == ("audit_logs_p219905",)
        assert raw_conn.execute(ROWS_DIGEST).fetchone() == digest
        report = app_factory.audit_logs.verify_chain()
        assert report.ok and report.rows_checked == 3, report
    finally:
        raw_conn.execute("ALTER TABLE audit_logs DETACH PARTITION audit_logs_p219905")
        raw_conn.execute("DROP TABLE audit_logs_p219905")


def test_migrate_and_the_cleanup_job_create_audit_partitions_ahead(scratch_url: str) -> None:
    migrations.migrate(scratch_url)
    ahead = [f"audit_logs_p{month_start(i):%Y%m}" for i in (2, 3)]
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        for name in ahead:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    # migrate with nothing pending still prepares the coming months, of both tables.
    assert migrations.migrate(scratch_url) == []
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert set(ahead) <= set(_partition_names(conn))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(ahead[1])))
    with Database(url=scratch_url, partition_months_ahead=5) as db:
        repositories = RepositoryFactory(db)
        report = CleanupJob(repositories).run_once()
        assert report.errors == {} and "partitions" not in report.skipped
        listed = repositories.partitions.list("audit_logs")
        assert repositories.partitions.ensure_ahead(5) == {
            "conversation_turns": 0,
            "audit_logs": 0,
        }
        repositories.close()
    assert [p.name for p in listed if not p.is_default] == [
        f"audit_logs_p{month_start(i):%Y%m}" for i in range(6)
    ]
    assert listed[-1].is_default and listed[0].range_from == month_start(0)


def _old_months(raw_conn: psycopg.Connection, app_factory: RepositoryFactory) -> dict[str, int]:
    """Two old months in their own partitions, rows interleaved in chain order with fresh
    ones (so that dropping them leaves runs to anchor), a stray old row in the default
    partition, and a month only partly past retention. Returns the seq of notable rows."""
    old, older = month_start(-14), month_start(-13)
    for month in (old, older):
        raw_conn.execute("SELECT audit_logs_create_partition(%s)", (month,))
    seqs: dict[str, int] = {}
    for i in range(5):
        _old_row(raw_conn, old + timedelta(hours=i), i)
    seqs["fresh_1"] = app_factory.audit_logs.log("fresh.one").id
    for i in range(4):
        _old_row(raw_conn, older + timedelta(hours=i), i)
    _old_row(raw_conn, datetime(2001, 1, 1, tzinfo=UTC), 99)  # default partition
    # The month of 200 days ago: its start is past retention, its end is not.
    partly = datetime.now(UTC) - timedelta(days=200)
    raw_conn.execute("SELECT audit_logs_create_partition(%s)", (partly,))
    _old_row(raw_conn, partly.replace(day=1, hour=0, minute=0, second=0, microsecond=0), 7)
    seqs["fresh_2"] = app_factory.audit_logs.log("fresh.two").id
    return seqs


def test_retention_drops_whole_partitions_and_the_chain_still_verifies(
    app_factory: RepositoryFactory,
    role_urls: RoleUrls,
    raw_conn: psycopg.Connection,
) -> None:
    _old_months(raw_conn, app_factory)
    assert app_factory.audit_logs.verify_chain().ok
    # The cleanup job, as the maintenance role, with 200 days of retention.
    db = Database(
        url=role_urls.maintenance, pool_min_size=0, pool_max_size=2, audit_retention_days=200
    )
    db.open()
    try:
        report = CleanupJob(RepositoryFactory(db), batch_size=100).run_once()
    finally:
        db.close()
    assert report.errors == {}
    assert report.removed["audit_logs"] == 5 + 4 + 1
    names = _partition_names(raw_conn)
    assert f"audit_logs_p{month_start(-14):%Y%m}" not in names
    assert f"audit_logs_p{month_start(-13):%Y%m}" not in names
    left = raw_conn.execute(
        "SELECT chain_seq, action FROM audit_logs ORDER BY chain_seq"
    ).fetchall()
    # seq 1-5 old, 6 fresh, 7-10 older, 11 stray, 12 partly-expired month, 13 fresh.
    assert left == [(6, "fresh.one"), (12, "old.entry"), (13, "fresh.two")]
    anchors = raw_conn.execute("SELECT seq FROM audit_chain_anchors ORDER BY seq").fetchall()
    assert anchors == [(5,), (11,)]  # the last dropped row before each surviving run
    report_chain = app_factory.audit_logs.verify_chain()
    assert report_chain.ok and report_chain.rows_checked == 3 and report_chain.anchors == 2
    # New entries keep chaining.
    app_factory.audit_logs.log("fresh.three")
    assert app_factory.audit_logs.verify_chain().ok

    # A compromised owner (the superuser here) alters a surviving row: found.
    _tamper(raw_conn, "UPDATE audit_logs SET action = 'forged' WHERE chain_seq = 6")
    broken = app_factory.audit_logs.verify_chain()
    assert not broken.ok and broken.broken_seq == 6 and "altered" in (broken.reason or "")
    _tamper(raw_conn, "UPDATE audit_logs SET action = 'fresh.one' WHERE chain_seq = 6")
    assert app_factory.audit_logs.verify_chain().ok


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("UPDATE audit_chain_anchors SET row_hash = sha256(row_hash) WHERE seq = 5", "prev_hash"),
        ("DELETE FROM audit_chain_anchors WHERE seq = 11", "no purge recorded them"),
        # Hiding more of the past: delete the surviving row after the first anchor too.
        ("DELETE FROM audit_logs WHERE chain_seq = 6", "anchors: the row with chain_seq 6"),
    ],
)
def test_tampering_with_the_anchor_is_found(
    app_factory: RepositoryFactory,
    maintenance_factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    statement: str,
    reason: str,
) -> None:
    _old_months(raw_conn, app_factory)
    assert maintenance_factory.audit_logs.apply_retention(200) == 10
    assert app_factory.audit_logs.verify_chain().ok
    _tamper(raw_conn, statement)
    report = app_factory.audit_logs.verify_chain()
    assert not report.ok and reason in (report.reason or ""), report


def test_dropping_every_row_keeps_the_head(
    app_factory: RepositoryFactory,
    maintenance_factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
) -> None:
    raw_conn.execute("SELECT audit_logs_create_partition(%s)", (month_start(-20),))
    for i in range(3):
        _old_row(raw_conn, month_start(-20) + timedelta(days=i), i)
    assert maintenance_factory.audit_logs.apply_retention(90) == 3
    report = app_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 0 and report.head is not None
    assert report.head.seq == 3 and report.anchors == 1
    entry = app_factory.audit_logs.log("after.everything")
    assert raw_conn.execute(
        "SELECT chain_seq FROM audit_logs WHERE id = %s", (entry.id,)
    ).fetchone() == (4,)
    assert app_factory.audit_logs.verify_chain().ok


def test_only_the_maintenance_role_drops_partitions(
    app_factory: RepositoryFactory,
    app_conn: psycopg.Connection,
    maintenance_factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
) -> None:
    _old_months(raw_conn, app_factory)
    snapshot = "SELECT * FROM audit_logs ORDER BY id"
    before = raw_conn.execute(snapshot).fetchall()
    partitions = _partition_names(raw_conn)
    old = f"audit_logs_p{month_start(-14):%Y%m}"
    # Connected as the application role: every way to remove audit rows is refused.
    refused = [
        "SELECT digitwin_audit_drop_partitions(200, 1000)",
        "SELECT digitwin_audit_drop_partitions(100000, 1)",
        "SELECT digitwin_audit_purge(200, 1000)",
        f"SELECT audit_logs_create_partition('{month_start(-30).isoformat()}')",
        "DELETE FROM audit_logs",
        f"DELETE FROM {old}",
        "DELETE FROM audit_logs_default",
        f"TRUNCATE {old}",
        "TRUNCATE audit_logs_default",
        f"ALTER TABLE audit_logs DETACH PARTITION {old}",
        f"DROP TABLE {old}",
        f"UPDATE {old} SET action = 'forged'",
        "UPDATE audit_chain_anchors SET row_hash = '\\x00'",
        "DELETE FROM audit_chain_anchors",
    ]
    for statement in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(statement)
    with pytest.raises(QueryError, match="permission denied"):
        app_factory.audit_logs.apply_retention(200)
    assert raw_conn.execute(snapshot).fetchall() == before
    assert _partition_names(raw_conn) == partitions
    privileges = raw_conn.execute(
        "SELECT r, has_function_privilege(r, "
        "'digitwin_audit_drop_partitions(double precision, integer)', 'EXECUTE') "
        "FROM unnest(ARRAY[%s, %s, 'public']) AS r ORDER BY r",
        (APP_ROLE, MAINTENANCE_ROLE),
    ).fetchall()
    assert dict(privileges) == {APP_ROLE: False, MAINTENANCE_ROLE: True, "public": False}
    # The maintenance role may, but never inside the owner's floor (30 days by default).
    for days in (0, 29.9):
        with pytest.raises(ValidationError, match="at least 30 days"):
            maintenance_factory.audit_logs.apply_retention(days)
    assert raw_conn.execute(snapshot).fetchall() == before
    assert maintenance_factory.audit_logs.apply_retention(200, batch_size=1) == 10
    assert app_factory.audit_logs.verify_chain().ok


def test_appends_while_partitions_are_dropped_keep_one_chain(
    app_factory: RepositoryFactory,
    maintenance_factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
) -> None:
    months = [month_start(-m) for m in range(30, 18, -1)]
    for i, month in enumerate(months):
        raw_conn.execute("SELECT audit_logs_create_partition(%s)", (month,))
        _old_row(raw_conn, month + timedelta(days=2), i)
    threads, per_thread = 8, 20
    errors: list[BaseException] = []
    dropped: list[int] = []

    def append() -> None:
        try:
            for i in range(per_thread):
                app_factory.audit_logs.log("concurrent.append", metadata={"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def drop() -> None:
        try:
            # One partition per call, oldest first: retention just past that month's end.
            for end in [*months[1:], month_start(-18)]:
                days = (datetime.now(UTC) - end).days
                dropped.append(maintenance_factory.audit_logs.apply_retention(days))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=append) for _ in range(threads)]
    pool.append(threading.Thread(target=drop))
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert errors == []
    assert dropped == [1] * len(months)
    left = raw_conn.execute("SELECT count(*) FROM audit_logs").fetchone()
    assert left == (threads * per_thread,)
    report = app_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == threads * per_thread, report
    assert report.head is not None and report.head.seq == len(months) + threads * per_thread
