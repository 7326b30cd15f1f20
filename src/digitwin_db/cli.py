"""Operations command line: ``python -m digitwin_db COMMAND`` (or ``digitwin-db COMMAND``).

Every command reads its configuration from the environment / ``.env`` (``DATABASE_URL``…).
Exit status: 0 on success, 1 when the command ran but found a problem (e.g. unhealthy),
2 on bad usage or configuration, 3 when the database cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import pydantic

from digitwin_db import migrations
from digitwin_db._version import __version__
from digitwin_db.errors import DatabaseUnavailableError, DigitwinDBError
from digitwin_db.settings import Settings, describe_settings_error
from digitwin_db.sharding import shard_urls

if TYPE_CHECKING:
    from digitwin_db._sync.factory import RepositoryFactory

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace, Settings], int]


def _print(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------- commands
def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = migrations.migrate(settings.owner_url)
    if applied:
        for mid in applied:
            _print(f"applied {mid}")
    else:
        _print("database is up to date")
    for shard, url in shard_urls(settings.cache_shard_urls):  # every cache shard too
        done = migrations.migrate(url)
        _print(f"cache shard {shard}: " + (f"applied {len(done)}" if done else "up to date"))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    count = None if args.all else args.steps
    rolled = migrations.rollback(settings.owner_url, count=count)
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
    try:
        with _open_factory(settings) as factory:
            report = factory.health()
    except DatabaseUnavailableError as exc:
        if args.json:
            _print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            _print(f"UNHEALTHY: {exc}")
        return EXIT_UNAVAILABLE
    if args.json:
        _print(report.model_dump_json(indent=2))
    else:
        db = report.database
        _print(f"database   {'ok' if db.ok else 'FAILING'}  {settings.safe_url}")
        _print(f"  latency  {db.latency_ms} ms, server {db.server_version}")
        _print(f"  pending  {', '.join(db.pending_migrations) or 'none'}")
        pool = ", ".join(f"{key} {value}" for key, value in sorted(db.pool.items()))
        _print(f"  pool     {pool or 'no statistics'}")
        for check in report.repositories:
            state = "ok" if check.ok else f"FAILING: {check.error}"
            _print(f"{check.name:10} {state}")
        _print("HEALTHY" if report.ok else "UNHEALTHY")
    return EXIT_OK if report.ok else EXIT_PROBLEM


# ---------------------------------------------------------------------------- operations
def _eprint(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def _open_factory(settings: Settings, url: str | None = None) -> Iterator[RepositoryFactory]:
    """A factory on a small pool (on ``url``, default DATABASE_URL);
    ``DatabaseUnavailableError`` when the server is down."""
    from digitwin_db._sync.database import Database
    from digitwin_db._sync.factory import RepositoryFactory

    database = Database(settings, url=url, pool_min_size=0)
    database.open()
    factory = RepositoryFactory(database)
    try:
        yield factory
    finally:
        factory.close()


def _render(value: Any, indent: int = 0) -> Iterator[str]:
    """Plain-text rendering of nested dicts/lists (what ``stats`` prints without --json)."""
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if (
                indent
                and isinstance(item, dict)
                and item
                and not any(isinstance(v, dict | list) for v in item.values())
            ):
                # A flat record below the top level: one line, "key: a=1, b=2".
                yield f"{pad}{key}: " + ", ".join(f"{k}={_scalar(v)}" for k, v in item.items())
            elif isinstance(item, dict | list) and item:
                yield f"{pad}{key}:"
                yield from _render(item, indent + 1)
            else:
                yield f"{pad}{key}: {_scalar(item)}"
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield f"{pad}- " + ", ".join(f"{k}={_scalar(v)}" for k, v in item.items())
            else:
                yield f"{pad}- {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(value)}"


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value in ({}, []):
        return "none"
    return str(value)


def _plain(value: Any) -> Any:
    """Pydantic models (and lists/dicts of them) as JSON-ready data."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@contextmanager
