"""The append-only audit trail: ``factory.audit_logs``.

Rows are only ever inserted. The database itself refuses UPDATE, DELETE and TRUNCATE (a
trigger, see migrations/0004_audit_logs.sql) except in a transaction that sets
``digitwin.audit_maintenance`` locally: :meth:`purge_older_than` ('purge') here, and GDPR
erasure ('erase') in the users repository.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import sql
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from digitwin_db._async.repositories.base import AsyncRepository
from digitwin_db.errors import QueryError
from digitwin_db.models.audit import AuditEntry, AuditStatistics, AuditUserCount
from digitwin_db.models.common import Page
from digitwin_db.rules.audit import (
    DEFAULT_PURGE_BATCH,
    MAX_RETENTION_DAYS,
    RESOURCE_ID_MAX,
    RESOURCE_TYPE_MAX,
    TOP_USERS,
    USER_AGENT_MAX,
    check_action,
    check_ip,
    check_optional_text,
    check_result,
)
from digitwin_db.sql import audit_logs as q
from digitwin_db.validation import (
    check_aware_datetime,
    check_int_range,
    check_json_object,
    check_number,
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
        between batches). The only path that may delete audit rows.
        """
        days = check_number(days, "days", minimum=0, maximum=MAX_RETENTION_DAYS)
        batch_size = check_int_range(batch_size, "batch_size", 1, 1_000_000)
        if max_batches is not None:
            max_batches = check_int_range(max_batches, "max_batches", 1, 2**31)
        async with self.db.connection("audit_logs.purge_cutoff") as conn:
            cur = await conn.execute(q.PURGE_CUTOFF, {"days": float(days)})
            row = await cur.fetchone()
        if row is None:
            raise QueryError("audit_logs: the statement returned no row")
        cutoff: datetime = row[0]
        removed = batches = 0
        while max_batches is None or batches < max_batches:
            async with self.db.transaction("audit_logs.purge") as conn:
                await conn.execute(q.ALLOW_PURGE)
                cur = await conn.execute(
                    q.PURGE_BATCH, {"cutoff": cutoff, "batch_size": batch_size}
                )
                deleted = cur.rowcount
            removed += deleted
            batches += 1
            if deleted < batch_size:
                break
        return removed
