"""digitwin_db.contrib.dogpile against dogpile.cache's own backend and mutex suites
(dogpile.testing.fixtures) on a real server, plus the mutex across processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
from dogpile.cache import make_region
from dogpile.testing.fixtures import _GenericBackendTestSuite, _GenericMutexTestSuite

import digitwin_db.contrib.dogpile  # registers "digitwin_db"
from digitwin_db import ConfigurationError


class _Configured:
    """The suites read class-level config_args: fill in the session server's URL."""

    backend = "digitwin_db"
    config_args: dict[str, Any] = {"arguments": {"url": "", "namespace": "dogpile-test"}}

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _url(cls, pg_url: str) -> Iterator[None]:
        cls.config_args = {"arguments": {"url": pg_url, "namespace": "dogpile-test"}}
        _GenericBackendTestSuite.setup_class.__func__(cls)  # type: ignore[attr-defined]
        yield
        digitwin_db.contrib.dogpile.close_pools()  # before the session's server stops

    @classmethod
    def setup_class(cls) -> None:
        """Deferred to the ``_url`` fixture (the URL is not known at class set-up)."""


class TestDogpileBackend(_Configured, _GenericBackendTestSuite):
    pass


class TestDogpileMutex(_Configured, _GenericMutexTestSuite):
    pass


def test_backend_needs_a_url_or_factory() -> None:
    with pytest.raises(ConfigurationError):
        make_region().configure("digitwin_db", arguments={})
    with pytest.raises(ConfigurationError):
        make_region().configure("digitwin_db", arguments={"factory": object()})


def _hold_and_report(url: str, start: Any, out: Any) -> None:
    region = make_region().configure("digitwin_db", arguments={"url": url})
    mutex = region.backend.get_mutex("shared")
    start.wait()
    out.put(mutex.acquire(False))


@pytest.mark.slow
def test_mutex_is_exclusive_across_two_processes(pg_url: str) -> None:
    assert digitwin_db.contrib.dogpile.DigitwinDBBackend is not None
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_hold_and_report, args=(pg_url, start, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    results = sorted(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    assert results == [False, True]
