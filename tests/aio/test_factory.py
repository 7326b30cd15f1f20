"""RepositoryFactory: the process-wide singleton, health and statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import ConfigurationError


@pytest.fixture
async def clean_singleton() -> AsyncIterator[None]:
    await AsyncRepositoryFactory.reset()
    yield
    await AsyncRepositoryFactory.reset()


async def test_instance_is_a_singleton(pg_url: str, clean_singleton: None) -> None:
    database = AsyncDatabase(url=pg_url, pool_min_size=0)
    first = await AsyncRepositoryFactory.instance(database)
    assert await AsyncRepositoryFactory.instance() is first
    assert await AsyncRepositoryFactory.instance(database) is first
    assert first.db.is_open
    with pytest.raises(ConfigurationError):
        await AsyncRepositoryFactory.instance(AsyncDatabase(url=pg_url))
    await AsyncRepositoryFactory.reset()
    assert not database.is_open
    second = await AsyncRepositoryFactory.instance(AsyncDatabase(url=pg_url, pool_min_size=0))
    assert second is not first


async def test_instance_from_settings_environment(
    pg_url: str, clean_singleton: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("POOL_MIN_SIZE", "0")
    factory = await AsyncRepositoryFactory.instance()
    assert factory.db.settings.url == pg_url
    health = await factory.health()
    assert health.ok


async def test_close_forgets_the_singleton(pg_url: str, clean_singleton: None) -> None:
    factory = await AsyncRepositoryFactory.instance(AsyncDatabase(url=pg_url, pool_min_size=0))
    await factory.close()
    assert (
        await AsyncRepositoryFactory.instance(AsyncDatabase(url=pg_url, pool_min_size=0))
        is not factory
    )


async def test_health_reports_every_repository(factory: AsyncRepositoryFactory) -> None:
    report = await factory.health()
    assert report.ok
    assert report.database.ok
    assert {check.name for check in report.repositories} == {r.name for r in factory.repositories}
    assert all(check.ok for check in report.repositories)


async def test_stats_count_operations(factory: AsyncRepositoryFactory) -> None:
    for _ in range(3):
        async with factory.db.connection("probe.op") as conn:
            await conn.execute("SELECT 1")
    stats = {s.operation: s for s in factory.stats()}
    assert stats["probe.op"].calls == 3
    assert stats["probe.op"].failures == 0
    assert stats["probe.op"].min_ms <= stats["probe.op"].avg_ms <= stats["probe.op"].max_ms
