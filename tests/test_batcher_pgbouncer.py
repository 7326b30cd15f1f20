"""Group commit behind a real PgBouncer in transaction mode (started by the test, as the
``postgres`` user when root), configured as SETUP.md says: prepared statements off
(``prepare_threshold=None``), the ``options`` startup parameter ignored.

The bouncer is ``digitwin_db.testing.embedded_pgbouncer``. A batch is one statement, so one
transaction: the bouncer may run consecutive batches of one client connection on different
server connections without changing a thing.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.testing import EmbeddedPostgres, embedded_pgbouncer


async def test_batched_checks_and_gets_behind_pgbouncer_transaction_mode(
    pg_server: EmbeddedPostgres, pg_url: str
) -> None:
    users = [str(uuid.uuid4()) for _ in range(8)]
    with embedded_pgbouncer(pg_server, default_pool_size=3) as bouncer:
        url = bouncer.url
        database = AsyncDatabase(
            url=url,
            prepare_threshold=None,
            pool_min_size=1,
            pool_max_size=6,
            pool_timeout=30,
            rate_limit_on_error="raise",
        )
        async with database:
            factory = AsyncRepositoryFactory(database)
            rl = factory.rate_limits
            results = await asyncio.gather(
                *(
                    rl.check_and_consume(users[i % 8], "chat", capacity=5, refill_rate=1e-6)
                    for i in range(64)
                )
            )
            kv = factory.cache.kv
            await kv.set_many({f"b{i}": {"n": i} for i in range(40)})
            values = await asyncio.gather(*(kv.get(f"b{i % 50}") for i in range(100)))
            checks = database.batcher("rate_limits.check_and_consume")
            gets = database.batcher("cache.kv.get")
            assert (checks.statements, gets.statements) == (64, 100)
            assert checks.batches < 64 and gets.batches < 100  # they did batch
    for n in range(8):
        assert sum(r.allowed for r in results[n::8]) == 5
    assert values == [{"n": i % 50} if i % 50 < 40 else None for i in range(100)]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT allowed_count, denied_count FROM rate_limits WHERE user_id = ANY(%s)",
            (users,),
        ).fetchall()
    assert rows == [(5, 3)] * 8
