"""Group commit behind a real PgBouncer in transaction mode (started by the test, as the
``postgres`` user when root), configured as SETUP.md says: prepared statements off
(``prepare_threshold=None``), the ``options`` startup parameter ignored.

A batch is one statement, so one transaction: the bouncer may run consecutive batches of
one client connection on different server connections without changing a thing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.testing import EmbeddedPostgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _pgbouncer(server: EmbeddedPostgres) -> Iterator[str]:
    """A transaction-mode pgbouncer in front of ``server``; yields its URL."""
    binary = shutil.which("pgbouncer", path=os.environ.get("PATH", "") + ":/usr/sbin")
    assert binary is not None
    workdir = Path(tempfile.mkdtemp(prefix="digitwin-h12-bouncer-"))
    port = _free_port()
    (workdir / "userlist.txt").write_text('"postgres" ""\n', encoding="utf-8")
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"test = host=127.0.0.1 port={server.port} dbname=test user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'userlist.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 3\nmax_client_conn = 100\n"
        "ignore_startup_parameters = options,extra_float_digits\n"
        f"logfile = {workdir / 'pgbouncer.log'}\n",
        encoding="utf-8",
    )
    argv = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(workdir, "postgres", "postgres")
        for f in workdir.iterdir():
            shutil.chown(f, "postgres", "postgres")
        argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://postgres@127.0.0.1:{port}/test"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_batched_checks_and_gets_behind_pgbouncer_transaction_mode(
    pg_server: EmbeddedPostgres, pg_url: str
) -> None:
    users = [str(uuid.uuid4()) for _ in range(8)]
    with _pgbouncer(pg_server) as url:
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
