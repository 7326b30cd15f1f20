"""Group-commit planning: which waiting statements go into the next batch, in what order,
and how a batch becomes ONE statement.

Pure logic (no I/O) for :mod:`digitwin_db._async.batcher`. A batch of single-row statements
runs as one statement over parallel arrays (:class:`ArrayCombiner`): one round trip, one
transaction, one ``now()``, one commit. Its row locks are held until that commit, so:

- its rows are taken in the order of their key ``(group, member)`` — for a rate-limit check
  ``(subject, endpoint)`` — so two batches (of this or other processes) lock shared rows in
  the same order and cannot deadlock;
- a batch holds at most ONE statement per group. A multi-row statement may not touch a row
  twice, and statements of one group that lock several rows (``check_many`` locks several
  buckets of one subject in the database's collation order, ``reset`` deletes a subject's
  buckets) then never wait in a cycle with a batch, whatever the collation. A second
  statement of a group waits for the next batch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, LiteralString, Protocol, TypeVar

__all__ = ["MAX_BATCH", "ArrayCombiner", "Keyed", "plan_batch", "shielded"]

#: Most statements in one batch (bounds a batch's lock set, its transaction and its wait).
MAX_BATCH = 64


class Keyed(Protocol):
    @property
    def key(self) -> tuple[str, str]: ...


K = TypeVar("K", bound=Keyed)


def plan_batch(first: list[K], waiting: list[K], limit: int = MAX_BATCH) -> list[K]:
    """Move statements from ``waiting`` (arrival order) into a batch after ``first``; return
    the batch ordered by key. Items skipped (their group is in the batch already, or the
    batch is full) stay in ``waiting``, in their order."""
    batch = list(first)
    groups = {item.key[0] for item in batch}
    kept: list[K] = []
    for item in waiting:
        group = item.key[0]
        if len(batch) >= limit or group in groups:
            kept.append(item)
        else:
            groups.add(group)
            batch.append(item)
    waiting[:] = kept
    batch.sort(key=_sort_key)
    return batch


@dataclass(frozen=True)
class ArrayCombiner:
    """Several runs of one single-row statement as ONE statement over parallel arrays.

    ``statement`` takes, for each ``(param, array)`` of ``arrays``, the array of that
    parameter's values in batch order, and returns one row per input: its key columns
    (``key_columns`` of them, the batch key) followed by the single statement's row.
    """

    statement: LiteralString
    arrays: tuple[tuple[str, str], ...]
    key_columns: int = 2

    def combine(self, params: list[dict[str, Any]]) -> tuple[LiteralString, dict[str, Any]]:
        return self.statement, {array: [p[name] for p in params] for name, array in self.arrays}

    def split(self, rows: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The single statement's row of each key."""
        k = self.key_columns
        return {tuple(row[:k]): tuple(row[k:]) for row in rows}


def _sort_key(item: Keyed) -> tuple[str, str]:
    return item.key


def shielded(value: Any) -> Any:
    """``await shielded(coro)`` runs ``coro`` to the end even if the awaiting task is
    cancelled (``asyncio.shield``); in the generated sync code the call has already run and
    its value passes through."""
    if inspect.iscoroutine(value):
        import asyncio

        return asyncio.shield(value)
    return value
