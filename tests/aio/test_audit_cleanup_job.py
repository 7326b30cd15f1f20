"""The cleanup job's logic through the API (the command line is in tests/test_cleanup.py)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from digitwin_db._async.cleanup import AsyncCleanupJob
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import ValidationError


def _seed(raw_conn: psycopg.Connection) -> None:
    raw_conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size, expires_at) "
        "SELECT g, 'job', 'k' || g, %s, 1, "
        "       CASE WHEN g <= 6 THEN now() - interval '1 second' "
        "            ELSE now() + interval '1 hour' END "
        "  FROM generate_series(1, 10) AS g",
        (Jsonb(1),),
    )
    raw_conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens, refilled_at) "
        "VALUES ('idle', '/e', 5, 1, 5, now() - interval '2 days'), ('busy', '/e', 5, 1, 1, now())"
    )
    raw_conn.execute(
        "INSERT INTO audit_logs (action, created_at) "
        "SELECT 'old', now() - interval '91 days' FROM generate_series(1, 7) "
        "UNION ALL SELECT 'new', now() - interval '89 days'"
    )


def _left(raw_conn: psycopg.Connection) -> tuple[int, int, int]:
    row = raw_conn.execute(
        "SELECT (SELECT count(*) FROM kv_cache), (SELECT count(*) FROM rate_limits), "
        "(SELECT count(*) FROM audit_logs)"
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]))


async def test_one_pass_removes_what_expired(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    _seed(raw_conn)
    progress: list[tuple[str, int, int]] = []
    job = AsyncCleanupJob(factory, batch_size=3, progress=lambda *args: progress.append(args))
    report = await job.run_once()
    assert report.removed["kv_cache"] == 6
    assert report.removed["rate_limits"] == 1
    assert report.removed["audit_logs"] == 7
    assert report.total_removed == 14
    assert (report.errors, report.skipped, report.stopped) == ({}, {}, False)
    assert _left(raw_conn) == (4, 1, 1)
    assert [p for p in progress if p[0] == "audit_logs"] == [
        ("audit_logs", 3, 3),
        ("audit_logs", 3, 6),
        ("audit_logs", 1, 7),
    ]
    again = await job.run_once()
    assert again.total_removed == 0


async def test_retention_override(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    _seed(raw_conn)
    report = await AsyncCleanupJob(factory, audit_retention_days=30).run_once()
    assert report.removed["audit_logs"] == 8


async def test_a_failing_step_does_not_stop_the_others(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    _seed(raw_conn)
    # An impossible idle threshold makes the rate-limit step fail; the rest still runs.
    report = await AsyncCleanupJob(factory, rate_limit_idle_seconds=-1).run_once()
    assert set(report.errors) == {"rate_limits"}
    assert report.removed["kv_cache"] == 6 and report.removed["audit_logs"] == 7
    assert _left(raw_conn) == (4, 2, 1)


@pytest.mark.parametrize("batch_size", [0, -5, 2.5, True])
async def test_bad_batch_size(factory: AsyncRepositoryFactory, batch_size: object) -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        AsyncCleanupJob(factory, batch_size=batch_size)  # type: ignore[arg-type]
