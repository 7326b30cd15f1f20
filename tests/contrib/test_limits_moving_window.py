"""The moving window's row (migration 0014): minus the stamps, newest first, and running totals.
limits' own suite (scripts/peer_suites.sh) and tests/contrib/test_limits_storage.py check the
decisions; these pin the row's invariants and the rare paths: the running totals restarting
near 2^62, and a stamp older than the newest one stored."""

from __future__ import annotations

import psycopg
import pytest
from limits.storage import storage_from_string

from digitwin_db.contrib.limits import PostgresStorage
from digitwin_db.contrib.limits_rules import MAX_AMOUNT

REBASE_AT = 2**62


@pytest.fixture
def storage(pg_url: str) -> PostgresStorage:
    store = storage_from_string(pg_url)
    assert isinstance(store, PostgresStorage)
    return store


def row_of(raw_conn: psycopg.Connection, key: str) -> tuple[list[float], list[int]]:
    row = raw_conn.execute(
        "SELECT neg_stamps, totals FROM limits_windows WHERE key = %s", (key,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_row_keeps_the_window_newest_first_with_running_totals(
    storage: PostgresStorage, raw_conn: psycopg.Connection
) -> None:
    for amount in (3, 1, 4):
        assert storage.acquire_entry("rt", 10, 60, amount)
    assert not storage.acquire_entry("rt", 10, 60, 3)  # 8 + 3 > 10: nothing stored
    neg_stamps, totals = row_of(raw_conn, "rt")
    assert totals == [8, 4, 3, 0]
    assert neg_stamps == sorted(neg_stamps) and len(neg_stamps) == 3
    oldest, amount = storage.get_moving_window("rt", 10, 60)
    assert (oldest, amount) == (-neg_stamps[-1], 8)
    assert storage.acquire_entry("rt", 10, 60, 2)
    assert storage.get_moving_window("rt", 10, 60)[1] == 10


def test_running_totals_restart_before_bigint_ends(
    storage: PostgresStorage, raw_conn: psycopg.Connection
) -> None:
    # A key admitted for ages without its window ever emptying: the total before the window
    # has reached the restart point (reachable with amounts of up to 10^15 per hit).
    base = REBASE_AT + 5
    assert storage.acquire_entry("big", MAX_AMOUNT, 3600, 7)
    raw_conn.execute(
        "UPDATE limits_windows SET totals = ARRAY[%s::bigint + 7, %s::bigint] WHERE key = 'big'",
        (base, base),
    )
    assert storage.get_moving_window("big", MAX_AMOUNT, 3600)[1] == 7
    assert storage.acquire_entry("big", MAX_AMOUNT, 3600, MAX_AMOUNT - 7 - 1)
    neg_stamps, totals = row_of(raw_conn, "big")
    assert totals == [MAX_AMOUNT - 1, 7, 0] and len(neg_stamps) == 2
    assert storage.acquire_entry("big", MAX_AMOUNT, 3600, 1)  # exactly the limit
    assert not storage.acquire_entry("big", MAX_AMOUNT, 3600, 1)
    assert row_of(raw_conn, "big")[1] == [MAX_AMOUNT, MAX_AMOUNT - 1, 7, 0]
    assert storage.get_moving_window("big", MAX_AMOUNT, 3600)[1] == MAX_AMOUNT


def test_an_older_statement_is_stamped_at_the_newest_stored_time(
    storage: PostgresStorage, raw_conn: psycopg.Connection
) -> None:
    # As if a later-started statement had taken the row lock first: the stored newest stamp
    # is ahead of this statement's time. The new acquisition is stamped at that time, so the
    # array stays ordered (and the hit is not counted for less time than it should).
    assert storage.acquire_entry("late", 5, 60)
    raw_conn.execute(
        "UPDATE limits_windows SET neg_stamps = ARRAY[neg_stamps[1] - 10] WHERE key = 'late'"
    )
    (ahead,), _ = row_of(raw_conn, "late")
    assert storage.acquire_entry("late", 5, 60)
    neg_stamps, totals = row_of(raw_conn, "late")
    assert neg_stamps == [ahead, ahead] and totals == [2, 1, 0]
    assert storage.get_moving_window("late", 5, 60) == (-ahead, 2)
