# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_limits_maintenance.py
"""The ``limits`` storage's tables (migration 0008) are maintenance churn tables: the default
``VACUUM (ANALYZE)`` covers them and the report shows them vacuumed."""

from __future__ import annotations

import time

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db._sync.limits_storage import PostgresStorage
from digitwin_db._sync.maintenance import CHURN_TABLES
from digitwin_db.models.audit import TableStats

LIMITS_TABLES = ("limits_counters", "limits_windows", "limits_sliding")


def _limits_stats(factory: RepositoryFactory) -> dict[str, TableStats]:
    stats = factory.maintenance.table_stats(list(LIMITS_TABLES))
    return {s.table: s for s in stats}


def test_default_vacuum_covers_the_limits_tables(factory: RepositoryFactory) -> None:
    assert set(LIMITS_TABLES) <= set(CHURN_TABLES)
    # One key per strategy, rewritten by every hit (each hit leaves a dead row version).
    storage = PostgresStorage(database=factory.db)
    for _ in range(20):
        storage.incr("churn-fixed", 60)
        assert storage.acquire_entry("churn-moving", 100, 60)
        assert storage.acquire_sliding_window_entry("churn-sliding", 100, 60)

    timings = factory.maintenance.vacuum_analyze()
    for table in LIMITS_TABLES:
        assert timings[table] >= 0
    # The statistics system is asynchronous: wait (not a timing assertion) for the report.
    for _ in range(100):
        stats = _limits_stats(factory)
        if all(s.last_vacuum is not None and s.live_tuples == 1 for s in stats.values()):
            break
        time.sleep(0.05)
    for table in LIMITS_TABLES:
        assert stats[table].unlogged
        assert stats[table].last_vacuum is not None and stats[table].last_analyze is not None
        assert (stats[table].live_tuples, stats[table].dead_tuples) == (1, 0)
