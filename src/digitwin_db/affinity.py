"""Connection affinity: each thread keeps its connection between one-statement calls.

Pure bookkeeping (no I/O), shared by the sync and async connection scopes of
``Database.connection()``. A scope that ends cleanly *parks* its connection under the
calling thread's id instead of returning it to the pool; the thread's next scope *takes* it
back, skipping psycopg_pool's checkout/return (locks, the ``check`` callback, counters: ≈ 10
µs a call). Asyncio tasks of one event loop share their thread's slot: a task takes the
connection out of the slot, so two tasks never hold it at once (an async connection cannot
be used concurrently) — the others go to the pool as before.

A parked connection still counts as checked out of the pool (the pool's ``max_size`` holds);
it goes back to the pool:

- when its scope ends with an exception, inside a transaction, or while the database is
  closing (the pool then rolls back, discards a broken connection, closes it);
- when a caller is waiting for a pool connection (nothing is parked while one waits, and
  the waiter takes a parked connection after ``STEAL_AFTER`` seconds);
- when it has been parked unused for ``IDLE_RETURN`` seconds (the next call of any other
  thread sweeps it back, so a thread that ended leaves nothing behind for long; the owning
  thread's own next call reuses it, after the liveness check, rather than returning it and
  checking one out again), or held for ``HOLD_LIMIT`` seconds since its checkout (so the
  pool's ``max_lifetime`` and fairness still apply);
- at ``close()``.

A connection parked longer than ``CHECK_AFTER`` seconds is checked for liveness before use
(the zero-timeout ``select`` of the pool's own check); a connection reused back to back is
not, as a pooled one checked a moment ago would not be either.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

__all__ = [
    "CHECK_AFTER",
    "HOLD_LIMIT",
    "IDLE_RETURN",
    "STEAL_AFTER",
    "SWEEP_INTERVAL",
    "Parked",
    "Parking",
]

#: A connection parked at least this long (seconds) is checked for liveness before reuse.
CHECK_AFTER = 0.002
#: A connection parked unused this long (seconds) goes back to the pool.
IDLE_RETURN = 0.5
#: A connection held this long (seconds) since its pool checkout goes back at its next exit.
HOLD_LIMIT = 5.0
#: A caller finding the pool empty waits this long (seconds) before taking another thread's
#: parked connection.
STEAL_AFTER = 0.02
#: How often (seconds) a call looks for parked connections to return.
SWEEP_INTERVAL = 0.25

C = TypeVar("C")


class Parked(NamedTuple, Generic[C]):
    conn: C
    parked_at: float  # when its last scope ended (perf_counter)
    checked_out_at: float  # when it left the pool (perf_counter)


class Parking(Generic[C]):
    """Connections parked per thread id. Every method is a handful of dict operations, each
    atomic, so threads need no lock: a connection popped by one caller is owned by it alone.
    """

    __slots__ = ("_slots", "next_sweep")

    def __init__(self) -> None:
        self._slots: dict[int, Parked[C]] = {}
        self.next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._slots)

    def take(self, ident: int) -> Parked[C] | None:
        """The connection parked by thread ``ident``, now owned by the caller."""
        return self._slots.pop(ident, None)

    def park(self, ident: int, entry: Parked[C]) -> bool:
        """Park ``entry`` for thread ``ident``; False when the slot is taken (nested scopes):
        the caller then returns the connection to the pool."""
        return self._slots.setdefault(ident, entry) is entry

    def unpark(self, ident: int, conn: C) -> bool:
        """Take back the connection just parked by ``ident`` (a waiter appeared meanwhile);
        False when another caller has taken it already."""
        entry = self._slots.pop(ident, None)
        if entry is None:
            return False
        if entry.conn is not conn:  # cannot happen: only thread `ident` parks in its slot
            self._slots.setdefault(ident, entry)
            return False
        return True

    def steal(self) -> Parked[C] | None:
        """Any parked connection (for a caller that found the pool exhausted)."""
        try:
            return self._slots.popitem()[1]
        except KeyError:
            return None

    def due(self, now: float) -> list[C]:
        """Remove and return the connections parked for ``IDLE_RETURN`` seconds or more."""
        out: list[C] = []
        for ident, entry in list(self._slots.items()):
            if now - entry.parked_at >= IDLE_RETURN:
                taken = self._slots.pop(ident, None)
                if taken is not None:  # possibly re-parked meanwhile: returned all the same
                    out.append(taken.conn)
        return out

    def drain(self) -> list[C]:
        """Remove and return every parked connection (close)."""
        out: list[C] = []
        while True:
            entry = self.steal()
            if entry is None:
                return out
            out.append(entry.conn)
