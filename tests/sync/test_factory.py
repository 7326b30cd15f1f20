# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_factory.py
"""RepositoryFactory: the process-wide singleton, health and statistics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import ConfigurationError


@pytest.fixture
def clean_singleton() -> Iterator[None]:
    RepositoryFactory.reset()
    yield
    RepositoryFactory.reset()


def test_instance_is_a_singleton(pg_url: str, clean_singleton: None) -> None:
    database = Database(url=pg_url, pool_min_size=0)
    first = RepositoryFactory.instance(database)
    assert RepositoryFactory.instance() is first
    assert RepositoryFactory.instance(database) is first
    assert first.db.is_open
    with pytest.raises(ConfigurationError):
        RepositoryFactory.instance(Database(url=pg_url))
    RepositoryFactory.reset()
    assert not database.is_open
    second = RepositoryFactory.instance(Database(url=pg_url, pool_min_size=0))
    assert second is not first


def test_instance_from_settings_environment(
    pg_url: str, clean_singleton: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("POOL_MIN_SIZE", "0")
    factory = RepositoryFactory.instance()
    assert factory.db.settings.url == pg_url
    health = factory.health()
    assert health.ok


def test_close_forgets_the_singleton(pg_url: str, clean_singleton: None) -> None:
    factory = RepositoryFactory.instance(Database(url=pg_url, pool_min_size=0))
    factory.close()
    assert RepositoryFactory.instance(Database(url=pg_url, pool_min_size=0)) is not factory


def test_health_reports_every_repository(factory: RepositoryFactory) -> None:
    report = factory.health()
    assert report.ok
    assert report.database.ok
    assert {check.name for check in report.repositories} == {r.name for r in factory.repositories}
    assert all(check.ok for check in report.repositories)


def test_stats_count_operations(factory: RepositoryFactory) -> None:
    for _ in range(3):
        with factory.db.connection("probe.op") as conn:
            conn.execute("SELECT 1")
    stats = {s.operation: s for s in factory.stats()}
    assert stats["probe.op"].calls == 3
    assert stats["probe.op"].failures == 0
    assert stats["probe.op"].min_ms <= stats["probe.op"].avg_ms <= stats["probe.op"].max_ms
