"""The gate of limits' two timing tests in scripts/peer/limits_conftest.py: they run when this
machine's first round trip after a pause leaves room for their 30 ms, and are skipped, with
the measured figure as the reason, when it does not (see that module's docstring)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import pytest

GATE = Path(__file__).resolve().parents[2] / "scripts" / "peer" / "limits_conftest.py"


@pytest.fixture(scope="module")
def gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("limits_peer_conftest", GATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timing_tests_run_within_the_limit_and_are_skipped_beyond_it(gate: ModuleType) -> None:
    limit = gate.PAUSE_ROUND_TRIP_LIMIT_MS
    assert gate.timing_skip_reason(limit) is None
    assert gate.timing_skip_reason(limit / 2) is None
    reason = gate.timing_skip_reason(30.04)
    assert reason is not None
    assert "30.0 ms" in reason and f"limit {limit:g} ms" in reason and "Redis" in reason
    assert gate.TIMING_TESTS == ("test_sliding_window_counter_previous_window",)


def test_round_trip_after_pause_sleeps_to_a_second_and_times_one_call(
    gate: ModuleType, pg_url: str
) -> None:
    start = time.time()
    measured = gate.round_trip_after_pause(pg_url, rounds=2)
    elapsed = time.time() - start
    assert int(time.time()) >= int(start) + 2  # two pauses, each to the next whole second
    assert 0.0 < measured < 1000.0 * elapsed
