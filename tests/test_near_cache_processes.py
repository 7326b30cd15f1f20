"""Near-cache coherence across two real processes (SPEC §2.10), sync and asyncio readers.

A writer process changes keys through every write path (tests/near_workers.py) and plain
SQL, with a fence notification after each operation; a reader process with the near cache
on reads at random. Checked: no read returns a value older than the state after the last
operation whose fence (hence whose notifications) the reader had received when the read
started.
"""

from __future__ import annotations

import json
import multiprocessing
from typing import Any

import pytest

from digitwin_db.testing import EmbeddedPostgres
from tests import near_workers

OPS = 300


def _stale_reads(snapshots: list[dict[str, Any]], reads: list[tuple[str, int, Any]]) -> list[str]:
    """Reads whose value is not the state of their key after the fenced operation or a
    later one. snapshots[0] is the state before operation 0; snapshots[i + 1] after it."""
    last_seen: dict[tuple[str, str], int] = {}
    for index, state in enumerate(snapshots):
        for name, value in state.items():
            last_seen[(name, json.dumps(value, sort_keys=True))] = index
    stale = []
    for name, fence, value in reads:
        first_allowed = fence + 1
        latest = last_seen.get((name, json.dumps(value, sort_keys=True)), -1)
        if latest < first_allowed:
            stale.append(f"{name} read {value!r} after fence {fence} (last state {latest})")
    return stale


@pytest.mark.slow
@pytest.mark.parametrize("api", ["sync", "async"])
def test_reader_never_sees_a_value_older_than_its_last_notification(
    pg_server: EmbeddedPostgres, api: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    writer_out, reader_out = ctx.Queue(), ctx.Queue()
    target = near_workers.reader if api == "sync" else near_workers.reader_async
    reader = ctx.Process(target=target, args=(pg_server.url, OPS, ready, done, reader_out))
    writer = ctx.Process(
        target=near_workers.writer, args=(pg_server.url, OPS, 11, ready, done, writer_out)
    )
    reader.start()
    writer.start()
    try:
        snapshots, ops = writer_out.get(timeout=240)
        reads, stats = reader_out.get(timeout=240)
    finally:
        for process in (writer, reader):
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert (writer.exitcode, reader.exitcode) == (0, 0)
    assert len(snapshots) == OPS + 1
    # Every write path was exercised (30 kinds, 300 random draws).
    assert len(set(ops)) == 30
    stale = _stale_reads(snapshots, reads)
    assert stale == [], f"{len(stale)} stale reads of {len(reads)}: {stale[:5]}"
    # Not vacuous: the reader served from memory and dropped copies on notifications,
    # and read throughout the history.
    near_hits = sum(s["near_hits"] for s in stats.values())
    invalidations = sum(s["near_invalidations"] for s in stats.values())
    assert len(reads) >= OPS, len(reads)
    assert near_hits >= len(reads) // 10, (len(reads), stats)
    assert invalidations >= 20, stats
    fences = {fence for _, fence, _ in reads}
    assert len(fences) > OPS // 2
