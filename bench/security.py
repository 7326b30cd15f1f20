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
