"""Partitioned vs unpartitioned ``conversation_turns``: insert and purge at 1M rows.

    .venv/bin/python -m bench.partitions [--rows 1000000] [--json PATH]

Two tables of the same shape side by side on one throw-away server: the package's
``conversation_turns`` (monthly partitions, migration 0013) and ``turns_plain``, the
pre-0013 table (primary key ``id``, unique ``(session_id, turn_number)``, same FK and
CHECKs) plus the ``created_at`` index that DELETE-based retention needs. Both get the
same rows, spread over the last 12 months, in interleaved batches.

- bulk insert: ``--rows`` rows in batches of 100,000 (``INSERT … SELECT``), per table;
- single-row insert: 5,000 one-row inserts (prepared, autocommit) per table, interleaved
  in rounds of 500, ops/s and p50/p99;
- purge of the months older than 9 months: ``turns_plain`` the way a DELETE-based
  retention does it (batches of 5,000 ids, as the cleanup job), then the ``VACUUM`` it
  needs to make the space reusable; ``conversation_turns`` with
  ``conversation_turns_drop_partitions``.

The same for ``audit_logs`` (migration 0015), with the real thing on both sides: two
databases on the one server, ``audit_part`` migrated to the end (monthly partitions) and
``audit_plain`` migrated then rolled back to before 0015 (the plain table, its indexes,
its append-only guard and hash-chain trigger). The rows are appended in time order (an
audit trail is), spread over the last 12 months, 1,000 rows a statement (AUDIT_BATCH);
then 5,000 single-row inserts per side (the statement ``audit_logs.log()`` runs); the
purge of the months older than 9
months is the cleanup job's: ``digitwin_audit_purge`` in batches of 5,000 (then
``VACUUM``) on the plain table, ``digitwin_audit_drop_partitions`` on the partitioned one;
both chains are verified afterwards (``audit_logs.verify_chain``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.harness import percentile
from bench.servers import machine_info, postgres
from digitwin_db import Database, RepositoryFactory, migrations
from digitwin_db.sql import audit_logs as audit_sql

BATCH = 100_000
SINGLE_ROWS = 5_000
SINGLE_ROUND = 500
PURGE_BATCH = 5_000
SESSIONS = 1_000

PLAIN_TABLE = """
CREATE TABLE turns_plain (
    LIKE conversation_turns INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    CONSTRAINT turns_plain_pkey PRIMARY KEY (id),
    CONSTRAINT turns_plain_session_number_key UNIQUE (session_id, turn_number),
    FOREIGN KEY (session_id) REFERENCES conversation_sessions (id) ON DELETE CASCADE
);
-- What DELETE-based retention needs to find old rows without scanning the table.
CREATE INDEX turns_plain_created_idx ON turns_plain (created_at)
"""

# Rows g = lo..hi-1: session g % SESSIONS, turn g / SESSIONS + 1, spread over 365 days.
BULK_INSERT = """
INSERT INTO {table} (session_id, turn_number, role, content, total_ms, created_at)
SELECT s.ids[g %% {sessions} + 1], g / {sessions} + 1, 'user', 'turn ' || g, g %% 5000,
       %(base)s::timestamptz - make_interval(
           secs => ((g::bigint * 7919) %% %(rows)s)::float8 / %(rows)s * 365 * 86400)
  FROM generate_series(%(lo)s, %(hi)s - 1) AS g,
       (SELECT array_agg(id ORDER BY id) AS ids FROM conversation_sessions) AS s
"""

SINGLE_INSERT = """
INSERT INTO {table} (session_id, turn_number, role, content, total_ms)
VALUES (%s, %s, 'assistant', 'hello', 42)
"""

PURGE_BATCH_SQL = """
DELETE FROM turns_plain WHERE id IN (
    SELECT id FROM turns_plain WHERE created_at < %s LIMIT %s)
"""


# Audit rows g = lo..hi-1, in time order over the 365 days before base (the chain links
# them in insert order, as the trigger does for live rows).
AUDIT_BULK_INSERT = """
INSERT INTO audit_logs (user_id, action, resource_type, resource_id, result, ip_address,
    user_agent, metadata, created_at)
