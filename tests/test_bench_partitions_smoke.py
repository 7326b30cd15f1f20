"""Smoke test of the partition benchmark: ``python -m bench.partitions --rows 5000`` runs
and writes every figure (no timing asserted: speed is measured in bench/, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_partition_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "partitions.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.partitions", "--rows", "5000", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| bulk insert 5,000 rows (rows/s) |" in proc.stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["rows"] == 5000
    assert "load average" in document["uptime_before"]
    for table in ("turns_plain", "conversation_turns"):
        assert document["bulk_insert"][table]["rows_per_s"] > 0
        assert document["single_insert"][table]["ops_per_s"] > 0
    # Both purges removed the same rows (the benchmark itself asserts it); the DELETE left
    # dead tuples behind, the partition drop none.
    assert document["purge"]["rows"] > 0
    assert document["purge"]["turns_plain"]["dead_tuples_left"] > 0
    # audit_logs (migration 0015): the same figures, and both chains verified after the purge.
    audit = document["audit"]
    for side in ("audit_plain", "audit_part"):
        assert audit["bulk_insert"][side]["rows_per_s"] > 0
        assert audit["single_insert"][side]["ops_per_s"] > 0
        assert audit["purge"][side]["anchors"] == 1
    assert audit["purge"]["rows"] > 0
    assert audit["purge"]["audit_plain"]["dead_tuples_left"] > 0
    assert "| bulk insert 5,000 rows, 1,000 a statement, chain trigger on (rows/s) |" in proc.stdout
