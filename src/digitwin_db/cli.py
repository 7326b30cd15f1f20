"""Operations command line: ``python -m digitwin_db COMMAND`` (or ``digitwin-db COMMAND``).

Every command reads its configuration from the environment / ``.env`` (``DATABASE_URL``…).
Exit status: 0 on success, 1 when the command ran but found a problem (e.g. unhealthy),
2 on bad usage or configuration, 3 when the database cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

import pydantic

from digitwin_db import migrations
from digitwin_db.errors import DatabaseUnavailableError, DigitwinDBError
from digitwin_db.settings import Settings

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace, Settings], int]


def _print(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------- commands
def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = migrations.migrate(settings.url)
    if applied:
        for mid in applied:
            _print(f"applied {mid}")
    else:
        _print("database is up to date")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    count = None if args.all else args.steps
    rolled = migrations.rollback(settings.url, count=count)
    for mid in rolled:
        _print(f"rolled back {mid}")
    if not rolled:
        _print("nothing to roll back")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    rows = migrations.status(settings.url)
    for row in rows:
        _print(f"{'applied' if row.applied else 'PENDING':8} {row.id}")
    pending = sum(not r.applied for r in rows)
    _print(f"{len(rows) - pending} applied, {pending} pending")
    return EXIT_OK


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from digitwin_db._sync.database import Database
    from digitwin_db._sync.factory import RepositoryFactory

    database = Database(settings, pool_min_size=0)
    try:
        database.open()
    except DatabaseUnavailableError as exc:
        if args.json:
            _print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            _print(f"UNHEALTHY: {exc}")
        return EXIT_UNAVAILABLE
    factory = RepositoryFactory(database)
    try:
        report = factory.health()
    finally:
        factory.close()
    if args.json:
        _print(report.model_dump_json(indent=2))
    else:
        db = report.database
        _print(f"database   {'ok' if db.ok else 'FAILING'}  {settings.safe_url}")
        _print(f"  latency  {db.latency_ms} ms, server {db.server_version}")
        _print(f"  pending  {', '.join(db.pending_migrations) or 'none'}")
        _print(f"  pool     {db.pool}")
        for check in report.repositories:
            state = "ok" if check.ok else f"FAILING: {check.error}"
            _print(f"{check.name:10} {state}")
        _print("HEALTHY" if report.ok else "UNHEALTHY")
    return EXIT_OK if report.ok else EXIT_PROBLEM


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitwin-db",
        description="Operate the digitwin-db PostgreSQL data layer. Configuration comes from "
        "the environment or .env (DATABASE_URL, POOL_MAX_SIZE, ...).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="apply every pending migration")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("rollback", help="roll back the newest migration(s)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    group.add_argument("--all", action="store_true", help="roll back every migration")
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("status", help="list migrations and whether each is applied")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("health", help="check the database; exit 1 when unhealthy, 3 when down")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_health)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Later modules add commands here: each entry registers a sub-parser with a handler.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings()
    except pydantic.ValidationError as exc:
        print(f"digitwin-db: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except DatabaseUnavailableError as exc:
        print(f"digitwin-db: database unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except DigitwinDBError as exc:
        print(f"digitwin-db {args.command}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        print("digitwin-db: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