SELECT md5(g::text)::uuid, 'document.read', 'document', 'd' || g, 'success', '192.0.2.7',
       'bench/1.0', jsonb_build_object('g', g),
       %(base)s::timestamptz - make_interval(
           secs => (%(rows)s - g)::float8 / %(rows)s * 365 * 86400)
  FROM generate_series(%(lo)s, %(hi)s - 1) AS g
"""

# The cleanup job's retention call on each side, for rows older than %(cutoff)s (the days
# computed in the same transaction as the function's now(), so both cut at one instant).
AUDIT_PURGE = {
    "audit_plain": "SELECT digitwin_audit_purge("
    "extract(epoch FROM now() - %(cutoff)s::timestamptz)::float8 / 86400, %(batch)s)",
    "audit_part": "SELECT digitwin_audit_drop_partitions("
    "extract(epoch FROM now() - %(cutoff)s::timestamptz)::float8 / 86400, %(batch)s)",
}

AUDIT_MIGRATION = "0015_audit_partitions"
# Audit rows per bulk INSERT (each its own transaction). Small on purpose: the chain
# trigger updates the one head row per inserted row, and within one transaction every
# update walks the versions the transaction left before it (none is dead to it yet), so one
# INSERT of n rows costs O(n²): ~0.1 s for 1,000 rows, 3.5 s for 10,000, 39 s for 30,000.
AUDIT_BATCH = 1_000


def _uptime() -> str:
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
        return out.stdout.strip()
    except OSError:
        return f"loadavg {os.getloadavg()}"


def _timed(conn: psycopg.Connection, statement: str, params: Any = None) -> float:
    start = time.perf_counter()
    conn.execute(statement, params)
    return time.perf_counter() - start


def run(rows: int, tables: str = "both") -> dict[str, Any]:
    results: dict[str, Any] = {"rows": rows, "uptime_before": _uptime()}
    with postgres() as server:
        results["machine"] = machine_info(server.url)
        if tables in ("both", "turns"):
            results.update(_run_turns(server.url, rows))
        if tables in ("both", "audit"):
            results["audit"] = _run_audit(server.url, rows)
    results["uptime_after"] = _uptime()
    return results


def _run_turns(url: str, rows: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PLAIN_TABLE)
        conn.execute("INSERT INTO users (email, name) VALUES ('bench@example.com', 'Bench')")
        conn.execute(
            "INSERT INTO conversation_sessions (user_id) "
            "SELECT id FROM users, generate_series(1, %s)",
            (SESSIONS,),
        )
        # A partition for each of the last 12 months (migrate made this one and 3 ahead).
        conn.execute(
            "SELECT conversation_turns_create_partition(now() - make_interval(months => m)) "
            "FROM generate_series(1, 12) AS m"
        )
        tables = ["turns_plain", "conversation_turns"]

        # -- bulk insert, interleaved batch by batch (order rotates)
        bulk = dict.fromkeys(tables, 0.0)
        # One timestamp for both tables, so both hold exactly the same rows.
        base_row = conn.execute("SELECT now()").fetchone()
        assert base_row is not None
        for i, lo in enumerate(range(0, rows, BATCH)):
            hi = min(rows, lo + BATCH)
            for table in tables if i % 2 == 0 else tables[::-1]:
                statement = BULK_INSERT.format(table=table, sessions=SESSIONS)
                params = {"lo": lo, "hi": hi, "rows": rows, "base": base_row[0]}
                bulk[table] += _timed(conn, statement, params)
        conn.execute("ANALYZE turns_plain")
        conn.execute("ANALYZE conversation_turns")
        results["bulk_insert"] = {
            t: {"seconds": round(s, 2), "rows_per_s": round(rows / s)} for t, s in bulk.items()
        }

        # -- single-row inserts (the add_turn shape), interleaved in rounds
        session_ids = [r[0] for r in conn.execute("SELECT id FROM conversation_sessions")]
        turn = rows // SESSIONS + 10

        def insert_turn(table: str) -> Callable[[int], object]:
            statement = SINGLE_INSERT.format(table=table)
            return lambda i: conn.execute(
                statement, (session_ids[i % SINGLE_ROUND % SESSIONS], turn + i), prepare=True
            )

        results["single_insert"] = _single_inserts({t: insert_turn(t) for t in tables})

        # -- purge every month older than 9 months
        cutoff_row = conn.execute(
            "SELECT date_trunc('month', now() AT TIME ZONE 'UTC' - interval '9 months') "
            "AT TIME ZONE 'UTC'"
        ).fetchone()
        assert cutoff_row is not None
        cutoff = cutoff_row[0]
        to_purge = conn.execute(
            "SELECT count(*) FROM turns_plain WHERE created_at < %s", (cutoff,)
        ).fetchone()
        start = time.perf_counter()
        removed = 0
        while True:
            cur = conn.execute(PURGE_BATCH_SQL, (cutoff, PURGE_BATCH))
            removed += cur.rowcount
            if cur.rowcount < PURGE_BATCH:
                break
        delete_s = time.perf_counter() - start
        conn.execute("SELECT pg_stat_force_next_flush()")
        dead = conn.execute(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'turns_plain'"
        ).fetchone()
        vacuum_s = _timed(conn, "VACUUM turns_plain")
        start = time.perf_counter()
        dropped_row = conn.execute(
            "SELECT conversation_turns_drop_partitions(%s)", (cutoff,)
        ).fetchone()
        drop_s = time.perf_counter() - start
        assert dropped_row is not None and to_purge is not None
        assert removed == to_purge[0] == dropped_row[0], (removed, to_purge, dropped_row)
        results["purge"] = {
            "rows": removed,
            "turns_plain": {
                "delete_seconds": round(delete_s, 2),
                "dead_tuples_left": int(dead[0]) if dead else None,
                "vacuum_seconds": round(vacuum_s, 2),
            },
            "conversation_turns": {"drop_partitions_seconds": round(drop_s, 3)},
        }
    return results


def _single_inserts(insert: dict[str, Callable[[int], object]]) -> dict[str, Any]:
    """SINGLE_ROWS one-row inserts per table (``insert[table](i)``, i = 0, 1, …), tables
    interleaved in rounds of SINGLE_ROUND (order alternating): ops/s, p50 and p99."""
    tables = list(insert)
    latencies: dict[str, list[float]] = {t: [] for t in tables}
    wall = dict.fromkeys(tables, 0.0)
    for r in range(SINGLE_ROWS // SINGLE_ROUND):
        for t in tables if r % 2 == 0 else tables[::-1]:
            start_round = time.perf_counter()
            for k in range(SINGLE_ROUND):
                call_ns = time.perf_counter_ns()
                insert[t](r * SINGLE_ROUND + k)
                latencies[t].append((time.perf_counter_ns() - call_ns) / 1e6)
            wall[t] += time.perf_counter() - start_round
    single: dict[str, Any] = {}
    for t in tables:
        ordered = sorted(latencies[t])
        single[t] = {
            "ops_per_s": round(len(ordered) / wall[t]),
            "p50_ms": round(percentile(ordered, 50), 3),
            "p99_ms": round(percentile(ordered, 99), 3),
        }
    return single


def _database(url: str, name: str) -> str:
    """A new database ``name`` on the server of ``url``, migrated; its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    other = url.rsplit("/", 1)[0] + "/" + name
    migrations.migrate(other)
    return other


