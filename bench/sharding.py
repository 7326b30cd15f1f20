"""Sharded ``get_many`` (three local servers) vs one server, side by side (issue 16).

    .venv/bin/python -m bench.sharding [--keys 20000] [--rounds 15] [--json PATH]

Four throw-away servers are started: one holds the whole cache ("one server"), three are
the shards of ``CACHE_SHARD_URLS`` ("3 shards"). Both get the same ``--keys`` kv entries
(≈ 100-byte JSON values). Then, in interleaved rounds (the order of the variants shuffled
every round, so drifting machine load hits them alike), each variant runs a batch of
calls on random existing keys and its mean per-call time is recorded; the table shows the
median over the rounds:

- ``kv.get_many`` of 100 and of 1000 keys, sync API (per-shard statements on a thread per
  shard) and asyncio API (``asyncio.gather``);
- ``kv.get`` of one key: random keys (spread over the three servers), and keys that all
  live on one shard (the routing overhead alone: same work, one server process).

On one machine the three shards share the same CPUs as the single server (and as the
client), so the ratio shows the cost of routing and the concurrency of the fan-out, not
the capacity that three machines would add.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import BENCH_PG_SETTINGS, machine_info
from digitwin_db import Database, RepositoryFactory, migrations
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from digitwin_db.sharding import key_seed
from digitwin_db.testing import embedded_postgres_servers

SIZES = (100, 1000)
CALLS = {1: 200, 100: 20, 1000: 4}  # calls per round and variant


def _uptime() -> str:
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
        return out.stdout.strip()
    except OSError:
        return f"loadavg {os.getloadavg()}"


def _settings(shard_urls: list[str]) -> dict[str, Any]:
    return {"cache_shard_urls": shard_urls, "pool_min_size": 2, "pool_max_size": 8}


def run(keys: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"keys": keys, "rounds": rounds, "uptime_before": _uptime()}
    with embedded_postgres_servers(4, extra_settings=BENCH_PG_SETTINGS) as servers:
        for server in servers:
            migrations.migrate(server.url)
        single, shards = servers[0], servers[1:]
        results["machine"] = machine_info(single.url)
        shard_urls = [s.url for s in shards]
        # The "primary" of the sharded factory is the single server too: only the cache
        # placement differs between the two.
        one = RepositoryFactory(Database(url=single.url, **_settings([])))
        three = RepositoryFactory(Database(url=single.url, **_settings(shard_urls)))
        one.db.open()
        three.db.open()
        names = [f"key:{i:07d}" for i in range(keys)]
        value = {"payload": "x" * 80, "n": 1}
        for start in range(0, keys, 1000):
            chunk = {k: value for k in names[start : start + 1000]}
            one.cache.kv.set_many(chunk)
            three.cache.kv.set_many(chunk)
        assert len(three.cache.kv.get_many(names[:1000])) == 1000
        results["figures"] = asyncio.run(
            _measure(one, three, single.url, shard_urls, names, rounds)
        )
        one.close()
        three.close()
    results["uptime_after"] = _uptime()
    return results


async def _measure(
    one: RepositoryFactory,
    three: RepositoryFactory,
    single_url: str,
    shard_urls: list[str],
    names: list[str],
    rounds: int,
) -> dict[str, Any]:
    aone = AsyncRepositoryFactory(AsyncDatabase(url=single_url, **_settings([])))
    athree = AsyncRepositoryFactory(AsyncDatabase(url=single_url, **_settings(shard_urls)))
    await aone.db.open()
    await athree.db.open()
    await athree.cache.kv.get_many(names[:10])  # opens the shard pools
    rng = random.Random(16)

    assert three.shards is not None
    seed = key_seed(b"default\x00")
    first_shard = [k for k in names if three.shards.ring.shard_of(k.encode(), seed) == 0]

    def sync_variant(
        factory: RepositoryFactory, size: int, pool: list[str] = names
    ) -> Callable[[], Any]:
        kv = factory.cache.kv
        if size == 1:
            return lambda: kv.get(rng.choice(pool))
        return lambda: kv.get_many(rng.sample(names, size))

    def async_variant(factory: AsyncRepositoryFactory, size: int) -> Callable[[], Any]:
        kv = factory.cache.kv
        return lambda: kv.get_many(rng.sample(names, size))

    variants: dict[tuple[str, str, int], tuple[Callable[[], Any], bool]] = {}
    for size in (1, *SIZES):
        variants[("sync", "one server", size)] = (sync_variant(one, size), False)
        variants[("sync", "3 shards", size)] = (sync_variant(three, size), False)
    variants[("sync", "3 shards, one shard's keys", 1)] = (
        sync_variant(three, 1, first_shard),
        False,
    )
    for size in SIZES:
        variants[("asyncio", "one server", size)] = (async_variant(aone, size), True)
        variants[("asyncio", "3 shards", size)] = (async_variant(athree, size), True)
    samples: dict[tuple[str, str, int], list[float]] = {v: [] for v in variants}
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        order = list(variants)
        rng.shuffle(order)
        for variant in order:
            call, is_async = variants[variant]
            calls = CALLS[variant[2]]
            start = time.perf_counter()
            for _ in range(calls):
                if is_async:
                    await call()
                else:
                    call()
            samples[variant].append((time.perf_counter() - start) / calls)
    await aone.close()
    await athree.close()
    figures: dict[str, Any] = {}
    for (api, setup, size), values in samples.items():
        median = statistics.median(values[1:])
        figures[f"{api} | {setup} | {size}"] = {
            "api": api,
            "setup": setup,
            "keys_per_call": size,
            "median_ms_per_call": round(median * 1000, 3),
            "us_per_key": round(median * 1e6 / size, 2),
        }
    return figures


def render(results: dict[str, Any]) -> str:
    figures = results["figures"]
    lines = [
        f"uptime before: {results['uptime_before']}",
        f"uptime after:  {results['uptime_after']}",
        f"{results['keys']} kv entries per setup, median of {results['rounds']} interleaved rounds",
        "",
        "| call | API | one server (ms/call) | 3 shards (ms/call) | 3 shards / one |",
        "|---|---|---:|---:|---:|",
    ]
    for api, sizes in (("sync", (1, *SIZES)), ("asyncio", SIZES)):
        for size in sizes:
            a = figures[f"{api} | one server | {size}"]["median_ms_per_call"]
            b = figures[f"{api} | 3 shards | {size}"]["median_ms_per_call"]
            call = "kv.get" if size == 1 else f"kv.get_many({size})"
            lines.append(f"| {call} | {api} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
            if size == 1:
                c = figures[f"{api} | 3 shards, one shard's keys | 1"]["median_ms_per_call"]
                lines.append(
                    f"| kv.get, keys of one shard | {api} | {a:.3f} | {c:.3f} | {c / a:.2f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = run(max(args.keys, 1000), max(args.rounds, 1))
    print(render(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
