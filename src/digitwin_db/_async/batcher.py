"""Group commit: concurrent one-row statements share a connection, a statement and a commit.

In the sync API the callers are threads, and the lock and events are ``threading``'s.

One caller at a time is the *leader*: it takes the waiting statements (up to
``batching.MAX_BATCH``, one per subject, ordered by key — see :mod:`digitwin_db.batching`)
and runs them as ONE statement over parallel arrays (``ArrayCombiner``): one round trip,
one transaction (one ``now()``, one commit, one WAL flush), then hands each caller its row.
Callers arriving meanwhile wait for the next batch, which the first of them leads as soon
as this one is done; so nobody waits longer than one batch before its own starts, and a
caller that finds no batch running (no concurrency) goes at once, alone, as the plain
single-row statement.

(psycopg's pipeline mode — N statements, one Sync — gives the same single commit; under
asyncio it waits on the event loop once per statement, which cost more client CPU than the
statements themselves: bench/README.md, "Group commit".)

Failures:

- the statement fails (a lock timeout, a constraint): the server committed nothing of the
  batch, so each caller's statement runs again alone on the same connection and gets its own
  row or its own error — none is counted twice;
- the connection is lost (or cannot be had): whether the commit happened is unknown, so no
  statement is retried; every caller of the batch gets the ``DatabaseUnavailableError``
  (the rate limiter then applies ``rate_limit_on_error``);
- a waiting caller is cancelled: its statement is dropped if its batch has not started, else
  it runs and its row is discarded (as for a cancelled plain call). A cancelled leader's
  batch still runs to the end for the others (shielded from that cancellation).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any, LiteralString

import psycopg

from digitwin_db.batching import MAX_BATCH, Combiner, plan_batch, shielded, translated_error

__all__ = ["AsyncBatcher"]

_WAITING, _LEAD, _DONE, _DROPPED = 0, 1, 2, 3


class _Item:
    __slots__ = ("done", "error", "key", "ok", "params", "row", "start", "state", "statement")

    def __init__(self, statement: LiteralString, params: Any, key: tuple[str, str]) -> None:
        self.statement = statement
        self.params = params
        self.key = key
        self.row: tuple[Any, ...] | None = None
        self.ok = False  # row is the statement's answer
        self.error: BaseException | None = None
        self.state = _WAITING
        self.done: asyncio.Event | None = None
        self.start = time.perf_counter()

    def result(self) -> tuple[Any, ...] | None:
        if self.error is not None:
            # Each caller raises its own copy (one error may end a whole batch).
            raise copy.copy(self.error) from self.error.__cause__
        return self.row


class AsyncBatcher:
    """Group commit of one kind of single-row statement (``db.batcher(op, combiner)``)."""

    def __init__(self, db: Any, op: str, combiner: Combiner, limit: int = MAX_BATCH) -> None:
        # ``db`` is the database that owns this batcher (typed Any: importing its module
        # here would be an import cycle).
        self._db = db
        self._op = op
        self._combiner = combiner
        self._batch_op = f"{op}[batch]"
        self._limit = limit
        self._lock = asyncio.Lock()
        self._waiting: list[_Item] = []
        self._leading = False
        #: Counters: batches run, calls they carried, calls retried alone.
        self.batches = 0
        self.statements = 0
        self.retried = 0

    @property
    def pending(self) -> int:
        """Statements waiting for the next batch."""
        return len(self._waiting)

    async def execute(
        self, statement: LiteralString, params: Any, key: tuple[str, str]
    ) -> tuple[Any, ...] | None:
        """Run ``statement`` (one row or none) in the next batch; its answer (see
        ``Combiner.single``). ``key`` is the (group, member) the statement is about, e.g.
        the (subject, bucket) it locks. Errors are digitwin_db errors."""
        if not self._leading:
            # No batch running: go at once, alone, as the plain statement. (Two threads may
            # both get here: then two batches run at once, which is only less batching.)
            self._leading = True
            self.batches += 1
            self.statements += 1
            try:
                async with self._db.connection(self._op) as conn:
                    cur = await conn.execute(statement, params, binary=self._combiner.binary)
                    return self._combiner.single(await cur.fetchone(), key)
            finally:
                await self._hand_over()
        item = _Item(statement, params, key)
        async with self._lock:
            if self._leading:
                item.done = asyncio.Event()
                self._waiting.append(item)
            else:
                self._leading = True
                item.state = _LEAD
        if item.state != _LEAD:
            try:
                await item.done.wait()
            except BaseException:
                await self._abandon(item)
                raise
            if item.state != _LEAD:
                return item.result()
        try:
            async with self._lock:
                batch = plan_batch(
                    [item], self._waiting, self._limit, one_per_group=self._combiner.one_per_group
                )
            if len(batch) == 1:
                await self._run(batch)  # nobody else depends on it
            else:
                # The others' statements run to the end even if this caller is cancelled.
                await shielded(self._run(batch))
        finally:
            await self._hand_over()
        return item.result()

    async def _hand_over(self) -> None:
        """Make the first waiting caller the next leader, or stop leading."""
        async with self._lock:
            if self._waiting:
                nxt = self._waiting.pop(0)
                nxt.state = _LEAD
                nxt.done.set()  # type: ignore[union-attr]
            else:
                self._leading = False

    async def _abandon(self, item: _Item) -> None:
        """A waiting caller gave up (cancelled): drop its statement if not yet sent."""
        async with self._lock:
            if item in self._waiting:
                self._waiting.remove(item)
                item.state = _DROPPED
                return
            lead = item.state == _LEAD
        if lead:  # it was made leader but will not lead: pass it on
            await self._hand_over()

    async def _run(self, batch: list[_Item]) -> int:
        """Run ``batch``; every item ends with its row or its error. Returns its size."""
        self.batches += 1
        self.statements += len(batch)
        try:
            if len(batch) == 1:  # a plain statement (its scope records the call)
                item = batch[0]
                async with self._db.connection(self._op) as conn:
                    cur = await conn.execute(
                        item.statement, item.params, binary=self._combiner.binary
                    )
                    item.row = self._combiner.single(await cur.fetchone(), item.key)
                    item.ok = True
            else:
                await self._combined(batch)
        except BaseException as exc:
            for item in batch:
                if not item.ok and item.error is None:
                    item.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            if len(batch) > 1:
                record = self._db.stats.record
                now = time.perf_counter()
                for item in batch:
                    record(self._op, (now - item.start) * 1000.0, failed=item.error is not None)
            for item in batch:
                item.state = _DONE
                if item.done is not None:
                    item.done.set()
        return len(batch)

    async def _combined(self, batch: list[_Item]) -> None:
        statement, params = self._combiner.combine([item.params for item in batch])
        binary = self._combiner.binary
        async with self._db.connection(self._batch_op) as conn:
            try:
                cur = await conn.execute(statement, params, binary=binary)
                rows = await cur.fetchall()
            except psycopg.Error:
                if conn.broken or conn.closed:
                    raise  # outcome unknown: every caller gets the error, none retried
                # The server rolled the whole batch back: run each statement alone.
                self.retried += len(batch)
                for item in batch:
                    try:
                        cur = await conn.execute(item.statement, item.params, binary=binary)
                        item.row = self._combiner.single(await cur.fetchone(), item.key)
                        item.ok = True
                    except psycopg.Error as exc:
                        if conn.broken or conn.closed:
                            raise
                        item.error = translated_error(exc, self._op)
                return
        answers = self._combiner.split(rows)
        for item in batch:
            item.row = answers.get(item.key)
            item.ok = True
