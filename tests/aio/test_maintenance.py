"""Maintenance: VACUUM (ANALYZE) on demand, table sizes and the dead-tuple report."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg.types.json import Jsonb

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.maintenance import CHURN_TABLES
from digitwin_db.errors import ValidationError
from digitwin_db.models.audit import TableStats

APP_TABLES = {
    "users",
    "voice_models",
    "face_models",
    "conversation_sessions",
    "conversation_turns",
    "knowledge_documents",
    "embedding_cache",
    "vector_search_cache",
    "llm_response_cache",
    "kv_cache",
    "cache_stats",
    "cache_locks",
    "rate_limits",
    "limits_counters",
    "limits_windows",
    "limits_sliding",
    "audit_logs",
}


def _fill_and_empty_kv(raw_conn: psycopg.Connection, rows: int) -> None:
    raw_conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size) "
        "SELECT g, 'maint', 'k' || g, %s, 10 FROM generate_series(1, %s) AS g",
        (Jsonb({"v": 1}), rows),
    )
    raw_conn.execute("DELETE FROM kv_cache WHERE namespace = 'maint' AND key_hash % 2 = 0")
    # Statistics reach the shared counters when the backend goes idle; make it now.
    raw_conn.execute("SELECT pg_stat_force_next_flush()")


async def _stats_of(factory: AsyncRepositoryFactory, table: str) -> TableStats:
    (stats,) = await factory.maintenance.table_stats([table])
    return stats


async def test_table_stats_cover_every_application_table(
    factory: AsyncRepositoryFactory,
) -> None:
    stats = await factory.maintenance.table_stats()
    assert {s.table for s in stats} == APP_TABLES
    assert [s.table for s in stats] == sorted(s.table for s in stats)
    by_name = {s.table: s for s in stats}
    assert by_name["kv_cache"].unlogged and not by_name["audit_logs"].unlogged
    for s in stats:
        assert s.total_bytes >= s.table_bytes >= 0
        assert s.index_bytes > 0  # every table has at least its primary key
        assert 0.0 <= s.dead_ratio <= 1.0


async def test_dead_tuples_are_reported_and_vacuum_removes_them(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    _fill_and_empty_kv(raw_conn, 1000)
    # The statistics system is asynchronous: wait (not a timing assertion) for the counts.
    for _ in range(100):
        kv = await _stats_of(factory, "kv_cache")
        if kv.dead_tuples >= 500:
            break
        await asyncio.sleep(0.05)
    assert kv.dead_tuples >= 500 and kv.live_tuples == 500
    assert kv.dead_ratio == pytest.approx(kv.dead_tuples / (kv.dead_tuples + kv.live_tuples))

    timings = await factory.maintenance.vacuum_analyze(["kv_cache"])
    assert list(timings) == ["kv_cache"] and timings["kv_cache"] >= 0
    for _ in range(100):
        kv = await _stats_of(factory, "kv_cache")
        if kv.dead_tuples == 0 and kv.last_vacuum is not None:
            break
        await asyncio.sleep(0.05)
    assert kv.dead_tuples == 0 and kv.dead_ratio == 0.0
    assert kv.last_vacuum is not None and kv.last_analyze is not None
    assert kv.live_tuples == 500


async def test_vacuum_defaults_to_the_churn_tables(factory: AsyncRepositoryFactory) -> None:
    timings = await factory.maintenance.vacuum_analyze()
    assert tuple(timings) == CHURN_TABLES


@pytest.mark.parametrize(
    "tables", [["kv_cache", "no_such_table"], ['kv_cache"; DROP TABLE users; --'], "kv_cache"]
)
async def test_unknown_tables_are_refused(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection, tables: object
) -> None:
    with pytest.raises(ValidationError, match="table"):
        await factory.maintenance.vacuum_analyze(tables)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="table"):
        await factory.maintenance.table_stats(tables)  # type: ignore[arg-type]
    row = raw_conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()
    assert row == (True,)


async def test_rate_limit_summary(
    factory: AsyncRepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    empty = await factory.maintenance.rate_limit_summary()
    assert (empty["buckets"], empty["allowed"], empty["denied"]) == (0, 0, 0)
    assert empty["top_endpoints"] == []
    rows = [
        ("u1", "/chat", 10, 2),
        ("u2", "/chat", 5, 0),
        ("u1", "/voice", 1, 7),
        ("u3", "/docs", 1, 0),
    ]
    for user, endpoint, allowed, denied in rows:
        raw_conn.execute(
            "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens, "
            "allowed_count, denied_count) VALUES (%s, %s, 10, 1, 5, %s, %s)",
            (user, endpoint, allowed, denied),
        )
    summary = await factory.maintenance.rate_limit_summary(top=2)
    assert (summary["buckets"], summary["subjects"]) == (4, 3)
    assert (summary["allowed"], summary["denied"]) == (17, 9)
    assert summary["top_endpoints"] == [
        {"endpoint": "/chat", "allowed": 15, "denied": 2},
        {"endpoint": "/voice", "allowed": 1, "denied": 7},
    ]
