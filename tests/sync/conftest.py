# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/conftest.py
"""Fixtures of the async tests; tests/sync/conftest.py is generated from this file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(url=pg_url, pool_min_size=1, pool_max_size=20, pool_timeout=10.0)
    database.open()
    yield database
    database.close()


@pytest.fixture
def factory(db: Database) -> Iterator[RepositoryFactory]:
    repositories = RepositoryFactory(db)
    yield repositories
    repositories.close()
