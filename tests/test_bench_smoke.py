"""Smoke test of the benchmark suite: ``python -m bench --quick`` runs every scenario.

No timing is asserted (speed is measured in bench/, never in tests): only that the run
exits 0 and its JSON holds every scenario with numeric figures for digitwin-db.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenarios import SCENARIO_KEYS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_benchmark_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| scenario | contender |" in proc.stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["mode"] == "quick"
    assert document["machine"]["nproc"] >= 1
    scenarios = document["scenarios"]
    assert set(SCENARIO_KEYS) <= set(scenarios)
    for key in SCENARIO_KEYS:
        scenario = scenarios[key]
        # digitwin-db itself is never skipped; a baseline may be (e.g. no redis-server).
        assert scenario["subject"] in scenario["results"], (key, scenario["skipped"])
        for name, figures in scenario["results"].items():
            for field in ("ops_per_s", "p50_us", "p99_us"):
                value = figures[field]
                assert isinstance(value, int | float), (key, name, field)
                assert math.isfinite(value) and value > 0, (key, name, field, value)
        for name, reason in scenario["skipped"].items():
            assert isinstance(reason, str) and reason, (key, name)
        for name, ratio in scenario["ratios"].items():
            assert ratio is None or isinstance(ratio, int | float), (key, name)
            if name in scenario["results"]:
                assert isinstance(ratio, int | float), (key, name)
        for target in scenario["targets"]:
            assert target["met"] in (True, False, None)