def _run_audit(url: str, rows: int) -> dict[str, Any]:
    urls = {
        "audit_plain": _database(url, "audit_plain"),
        "audit_part": _database(url, "audit_part"),
    }
    while any(s.applied for s in migrations.status(urls["audit_plain"]) if s.id == AUDIT_MIGRATION):
        migrations.rollback(urls["audit_plain"])
    tables = list(urls)
    conns = {t: psycopg.connect(u, autocommit=True) for t, u in urls.items()}
    try:
        kinds = {
            t: c.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_logs'").fetchone()
            for t, c in conns.items()
        }
        assert kinds == {"audit_plain": ("r",), "audit_part": ("p",)}, kinds
        # A partition for each of the last 12 months (migrate made this one and 3 ahead).
        conns["audit_part"].execute(
            "SELECT audit_logs_create_partition(now() - make_interval(months => m)) "
            "FROM generate_series(1, 12) AS m"
        )
        base_row = conns["audit_part"].execute("SELECT now()").fetchone()
        assert base_row is not None

        # -- bulk insert (chain trigger on both), interleaved batch by batch
        bulk = dict.fromkeys(tables, 0.0)
        for i, lo in enumerate(range(0, rows, AUDIT_BATCH)):
            hi = min(rows, lo + AUDIT_BATCH)
            for t in tables if i % 2 == 0 else tables[::-1]:
                params = {"lo": lo, "hi": hi, "rows": rows, "base": base_row[0]}
                bulk[t] += _timed(conns[t], AUDIT_BULK_INSERT, params)
        for c in conns.values():
            c.execute("ANALYZE audit_logs")
        results: dict[str, Any] = {
            "bulk_insert": {
                t: {"seconds": round(s, 2), "rows_per_s": round(rows / s)} for t, s in bulk.items()
            }
        }

        # -- single-row inserts: the statement audit_logs.log() runs, interleaved in rounds
        params = {
            "user_id": None,
            "action": "user.login",
            "resource_type": "session",
            "resource_id": "s1",
            "result": "success",
            "ip_address": "198.51.100.4",
            "user_agent": "bench/1.0",
            "metadata": Jsonb({"k": 1}),
        }

        def insert_entry(c: psycopg.Connection) -> Callable[[int], object]:
            return lambda _i: c.execute(audit_sql.INSERT, params, prepare=True)

        results["single_insert"] = _single_inserts({t: insert_entry(conns[t]) for t in tables})

        # -- retention: every month older than 9 months, the cleanup job's way on each side
        cutoff_row = (
            conns["audit_part"]
            .execute(
                "SELECT date_trunc('month', now() AT TIME ZONE 'UTC' - interval '9 months') "
                "AT TIME ZONE 'UTC'"
            )
            .fetchone()
        )
        assert cutoff_row is not None
        cutoff = cutoff_row[0]
        purge: dict[str, Any] = {}
        removed: dict[str, int] = {}
        for t in tables:
            start = time.perf_counter()
            removed[t] = 0
            while True:
                row = (
                    conns[t]
                    .execute(AUDIT_PURGE[t], {"cutoff": cutoff, "batch": PURGE_BATCH})
                    .fetchone()
                )
                count = int(row[0]) if row else 0
                removed[t] += count
                if count < PURGE_BATCH:
                    break
            purge[t] = {"seconds": round(time.perf_counter() - start, 3)}
        assert removed["audit_plain"] == removed["audit_part"] > 0, removed
        plain = conns["audit_plain"]
        plain.execute("SELECT pg_stat_force_next_flush()")
        dead = plain.execute(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'audit_logs'"
        ).fetchone()
        purge["audit_plain"]["dead_tuples_left"] = int(dead[0]) if dead else None
        purge["audit_plain"]["vacuum_seconds"] = round(_timed(plain, "VACUUM audit_logs"), 2)
        purge["rows"] = removed["audit_part"]
        # Both chains still verify after their purge (the anchors link the survivors).
        for t in tables:
            with Database(url=urls[t], pool_min_size=0) as db:
                factory = RepositoryFactory(db)
                start = time.perf_counter()
                report = factory.audit_logs.verify_chain()
                purge[t]["verify_seconds"] = round(time.perf_counter() - start, 2)
                factory.close()
            assert report.ok and report.rows_checked == rows + SINGLE_ROWS - purge["rows"], report
            purge[t]["anchors"] = report.anchors
        results["purge"] = purge
        return results
    finally:
        for c in conns.values():
            c.close()


