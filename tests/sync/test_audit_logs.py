# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_audit_logs.py
"""Audit log: append-only (enforced by the database), validation, query, statistics,
retention purge, durability across a crash-like server stop."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import ValidationError
from digitwin_db.models.audit import AuditEntry
from digitwin_db.testing import EmbeddedPostgres

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
BOB = uuid.UUID("00000000-0000-4000-8000-000000000b0b")


def _count(raw_conn: psycopg.Connection) -> int:
    row = raw_conn.execute("SELECT count(*) FROM audit_logs").fetchone()
    assert row is not None
    return int(row[0])


def _insert_raw(
    raw_conn: psycopg.Connection,
    action: str,
    *,
    created_at: datetime,
    user_id: uuid.UUID | None = None,
    result: str = "success",
) -> None:
    # INSERT is always allowed, also with an explicit created_at (to fake old entries).
    raw_conn.execute(
        "INSERT INTO audit_logs (action, user_id, result, created_at, metadata) "
        "VALUES (%s, %s, %s, %s, %s)",
        (action, user_id, result, created_at, Jsonb({})),
    )


def test_log_returns_the_stored_entry(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    entry = factory.audit_logs.log(
        "user.created",
        user_id=str(ALICE),
        resource_type="user",
        resource_id=ALICE,
        ip_address="2001:db8::1",
        user_agent="pytest/8",
        metadata={"tier": "pro", "n": 1},
    )
    assert isinstance(entry, AuditEntry)
    assert entry.user_id == ALICE
    assert entry.action == "user.created"
    assert entry.resource_type == "user"
    assert entry.resource_id == str(ALICE)
    assert entry.result == "success"
    assert entry.ip_address == "2001:db8::1"
    assert entry.user_agent == "pytest/8"
    assert entry.metadata == {"tier": "pro", "n": 1}
    assert entry.created_at.tzinfo is not None
    row = raw_conn.execute(
        "SELECT id, ip_address::text, metadata FROM audit_logs WHERE id = %s", (entry.id,)
    ).fetchone()
    assert row == (entry.id, "2001:db8::1/128", {"tier": "pro", "n": 1})
    minimal = factory.audit_logs.log("login", result="denied", ip_address=" 10.0.0.7 ")
    assert minimal.user_id is None and minimal.metadata == {}
    assert minimal.ip_address == "10.0.0.7" and minimal.result == "denied"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": ""}, "action"),
        ({"action": "has space"}, "action"),
        ({"action": "x" * 101}, "action"),
        ({"result": "ok"}, "result"),
        ({"ip_address": "999.1.1.1"}, "ip_address"),
        ({"ip_address": "not an ip'; DROP TABLE audit_logs; --"}, "ip_address"),
        ({"ip_address": 1234}, "ip_address"),
        ({"ip_address": "fe80::1%eth0"}, "ip_address"),
        ({"ip_address": "10.0.0.0/8"}, "ip_address"),
        ({"user_agent": "u" * 1025}, "user_agent"),
        ({"user_agent": "bad\x00agent"}, "user_agent"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"resource_type": ""}, "resource_type"),
        ({"resource_id": "r" * 201}, "resource_id"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"x": float("nan")}}, "metadata"),
        ({"metadata": {"x": object()}}, "metadata"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    factory: RepositoryFactory,
    raw_conn: psycopg.Connection,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    arguments: dict[str, Any] = {"action": "user.created", **kwargs}
    action = arguments.pop("action")
    with pytest.raises(ValidationError, match=message):
        factory.audit_logs.log(action, **arguments)
    assert _count(raw_conn) == 0


def test_user_agent_at_the_limit_is_accepted(factory: RepositoryFactory) -> None:
    entry = factory.audit_logs.log("login", user_agent="u" * 1024)
    assert entry.user_agent is not None and len(entry.user_agent) == 1024


def test_update_delete_truncate_are_refused_by_the_database(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    entry = factory.audit_logs.log("user.created", user_id=ALICE)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        raw_conn.execute("UPDATE audit_logs SET action = 'forged' WHERE id = %s", (entry.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        raw_conn.execute("DELETE FROM audit_logs WHERE id = %s", (entry.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        raw_conn.execute("TRUNCATE audit_logs")
    # Setting the flag for another purpose, or at session level for the wrong mode, does
    # not help: UPDATE needs 'erase', DELETE needs 'purge'.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), raw_conn.transaction():
        raw_conn.execute("SET LOCAL digitwin.audit_maintenance = 'purge'")
        raw_conn.execute("UPDATE audit_logs SET action = 'forged' WHERE id = %s", (entry.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), raw_conn.transaction():
        raw_conn.execute("SET LOCAL digitwin.audit_maintenance = 'erase'")
        raw_conn.execute("DELETE FROM audit_logs WHERE id = %s", (entry.id,))
    row = raw_conn.execute("SELECT action FROM audit_logs WHERE id = %s", (entry.id,)).fetchone()
    assert row == ("user.created",)
    assert _count(raw_conn) == 1


def test_purge_removes_exactly_the_old_rows(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    now = datetime.now(UTC)
    for i in range(7):
        _insert_raw(raw_conn, "old.entry", created_at=now - timedelta(days=91, minutes=i))
    _insert_raw(raw_conn, "edge.entry", created_at=now - timedelta(days=89, hours=23))
    for i in range(3):
        factory.audit_logs.log("fresh.entry", metadata={"i": i})
    # Small batches: 7 old rows take 3 batches of 3, 3 and 1.
    removed = factory.audit_logs.purge_older_than(90, batch_size=3)
    assert removed == 7
    rows = raw_conn.execute("SELECT action, count(*) FROM audit_logs GROUP BY 1 ORDER BY 1")
    assert rows.fetchall() == [("edge.entry", 1), ("fresh.entry", 3)]
    assert factory.audit_logs.purge_older_than(90) == 0
    # The purge flag was local to the purge's transactions: the guard is still on.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        raw_conn.execute("DELETE FROM audit_logs")


def test_purge_max_batches_stops_early(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    old = datetime.now(UTC) - timedelta(days=100)
    for _ in range(5):
        _insert_raw(raw_conn, "old.entry", created_at=old)
    assert factory.audit_logs.purge_older_than(days=30, batch_size=2, max_batches=1) == 2
    assert _count(raw_conn) == 3
    assert factory.audit_logs.purge_older_than(days=30, batch_size=2) == 3
    assert _count(raw_conn) == 0


@pytest.mark.parametrize("days", [-1, float("nan"), float("inf"), "90", True])
def test_purge_rejects_bad_days(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, days: Any
) -> None:
    _insert_raw(raw_conn, "old.entry", created_at=datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(ValidationError, match="days"):
        factory.audit_logs.purge_older_than(days)
    with pytest.raises(ValidationError, match="batch_size"):
        factory.audit_logs.purge_older_than(90, batch_size=0)
    assert _count(raw_conn) == 1


def test_apply_retention_drops_months_and_batches_the_default_partition(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    # A month partition 14 months back (migration 0015), 4 rows in it; 5 stray old rows in
    # the default partition; fresh rows in this month's partition.
    now = datetime.now(UTC)
    month = datetime(now.year - 1, now.month, 1, tzinfo=UTC) - timedelta(days=40)
    raw_conn.execute("SELECT audit_logs_create_partition(%s)", (month,))
    for i in range(4):
        _insert_raw(raw_conn, "old.month", created_at=month + timedelta(hours=i))
    for i in range(5):
        _insert_raw(raw_conn, "old.stray", created_at=datetime(2001, 1, 1 + i, tzinfo=UTC))
    factory.audit_logs.log("fresh.entry")
    # One batch: the whole month (4 rows, no DELETE) and 2 stray rows.
    assert factory.audit_logs.apply_retention(90, batch_size=2, max_batches=1) == 6
    assert factory.audit_logs.apply_retention(90, batch_size=2) == 3
    rows = raw_conn.execute("SELECT action FROM audit_logs").fetchall()
    assert rows == [("fresh.entry",)]
    assert raw_conn.execute(
        "SELECT to_regclass(%s)", (f"audit_logs_p{month:%Y%m}",)
    ).fetchone() == (None,)
    assert (factory.audit_logs.verify_chain()).ok


@pytest.mark.parametrize("days", [-1, float("nan"), "90", True, 29])
def test_apply_retention_rejects_bad_arguments(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, days: Any
) -> None:
    _insert_raw(raw_conn, "old.entry", created_at=datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(ValidationError, match="days"):
        factory.audit_logs.apply_retention(days)
    with pytest.raises(ValidationError, match="batch_size"):
        factory.audit_logs.apply_retention(90, batch_size=0)
    with pytest.raises(ValidationError, match="max_batches"):
        factory.audit_logs.apply_retention(90, max_batches=0)
    assert _count(raw_conn) == 1


def test_query_filters_and_pages(factory: RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    _insert_raw(raw_conn, "user.login", created_at=now - timedelta(days=3), user_id=ALICE)
    _insert_raw(
        raw_conn, "user.login", created_at=now - timedelta(days=2), user_id=BOB, result="failure"
    )
    for i in range(5):
        factory.audit_logs.log(
            "document.read", user_id=ALICE, resource_type="document", resource_id=f"d{i}"
        )
    factory.audit_logs.log("user.login", user_id=BOB, result="denied")

    everything = factory.audit_logs.query()
    assert everything.total == 8 and len(everything.items) == 8
    stamps = [(e.created_at, e.id) for e in everything.items]
    assert stamps == sorted(stamps, reverse=True)  # newest first

    alice = factory.audit_logs.query(user_id=ALICE)
    assert alice.total == 6
    assert {e.user_id for e in alice.items} == {ALICE}

    logins = factory.audit_logs.query(action="user.login", result="failure")
    assert [e.user_id for e in logins.items] == [BOB]

    recent = factory.audit_logs.query(action="user.login", since=now - timedelta(days=2.5))
    assert recent.total == 2
    older = factory.audit_logs.query(until=now - timedelta(days=1))
    assert older.total == 2

    docs = factory.audit_logs.query(resource_type="document", resource_id="d3")
    assert [e.resource_id for e in docs.items] == ["d3"]

    page1 = factory.audit_logs.query(user_id=ALICE, limit=4)
    page2 = factory.audit_logs.query(user_id=ALICE, limit=4, offset=4)
    assert (page1.total, page2.total) == (6, 6)
    assert len(page1.items) == 4 and len(page2.items) == 2
    assert page1.has_more and not page2.has_more
    assert {e.id for e in page1.items}.isdisjoint({e.id for e in page2.items})
    beyond = factory.audit_logs.query(limit=5, offset=100)
    assert beyond.items == [] and beyond.total == 8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"result": "maybe"},
        {"since": datetime(2026, 1, 1)},  # naive
        {"until": "yesterday"},
        {"user_id": 42},
    ],
)
def test_query_rejects_bad_arguments(factory: RepositoryFactory, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        factory.audit_logs.query(**kwargs)


def test_statistics_match_hand_counted_rows(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    now = datetime.now(UTC)
    carol = uuid.uuid4()
    # Outside the window: must not be counted.
    _insert_raw(raw_conn, "user.login", created_at=now - timedelta(days=30), user_id=carol)
    _insert_raw(raw_conn, "user.login", created_at=now - timedelta(days=30), user_id=carol)
    # Inside: ALICE 4 (3 success, 1 failure), BOB 3 (1 success, 2 denied), anonymous 2.
    plan: list[tuple[str, uuid.UUID | None, str]] = [
        ("user.login", ALICE, "success"),
        ("user.login", ALICE, "success"),
        ("user.login", ALICE, "failure"),
        ("document.read", ALICE, "success"),
        ("user.login", BOB, "success"),
        ("admin.access", BOB, "denied"),
        ("admin.access", BOB, "denied"),
        ("user.login", None, "failure"),
        ("health.check", None, "success"),
    ]
    for action, user, result in plan:
        factory.audit_logs.log(action, user_id=user, result=result)

    stats = factory.audit_logs.statistics(since=now - timedelta(days=1))
    assert stats.total == 9
    assert stats.by_action == {
        "user.login": 5,
        "document.read": 1,
        "admin.access": 2,
        "health.check": 1,
    }
    assert stats.by_result == {"success": 5, "failure": 2, "denied": 2}
    assert stats.failure_rate == pytest.approx(2 / 9)
    assert stats.denied_rate == pytest.approx(2 / 9)
    assert [(u.user_id, u.count) for u in stats.top_users] == [(ALICE, 4), (BOB, 3)]

    everything = factory.audit_logs.statistics()
    assert everything.total == 11
    assert everything.by_action["user.login"] == 7
    assert [(u.user_id, u.count) for u in everything.top_users] == [
        (ALICE, 4),
        (BOB, 3),
        (carol, 2),
    ]
    before = factory.audit_logs.statistics(until=now - timedelta(days=1))
    assert (before.total, before.by_result) == (2, {"success": 2})

    empty = factory.audit_logs.statistics(since=now + timedelta(days=1))
    assert (empty.total, empty.by_action, empty.failure_rate, empty.top_users) == (0, {}, 0.0, [])


@pytest.mark.slow
def test_logged_entries_survive_a_crash_like_stop(
    factory: RepositoryFactory, pg_server: EmbeddedPostgres, pg_url: str
) -> None:
    # The test server runs with synchronous_commit = off: without log()'s SET LOCAL
    # synchronous_commit = on, the last commits would still sit in WAL buffers when the
    # server is killed and would be lost.
    ids = [(factory.audit_logs.log("crash.probe", metadata={"i": i})).id for i in range(25)]
    pg_server.restart("immediate")  # SIGQUIT: no shutdown checkpoint, like a crash
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT id FROM audit_logs ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ids
    # The pool notices the restart and keeps working.
    entry = factory.audit_logs.log("after.restart")
    assert entry.id > ids[-1]
