"""The sliding-window counter of digitwin_db.contrib.limits keeps limits' contract for
timestamp-keyed storages (``TimestampedSlidingWindow``, as limits' memcached and memory
storages): windows are aligned on multiples of the expiry of the SERVER's epoch, and
``get_sliding_window`` reports limits' TTLs, so the strategy's reset time and remaining count
come out as limits computes them. Every expectation is limits' formula restated here and
evaluated at server times read just before and just after the call (the statement's own time
lies between them), so the checks do not depend on how fast a loaded machine answers (short
of a delay of a whole window)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.storage.base import TimestampedSlidingWindow
from limits.strategies import SlidingWindowCounterRateLimiter

from digitwin_db.contrib.limits import PostgresStorage

EXPIRY = 2  # seconds: "5 per 2 seconds"
LIMIT = 5
ITEM = RateLimitItemPerSecond(LIMIT, EXPIRY)
SLACK = 1e-6  # float8 epoch arithmetic


def limits_previous_ttl(count: int, at: float) -> float:
    """limits' previous-window TTL of a timestamp-keyed storage at time ``at`` (restated from
    its MemoryStorage/MemcachedStorage ``_get_sliding_window_info``)."""
    return 0.0 if count == 0 else (1 - (((at - EXPIRY) / EXPIRY) % 1)) * EXPIRY


def limits_current_ttl(at: float) -> float:
    return (1 - ((at / EXPIRY) % 1)) * EXPIRY + EXPIRY


def window_of(at: float) -> int:
    """limits' window number of time ``at`` (``sliding_window_keys``: ``int(at / expiry)``)."""
    return int(at / EXPIRY)


@pytest.fixture
def storage(pg_url: str) -> PostgresStorage:
    store = storage_from_string(pg_url)
    assert isinstance(store, PostgresStorage)
    return store


def bracketed(raw_conn: psycopg.Connection, call: Callable[[], Any]) -> tuple[float, Any, float]:
    """``(server time before, call(), server time after)``."""

    def server_now() -> float:
        row = raw_conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None
        return float(row[0])

    before = server_now()
    result = call()
    return before, result, server_now()


def sleep_until(raw_conn: psycopg.Connection, server_time: float) -> None:
    before, _, _ = bracketed(raw_conn, lambda: None)
    time.sleep(max(0.0, server_time - before))


def test_sliding_window_keeps_limits_timestamped_contract(
    storage: PostgresStorage, raw_conn: psycopg.Connection
) -> None:
    assert isinstance(storage, TimestampedSlidingWindow)
    limiter = SlidingWindowCounterRateLimiter(storage)
    key = ITEM.key_for("pinned")

    # Three hits early in a window W of the server's clock.
    start, _, _ = bracketed(raw_conn, lambda: None)
    if start / EXPIRY % 1 > 0.4:
        sleep_until(raw_conn, (window_of(start) + 1) * EXPIRY + 0.01)
    before, hits, after = bracketed(
        raw_conn, lambda: [limiter.hit(ITEM, "pinned") for _ in range(3)]
    )
    assert hits == [True, True, True]
    window = window_of(before)
    assert window_of(after) == window, "the hits straddled a window boundary"

    # Inside W: only the current window counts, it lives until the end of W + 1.
    before, info, after = bracketed(raw_conn, lambda: storage.get_sliding_window(key, EXPIRY))
    previous, previous_ttl, current, current_ttl = info
    assert (previous, previous_ttl, current) == (0, 0.0, 3)
    assert limits_current_ttl(after) - SLACK <= current_ttl <= limits_current_ttl(before) + SLACK

    # Just after the shift to W + 1: the 3 hits are the previous window, weighted by what is
    # left of W + 1; the storage's TTLs are limits' at the statement's time.
    sleep_until(raw_conn, (window + 1) * EXPIRY + 0.005)
    before, info, after = bracketed(raw_conn, lambda: storage.get_sliding_window(key, EXPIRY))
    assert window_of(before) == window_of(after) == window + 1
    previous, previous_ttl, current, current_ttl = info
    assert (previous, current) == (3, 0)
    assert (
        limits_previous_ttl(3, after) - SLACK
        <= previous_ttl
        <= limits_previous_ttl(3, before) + SLACK
    )
    assert current_ttl == pytest.approx(previous_ttl + EXPIRY, abs=SLACK)

    # The strategy's stats: remaining = limit - floor(weighted count); the reset is the next
    # time the weighted count drops by one, i.e. the next multiple of expiry / 3 of the
    # server's clock (the server runs on this host: one clock).
    before, stats, after = bracketed(raw_conn, lambda: limiter.get_window_stats(ITEM, "pinned"))
    remaining = {
        LIMIT - math.floor(3 * limits_previous_ttl(3, t) / EXPIRY) for t in (before, after)
    }
    assert stats.remaining in remaining
    step = EXPIRY / 3
    resets = {(math.floor(t / step + SLACK) + 1) * step for t in (before, after)}
    assert any(r - 0.002 <= stats.reset_time <= r + (after - before) + 0.002 for r in resets)

    # Admissions after the shift follow limits' weighted count, one atomic decision each:
    # admitted while floor(3 * previous_ttl / expiry) + current + 1 <= limit.
    admitted = 0
    for _ in range(LIMIT + 1):
        before, ok, after = bracketed(raw_conn, lambda: limiter.hit(ITEM, "pinned"))
        expected = {
            math.floor(3 * limits_previous_ttl(3, t) / EXPIRY) + admitted + 1 <= LIMIT
            for t in (before, after)
        }
        assert ok in expected
        admitted += ok
        if not ok:
            break
    assert not ok
    row = raw_conn.execute(
        "SELECT window_no, previous_count, current_count FROM limits_sliding WHERE key = %s",
        (key,),
    ).fetchone()
    assert row == (window + 1, 3, admitted)
