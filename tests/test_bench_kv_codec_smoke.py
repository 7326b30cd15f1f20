"""Smoke test of ``python -m bench.kv_codec``: it runs, checks that both sides read the same
values, and prints every row with numbers. No timing is asserted."""

from __future__ import annotations

import re

import pytest

from bench import kv_codec


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kv_codec_bench_runs_and_prints_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert kv_codec.main(["--rounds", "1", "--calls", "10"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", out, re.MULTILINE)
    assert [r[0] for r in rows] == [
        "get (1 value, round trip)",
        "get_many(100) (round trip)",
        "get_many(100) vs its rows alone (no decode: the ceiling)",
        "decode only (client)",
        "encode only (client)",
    ]
    assert "load average" in out
