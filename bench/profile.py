"""Where does the time of a hot call go? ``python -m bench.profile [--pyinstrument OP]``.

Starts its own PostgreSQL (like ``python -m bench``) and times the pieces of the hot paths
one by one — µs per call, median of several rounds — from the bare round trip up to the
full public call, so the difference between two lines is the cost of one layer. With
``--pyinstrument OP`` (``kv.get``, ``get_embedding``, ``check_and_consume``) it also prints a
pyinstrument call tree of a loop of that call.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from bench import baselines
from bench.scenarios import EMBED_MODEL, sample_value, sample_vector
from bench.servers import postgres


def measure_rows(
    rows: list[tuple[str, Callable[[], object]]], *, calls: int, rounds: int
) -> list[tuple[str, float, float, float, float]]:
    """(name, wall min, wall median, CPU min, CPU median) µs per call for every row.

    Rows run interleaved, round after round, so that load from other processes hits all
    of them alike; the minimum is the figure least disturbed by that load. CPU is this
    thread's time (Python, psycopg, the kernel's socket work), the wall figure adds the
    server's work and every wait.
    """
    for _, fn in rows:
        for _ in range(min(calls, 300)):
            fn()
    wall: dict[str, list[float]] = {name: [] for name, _ in rows}
    cpu: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(rounds):
        for name, fn in rows:
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            for _ in range(calls):
                fn()
            wall[name].append((time.perf_counter_ns() - t0) / calls / 1000.0)
            cpu[name].append((time.thread_time_ns() - c0) / calls / 1000.0)
    return [
        (
            name,
            min(wall[name]),
            statistics.median(wall[name]),
            min(cpu[name]),
            statistics.median(cpu[name]),
        )
        for name, _ in rows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument(
        "--pyinstrument",
        choices=["kv.get", "get_embedding", "get_llm_response", "get_many", "check_and_consume"],
    )
    parser.add_argument("--calls", type=int, default=3000, help="calls profiled (x3)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    args = parser.parse_args(argv)

    import digitwin_db
    from digitwin_db.sql import cache as cache_sql
    from digitwin_db.sql import rate_limits as rl_sql

    with postgres() as pg:
        baselines.create_bare_tables(pg.url)
        db = digitwin_db.Database(url=pg.url)
        db.open()
        factory = digitwin_db.RepositoryFactory(db)
        kv = factory.cache.kv
        cache = factory.cache
        rl = factory.rate_limits
        conn = baselines.bare_connection(pg.url)
        key = "user:1:profile"
        kv.set(key, sample_value(1))
        baselines.fill_bare_kv(conn, [key], sample_value(1))
        vector = sample_vector(1)
        cache.set_embedding("hello", vector, model=EMBED_MODEL)
        baselines.fill_bare_embeddings(conn, ["hello"], vector, EMBED_MODEL)
        user = str(uuid.UUID(int=1))
        params = kv._params(key)
        h = baselines.key_hash("default", key)
        pool = db._pool
        rl_params = {
            "user_id": user,
            "endpoint": "/api/chat",
            "capacity": 1000.0,
            "refill_rate": 1000.0,
            "cost": 1.0,
        }
        bare_rl = {"user": user, "endpoint": "/api/chat", "capacity": 1000.0, "rate": 1000.0}

        def pool_only() -> None:
            with pool.connection():
                pass

        def kv_sql_on_raw_pool() -> object:
            with pool.connection() as c:
                return c.execute(cache_sql.KV_GET, params, binary=True).fetchone()

        def db_conn_only() -> None:
            with db.connection("x.y"):
                pass

        def kv_sql_on_pool() -> object:
            with db.connection("cache.kv.get") as c:
                return c.execute(cache_sql.KV_GET, params, binary=True).fetchone()

        def kv_sql_on_bare() -> object:
            return conn.execute(cache_sql.KV_GET, params, binary=True, prepare=True).fetchone()

        def rl_sql_on_bare() -> object:
            return conn.execute(rl_sql.CHECK_AND_CONSUME, rl_params, prepare=True).fetchone()

        def rl_sql_on_pool() -> object:
            with db.connection("rate_limits.check_and_consume") as c:
                return c.execute(rl_sql.CHECK_AND_CONSUME, rl_params).fetchone()

        probe = (params["key_hash"],)
        kv_key = ("default", key)

        def kv_by_hash_on_pool() -> object:
            with db.connection("cache.kv.get") as c:
                return c.execute(cache_sql.KV_GET_BY_HASH, probe, binary=True).fetchone()

        def kv_by_hash_batcher() -> object:
            return db.batcher("cache.kv.get").execute(cache_sql.KV_GET_BY_HASH, probe, kv_key)

        def rl_sql_batcher() -> object:
            return db.batcher("rate_limits.check_and_consume").execute(
                rl_sql.CHECK_AND_CONSUME, rl_params, (user, "/api/chat")
            )

        kv.get(key)  # create the batchers
        rl.check_and_consume(user, "/api/chat", capacity=1000, refill_rate=1000.0)
        many_keys = [f"many:{i}" for i in range(100)]
        kv.set_many({k: sample_value(i) for i, k in enumerate(many_keys)})
        cache.set_llm_response("hello", "x" * 1000, model="m", params={"temperature": 0.2})
        emb_hash = baselines.key_hash(EMBED_MODEL, "hello")

        def bare_embedding() -> object:
            row = conn.execute(baselines.BARE_EMBEDDING_GET, (emb_hash,), prepare=True).fetchone()
            return baselines.floats_from_bytes(row[0]) if row else None

        def get_embedding() -> object:
            return cache.get_embedding("hello", model=EMBED_MODEL)

        many_params = kv._get_many_params(many_keys)[1]

        def many_bare_no_decode() -> object:
            # The = ANY ceiling: the same probe, values left as text (no jsonb decode).
            return conn.execute(
                "SELECT key, value_json::text, value_bytes FROM kv_cache "
                "WHERE key_hash = ANY (%(key_hashes)s::bigint[]) AND namespace = %(namespace)s",
                many_params,
                prepare=True,
            ).fetchall()

        def many_sql_on_bare() -> object:
            return conn.execute(
                cache_sql.KV_GET_MANY, many_params, binary=True, prepare=True
            ).fetchall()

        rows: list[tuple[str, Callable[[], object]]] = [
            ("SELECT 1 on a bare connection", lambda: conn.execute("SELECT 1").fetchone()),
            ("bare = ANY(100 keys), values as text (no decode)", many_bare_no_decode),
            ("KV_GET_MANY(100 keys) on the bare connection (jsonb decoded)", many_sql_on_bare),
            (
                "kv._get_many_params(100 keys) (validate + hash)",
                lambda: kv._get_many_params(many_keys),
            ),
            ("kv.get_many(100 keys) (public call)", lambda: kv.get_many(many_keys)),
            (
                "KV_GET_BY_HASH on the bare connection",
                lambda: conn.execute(
                    cache_sql.KV_GET_BY_HASH, (params["key_hash"],), binary=True, prepare=True
                ).fetchone(),
            ),
            (
                "bare prepared PK SELECT (bench_kv)",
                lambda: conn.execute(baselines.BARE_KV_GET, (h,), prepare=True).fetchone(),
            ),
            ("KV_GET statement on the bare connection", kv_sql_on_bare),
            ("pool.connection() enter/exit, no query", pool_only),
            ("db.connection(op) enter/exit, no query", db_conn_only),
            ("KV_GET through psycopg_pool's pool.connection()", kv_sql_on_raw_pool),
            ("KV_GET through db.connection() (pool + errors + stats)", kv_sql_on_pool),
            ("KV_GET_BY_HASH through db.connection()", kv_by_hash_on_pool),
            ("KV_GET_BY_HASH through db.batcher() (alone: its fast path)", kv_by_hash_batcher),
            ("kv._params(key) (validate + blake2b)", lambda: kv._params(key)),
            ("counters.hit('kv')", lambda: kv._counters.hit("kv")),
            ("kv.get(key) (public call)", lambda: kv.get(key)),
            ("bare PK SELECT embedding + decode", bare_embedding),
            ("cache.get_embedding (public call)", get_embedding),
            (
                "bare token-bucket upsert",
                lambda: conn.execute(baselines.BARE_RATE_LIMIT, bare_rl, prepare=True).fetchone(),
            ),
            ("CHECK_AND_CONSUME statement on the bare connection", rl_sql_on_bare),
            ("CHECK_AND_CONSUME through db.connection()", rl_sql_on_pool),
            ("CHECK_AND_CONSUME through db.batcher() (alone: its fast path)", rl_sql_batcher),
            (
                "rl.check_and_consume (public call)",
                lambda: rl.check_and_consume(user, "/api/chat", capacity=1000, refill_rate=1000.0),
            ),
        ]
        print("| piece | wall min µs | wall median µs | CPU min µs | CPU median µs |")
        print("|---|---:|---:|---:|---:|")
        for name, wmin, wmed, cmin, cmed in measure_rows(rows, calls=300, rounds=args.rounds):
            print(f"| {name} | {wmin:.1f} | {wmed:.1f} | {cmin:.1f} | {cmed:.1f} |", flush=True)

        if args.pyinstrument:
            from pyinstrument import Profiler

            target: dict[str, Callable[[], object]] = {
                "kv.get": lambda: kv.get(key),
                "get_embedding": lambda: cache.get_embedding("hello", model=EMBED_MODEL),
                "get_llm_response": lambda: cache.get_llm_response(
                    "hello", model="m", params={"temperature": 0.2}
                ),
                "get_many": lambda: kv.get_many(many_keys),
                "check_and_consume": lambda: rl.check_and_consume(
                    user, "/api/chat", capacity=1000, refill_rate=1000.0
                ),
            }
            fn = target[args.pyinstrument]
            profiler = Profiler(interval=0.0001)
            profiler.start()
            for _ in range(args.calls * 3):
                fn()
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        conn.close()
        factory.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
