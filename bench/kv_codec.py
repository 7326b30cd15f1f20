"""The kv value codec: JSON text decoded with orjson (now) vs jsonb decoded by psycopg's
json loader (before migration 0011), side by side.

Starts its own throw-away PostgreSQL, fills two copies of ``kv_cache`` with the same rows —
``kv_cache`` itself (``value_json json``, the current schema) and ``kv_jsonb`` (``value_json
jsonb``, the schema before 0011) — and times, in interleaved rounds on one connection each
with prepared statements:

* ``get``: one primary-key read of one value (``KV_GET`` and decode);
* ``get_many(100)``: one ``= ANY`` read of 100 values and their decode;
* ``get_many(100)`` against the same statement whose rows are not decoded (the ceiling:
  there the "before" column is the ceiling, "now" the decoded read);
* ``decode`` / ``encode`` only (no I/O): per value, in the client.

The "before" side runs the statements as they were (``SELECT value_json, value_bytes``:
psycopg's jsonb loader, ``json.loads``) and encodes with ``canonical_json``; the "now" side
runs ``digitwin_db.sql.cache`` as it is and ``digitwin_db.kv_codec``. Prints medians per
call and the ratio before/now (> 1: now is faster), with the machine's load.

Usage:  python -m bench.kv_codec [--rounds R] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from digitwin_db import migrations
from digitwin_db.cache_codec import KV_PERSON, bigint_array, canonical_json, hash_key
from digitwin_db.kv_codec import JSON
from digitwin_db.sql import cache as q
from digitwin_db.testing import embedded_postgres

NAMESPACE = "bench"

#: A typical cached value: a small document with text, numbers (floats) and nesting.
VALUE: dict[str, Any] = {
    "user": {"id": "8d7c5a8e-0d0b-4a57-9c41-3f0c8f1a2b3c", "name": "Ada", "plan": "pro"},
    "scores": [0.125 * i for i in range(24)],
    "answer": "A cached answer of a few sentences, " * 6,
    "tokens": {"prompt": 812, "completion": 164, "total": 976},
    "ok": True,
}

# The statements as they were before migration 0011 (jsonb column, decoded by psycopg).
OLD_GET = q.KV_GET.replace("value_json::text", "value_json").replace("kv_cache", "kv_jsonb")
OLD_GET_MANY = q.KV_GET_MANY.replace("value_json::text", "value_json").replace(
    "kv_cache", "kv_jsonb"
)


def _key_hash(key: str) -> int:
    return hash_key(KV_PERSON, NAMESPACE.encode() + b"\x00" + key.encode())


def _fill(conn: psycopg.Connection[Any], rows: int) -> None:
    conn.execute("CREATE UNLOGGED TABLE kv_jsonb (LIKE kv_cache INCLUDING ALL)")
    conn.execute("ALTER TABLE kv_jsonb ALTER COLUMN value_json TYPE jsonb")
    text = JSON.encode(VALUE)[0]
    assert text is not None
    for table in ("kv_cache", "kv_jsonb"):
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} (key_hash, namespace, key, value_json, byte_size) "
                f"VALUES (%s, %s, %s, %s, %s)",
                [(_key_hash(f"k{i}"), NAMESPACE, f"k{i}", text, len(text)) for i in range(rows)],
            )
        conn.execute(f"VACUUM ANALYZE {table}")


def _timer(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round and case")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with embedded_postgres() as server:
        migrations.migrate(server.url)
        with psycopg.connect(server.url, autocommit=True) as conn:
            _fill(conn, 1000)
        with (
            psycopg.connect(server.url, autocommit=True, prepare_threshold=0) as new,
            psycopg.connect(server.url, autocommit=True, prepare_threshold=0) as old,
        ):
            one = {"key_hash": _key_hash("k7"), "namespace": NAMESPACE, "key": "k7"}
            many = {
                "key_hashes": bigint_array(_key_hash(f"k{i}") for i in range(100)),
                "namespace": NAMESPACE,
            }
            text = JSON.encode(VALUE)[0]
            assert text is not None

            def get_new() -> object:
                row = new.execute(q.KV_GET, one, binary=True).fetchone()
                assert row is not None
                return JSON.decode(row[0], row[1])

            def get_old() -> object:
                row = old.execute(OLD_GET, one, binary=True).fetchone()
                assert row is not None
                return row[0] if row[1] is None else row[1]

            def many_new() -> object:
                rows = new.execute(q.KV_GET_MANY, many, binary=True).fetchall()
                return {k: JSON.decode(vj, vb) for k, vj, vb, _ in rows}

            def many_rows_only() -> object:
                return new.execute(q.KV_GET_MANY, many, binary=True).fetchall()

            def many_old() -> object:
                rows = old.execute(OLD_GET_MANY, many, binary=True).fetchall()
                return {k: (vj if vb is None else vb) for k, vj, vb, _ in rows}

            cases: dict[str, tuple[Callable[[], object], Callable[[], object], int]] = {
                "get (1 value, round trip)": (get_old, get_new, args.calls),
                "get_many(100) (round trip)": (many_old, many_new, max(1, args.calls // 10)),
                "get_many(100) vs its rows alone (no decode: the ceiling)": (
                    many_rows_only,
                    many_new,
                    max(1, args.calls // 10),
                ),
                "decode only (client)": (
                    lambda: json.loads(text),
                    lambda: JSON.decode(text, None),
                    args.calls * 5,
                ),
                "encode only (client)": (
                    lambda: canonical_json(VALUE, "value"),
                    lambda: JSON.encode(VALUE),
                    args.calls * 5,
                ),
            }
            assert get_new() == get_old() == VALUE
            assert many_new() == many_old()
            times: dict[str, tuple[list[float], list[float]]] = {c: ([], []) for c in cases}
            for _ in range(args.rounds):
                for name, (before, now, calls) in cases.items():
                    times[name][0].append(_timer(before, calls))
                    times[name][1].append(_timer(now, calls))
    load_after = os.getloadavg()
    size = len(text.encode())
    print(
        f"kv value codec: jsonb + json.loads (before) vs json text + orjson (now); value "
        f"{size} bytes; median of {args.rounds} interleaved rounds"
    )
    print("| case | before µs/call | now µs/call | before ÷ now |")
    print("|---|---:|---:|---:|")
    for name, (before_times, now_times) in times.items():
        b = statistics.median(before_times) * 1e6
        n = statistics.median(now_times) * 1e6
        print(f"| {name} | {b:.1f} | {n:.1f} | {b / n:.2f}x |")
    print(
        f"load average (1/5/15 min): before {load_before[0]:.2f}/{load_before[1]:.2f}/"
        f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/"
        f"{load_after[2]:.2f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
