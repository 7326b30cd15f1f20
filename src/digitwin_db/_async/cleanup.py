"""The periodic cleanup job: expired cache rows, idle rate-limit buckets, old audit rows,
expired windows of the ``limits`` storage.

One pass (:meth:`AsyncCleanupJob.run_once`) calls the repositories' own cleanup methods —
``cache.cleanup_expired``, ``rate_limits.cleanup_idle`` and
``audit_logs.apply_retention`` — each of which deletes in small batches ordered by its
expiry index with ``FOR UPDATE SKIP LOCKED``. So several instances (on several hosts) can
run at once: each row is deleted by exactly one of them, and nobody waits on anybody's
locks. The command line (``digitwin-db cleanup``) runs a pass once or on an interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import DigitwinDBError, ValidationError
from digitwin_db.models.audit import CleanupJobReport
from digitwin_db.rules.cleanup import rows_per_table
from digitwin_db.sql import limits_storage as limits_sql
from digitwin_db.validation import shown

__all__ = ["DEFAULT_BATCH_SIZE", "AsyncCleanupJob", "Progress"]

logger = logging.getLogger("digitwin_db.cleanup")

#: Rows per delete statement: large enough to be efficient, small enough that each batch
#: holds its row locks for milliseconds.
DEFAULT_BATCH_SIZE = 5000
#: The largest batch the repositories' cleanups accept.
MAX_BATCH_SIZE = 1_000_000

#: Called after every step or batch with (table, rows removed by it, rows removed from that
#: table so far in this pass).
Progress = Callable[[str, int, int], None]


class AsyncCleanupJob:
    """One cleanup pass over every store that expires rows; see the module docstring."""

    def __init__(
        self,
        factory: AsyncRepositoryFactory,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        audit_retention_days: float | None = None,
        rate_limit_idle_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= MAX_BATCH_SIZE
        ):
            raise ValidationError(
                f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {shown(batch_size)}"
            )
        settings = factory.db.settings
        self.factory = factory
        self.batch_size = batch_size
        self.audit_retention_days = (
            settings.audit_retention_days if audit_retention_days is None else audit_retention_days
        )
        self.rate_limit_idle_seconds = (
            settings.rate_limit_idle_seconds
            if rate_limit_idle_seconds is None
            else rate_limit_idle_seconds
        )
        self.progress = progress

    def _report_progress(self, table: str, removed: int, so_far: int) -> None:
        logger.info("cleanup %s: removed %d (%d so far)", table, removed, so_far)
        if self.progress is not None:
            self.progress(table, removed, so_far)

    async def run_once(self, *, should_stop: Callable[[], bool] | None = None) -> CleanupJobReport:
        """Run every step once and return what was removed.

        ``should_stop`` is polled between batches: when it returns true the pass ends after
        the batch in progress (``report.stopped``). A step whose repository is missing is
        skipped with a log line; a step that fails is logged and reported in
        ``report.errors`` while the other steps still run.
        """
        stop = should_stop or (lambda: False)
        start = time.perf_counter()
        removed: dict[str, int] = {}
        skipped: dict[str, str] = {}
        errors: dict[str, str] = {}
        stopped = False
        erasures: list[int] = []
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("cache", lambda: self._cache(removed, stop)),
            ("rate_limits", lambda: self._rate_limits(removed)),
            ("audit_logs", lambda: self._audit_logs(removed, stop)),
            ("audit_erasures", lambda: self._audit_erasures(erasures)),
            ("partitions", lambda: self._partitions(removed)),
            ("limits_storage", lambda: self._limits_storage(removed, stop)),
        ]
        for step, run in steps:
            if stop():
                stopped = True
                break
            try:
                reason = await run()
            except DigitwinDBError as exc:
                logger.error("cleanup %s failed: %s", step, exc)
                errors[step] = str(exc)
                continue
            if reason:
                logger.warning("cleanup %s skipped: %s", step, reason)
                skipped[step] = reason
        stopped = stopped or stop()
        report = CleanupJobReport(
            removed=removed,
            skipped=skipped,
            errors=errors,
            stopped=stopped,
            duration_ms=round((time.perf_counter() - start) * 1000.0, 3),
            audit_erasures=sum(erasures),
        )
        logger.info(
            "cleanup pass removed %d rows in %.0f ms: %s",
            report.total_removed,
            report.duration_ms,
            removed,
        )
        return report

    async def _cache(self, removed: dict[str, int], stop: Callable[[], bool]) -> str | None:
        cache = self.factory.cache
        per_table = rows_per_table(
            await cache.cleanup_expired(batch_size=self.batch_size, should_stop=stop)
        )
        for table, count in per_table.items():
            removed[table] = removed.get(table, 0) + count
            self._report_progress(table, count, removed[table])
        return None

    async def _rate_limits(self, removed: dict[str, int]) -> str | None:
        rate_limits = self.factory.rate_limits
        count = int(
            await rate_limits.cleanup_idle(
                older_than=timedelta(seconds=self.rate_limit_idle_seconds)
            )
        )
        removed["rate_limits"] = count
        self._report_progress("rate_limits", count, count)
        return None

    async def _audit_erasures(self, done: list[int]) -> str | None:
        # GDPR erasures the application role could only queue (it may not change audit
        # rows); the maintenance role the job runs as anonymises them.
        count = await self.factory.audit_logs.process_erasures()
        done.append(count)
        if count:
            logger.info("cleanup audit_erasures: anonymised the audit rows of %d users", count)
        return None

    async def _limits_storage(
        self, removed: dict[str, int], stop: Callable[[], bool]
    ) -> str | None:
        """Expired windows of the ``limits`` storage (digitwin_db.contrib.limits): rows that
        count nothing any more, deleted in batches that skip rows a hit holds."""
        total = removed.setdefault("limits_storage", 0)
        while not stop():
            async with self.factory.db.connection("cleanup.limits_storage") as conn:
                cur = await conn.execute(limits_sql.DELETE_EXPIRED, {"batch": self.batch_size})
                row = await cur.fetchone()
            count = int(row[0]) if row is not None else 0
            total += count
            removed["limits_storage"] = total
            self._report_progress("limits_storage", count, total)
            if count == 0:
                break
        return None

    async def _audit_logs(self, removed: dict[str, int], stop: Callable[[], bool]) -> str | None:
        audit_logs = self.factory.audit_logs
        total = removed.setdefault("audit_logs", 0)
        while True:
            # One batch per call, so that progress is reported and a stop request is
            # honoured between batches.
            # Whole month partitions when audit_logs is partitioned (migration 0015).
            count = await audit_logs.apply_retention(
                self.audit_retention_days, batch_size=self.batch_size, max_batches=1
            )
            total += count
            removed["audit_logs"] = total
            if count or not total:
                self._report_progress("audit_logs", count, total)
            if count < self.batch_size or stop():
                return None

    async def _partitions(self, removed: dict[str, int]) -> str | None:
        """Month partitions of conversation_turns: create the next ones, and drop the
        months past ``Settings.turn_retention_days`` (when set)."""
        partitions = self.factory.partitions
        if not await partitions.installed():
            return "conversation_turns is not partitioned (migration 0013 not applied)"
        settings = self.factory.db.settings
        await partitions.ensure_ahead(settings.partition_months_ahead)
        if settings.turn_retention_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=settings.turn_retention_days)
            count = await partitions.drop_turns_older_than(cutoff)
            removed["conversation_turns"] = count
            self._report_progress("conversation_turns", count, count)
        return None
