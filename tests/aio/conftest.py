"""Fixtures of the async tests; tests/sync/conftest.py is generated from this file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[AsyncDatabase]:
    database = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=20, pool_timeout=10.0)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def factory(db: AsyncDatabase) -> AsyncIterator[AsyncRepositoryFactory]:
    repositories = AsyncRepositoryFactory(db)
    yield repositories
    await repositories.close()
