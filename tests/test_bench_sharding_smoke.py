"""Smoke test of the sharding benchmark: ``python -m bench.sharding`` with few keys runs
and writes every figure (no timing asserted: speed is measured in bench/, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_sharding_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "sharding.json"
    argv = ["--keys", "1000", "--rounds", "1", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sharding", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| kv.get_many(1000) | asyncio |" in proc.stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    assert "load average" in document["uptime_before"]
    figures = document["figures"]
    assert len(figures) == 11
    for api, sizes in (("sync", (1, 100, 1000)), ("asyncio", (100, 1000))):
        for size in sizes:
            for setup in ("one server", "3 shards"):
                assert figures[f"{api} | {setup} | {size}"]["median_ms_per_call"] > 0
    assert figures["sync | 3 shards, one shard's keys | 1"]["median_ms_per_call"] > 0
