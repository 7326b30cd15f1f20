"""Near-cache coherence across two real processes (SPEC §2.10), sync and asyncio readers.

A writer process changes keys through every write path (tests/near_workers.py) and plain
SQL, with a fence notification after each operation; a reader process with the near cache
on reads at random. Checked: no read returns a value older than the state after the last
operation whose fence (hence whose notifications) the reader had received when the read
started. Also: 16 threads sharing one tier under concurrent rewrites.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from typing import Any

import psycopg
import pytest

from digitwin_db import Database, RepositoryFactory
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


def test_threads_share_one_tier_and_all_see_the_last_write(pg_url: str) -> None:
    """16 threads read a few hot keys through one near cache while plain SQL rewrites them
    200 times; once the last write's fence is applied, every thread reads the last value
    of every key, and the tier's bookkeeping is consistent."""
    db = Database(url=pg_url, near_cache=True, pool_min_size=2, pool_max_size=20)
    db.open()
    factory = RepositoryFactory(db)
    near = factory.cache.near
    assert near is not None and near.listener.wait_listening(30)
    keys = [f"t{i}" for i in range(4)]
    kv = factory.cache.kv
    kv.set_many(dict.fromkeys(keys, -1))
    done = threading.Event()
    fence = threading.Event()
    near.listener.add_observer(lambda p: fence.set() if p == "!threads-done" else None)
    errors: list[BaseException] = []
    last_reads: dict[int, dict[str, object]] = {}

    def reader(n: int) -> None:
        try:
            while not done.is_set():
                for key in keys:
                    kv.get(key)
            fence.wait(30)
            last_reads[n] = {key: kv.get(key) for key in keys}
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for i in range(200):
                conn.execute(
                    "UPDATE kv_cache SET value_json = to_jsonb(%s::int) WHERE key = %s",
                    (i, keys[i % len(keys)]),
                )
            done.set()
            conn.execute("SELECT pg_notify('digitwin_cache', '!threads-done')")
        for thread in threads:
            thread.join(60)
        assert errors == []
        expected = {key: 196 + k for k, key in enumerate(keys)}
        assert last_reads == dict.fromkeys(range(16), expected)
        stats = factory.cache.stats().kv
        assert stats.near_hits > 0 and stats.near_invalidations > 0
        assert near.tier.bytes == sum(e.size for e in near.tier._entries.values())
    finally:
        factory.close()
