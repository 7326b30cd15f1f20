"""The append-only audit trail: ``factory.audit_logs``.

Rows are only ever inserted. The application role has INSERT and SELECT on the table and
nothing more; the retention purge (:meth:`purge_older_than`) and GDPR anonymisation run
through owner-defined ``SECURITY DEFINER`` functions that only the maintenance role may
execute (migrations/0005_audit_privileges.sql, ``python -m digitwin_db grant``). Once the
table is partitioned by month (migrations/0015_audit_partitions.sql), the cleanup job's
retention (:meth:`apply_retention`) drops whole months instead, the hash chain anchored.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, ClassVar, LiteralString
from uuid import UUID

from psycopg import sql
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from digitwin_db._async.repositories.base import AsyncRepository
from digitwin_db.audit_chain import ChainBreak, ChainRow, ChainVerifier
from digitwin_db.errors import QueryError
from digitwin_db.models.audit import (
    AuditChainHead,
    AuditChainReport,
    AuditEntry,
    AuditStatistics,
    AuditUserCount,
)
from digitwin_db.models.common import Page
from digitwin_db.rules.audit import (
    DEFAULT_PURGE_BATCH,
    RESOURCE_ID_MAX,
    RESOURCE_TYPE_MAX,
    TOP_USERS,
    USER_AGENT_MAX,
    check_action,
    check_ip,
    check_optional_text,
    check_result,
    check_retention_args,
)
from digitwin_db.sql import audit_logs as q
from digitwin_db.validation import (
    check_aware_datetime,
    check_int_range,
    check_json_object,
    check_page,
    optional_uuid,
)

__all__ = ["AsyncAuditLogRepository"]


class AsyncAuditLogRepository(AsyncRepository):
    """Append-only audit entries: :meth:`log`, :meth:`query`, :meth:`statistics`,
    :meth:`purge_older_than`."""

    name: ClassVar[str] = "audit_logs"
    tables: ClassVar[tuple[str, ...]] = ("audit_logs",)

    async def log(
        self,
        action: str,
        *,
        user_id: UUID | str | None = None,
        resource_type: str | None = None,
        resource_id: str | UUID | None = None,
        result: str = "success",
        ip_address: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
        user_agent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry and return it; it is durable (WAL flushed) when this returns.

        ``action`` is 1-100 characters among letters, digits and ``_ . : / -`` (e.g.
        ``"user.created"``); ``result`` is ``success``, ``failure`` or ``denied``;
        ``ip_address`` an IPv4/IPv6 address; ``user_agent`` at most 1024 characters;
        ``metadata`` a JSON object. Raises ``ValidationError`` before any SQL otherwise.
        """
        if isinstance(resource_id, UUID):
            resource_id = str(resource_id)
        params = {
            "action": check_action(action),
            "user_id": optional_uuid(user_id, "user_id"),
            "resource_type": check_optional_text(resource_type, "resource_type", RESOURCE_TYPE_MAX),
            "resource_id": check_optional_text(resource_id, "resource_id", RESOURCE_ID_MAX),
            "result": check_result(result),
            "ip_address": check_ip(ip_address),
            "user_agent": check_optional_text(user_agent, "user_agent", USER_AGENT_MAX),
            "metadata": Jsonb(check_json_object(metadata, "metadata")),
        }
        async with self.db.transaction("audit_logs.log") as conn:
            # The test and many production servers run synchronous_commit = off globally;
            # an audit entry must survive a crash once the caller has been told it exists.
            await conn.execute(q.SYNCHRONOUS_COMMIT_ON)
            cur = conn.cursor(row_factory=class_row(AuditEntry))
            await cur.execute(q.INSERT, params)
            entry = await cur.fetchone()
        if entry is None:
            raise QueryError("audit_logs: the statement returned no row")
        return entry

    async def query(
        self,
        *,
        user_id: UUID | str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        """Entries matching every given filter, newest first, one page at a time.

        ``since`` is inclusive, ``until`` exclusive (timezone-aware datetimes). ``limit`` is
        1-1000. ``total`` counts every match, not just this page.
        """
        params: dict[str, Any] = {
            "user_id": optional_uuid(user_id, "user_id"),
            "action": None if action is None else check_action(action),
            "resource_type": check_optional_text(resource_type, "resource_type", RESOURCE_TYPE_MAX),
            "resource_id": check_optional_text(resource_id, "resource_id", RESOURCE_ID_MAX),
            "result": None if result is None else check_result(result),
            "since": check_aware_datetime(since, "since"),
            "until": check_aware_datetime(until, "until"),
        }
        params["limit"], params["offset"] = check_page(limit, offset)
        fragments = [
            sql.SQL(fragment)
            for name, fragment in q.QUERY_FILTERS.items()
            if params[name] is not None
        ]
        where = sql.SQL(" AND ").join(fragments) if fragments else sql.SQL(q.NO_FILTER)
        async with self.db.connection("audit_logs.query") as conn:
            cur = conn.cursor(row_factory=class_row(AuditEntry))
            await cur.execute(sql.SQL(q.SELECT_PAGE).format(where=where), params)
            items = await cur.fetchall()
            total = await self._page_total(
                conn,
                len(items),
                params["limit"],
                params["offset"],
                sql.SQL(q.COUNT).format(where=where),
                params,
            )
        return Page[AuditEntry](
            items=items, total=total, limit=params["limit"], offset=params["offset"]
        )

    async def statistics(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AuditStatistics:
        """Totals over ``[since, until)``: count, per action, per result, failure and denied
        rates, and the ten most active users. Computed in one SQL statement."""
        params = {
            "since": check_aware_datetime(since, "since"),
            "until": check_aware_datetime(until, "until"),
            "top_users": TOP_USERS,
        }
        async with self.db.connection("audit_logs.statistics") as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(q.STATISTICS, params)
            row = await cur.fetchone()
        if row is None:
            raise QueryError("audit_logs: the statement returned no row")
        total = int(row["total"])
        by_result: dict[str, int] = {k: int(v) for k, v in row["by_result"].items()}
        return AuditStatistics(
            since=since,
            until=until,
            total=total,
            by_action={k: int(v) for k, v in row["by_action"].items()},
            by_result=by_result,
            failure_rate=by_result.get("failure", 0) / total if total else 0.0,
            denied_rate=by_result.get("denied", 0) / total if total else 0.0,
            top_users=[AuditUserCount.model_validate(u) for u in row["top_users"]],
        )

    async def purge_older_than(
        self,
        days: float = 90,
        *,
        batch_size: int = DEFAULT_PURGE_BATCH,
        max_batches: int | None = None,
    ) -> int:
        """Delete entries created more than ``days`` days ago; return how many.

        Deletes in batches of ``batch_size`` (each its own short transaction, oldest first,
        ``SKIP LOCKED`` so that several cleaners can run at once); ``max_batches`` stops
        after that many batches (the cleanup job uses 1 to report progress and to stop
        between batches). The only path that may delete audit rows: it runs as the
        ``digitwin_audit_purge`` function, which only the maintenance role (or the owner)
        may execute, and which refuses a ``days`` below the owner's floor
        (``audit_policy.min_retention_days``, 30 by default) with ``ValidationError``.
        """
        return await self._in_batches(
            q.PURGE_BATCH, "audit_logs.purge", *check_retention_args(days, batch_size, max_batches)
        )

    async def _in_batches(
        self,
        statement: LiteralString,
        label: str,
        days: float,
        batch_size: int,
        max_batches: int | None,
    ) -> int:
        """Run a retention function (``statement``) batch after batch, each in its own
        transaction, until a batch removes less than ``batch_size`` rows or ``max_batches``
        ran; return the rows removed."""
        removed = batches = 0
        while max_batches is None or batches < max_batches:
            async with self.db.connection(label) as conn:
                cur = await conn.execute(statement, {"days": float(days), "batch_size": batch_size})
                row = await cur.fetchone()
            deleted = int(row[0]) if row is not None else 0
            removed += deleted
            batches += 1
            if deleted < batch_size:
                break
        return removed

    async def apply_retention(
        self,
        days: float = 90,
        *,
        batch_size: int = DEFAULT_PURGE_BATCH,
        max_batches: int | None = None,
    ) -> int:
        """The cleanup job's retention pass; return the rows removed.

        On the month-partitioned table (migration 0015) it drops whole month partitions
        that ended more than ``days`` days ago — no DELETE, no dead tuples — and deletes
        only the stray rows of the default partition older than that, ``batch_size`` at a
        time; rows of a month that is only partly past ``days`` stay until the whole month
        is (at most a month longer). Every removed row whose successor survives leaves its
        hash in ``audit_chain_anchors``, so :meth:`verify_chain` still checks the surviving
        chain. Before that migration it is :meth:`purge_older_than`. Maintenance role
        only; the owner's floor applies (``ValidationError``) as for
        :meth:`purge_older_than`, which still deletes row by row to the exact cut.
        """
        args = check_retention_args(days, batch_size, max_batches)
        async with self.db.connection("audit_logs.partitioned") as conn:
            cur = await conn.execute(q.PARTITIONED)
            row = await cur.fetchone()
        if row and row[0]:
            return await self._in_batches(
                q.DROP_PARTITIONS_BATCH, "audit_logs.drop_partitions", *args
            )
        return await self._in_batches(q.PURGE_BATCH, "audit_logs.purge", *args)

    async def retention_floor(self) -> int:
        """The owner's floor under every retention purge, in days
        (``audit_policy.min_retention_days``): ``purge_older_than`` refuses less."""
        async with self.db.connection("audit_logs.retention_floor") as conn:
            cur = await conn.execute(q.RETENTION_FLOOR)
            row = await cur.fetchone()
        return int(row[0]) if row is not None else 30

    async def process_erasures(self, *, limit: int = 1000) -> int:
        """Anonymise the audit rows of users erased by the application role (queued by
        ``users.erase`` when that role may not anonymise); return how many erasures were
        processed. Maintenance role only; the cleanup job calls it."""
        limit = check_int_range(limit, "limit", 1, 1_000_000)
        async with self.db.connection("audit_logs.process_erasures") as conn:
            cur = await conn.execute(q.PROCESS_ERASURES, {"limit": limit})
            row = await cur.fetchone()
        return int(row[0]) if row is not None else 0

    # ------------------------------------------------------------------ hash chain
    async def chain_head(self) -> AuditChainHead | None:
        """The newest link of the hash chain (None before the first entry)."""
        async with self.db.connection("audit_logs.chain_head") as conn:
            cur = await conn.execute(q.CHAIN_HEAD)
            row = await cur.fetchone()
        if row is None:
            return None
        return AuditChainHead(seq=row[0], row_hash=bytes(row[1]).hex(), updated_at=row[2])

    async def verify_chain(self) -> AuditChainReport:
        """Recompute the hash chain in Python over every row (one snapshot, streamed) and
        report the first broken link: a row altered, deleted or inserted out of band."""
        async with self.db.transaction("audit_logs.verify_chain") as conn:
            await conn.execute(q.VERIFY_SNAPSHOT)
            cur = await conn.execute(q.CHAIN_HEAD)
            head_row = await cur.fetchone()
            cur = await conn.execute(q.CHAIN_ANCHORS)
            anchors = {int(seq): bytes(h) for seq, h in await cur.fetchall()}
            verifier = ChainVerifier(anchors)
            broken: ChainBreak | None = None
            rows = conn.cursor(name="audit_chain_verify", row_factory=class_row(ChainRow))
            rows.itersize = 5000
            await rows.execute(q.CHAIN_ROWS)
            async for row in rows:
                broken = verifier.feed(row)
                if broken is not None:
                    break
            await rows.close()
        head = None
        if head_row is not None:
            head = AuditChainHead(
                seq=head_row[0], row_hash=bytes(head_row[1]).hex(), updated_at=head_row[2]
            )
        if broken is None:
            broken = verifier.finish(
                None if head_row is None else int(head_row[0]),
                None if head_row is None else bytes(head_row[1]),
            )
        return AuditChainReport(
            ok=broken is None,
            rows_checked=verifier.rows,
            head=head,
            anchors=len(anchors),
            broken_id=None if broken is None else broken.id,
            broken_seq=None if broken is None else broken.chain_seq,
            reason=None if broken is None else str(broken),
        )
