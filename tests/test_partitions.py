"""Month partitions of ``conversation_turns`` (§2.13, migration 0013): the conversion of a
table with data in place, the default partition, partitions created ahead by ``migrate``
and the cleanup job, and retention by dropping whole partitions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pydantic
import pytest
from psycopg import sql

import digitwin_db as ddb
from digitwin_db import migrations
from tests.helpers import insert_user, month_start, roll_back_to_before, scratch_database

MIGRATION = "0013_turn_partitions"

POLICIES = (
    "SELECT polname FROM pg_policy WHERE polrelid = 'conversation_turns'::regclass ORDER BY 1"
)

ROWS_DIGEST = (
    "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM conversation_turns t"
)


@pytest.fixture
def scratch_url(pg_url: str) -> Iterator[str]:
    with scratch_database(pg_url) as url:
        yield url


@pytest.fixture
def factory(pg_url: str) -> Iterator[ddb.RepositoryFactory]:
    with ddb.Database(url=pg_url, pool_max_size=20) as db:
        repositories = ddb.RepositoryFactory(db)
        yield repositories
        repositories.close()


def _partition_names(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'conversation_turns'::regclass ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _session(conn: psycopg.Connection) -> uuid.UUID:
    user_id = insert_user(conn)
    row = conn.execute(
        "INSERT INTO conversation_sessions (user_id) VALUES (%s) RETURNING id", (user_id,)
    ).fetchone()
    assert row is not None
    session_id: uuid.UUID = row[0]
    return session_id


def test_the_migration_converts_a_table_with_data_in_place(scratch_url: str) -> None:
    migrations.migrate(scratch_url)
    roll_back_to_before(scratch_url, MIGRATION)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'conversation_turns'"
        ).fetchone() == ("r",)
        # Data spread over 13 months (one turn a week for a year), plus what later
        # migrations or operators may have added: a grant, an index, an RLS policy.
        session_id = _session(conn)
        conn.execute(
            "INSERT INTO conversation_turns (session_id, turn_number, role, content, "
            "total_ms, metadata, created_at) "
            "SELECT %s, g, CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END, "
            "'turn ' || g, g, jsonb_build_object('g', g), now() - make_interval(days => 7 * g) "
            "FROM generate_series(1, 52) AS g",
            (session_id,),
        )
        conn.execute("DROP ROLE IF EXISTS turns_reader")
        conn.execute("CREATE ROLE turns_reader")
        conn.execute("GRANT SELECT ON conversation_turns TO turns_reader")
        conn.execute("CREATE INDEX conversation_turns_role_idx ON conversation_turns (role)")
        conn.execute("ALTER TABLE conversation_turns ENABLE ROW LEVEL SECURITY")
        conn.execute(
            "CREATE POLICY turns_reader_no_system ON conversation_turns FOR SELECT "
            "TO turns_reader USING (role <> 'system')"
        )
        before = conn.execute(ROWS_DIGEST).fetchone()
        policies = conn.execute(POLICIES).fetchall()
        months = conn.execute(
            "SELECT count(DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')) "
            "FROM conversation_turns"
        ).fetchone()
    assert before is not None and before[0] == 52
    assert months is not None

    assert migrations.migrate(scratch_url)[0] == MIGRATION
    try:
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            assert conn.execute(ROWS_DIGEST).fetchone() == before  # every row, unchanged
            assert conn.execute(
                "SELECT relkind, relrowsecurity FROM pg_class WHERE relname = 'conversation_turns'"
            ).fetchone() == ("p", True)
            names = _partition_names(conn)
            assert "conversation_turns_default" in names
            # A partition per month with rows, and this month plus three ahead.
            for offset in range(4):
                assert f"conversation_turns_p{month_start(offset):%Y%m}" in names
            with_rows = conn.execute(
                "SELECT count(DISTINCT tableoid) FROM conversation_turns"
            ).fetchone()
            assert with_rows == months
            assert conn.execute("SELECT count(*) FROM conversation_turns_default").fetchone() == (
                0,
            )
            assert conn.execute(
                "SELECT has_table_privilege('turns_reader', 'conversation_turns', 'SELECT')"
            ).fetchone() == (True,)
            # Every policy survives: ours and those of other migrations (tenant isolation).
            assert conn.execute(POLICIES).fetchall() == policies
            assert ("turns_reader_no_system",) in policies
            assert conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'conversation_turns' "
                "AND indexname = 'conversation_turns_role_idx'"
            ).fetchone() == (1,)
            assert conn.execute(
                "SELECT obj_description('conversation_turns'::regclass, 'pg_class')"
            ).fetchone() != (None,)

        # And back: one plain table again, the same rows, the original keys (later
        # migrations, e.g. 0015's audit partitions, are rolled back first).
        roll_back_to_before(scratch_url, MIGRATION)
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            assert conn.execute(ROWS_DIGEST).fetchone() == before
            assert conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'conversation_turns'"
            ).fetchone() == ("r",)
            constraints = conn.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'conversation_turns'::regclass "
                "AND contype IN ('p', 'u') ORDER BY 1"
            ).fetchall()
            assert constraints == [
                ("conversation_turns_pkey",),
                ("conversation_turns_session_number_key",),
            ]
            assert conn.execute(
                "SELECT has_table_privilege('turns_reader', 'conversation_turns', 'SELECT')"
            ).fetchone() == (True,)
    finally:
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            conn.execute("DROP TABLE conversation_turns CASCADE")
            conn.execute("DROP ROLE turns_reader")


def test_a_timestamp_without_a_partition_lands_in_the_default_partition(
    factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    session_id = _session(raw_conn)
    far = datetime(2199, 5, 17, 12, 0, tzinfo=UTC)
    raw_conn.execute(
        "INSERT INTO conversation_turns (session_id, turn_number, role, content, created_at) "
        "VALUES (%s, 1, 'user', 'from the future', %s)",
        (session_id, far),
    )
    where = raw_conn.execute(
        "SELECT tableoid::regclass::text FROM conversation_turns WHERE session_id = %s",
        (session_id,),
    ).fetchone()
    assert where == ("conversation_turns_default",)
    # Creating that month's partition moves the row out of the default partition.
    raw_conn.execute("SELECT conversation_turns_create_partition(%s)", (far,))
    try:
        where = raw_conn.execute(
            "SELECT tableoid::regclass::text, content FROM conversation_turns "
            "WHERE session_id = %s",
            (session_id,),
        ).fetchone()
        assert where == ("conversation_turns_p219905", "from the future")
        assert raw_conn.execute("SELECT count(*) FROM conversation_turns_default").fetchone() == (
            0,
        )
        # The per-partition unique (session_id, turn_number) index holds there too.
        with pytest.raises(psycopg.errors.UniqueViolation):
            raw_conn.execute(
                "INSERT INTO conversation_turns (session_id, turn_number, role, content, "
                "created_at) VALUES (%s, 1, 'user', 'again', %s)",
                (session_id, far + timedelta(days=1)),
            )
    finally:
        raw_conn.execute("DROP TABLE conversation_turns_p219905")


def test_add_turn_writes_into_this_months_partition(
    factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    session = factory.sessions.start(user_id=insert_user(raw_conn))
    turn = factory.sessions.add_turn(session.id, role="user", content="now")
    where = raw_conn.execute(
        "SELECT tableoid::regclass::text FROM conversation_turns WHERE id = %s", (turn.id,)
    ).fetchone()
    assert where == (f"conversation_turns_p{turn.created_at.astimezone(UTC):%Y%m}",)


def test_migrate_and_the_cleanup_job_create_partitions_ahead(scratch_url: str) -> None:
    migrations.migrate(scratch_url)
    ahead = [f"conversation_turns_p{month_start(i):%Y%m}" for i in (2, 3)]
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        for name in ahead:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    # migrate with nothing pending still prepares the coming months.
    assert migrations.migrate(scratch_url) == []
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        assert set(ahead) <= set(_partition_names(conn))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(ahead[1])))
    # The cleanup job does the same, as far ahead as PARTITION_MONTHS_AHEAD says.
    with ddb.Database(url=scratch_url, partition_months_ahead=5) as db:
        repositories = ddb.RepositoryFactory(db)
        report = ddb.CleanupJob(repositories).run_once()
        assert report.errors == {} and "partitions" not in report.skipped
        listed = repositories.partitions.list()
        assert repositories.partitions.ensure_ahead(5) == {
            "conversation_turns": 0,
            "audit_logs": 0,
        }
        repositories.close()
    months = [p.name for p in listed if not p.is_default]
    assert months == [f"conversation_turns_p{month_start(i):%Y%m}" for i in range(6)]
    assert listed[-1].is_default and listed[-1].range_from is None
    assert listed[0].range_from == month_start(0) and listed[0].range_to == month_start(1)


def test_retention_drops_whole_partitions(
    pg_url: str, raw_conn: psycopg.Connection, factory: ddb.RepositoryFactory
) -> None:
    session_id = _session(raw_conn)
    old, older = month_start(-14), month_start(-13)
    for month in (old, older):
        raw_conn.execute("SELECT conversation_turns_create_partition(%s)", (month,))
    raw_conn.execute(
        "INSERT INTO conversation_turns (session_id, turn_number, role, content, created_at) "
        "SELECT %s, g, 'user', 'old', CASE WHEN g <= 30 THEN %s ELSE %s END "
        "+ make_interval(hours => g) FROM generate_series(1, 50) AS g",
        (session_id, old, older),
    )
    # A stray old row in the default partition (no partition for its month).
    raw_conn.execute(
        "INSERT INTO conversation_turns (session_id, turn_number, role, content, created_at) "
        "VALUES (%s, 51, 'user', 'stray', %s)",
        (session_id, datetime(2001, 1, 1, tzinfo=UTC)),
    )
    recent = factory.sessions.add_turn(session_id, role="user", content="keep me")
    with ddb.Database(url=pg_url, turn_retention_days=200) as db:
        repositories = ddb.RepositoryFactory(db)
        report = ddb.CleanupJob(repositories).run_once()
        repositories.close()
    assert report.errors == {}
    assert report.removed["conversation_turns"] == 51
    names = _partition_names(raw_conn)
    assert f"conversation_turns_p{old:%Y%m}" not in names
    assert f"conversation_turns_p{older:%Y%m}" not in names
    rows = raw_conn.execute(
        "SELECT id FROM conversation_turns WHERE session_id = %s", (session_id,)
    ).fetchall()
    assert rows == [(recent.id,)]


def test_drop_partitions_is_not_for_the_public(raw_conn: psycopg.Connection) -> None:
    row = raw_conn.execute(
        "SELECT has_function_privilege('public', "
        "'conversation_turns_drop_partitions(timestamptz)', 'EXECUTE')"
    ).fetchone()
    assert row == (False,)


def test_partition_api_rejects_bad_input(factory: ddb.RepositoryFactory) -> None:
    with pytest.raises(ddb.ValidationError, match="months_ahead"):
        factory.partitions.ensure_ahead(-1)
    with pytest.raises(ddb.ValidationError, match="months_ahead"):
        factory.partitions.ensure_ahead(True)
    with pytest.raises(ddb.ValidationError, match="timezone-aware"):
        factory.partitions.drop_turns_older_than(datetime(2020, 1, 1))
    with pytest.raises(ddb.ValidationError, match="not partitioned"):
        factory.partitions.list("users")


def test_partition_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ddb.Settings().turn_retention_days is None
    assert ddb.Settings().partition_months_ahead == 3
    monkeypatch.setenv("TURN_RETENTION_DAYS", "400")
    monkeypatch.setenv("PARTITION_MONTHS_AHEAD", "6")
    settings = ddb.Settings()
    assert (settings.turn_retention_days, settings.partition_months_ahead) == (400, 6)
    monkeypatch.setenv("TURN_RETENTION_DAYS", "")
    assert ddb.Settings().turn_retention_days is None
    for name, bad in (("TURN_RETENTION_DAYS", "0"), ("PARTITION_MONTHS_AHEAD", "-1")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(pydantic.ValidationError, match=name.lower()):
            ddb.Settings()
        monkeypatch.delenv(name)
