"""The first call after a pause: a limits decision ~1 s after the previous one, side by side.

A rate limiter's calls are often spread out (a quiet tenant, limits' own tests sleeping to a
window boundary), and on a virtual machine the first call after a pause runs with cold
caches: what it costs then is set by how much code and how many round trips it runs, not by
its warm-loop speed. Each round calls every contender once (warm-up), sleeps to 1 ms past
the next whole second, and times one call from waking to its return; for the PostgreSQL
contenders also from waking to the server's reading (``statement_timestamp()``), which is
what limits' sliding-window test budgets (30 ms). Contenders run in turn within a round,
so drifting machine load hits them alike.

    python -m bench.after_idle --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.servers import postgres, redis_server

KEY = "after-idle"
BARE = "psycopg, the same statement"


def _to_boundary() -> float:
    """Sleep (blocking, as limits' tests do) to 1 ms past the next second; the wake time."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.001)
    return time.time()


def _reading_from_ttl(current_ttl: float) -> float:
    """The server's reading time from the storage's current-window TTL (windows of 1 s):
    ``current TTL = 2 - frac(reading)``, and the reading is in the current second."""
    return int(time.time()) + 2 - current_ttl


#: A contender's call: the server's reading time (epoch seconds), or None when unknown.
Call = Callable[[], float | None]
AsyncCall = Callable[[], Awaitable[float | None]]
Sample = tuple[float, float | None]  # (call ms, wake -> server reading ms or None)


def _sync_contenders(pg_url: str, redis_url: str | None) -> dict[str, Call]:
    import psycopg
    from limits.storage import storage_from_string

    import digitwin_db.contrib.limits  # noqa: F401  (registers postgresql://)
    from digitwin_db.sql import limits_storage as q

    bare = psycopg.connect(pg_url, autocommit=True, prepare_threshold=0)
    ours: Any = storage_from_string(pg_url)

    def call_bare() -> float | None:
        row = bare.execute(q.GET_SLIDING_WINDOW, {"key": KEY}).fetchone()
        return None if row is None else float(row[3])

    def call_ours() -> float | None:
        return _reading_from_ttl(ours.get_sliding_window(KEY, 1)[3])

    contenders: dict[str, Call] = {BARE: call_bare, "limits storage (digitwin-db)": call_ours}
    if redis_url is not None:
        theirs: Any = storage_from_string(redis_url)

        def call_redis() -> float | None:
            theirs.get_sliding_window(KEY, 1)
            return None

        contenders["limits storage (Redis)"] = call_redis
    return contenders


async def _async_contenders(pg_url: str) -> dict[str, AsyncCall]:
    import psycopg
    from limits.storage import storage_from_string

    import digitwin_db.contrib.limits  # noqa: F401  (registers async+postgresql://)
    from digitwin_db.sql import limits_storage as q

    bare = await psycopg.AsyncConnection.connect(pg_url, autocommit=True, prepare_threshold=0)
    ours: Any = storage_from_string("async+" + pg_url)

    async def call_bare() -> float | None:
        cur = await bare.execute(q.GET_SLIDING_WINDOW, {"key": KEY})
        row = await cur.fetchone()
        return None if row is None else float(row[3])

    async def call_ours() -> float | None:
        return _reading_from_ttl((await ours.get_sliding_window(KEY, 1))[3])

    # limits' asyncio Redis storage needs coredis (not installed): no Redis row here.
    return {BARE + " (asyncio)": call_bare, "limits async storage (digitwin-db)": call_ours}


def _sample(wake: float, reading: float | None) -> Sample:
    done = time.time()
    # Same machine, same clock: a reading outside the call means a wrong TTL formula.
    if reading is not None and not wake - 0.005 <= reading <= done + 0.005:
        span = f"[{wake:.6f}, {done:.6f}]"
        raise RuntimeError(f"server reading {reading:.6f} outside the call {span}")
    return 1000 * (done - wake), None if reading is None else 1000 * (reading - wake)


def _table(title: str, samples: dict[str, list[Sample]]) -> str:
    base = statistics.median(call for call, _ in samples[next(iter(samples))])
    lines = [
        f"### {title}",
        "",
        "| contender | call median ms | p90 | max | ÷ bare "
        "| wake → server reading median ms | p90 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values in samples.items():
        calls = sorted(call for call, _ in values)
        reads = sorted(read for _, read in values if read is not None)
        p90 = calls[int(0.9 * (len(calls) - 1))]
        row = f"| {name} | {statistics.median(calls):.1f} | {p90:.1f} | {calls[-1]:.1f} | "
        row += f"{statistics.median(calls) / base:.2f} | "
        if reads:
            read90 = reads[int(0.9 * (len(reads) - 1))]
            row += f"{statistics.median(reads):.1f} | {read90:.1f} | {reads[-1]:.1f} |"
        else:
            row += "n/a | n/a | n/a |"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="calls per contender")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()}")
    with postgres() as pg, redis_server() as redis:
        sync = _sync_contenders(pg.url, redis.url if redis is not None else None)
        sync_samples: dict[str, list[Sample]] = {name: [] for name in sync}
        for _ in range(args.rounds):
            for name, call in sync.items():
                call()  # warm, ~1 s before the timed call (as a test's hits are)
                wake = _to_boundary()
                sync_samples[name].append(_sample(wake, call()))

        async def run_async() -> dict[str, list[Sample]]:
            contenders = await _async_contenders(pg.url)
            samples: dict[str, list[Sample]] = {name: [] for name in contenders}
            for _ in range(args.rounds):
                for name, call in contenders.items():
                    await call()
                    wake = _to_boundary()
                    samples[name].append(_sample(wake, await call()))
            return samples

        async_samples = asyncio.run(run_async())
    print(_table(f"sync, {args.rounds} rounds", sync_samples))
    print()
    print(_table(f"asyncio, {args.rounds} rounds", async_samples))
    print(f"\nload after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
