"""``python -m bench``: run the benchmark suite and print the results table.

Starts its own PostgreSQL (embedded, migrated) and, when installed, a local ``redis-server``;
both are stopped at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import baselines
from bench.results import Scenario, render_table, write_json
from bench.scenarios import SCENARIO_KEYS, SCENARIOS, Config, Env
from bench.servers import machine_info, postgres, redis_server

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="digitwin-db beside bare psycopg, Redis, limits and pyrate-limiter.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, a few seconds (the smoke test)"
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds (more, shorter rounds resist a loaded machine better)",
    )
    parser.add_argument("--ops", type=int, help="calls per round of the micro scenarios")
    parser.add_argument("--many-ops", type=int, help="get_many calls per round")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario group (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config.quick() if args.quick else Config.full()
    overrides = {"rounds": args.rounds, "ops": args.ops, "many_ops": args.many_ops}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v})
    groups = args.only or list(SCENARIOS)
    scenarios: list[Scenario] = []
    failed: list[str] = []
    started = time.perf_counter()
    with postgres() as pg, redis_server() as redis:
        baselines.create_bare_tables(pg.url)
        env = Env(pg_url=pg.url, redis_url=redis.url if redis else None, config=config)
        header: dict[str, Any] = {
            "mode": config.mode,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(pg.url),
            "redis_version": redis.version if redis else None,
            "config": config.__dict__,
        }
        for group in groups:
            t0 = time.perf_counter()
            print(f"==> {group}", file=sys.stderr, flush=True)
            try:
                scenarios.extend(SCENARIOS[group](env))
            except Exception:
                traceback.print_exc()
                failed.append(group)
            print(f"    {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    header["seconds"] = round(time.perf_counter() - started, 1)
    header["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    header["failed_groups"] = failed
    print(render_table(scenarios, header))
    write_json(args.json, scenarios, header)
    print(f"\nJSON: {args.json}", file=sys.stderr)
    missing = [k for k in SCENARIO_KEYS if k not in {s.key for s in scenarios}]
    if failed or (not args.only and missing):
        print(f"error: scenario groups failed: {failed}; missing: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
