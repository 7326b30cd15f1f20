"""What the safety of SPEC §2.12 costs: the audit hash chain per ``log()`` and (later in
this module) row-level security per scoped read. Each compares the same repository call on
two databases of one server, side by side: one with the feature, one with it switched off."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from bench.harness import Measurement, measure_sync, summarize_latencies
from bench.results import Scenario

WITH_CHAIN = "log() with hash chain"
WITHOUT_CHAIN = "log() without chain (trigger off)"
THREADS = 8


@contextmanager
def sibling_database(pg_url: str, name: str) -> Iterator[str]:
    """A second, migrated database on the same server (dropped at the end)."""
    from digitwin_db import migrations

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        migrations.migrate(url)
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def _factory(url: str, pool_max_size: int = 10) -> Iterator[Any]:
    import digitwin_db

    db = digitwin_db.Database(url=url, pool_max_size=pool_max_size)
    db.open()
    factory = digitwin_db.RepositoryFactory(db)
    try:
        yield factory
    finally:
        factory.close()


def _log_call(factory: Any) -> Callable[[int], object]:
    user = uuid.uuid4()

    def call(i: int) -> object:
        return factory.audit_logs.log(
            "document.read",
            user_id=user,
            resource_type="document",
            resource_id=f"doc-{i % 100}",
            ip_address="192.0.2.10",
            metadata={"i": i, "source": "bench"},
        )

    return call


def _threaded_round(call: Callable[[int], object], ops: int) -> tuple[float, float, float]:
    """``ops`` calls spread over THREADS threads; (ops/s of all, p50 µs, p99 µs)."""
    latencies: list[int] = []
    lock = threading.Lock()
    per_thread = max(1, ops // THREADS)

    def work(t: int) -> None:
        mine = []
        for i in range(per_thread):
            start = time.perf_counter_ns()
            call(t * per_thread + i)
            mine.append(time.perf_counter_ns() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    start = time.perf_counter_ns()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarize_latencies(latencies, time.perf_counter_ns() - start)


def audit_chain(env: Any) -> list[Scenario]:
    cfg = env.config
    single = Scenario("audit_chain_log", "audit log(): hash chain cost, 1 client", WITH_CHAIN)
    single.note = (
        "same log() on two databases of one server; the second has the chain trigger "
        "disabled. The bench server runs fsync=off: the chain lock is held through the "
        "commit, so with a real disk flush the concurrent cost grows"
    )
    threaded = Scenario(
        "audit_chain_log_8_threads",
        f"audit log(): hash chain cost, {THREADS} threads",
        WITH_CHAIN,
    )
    threaded.note = "appends serialise on the chain lock; ops/s of all threads together"
    with (
        sibling_database(env.pg_url, "bench_chain_on") as on_url,
        sibling_database(env.pg_url, "bench_chain_off") as off_url,
    ):
        with psycopg.connect(off_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_chain_row")
        with _factory(on_url, THREADS) as on, _factory(off_url, THREADS) as off:
            calls = {WITH_CHAIN: _log_call(on), WITHOUT_CHAIN: _log_call(off)}
            single.results.update(
                measure_sync(calls, ops=cfg.ops, rounds=cfg.rounds, warmup=cfg.warmup)
            )
            figures: dict[str, list[tuple[float, float, float]]] = {n: [] for n in calls}
            names = list(calls)
            for r in range(cfg.rounds):
                for name in names[r % 2 :] + names[: r % 2]:
                    figures[name].append(_threaded_round(calls[name], cfg.ops))
            for name, rounds in figures.items():
                threaded.results[name] = Measurement(
                    statistics.median(f[0] for f in rounds),
                    statistics.median(f[1] for f in rounds),
                    statistics.median(f[2] for f in rounds),
                    len(rounds),
                    cfg.ops,
                )
            report = on.audit_logs.verify_chain()
            single.extra["chain verified after the run"] = str(report.ok)
            single.extra["rows verified"] = report.rows_checked
    return [single, threaded]


SCOPED = "scoped: for_user(u).voice_models.list_for_user(u)"
UNSCOPED_APP = "unscoped, application role (policies on)"
UNSCOPED_OWNER = "unscoped, owner (row security bypassed)"
SCOPED_GET = "scoped: for_user(u).users.get(u)"
UNSCOPED_GET_APP = "unscoped users.get, application role"
UNSCOPED_GET_OWNER = "unscoped users.get, owner"
BENCH_APP_ROLE = "digitwin_bench_app"
BENCH_MAINTENANCE_ROLE = "digitwin_bench_maintenance"


def _roles(pg_url: str) -> str:
    """The application role on the bench server (granted with `grant`); its URL."""
    from psycopg.conninfo import make_conninfo

    from digitwin_db.privileges import grant

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for role in (BENCH_APP_ROLE, BENCH_MAINTENANCE_ROLE):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    grant(pg_url, app=BENCH_APP_ROLE, maintenance=BENCH_MAINTENANCE_ROLE)
    return make_conninfo(pg_url, user=BENCH_APP_ROLE)


def rls(env: Any) -> list[Scenario]:
    cfg = env.config
    listing = Scenario("rls_list_for_user", "row-level security: list a user's models", SCOPED)
    listing.note = (
        "the scoped call is a transaction (BEGIN, SET LOCAL digitwin.user_id, the query, "
        "COMMIT: 3 extra round trips); 50 users with 4 models each"
    )
    getting = Scenario("rls_users_get", "row-level security: users.get by id", SCOPED_GET)
    with sibling_database(env.pg_url, "bench_rls") as url:
        app_url = _roles(url)
        with _factory(url) as owner, _factory(app_url) as app:
            users = []
            for i in range(50):
                user = owner.users.create(email=f"rls{i}@example.com", name=f"User {i}")
                for j in range(4):
                    owner.voice_models.create(
                        user_id=user.id, name=f"m{j}", provider="p", model_ref="r"
                    )
                users.append(user.id)
            n = len(users)
            scopes = [app.for_user(u) for u in users]
            listing.results.update(
                measure_sync(
                    {
                        SCOPED: lambda i: scopes[i % n].voice_models.list_for_user(users[i % n]),
                        UNSCOPED_APP: lambda i: app.voice_models.list_for_user(users[i % n]),
                        UNSCOPED_OWNER: lambda i: owner.voice_models.list_for_user(users[i % n]),
                    },
                    ops=cfg.ops,
                    rounds=cfg.rounds,
                    warmup=cfg.warmup,
                )
            )
            getting.results.update(
                measure_sync(
                    {
                        SCOPED_GET: lambda i: scopes[i % n].users.get(users[i % n]),
                        UNSCOPED_GET_APP: lambda i: app.users.get(users[i % n]),
                        UNSCOPED_GET_OWNER: lambda i: owner.users.get(users[i % n]),
                    },
                    ops=cfg.ops,
                    rounds=cfg.rounds,
                    warmup=cfg.warmup,
                )
            )
    return [listing, getting]
