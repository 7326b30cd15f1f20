"""Write throughput of a cache table: UNLOGGED vs logged (synchronous_commit on / off).

The measurement behind the durability choice of the cache tables (DATABASE-ARCHITECTURE.md,
"Durability per table"). Starts its own throw-away PostgreSQL with production durability
(fsync on, full_page_writes on, synchronous_commit on) and runs the cache's real kv upsert
(``digitwin_db.sql.cache.KV_SET``) against two copies of ``kv_cache``, one UNLOGGED and one
logged, from 1 and from 4 connections in autocommit mode.

Usage:  python -m bench.cache_durability [--writes N] [--rounds R]
"""

from __future__ import annotations

import argparse
import threading
import time
from hashlib import blake2b

import psycopg

from digitwin_db import migrations
from digitwin_db.sql import cache as q
from digitwin_db.testing import embedded_postgres

DURABLE = "-c fsync=on -c full_page_writes=on -c synchronous_commit=on"


def _hash(key: str) -> int:
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def _writer(url: str, table: str, sync_commit: str, keys: range, tag: str) -> None:
    with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
        conn.execute(f"SET synchronous_commit = {sync_commit}")
        statement = q.KV_SET.replace("kv_cache", table)
        for i in keys:
            key = f"{tag}:{i}"
            conn.execute(
                statement,  # table swapped for the measurement only
                {
                    "key_hash": _hash(key),
                    "namespace": "bench",
                    "key": key,
                    "value_json": '{"v": 1, "text": "a typical small cached value"}',
                    "value_bytes": None,
                    "tags": [],
                    "byte_size": 60,
                    "ttl": 3600.0,
                },
            )


def _measure(url: str, table: str, sync_commit: str, writes: int, threads: int) -> float:
    per = writes // threads
    workers = [
        threading.Thread(
            target=_writer,
            args=(url, table, sync_commit, range(per), f"{table}-{sync_commit}-{threads}-{n}"),
        )
        for n in range(threads)
    ]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writes", type=int, default=4000, help="upserts per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every case")
    args = parser.parse_args(argv)
    with embedded_postgres(extra_settings=DURABLE) as server:
        migrations.migrate(server.url)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kv_logged (LIKE kv_cache INCLUDING ALL)")
            row = conn.execute("SHOW fsync").fetchone()
            print(f"server: fsync={row[0] if row else '?'}, synchronous_commit=on by default")
        cases = [
            ("kv_cache", "UNLOGGED", "on"),
            ("kv_logged", "logged", "on"),
            ("kv_logged", "logged", "off"),
        ]
        # The machine may be busy: alternate the cases over several rounds and report the
        # best and the median of each.
        results: dict[tuple[str, str, int], list[float]] = {}
        for _ in range(args.rounds):
            for table, _label, sync_commit in cases:
                for threads in (1, 4):
                    rate = _measure(server.url, table, sync_commit, args.writes, threads)
                    results.setdefault((table, sync_commit, threads), []).append(rate)
        print(f"writes/s, best (median) of {args.rounds} rounds of {args.writes} upserts")
        print(f"{'table':10} {'synchronous_commit':>18} {'1 connection':>20} {'4 connections':>20}")
        for table, label, sync_commit in cases:
            cells = []
            for threads in (1, 4):
                rates = sorted(results[(table, sync_commit, threads)])
                cells.append(f"{rates[-1]:8.0f} ({rates[len(rates) // 2]:6.0f})")
            print(f"{label:10} {sync_commit:>18} {cells[0]:>20} {cells[1]:>20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