def _stop_on_signals(stop: threading.Event, received: list[str] | None = None) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop`` instead of killing the process, so that the work in
    progress (one batch) finishes and the command exits cleanly. The handler only records
    the signal (in ``received``): printing from a signal handler while the main thread
    prints raises "reentrant call" on the buffered stream."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if received is not None and not stop.is_set():
            received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cmd_cleanup(args: argparse.Namespace, settings: Settings) -> int:
    from digitwin_db._sync.cleanup import CleanupJob

    stop = threading.Event()
    received: list[str] = []

    def announce_stop() -> None:
        # In the main thread, once: the signal handler itself never prints.
        if received:
            _eprint(f"cleanup: {received.pop()} received, stopping after this batch")
            received.clear()

    terminal = sys.stderr.isatty()
    shown_bar: list[bool] = []

    def progress(table: str, removed: int, so_far: int) -> None:
        announce_stop()
        # A batch that removed nothing says nothing: a pass with nothing to do prints only
        # its one summary line. On a terminal the line is rewritten in place (a progress
        # line); otherwise one line per batch, for logs.
        if args.quiet or removed == 0:
            return
        line = f"cleanup: {table}: removed {removed} (total {so_far})"
        if terminal:
            sys.stderr.write(f"\r\x1b[K{line}")
            sys.stderr.flush()
            shown_bar[:] = [True]
        else:
            _eprint(line)

    def end_bar() -> None:
        if shown_bar:
            sys.stderr.write("\n")
            shown_bar.clear()

    failed = False
    with (
        _stop_on_signals(stop, received),
        _open_factory(settings, settings.maintenance_url) as factory,
    ):
        job = CleanupJob(
            factory,
            batch_size=args.batch_size,
            audit_retention_days=args.audit_retention_days,
            progress=progress,
        )
        passes = 0
        while True:
            report = job.run_once(should_stop=stop.is_set)
            end_bar()
            announce_stop()
            passes += 1
            failed = failed or bool(report.errors)
            if args.json:
                _print(report.model_dump_json())
            else:
                detail = ", ".join(f"{t} {n}" for t, n in report.removed.items() if n)
                _print(
                    f"removed {report.total_removed} rows in {report.duration_ms:.0f} ms"
                    + (f" ({detail})" if detail else "")
                )
                for step, reason in report.skipped.items():
                    _print(f"skipped {step}: {reason}")
                for step, error in report.errors.items():
                    _eprint(f"cleanup: {step} failed: {error}")
            if args.interval is None or stop.is_set():
                break
            stop.wait(args.interval)
            announce_stop()
            if stop.is_set():
                break
    announce_stop()  # a signal that came between two checks is reported too
    if args.interval is not None:
        _eprint(f"cleanup: stopped after {passes} pass(es)")
        return EXIT_OK  # a daemon reports failures in its log and keeps going
    return EXIT_PROBLEM if failed else EXIT_OK


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    with _open_factory(settings) as factory:
        report: dict[str, Any] = {"database": settings.safe_url}
        report["pool"] = factory.db.pool_stats()
        # Per cache: hits, misses, entries, bytes and the hit rate.
        report["cache"] = {
            name: {**_plain(counts), "hit_rate": round(counts.hit_rate, 4)}
            for name, counts in factory.cache.stats().caches.items()
        }
        report["rate_limits"] = factory.maintenance.rate_limit_summary()
        since = datetime.now(UTC) - timedelta(hours=args.hours)
        audit = factory.audit_logs.statistics(since=since)
        report[f"audit_last_{args.hours:g}h"] = _plain(audit)
        report["tables"] = {
            t.table: {
                "total_bytes": t.total_bytes,
                "live_tuples": t.live_tuples,
                "dead_tuples": t.dead_tuples,
                "dead_ratio": round(t.dead_ratio, 4),
            }
            for t in factory.maintenance.table_stats()
        }
        # Per-operation counts and latencies of this process (a service exposes its own
        # through factory.stats()); here they show what the statistics queries cost.
        report["slow_call_ms"] = settings.slow_call_ms  # slower calls are logged as warnings
        report["operations"] = {
            s.operation: s.model_dump(exclude={"operation"}) for s in factory.stats()
        }
    if args.json:
        _print(json.dumps(report, indent=2, default=str))
    else:
        for line in _render(report):
            _print(line)
    return EXIT_OK


