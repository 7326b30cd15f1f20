"""Timing: contenders measured side by side, interleaved round by round, medians reported.

A *contender* is a callable doing one operation (``fn(i)`` with a running index ``i``).
Every round runs each contender for ``ops`` calls, in an order that rotates from round to
round, so slow drift of the machine (other processes, CPU frequency, autovacuum) hits every
contender alike. Per round we keep ops/s (calls / wall time of the round) and the p50/p99 of
the per-call latencies; a contender's result is the median of those per-round figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

SyncOp = Callable[[int], object]
AsyncOp = Callable[[int], Awaitable[object]]


@dataclass(frozen=True)
class Measurement:
    """One contender's result: medians over rounds."""

    ops_per_s: float
    p50_us: float
    p99_us: float
    rounds: int
    ops_per_round: int
    # ops/s of each round, in round order: contenders measured in the same run have their
    # round r side by side, so ratios can be taken per round (see Scenario.ratio).
    round_ops: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100.0 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(len(sorted_values), rank) - 1]


@dataclass
class _RoundFigures:
    ops_per_s: list[float]
    p50: list[float]
    p99: list[float]

    def median(self, ops: int) -> Measurement:
        return Measurement(
            ops_per_s=statistics.median(self.ops_per_s),
            p50_us=statistics.median(self.p50),
            p99_us=statistics.median(self.p99),
            rounds=len(self.ops_per_s),
            ops_per_round=ops,
            round_ops=tuple(self.ops_per_s),
        )


def summarize_latencies(latencies_ns: list[int], wall_ns: int) -> tuple[float, float, float]:
    """(ops/s, p50 µs, p99 µs) of one round."""
    values = sorted(latencies_ns)
    ops_per_s = len(values) / (wall_ns / 1e9) if wall_ns > 0 else float("nan")
    return ops_per_s, percentile(values, 50) / 1000.0, percentile(values, 99) / 1000.0


def _run_sync(fn: SyncOp, start: int, ops: int) -> tuple[float, float, float]:
    clock = time.perf_counter_ns
    latencies = [0] * ops
    begin = clock()
    for n in range(ops):
        t0 = clock()
        fn(start + n)
        latencies[n] = clock() - t0
    return summarize_latencies(latencies, clock() - begin)


def measure_sync(
    contenders: dict[str, SyncOp], *, ops: int, rounds: int, warmup: int
) -> dict[str, Measurement]:
    """Warm every contender up, then run ``rounds`` interleaved rounds of ``ops`` calls."""
    names = list(contenders)
    for name in names:
        fn = contenders[name]
        for i in range(warmup):
            fn(i)
    figures = {name: _RoundFigures([], [], []) for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            o, p50, p99 = _run_sync(contenders[name], warmup + r * ops, ops)
            figures[name].ops_per_s.append(o)
            figures[name].p50.append(p50)
            figures[name].p99.append(p99)
    return {name: figures[name].median(ops) for name in names}


async def _run_async(fn: AsyncOp, start: int, ops: int) -> tuple[float, float, float]:
    clock = time.perf_counter_ns
    latencies = [0] * ops
    begin = clock()
    for n in range(ops):
        t0 = clock()
        await fn(start + n)
        latencies[n] = clock() - t0
    return summarize_latencies(latencies, clock() - begin)


async def measure_async(
    contenders: dict[str, AsyncOp], *, ops: int, rounds: int, warmup: int
) -> dict[str, Measurement]:
    """:func:`measure_sync` for coroutine functions, awaited one at a time on one loop."""
    names = list(contenders)
    for name in names:
        fn = contenders[name]
        for i in range(warmup):
            await fn(i)
    figures = {name: _RoundFigures([], [], []) for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            o, p50, p99 = await _run_async(contenders[name], warmup + r * ops, ops)
            figures[name].ops_per_s.append(o)
            figures[name].p50.append(p50)
            figures[name].p99.append(p99)
    return {name: figures[name].median(ops) for name in names}


async def _run_concurrent(
    fn: AsyncOp, start: int, ops: int, tasks: int
) -> tuple[float, float, float]:
    """``ops`` calls spread over ``tasks`` tasks of one loop; (ops/s, p50, p99)."""
    import asyncio

    clock = time.perf_counter_ns
    latencies: list[int] = []
    per_task = max(1, ops // tasks)

    async def worker(offset: int) -> None:
        for n in range(per_task):
            t0 = clock()
            await fn(start + offset + n * tasks)
            latencies.append(clock() - t0)

    begin = clock()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return summarize_latencies(latencies, clock() - begin)


async def measure_async_concurrent(
    contenders: dict[str, AsyncOp], *, tasks: int, ops: int, rounds: int, warmup: int
) -> dict[str, Measurement]:
    """:func:`measure_async` with ``tasks`` concurrent tasks per contender and round."""
    names = list(contenders)
    for name in names:
        await _run_concurrent(contenders[name], 0, max(warmup, tasks), tasks)
    figures = {name: _RoundFigures([], [], []) for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            o, p50, p99 = await _run_concurrent(contenders[name], warmup + r * ops, ops, tasks)
            figures[name].ops_per_s.append(o)
            figures[name].p50.append(p50)
            figures[name].p99.append(p99)
    return {name: figures[name].median(ops) for name in names}
