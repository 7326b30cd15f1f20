"""Security commands of the command line: ``grant`` (the roles of SPEC §2.12) and
``audit verify`` / ``audit head`` (the audit hash chain)."""

from __future__ import annotations

import argparse
from typing import Any

from digitwin_db.settings import Settings

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


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the security commands to the command line's sub-parsers."""
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
