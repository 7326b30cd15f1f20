"""conftest.py for limits' own test-suite run against digitwin-db's storage.

scripts/peer_suites.sh installs this file as the suite's ``tests/conftest.py``, in place of
limits' own, which only starts the other backends (Redis, memcached, MongoDB, Valkey) in
Docker. It starts a real embedded PostgreSQL before collection (the storage lists of
``tests/utils.py`` need its URL when they are built), applies the package's migrations and
provides the ``postgresql`` fixture that the patched storage lists name, as limits' lists name
``redis_basic`` or ``mongodb``: it empties the storage's tables before each test.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import psycopg
import pytest

import digitwin_db.contrib.limits  # noqa: F401  (registers postgresql:// and async+postgresql://)
from digitwin_db import migrations
from digitwin_db.contrib.limits_shared import SharedDatabases
from digitwin_db.testing import embedded_postgres

URL_VARIABLE = "DIGITWIN_PEER_PG_URL"
_stack = contextlib.ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    server = _stack.enter_context(embedded_postgres())
    migrations.migrate(server.url)
    os.environ[URL_VARIABLE] = server.url


def pytest_unconfigure(config: pytest.Config) -> None:
    SharedDatabases.close_all()
    _stack.close()


@pytest.fixture
def postgresql() -> str:
    """The server's URL, with the limits tables emptied (as ``redis_basic`` flushes Redis)."""
    url = os.environ[URL_VARIABLE]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE limits_counters, limits_windows, limits_sliding")
    return url


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"digitwin-db peer run: limits' suite against {os.environ.get(URL_VARIABLE, '?')}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    """Fail loudly if the patch did not reach the storage lists (0 PostgreSQL tests)."""
    if not any("postgresql" in item.keywords for item in items):
        raise pytest.UsageError("no test runs against the postgresql storage: patch failed")
