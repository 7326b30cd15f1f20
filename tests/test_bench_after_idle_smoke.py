"""Smoke test of ``python -m bench.after_idle``: it runs, every PostgreSQL contender's server
reading falls inside its call (the bench raises otherwise), and it prints every row with
numbers. No timing is asserted."""

from __future__ import annotations

import re

import pytest

from bench import after_idle


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_after_idle_bench_runs_and_prints_every_contender(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert after_idle.main(["--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", out, re.M)
    names = [r[0] for r in rows]
    assert names[:2] == [after_idle.BARE, "limits storage (digitwin-db)"]
    assert names[-2:] == [after_idle.BARE + " (asyncio)", "limits async storage (digitwin-db)"]
    assert len(names) in (4, 5)  # plus limits on Redis when redis-server is installed
    assert "load before" in out and "load after" in out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_after_idle_bench_rejects_a_reading_outside_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = after_idle._reading_from_ttl
    monkeypatch.setattr(after_idle, "_reading_from_ttl", lambda ttl: real(ttl) + 0.03)
    with pytest.raises(RuntimeError, match="outside the call"):
        after_idle.main(["--rounds", "1"])
