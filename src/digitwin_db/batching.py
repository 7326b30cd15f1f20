"""Group-commit planning: which waiting statements go into the next batch, in what order.

Pure logic (no I/O) for :mod:`digitwin_db._async.batcher`. A batch runs as ONE implicit
transaction (its statements pipelined before one Sync), so every row lock it takes is held
until the batch commits. Two rules keep concurrent batches (of this or other processes) and
other statements from deadlocking with it:

- statements are ordered by their key ``(group, member)`` — for a rate-limit check
  ``(subject, endpoint)`` — so two batches lock shared rows in the same order;
- a batch holds at most ONE member of a group (the same member twice is fine: it is the
  same row). Multi-row statements of one group (``check_many`` locks several buckets of
  one subject in the database's collation order, ``reset`` deletes a subject's buckets)
  then never wait in a cycle with a batch, whatever the collation. A second member of a
  group waits for the next batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from typing import Any, Protocol, TypeVar

__all__ = ["MAX_BATCH", "Keyed", "plan_batch", "shielded"]

#: Most statements in one batch (bounds a batch's lock set, its transaction and its wait).
MAX_BATCH = 64


class Keyed(Protocol):
    @property
    def key(self) -> tuple[Hashable, Hashable]: ...


K = TypeVar("K", bound=Keyed)


def plan_batch(first: list[K], waiting: list[K], limit: int = MAX_BATCH) -> list[K]:
    """Move statements from ``waiting`` (arrival order) into a batch after ``first``; return
    the batch ordered by key. Items skipped (a group already represented by another member,
    or past ``limit``) stay in ``waiting``, in their order."""
    batch = list(first)
    members = {item.key[0]: item.key[1] for item in batch}
    kept: list[K] = []
    for item in waiting:
        group, member = item.key
        if len(batch) >= limit or members.setdefault(group, member) != member:
            kept.append(item)
        else:
            batch.append(item)
    waiting[:] = kept
    batch.sort(key=_sort_key)
    return batch


def _sort_key(item: Keyed) -> tuple[Hashable, Hashable]:
    return item.key


def shielded(value: Any) -> Any:
    """``await shielded(coro)`` runs ``coro`` to the end even if the awaiting task is
    cancelled (``asyncio.shield``); in the generated sync code the call has already run and
    its value passes through."""
    if inspect.iscoroutine(value):
        import asyncio

        return asyncio.shield(value)
    return value
