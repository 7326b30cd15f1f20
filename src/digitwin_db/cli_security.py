"""Security commands of the command line: ``grant`` (the roles of SPEC §2.12) and
``audit verify`` / ``audit head`` (the audit hash chain)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from digitwin_db.settings import Settings

if TYPE_CHECKING:
    from digitwin_db._sync.factory import RepositoryFactory

__all__ = ["register"]

EXIT_OK, EXIT_PROBLEM = 0, 1


def cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    from digitwin_db.privileges import grant

    report = grant(settings.owner_url, app=args.app, maintenance=args.maintenance)
    for table, privileges in sorted(report.app.items()):
        print(f"{table}: {', '.join(privileges)} to {args.app} and {args.maintenance}")
    for function in report.functions:
        print(f"{function}: EXECUTE to {args.maintenance} only")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    with args.open_factory(settings) as factory:
        if args.action == "head":
            head = factory.audit_logs.chain_head()
            if args.json:
                print(head.model_dump_json() if head is not None else "null")
            elif head is None:
                print("the audit chain is empty (no entry yet)")
            else:
                print(f"seq {head.seq} sha256 {head.row_hash} (appended {head.updated_at})")
            return EXIT_OK
        report = factory.audit_logs.verify_chain()
    if args.json:
        print(report.model_dump_json())
    elif report.ok:
        head = report.head
        where = f"head seq {head.seq} sha256 {head.row_hash}" if head else "empty"
        print(
            f"audit chain intact: {report.rows_checked} rows, {where}, "
            f"{report.anchors} purged run(s) anchored"
        )
    else:
        print(f"audit chain BROKEN at {report.reason}")
        print(f"({report.rows_checked} rows verified before it)")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def register(
    sub: argparse._SubParsersAction[Any],
    open_factory: Callable[[Settings], AbstractContextManager[RepositoryFactory]],
) -> None:
    """Add the security commands to the command line's sub-parsers; ``open_factory`` is the
    command line's way to open a factory (passed in: this module does not import cli)."""
    p = sub.add_parser(
        "grant",
        help="give the application and maintenance roles exactly their privileges",
        description="Run as the owner (OWNER_DATABASE_URL, else DATABASE_URL). The roles must "
        "exist. The application role may INSERT and SELECT audit_logs and nothing more there; "
        "the maintenance role may also run the retention purge and GDPR anonymisation "
        "functions. Idempotent: run it again after every migration.",
    )
    p.add_argument("--app", required=True, metavar="ROLE", help="the application role")
    p.add_argument(
        "--maintenance", required=True, metavar="ROLE", help="the maintenance role (cleanup job)"
    )
    p.set_defaults(handler=cmd_grant)

    p = sub.add_parser(
        "audit",
        help="verify the audit hash chain, or print its head",
        description="'verify' recomputes the hash chain over every audit row and reports the "
        "first broken link (a row altered, deleted or inserted out of band): exit 0 intact, "
        "1 broken. 'head' prints the newest link (seq and sha256) to keep elsewhere.",
    )
    p.add_argument("action", choices=["verify", "head"], help="what to do")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(handler=cmd_audit, open_factory=open_factory)