def render(results: dict[str, Any]) -> str:
    lines = [
        f"rows: {results['rows']:,}; before: {results['uptime_before']}",
        f"after: {results['uptime_after']}",
    ]
    if "bulk_insert" in results:
        lines += ["", *_render_turns(results)]
    if "audit" in results:
        lines += ["", *_render_audit(results["rows"], results["audit"])]
    return "\n".join(lines)


def _render_audit(rows: int, audit: dict[str, Any]) -> list[str]:
    bulk, single, purge = audit["bulk_insert"], audit["single_insert"], audit["purge"]
    plain, part = purge["audit_plain"], purge["audit_part"]
    plain_total = plain["seconds"] + plain["vacuum_seconds"]
    return [
        "| measurement | unpartitioned `audit_logs` | partitioned `audit_logs` "
        "| ratio (partitioned ÷ unpartitioned) |",
        "|---|---|---|---|",
        f"| bulk insert {rows:,} rows, {AUDIT_BATCH:,} a statement, chain trigger on (rows/s) | "
        f"{bulk['audit_plain']['rows_per_s']:,} | {bulk['audit_part']['rows_per_s']:,} | "
        f"{bulk['audit_part']['rows_per_s'] / bulk['audit_plain']['rows_per_s']:.2f} |",
        f"| single-row insert (ops/s) | {single['audit_plain']['ops_per_s']:,} | "
        f"{single['audit_part']['ops_per_s']:,} | "
        f"{single['audit_part']['ops_per_s'] / single['audit_plain']['ops_per_s']:.2f} |",
        f"| single-row insert p50 / p99 (ms) | {single['audit_plain']['p50_ms']} / "
        f"{single['audit_plain']['p99_ms']} | {single['audit_part']['p50_ms']} / "
        f"{single['audit_part']['p99_ms']} | |",
        f"| purge months older than 9 months ({purge['rows']:,} rows) | "
        f"`digitwin_audit_purge` {plain['seconds']} s + VACUUM {plain['vacuum_seconds']} s "
        f"({plain['dead_tuples_left']:,} dead tuples until then) | "
        f"`digitwin_audit_drop_partitions` {part['seconds']} s | "
        f"{plain_total / max(part['seconds'], 1e-6):.0f}x faster |",
        f"| chain verified after the purge (s, anchors) | {plain['verify_seconds']} s, "
        f"{plain['anchors']} | {part['verify_seconds']} s, {part['anchors']} | |",
    ]


