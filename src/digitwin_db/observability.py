"""Per-operation call statistics (counts, failures, latency) and slow-call logging.

Shared by the sync and async APIs. ``record`` is on every repository call, so it is cheap:
one lock, one dict lookup, one bounded deque append.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

__all__ = ["CallStats", "OperationStats"]

logger = logging.getLogger("digitwin_db.slow")

# Latencies kept per operation for percentiles: enough for a stable p95, small in memory.
RESERVOIR_SIZE = 2048


class OperationStats(BaseModel):
    """Statistics of one operation name since start (or the last reset)."""

    model_config = ConfigDict(frozen=True)

    operation: str
    calls: int
    failures: int
    min_ms: float
    avg_ms: float
    p95_ms: float
    max_ms: float


@dataclass
class _Acc:
    calls: int = 0
    failures: int = 0
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RESERVOIR_SIZE))


class CallStats:
    """Thread-safe accumulator of per-operation latencies."""

    def __init__(self, *, slow_call_ms: float = 200.0) -> None:
        self.slow_call_ms = slow_call_ms
        self._lock = threading.Lock()
        self._ops: dict[str, _Acc] = {}

    def record(self, op: str, elapsed_ms: float, *, failed: bool = False) -> None:
        with self._lock:
            acc = self._ops.get(op)
            if acc is None:
                acc = self._ops[op] = _Acc()
            acc.calls += 1
            acc.failures += failed
            acc.total_ms += elapsed_ms
            acc.min_ms = min(acc.min_ms, elapsed_ms)
            acc.max_ms = max(acc.max_ms, elapsed_ms)
            acc.recent.append(elapsed_ms)
        if self.slow_call_ms and elapsed_ms >= self.slow_call_ms:
            logger.warning("slow call %s took %.1f ms", op, elapsed_ms)

    def snapshot(self) -> list[OperationStats]:
        """Statistics per operation, sorted by name."""
        with self._lock:
            items = [(op, acc, sorted(acc.recent)) for op, acc in self._ops.items()]
        out = []
        for op, acc, recent in sorted(items, key=lambda i: i[0]):
            p95 = recent[min(len(recent) - 1, math.ceil(0.95 * len(recent)) - 1)] if recent else 0.0
            out.append(
                OperationStats(
                    operation=op,
                    calls=acc.calls,
                    failures=acc.failures,
                    min_ms=round(acc.min_ms if acc.calls else 0.0, 3),
                    avg_ms=round(acc.total_ms / acc.calls if acc.calls else 0.0, 3),
                    p95_ms=round(p95, 3),
                    max_ms=round(acc.max_ms, 3),
                )
            )
        return out

    def reset(self) -> None:
        with self._lock:
            self._ops.clear()