def cmd_maintenance(args: argparse.Namespace, settings: Settings) -> int:
    from digitwin_db.errors import ValidationError

    try:
        return _maintenance(args, settings)
    except ValidationError as exc:  # e.g. an unknown --table: bad usage
        print(f"digitwin-db maintenance: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _maintenance(args: argparse.Namespace, settings: Settings) -> int:
    with _open_factory(settings) as factory:
        if args.action == "vacuum":
            timings = factory.maintenance.vacuum_analyze(args.tables or None)
            for table, ms in timings.items():
                _print(f"vacuum (analyze) {table:24} {ms:9.1f} ms")
            return EXIT_OK
        stats = factory.maintenance.table_stats(args.tables or None)
    if args.json:
        _print(json.dumps([s.model_dump(mode="json") for s in stats], indent=2))
        return EXIT_OK
    _print(f"{'table':24} {'total':>10} {'live':>10} {'dead':>10} {'dead %':>7}  last vacuum")
    for s in stats:
        vacuumed = max(
            (t for t in (s.last_vacuum, s.last_autovacuum) if t is not None), default=None
        )
        last = f"{vacuumed:%Y-%m-%d %H:%M}" if vacuumed else "never"
        flag = "  <- consider VACUUM" if s.dead_ratio >= BLOAT_WARN_RATIO else ""
        _print(
            f"{s.table:24} {_size(s.total_bytes):>10} {s.live_tuples:>10} {s.dead_tuples:>10} "
            f"{s.dead_ratio * 100:>6.1f}%  {last}{flag}"
        )
    return EXIT_OK


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from digitwin_db.seed import seed

    with _open_factory(settings) as factory:
        report = seed(factory)
    _print(f"seed: {report.summary()}")
    _print("seeded demo data" if report.changed else "demo data already in place")
    return EXIT_OK


# A table whose dead tuples are this share of all tuples is flagged in the report
# (autovacuum's default trigger is 20 % plus 50 rows).
BLOAT_WARN_RATIO = 0.2


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitwin-db",
        description="Operate the digitwin-db PostgreSQL data layer. Configuration comes from "
        "the environment or .env (DATABASE_URL, POOL_MAX_SIZE, ...).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="apply every pending migration")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("rollback", help="roll back the newest migration(s)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=_positive_int, default=1, help="how many (default 1)")
    group.add_argument("--all", action="store_true", help="roll back every migration")
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("status", help="list migrations and whether each is applied")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("health", help="check the database; exit 1 when unhealthy, 3 when down")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_health)

    p = sub.add_parser(
        "cleanup",
        help="remove expired cache rows, idle rate-limit buckets, audit rows past retention",
        description="Delete, in small batches, expired cache entries, rate-limit buckets idle "
        "longer than RATE_LIMIT_IDLE_SECONDS and audit entries older than "
        "AUDIT_RETENTION_DAYS. Safe to run on several hosts at once. With --interval it runs "
        "until SIGTERM/SIGINT, then finishes the batch in progress and exits 0.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one pass and exit (default)")
    mode.add_argument(
        "--interval",
        type=_positive_float,
        metavar="SECONDS",
        help="run a pass every SECONDS until stopped by SIGTERM/SIGINT",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=5000,
        metavar="N",
        help="rows per delete statement (default 5000)",
    )
    p.add_argument(
        "--audit-retention-days",
        type=_positive_int,
        metavar="DAYS",
        help="override AUDIT_RETENTION_DAYS (default from settings: 90)",
    )
    p.add_argument("--json", action="store_true", help="print each pass's report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-batch progress on stderr")
    p.set_defaults(handler=cmd_cleanup)

    p = sub.add_parser(
        "stats",
        help="pool, cache hit rates and sizes, rate-limit usage, audit, table sizes",
        description="Print operational statistics: connection pool, cache hit rates and sizes, "
        "rate-limit usage, audit activity, table sizes and dead-tuple ratios, and the "
        "per-operation latencies of this command's own calls.",
    )
    p.add_argument("--hours", type=_positive_float, default=24.0, help="audit window (default 24)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser(
        "maintenance",
        help="VACUUM (ANALYZE) tables, or report sizes and dead tuples",
        description="'vacuum' runs VACUUM (ANALYZE) on the given tables (default: the cache and "
        "rate-limit tables); 'report' lists table sizes, dead tuples and last vacuum.",
    )
    p.add_argument("action", choices=["vacuum", "report"], help="what to do")
    p.add_argument(
        "--table",
        dest="tables",
        action="append",
        metavar="TABLE",
        help="limit to this table (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="report: print as JSON")
    p.set_defaults(handler=cmd_maintenance)

    p = sub.add_parser(
        "seed",
        help="create the demo data (idempotent)",
        description="Create the demo data: two users (free and pro) with voice and face "
        "models, knowledge documents in every state, conversation sessions with turns, and a "
        "few audit entries. Idempotent: what exists is left alone, what is missing is added.",
    )
    p.set_defaults(handler=cmd_seed)

    from digitwin_db.cli_security import register as register_security

    register_security(sub, _open_factory)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The pool logs every failed reconnection attempt; the command reports the outcome
        # itself ("database unavailable: ..."), so keep only the pool's errors.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        settings = Settings()
    except pydantic.ValidationError as exc:
        print(
            f"digitwin-db: invalid configuration: {describe_settings_error(exc)}", file=sys.stderr
        )
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
    except BrokenPipeError:
        # The reader went away (e.g. `digitwin-db status | head -1`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