def _render_turns(results: dict[str, Any]) -> list[str]:
    bulk, single, purge = results["bulk_insert"], results["single_insert"], results["purge"]
    plain_total = purge["turns_plain"]["delete_seconds"] + purge["turns_plain"]["vacuum_seconds"]
    return [
        "| measurement | unpartitioned (`turns_plain`) | partitioned (`conversation_turns`) "
        "| ratio (partitioned ÷ unpartitioned) |",
        "|---|---|---|---|",
        f"| bulk insert {results['rows']:,} rows (rows/s) | "
        f"{bulk['turns_plain']['rows_per_s']:,} | {bulk['conversation_turns']['rows_per_s']:,} | "
        f"{bulk['conversation_turns']['rows_per_s'] / bulk['turns_plain']['rows_per_s']:.2f} |",
        f"| single-row insert (ops/s) | {single['turns_plain']['ops_per_s']:,} | "
        f"{single['conversation_turns']['ops_per_s']:,} | "
        f"{single['conversation_turns']['ops_per_s'] / single['turns_plain']['ops_per_s']:.2f} |",
        f"| single-row insert p50 / p99 (ms) | {single['turns_plain']['p50_ms']} / "
        f"{single['turns_plain']['p99_ms']} | {single['conversation_turns']['p50_ms']} / "
        f"{single['conversation_turns']['p99_ms']} | |",
        f"| purge months older than 9 months ({purge['rows']:,} rows) | DELETE "
        f"{purge['turns_plain']['delete_seconds']} s + VACUUM "
        f"{purge['turns_plain']['vacuum_seconds']} s ({purge['turns_plain']['dead_tuples_left']:,}"
        f" dead tuples until then) | drop partitions "
        f"{purge['conversation_turns']['drop_partitions_seconds']} s | "
        f"{plain_total / max(purge['conversation_turns']['drop_partitions_seconds'], 1e-6):.0f}"
        "x faster |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per table")
    parser.add_argument(
        "--tables", choices=("both", "turns", "audit"), default="both", help="what to measure"
    )
    parser.add_argument(
        "--json", type=Path, default=Path("bench/results/partitions.json"), help="output file"
    )
    args = parser.parse_args(argv)
    if args.rows < SESSIONS:
        parser.error(f"--rows must be at least {SESSIONS}")
    results = run(args.rows, args.tables)
    print(render(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
