"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from digitwin_db.contrib.limits_shared import SharedDatabases


@pytest.fixture(autouse=True)
def _close_shared_pools() -> Iterator[None]:
    """Close the pools that limits storages built by a test (Flask-Limiter, slowapi and
    ``storage_from_string`` share one per URL and process) when the test ends, so that no
    test leaves connections to the session's server behind."""
    yield
    SharedDatabases.close_all()
