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

from digitwin_db.errors import raise_translated

__all__ = [
    "MAX_BATCH",
    "ArrayCombiner",
    "Combiner",
    "HashProbe",
    "Keyed",
    "plan_batch",
    "shielded",
    "translated_error",
]

#: Most statements in one batch (bounds a batch's lock set, its transaction and its wait).
MAX_BATCH = 64


class Keyed(Protocol):
    @property
    def key(self) -> tuple[str, str]: ...


K = TypeVar("K", bound=Keyed)


def plan_batch(
    first: list[K], waiting: list[K], limit: int = MAX_BATCH, *, one_per_group: bool = True
) -> list[K]:
    """Move statements from ``waiting`` (arrival order) into a batch after ``first``; return
    the batch ordered by key. Items skipped (with ``one_per_group``, their group is in the
    batch already; or the batch is full) stay in ``waiting``, in their order."""
    batch = list(first)
    groups = {item.key[0] for item in batch}
    kept: list[K] = []
    for item in waiting:
        group = item.key[0]
        if len(batch) >= limit or (one_per_group and group in groups):
            kept.append(item)
        else:
            groups.add(group)
            batch.append(item)
    waiting[:] = kept
    batch.sort(key=_sort_key)
    return batch


Row = tuple[Any, ...]


class Combiner(Protocol):
    """How one kind of single-row statement runs as one batch statement."""

    @property
    def one_per_group(self) -> bool:
        """At most one statement per group in a batch (statements that lock rows)."""
        ...

    @property
    def binary(self) -> bool:
        """Run the statements with binary results."""
        ...

    def combine(self, params: list[Any]) -> tuple[LiteralString, dict[str, Any]]:
        """The batch statement and its parameters, from the single statements' ones."""
        ...

    def split(self, rows: list[Row]) -> dict[tuple[Any, ...], Row]:
        """The answer of each key (as the single statement's :meth:`single` gives it)."""
        ...

    def single(self, row: Row | None, key: tuple[str, str]) -> Row | None:
        """The answer of the single statement's row for ``key``."""
        ...


@dataclass(frozen=True)
class ArrayCombiner:
    """Several runs of one single-row statement as ONE statement over parallel arrays.

    ``statement`` takes, for each ``(param, array)`` of ``arrays``, the array of that
    parameter's values in batch order, and returns one row per input: its two key columns
    (the batch key) followed by the single statement's row.
    """

    statement: LiteralString
    arrays: tuple[tuple[str, str], ...]
    one_per_group: bool = True
    binary: bool = False

    def combine(self, params: list[Any]) -> tuple[LiteralString, dict[str, Any]]:
        return self.statement, {array: [p[name] for p in params] for name, array in self.arrays}

    def split(self, rows: list[Row]) -> dict[tuple[Any, ...], Row]:
        return {(row[0], row[1]): row[2:] for row in rows}

    def single(self, row: Row | None, key: tuple[str, str]) -> Row | None:
        return row


@dataclass(frozen=True)
class HashProbe:
    """Lookups by a 64-bit key hash (one positional parameter), batched as one
    ``key_hash = ANY(bigint[])`` statement.

    Both statements return ``(namespace, key, *answer)``; the full key is compared here, so
    a row that merely shares a hash is no answer. Reads lock nothing: any number per group.
    """

    single_statement: LiteralString
    statement: LiteralString
    one_per_group: bool = False
    binary: bool = True

    def combine(self, params: list[Any]) -> tuple[LiteralString, dict[str, Any]]:
        # The array in text form: psycopg's list adapter costs ~1.5 µs an element.
        return self.statement, {"key_hashes": "{" + ",".join(str(p[0]) for p in params) + "}"}

    def split(self, rows: list[Row]) -> dict[tuple[Any, ...], Row]:
        return {(row[0], row[1]): row[2:] for row in rows}

    def single(self, row: Row | None, key: tuple[str, str]) -> Row | None:
        if row is None or row[0] != key[0] or row[1] != key[1]:
            return None
        return row[2:]


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


def translated_error(exc: BaseException, op: str) -> BaseException:
    """The digitwin_db error for ``exc`` (``errors.raise_translated``), returned rather than
    raised: one error of a batch is raised by each caller it concerns."""
    try:
        raise_translated(exc, op)
    except BaseException as translated:
        return translated
