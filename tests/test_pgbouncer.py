"""The package behind a real PgBouncer in transaction mode (§2.13), configured as SETUP.md
says: prepared statements off (``prepare_threshold=None``), the ``options`` startup
parameter ignored. The bouncer is started by the tests (as the ``postgres`` user when
root) in front of the session's embedded server; the schema is migrated directly.

Every call below goes through the bouncer, where consecutive transactions of one client
connection may run on different server connections: whatever relied on session state
(session advisory locks, SET, prepared statements) would break here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import digitwin_db as ddb
from digitwin_db.testing import EmbeddedPostgres, PgBouncer, embedded_pgbouncer
from tests.helpers import insert_user, run_threads

# One token per ~11 days: nothing refills while a test runs.
NEGLIGIBLE = 1e-6


@pytest.fixture(scope="module")
def bouncer(pg_server: EmbeddedPostgres) -> Iterator[PgBouncer]:
    # "tiny": a database alias with ONE server connection, so that two clients are sure
    # to share it (the prepared-statement test needs that).
    with embedded_pgbouncer(pg_server, pool_mode="transaction", aliases={"tiny": 1}) as b:
        yield b


@pytest.fixture
def factory(bouncer: PgBouncer, pg_url: str) -> Iterator[ddb.RepositoryFactory]:
    db = ddb.Database(
        url=bouncer.url,
        prepare_threshold=None,
        pool_min_size=2,
        pool_max_size=60,
        pool_timeout=60.0,
    )
    with db:
        repositories = ddb.RepositoryFactory(db)
        yield repositories
        repositories.close()


def test_calls_really_go_through_the_bouncer(
    factory: ddb.RepositoryFactory, bouncer: PgBouncer, pg_server: EmbeddedPostgres
) -> None:
    with factory.db.connection() as conn:
        row = conn.execute("SELECT inet_server_port(), current_setting('port')").fetchone()
    assert row is not None
    # The server sees pgbouncer's connection to its own port; the client used another.
    assert row[0] == pg_server.port
    assert bouncer.port != pg_server.port
    assert factory.db.target == f"127.0.0.1:{bouncer.port}"


def test_kv_operations(factory: ddb.RepositoryFactory) -> None:
    kv = factory.cache.kv
    kv.set("a", {"x": 1}, ttl=60, tags=("t",))
    assert kv.get("a") == {"x": 1}
    assert kv.add("a", 2) is False
    assert kv.add("b", b"\x00bytes") is True
    assert kv.get("b") == b"\x00bytes"
    assert kv.incr("n", 5) == 5
    assert kv.decr("n") == 4
    ttl = kv.ttl("a")
    assert ttl is not None and 0 < ttl <= 60
    assert kv.expire("b", 30) is True
    assert kv.persist("b") is True
    assert kv.ttl("b") is None
    kv.set_many({f"p:{i}": i for i in range(10)}, ttl=60)
    assert kv.get_many([f"p:{i}" for i in range(12)]) == {f"p:{i}": i for i in range(10)}
    assert kv.delete_prefix("p:") == 10
    assert kv.invalidate_tags("t") == 1
    assert kv.exists("a") is False
    assert kv.delete("b") is True
    assert kv.delete_many(["n", "missing"]) == 1
    factory.cache.set_embedding("hello", [0.5, 0.25], model="m")
    assert factory.cache.get_embedding("hello", model="m") == [0.5, 0.25]


def test_16_concurrent_get_or_set_run_the_loader_once(factory: ddb.RepositoryFactory) -> None:
    kv = factory.cache.kv
    calls: list[int] = []
    lock = threading.Lock()

    def loader() -> dict[str, str]:
        with lock:
            calls.append(1)
        time.sleep(0.3)  # every other caller misses meanwhile
        return {"computed": "once"}

    results = run_threads(16, lambda _: kv.get_or_set("hot", loader, ttl=60))
    assert len(calls) == 1
    assert results == [{"computed": "once"}] * 16


def test_50_threads_on_a_bucket_of_40_get_exactly_40(factory: ddb.RepositoryFactory) -> None:
    user = uuid.uuid4()
    rl = factory.rate_limits
    results = run_threads(
        50,
        lambda _: rl.check_and_consume(user, "chat", capacity=40, refill_rate=NEGLIGIBLE).allowed,
    )
    assert results.count(True) == 40
    assert results.count(False) == 10


def test_check_many_all_or_nothing_under_concurrency(factory: ddb.RepositoryFactory) -> None:
    user = uuid.uuid4()
    rl = factory.rate_limits
    limits = [
        ddb.Limit(endpoint="chat:s", capacity=30, refill_rate=NEGLIGIBLE),
        ddb.Limit(endpoint="chat:day", capacity=12, window_seconds=86_400 * 365),
    ]
    # Half the threads name the buckets in reverse order: no deadlock, exact admissions.
    results = run_threads(
        24,
        lambda i: rl.check_many(user, limits if i % 2 else limits[::-1]).allowed,
    )
    assert results.count(True) == 12
    assert rl.peek(user, "chat:s", capacity=30, refill_rate=NEGLIGIBLE).remaining == 18


def test_user_soft_delete_cascades_and_restore(factory: ddb.RepositoryFactory) -> None:
    user = factory.users.create(email=f"{uuid.uuid4().hex[:8]}@example.com", name="Bouncer")
    voice = factory.voice_models.create(
        user_id=user.id, name="v", provider="p", model_ref="r", status="ready"
    )
    doc = factory.documents.create(user_id=user.id, title="t", content="body")
    factory.users.soft_delete(user.id)
    with pytest.raises(ddb.NotFoundError):
        factory.voice_models.get(voice.id)
    with pytest.raises(ddb.NotFoundError):
        factory.documents.get(doc.id)
    factory.users.restore(user.id)
    assert factory.voice_models.get(voice.id).id == voice.id
    assert factory.documents.get(doc.id).id == doc.id


def test_audit_log_is_append_only_behind_the_bouncer(factory: ddb.RepositoryFactory) -> None:
    entry = factory.audit_logs.log("user.login", resource_type="user", ip_address="10.0.0.1")
    page = factory.audit_logs.query(action="user.login")
    assert [e.id for e in page.items] == [entry.id]
    with pytest.raises(ddb.DigitwinDBError), factory.db.connection() as conn:
        conn.execute("DELETE FROM audit_logs")
    assert factory.audit_logs.query(action="user.login").total == 1


def test_cleanup_job(factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    kv = factory.cache.kv
    kv.set_many({f"e:{i}": i for i in range(25)}, ttl=60)
    raw_conn.execute("UPDATE kv_cache SET expires_at = now() - interval '1 second'")
    kv.set("live", 1, ttl=60)
    # Old audit rows: the purge is the one path the append-only trigger lets through
    # (it sets a transaction-local flag: SET LOCAL semantics, safe behind the bouncer).
    for _ in range(7):
        factory.audit_logs.log("old.event")
    raw_conn.execute("SET session_replication_role = replica")
    raw_conn.execute("UPDATE audit_logs SET created_at = now() - interval '400 days'")
    raw_conn.execute("SET session_replication_role = origin")
    factory.audit_logs.log("new.event")
    report = ddb.CleanupJob(
        factory, batch_size=10, audit_retention_days=90, rate_limit_idle_seconds=3600
    ).run_once()
    assert report.errors == {}
    assert report.removed["kv_cache"] == 25
    assert report.removed["audit_logs"] == 7
    assert kv.get("live") == 1
    assert factory.audit_logs.query().total == 1


def test_200_concurrent_add_turns_are_gap_free(
    factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    user_id = insert_user(raw_conn)
    session = factory.sessions.start(user_id=user_id)
    turns = run_threads(
        200,
        lambda i: (
            factory.sessions.add_turn(
                session.id, role="user", content=f"turn {i}", total_ms=i
            ).turn_number
        ),
    )
    assert sorted(turns) == list(range(1, 201))
    stored = [
        r[0]
        for r in raw_conn.execute(
            "SELECT turn_number FROM conversation_turns WHERE session_id = %s ORDER BY turn_number",
            (session.id,),
        ).fetchall()
    ]
    assert stored == list(range(1, 201))
    assert factory.sessions.get(session.id).turn_count == 200


def test_async_api_behind_the_bouncer(bouncer: PgBouncer) -> None:
    import asyncio

    from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory

    async def main() -> list[bool]:
        db = AsyncDatabase(url=bouncer.url, prepare_threshold=None, pool_max_size=20)
        async with db:
            factory = AsyncRepositoryFactory(db)
            user = uuid.uuid4()
            results = await asyncio.gather(
                *(
                    factory.rate_limits.check_and_consume(
                        user, "a", capacity=15, refill_rate=NEGLIGIBLE
                    )
                    for _ in range(20)
                )
            )
            await factory.close()
        return [r.allowed for r in results]

    allowed = asyncio.run(main())
    assert allowed.count(True) == 15


def test_prepared_statements_left_on_break_behind_transaction_pooling(
    bouncer: PgBouncer,
) -> None:
    """What SETUP.md warns about: with psycopg preparing statements (prepare_threshold=0)
    every client connection names its first statement ``_pg3_0``; behind transaction
    pooling they all share the alias's single server connection, where the first PREPARE
    wins and every other one is refused (PgBouncer 1.18 does not track prepared
    statements): those calls fail with a ``QueryError`` wrapping ``DuplicatePreparedStatement``.
    """
    broken = ddb.Database(
        url=bouncer.url_for("tiny"), prepare_threshold=0, pool_min_size=4, pool_max_size=4
    )
    with broken:
        kv = ddb.RepositoryFactory(broken).cache.kv

        def set_one(i: int) -> ddb.DigitwinDBError | None:
            # Each thread works on a client connection of its own (connection affinity).
            try:
                kv.set(f"k{i}", i)
            except ddb.DigitwinDBError as exc:
                return exc
            return None

        outcomes = run_threads(4, set_one)
        failures = [o for o in outcomes if o is not None]
        assert len(failures) == 3, "prepared statements behind transaction pooling did not fail"
        assert all(isinstance(f, ddb.QueryError) for f in failures)
        assert all(
            isinstance(f.__cause__, psycopg.errors.DuplicatePreparedStatement) for f in failures
        )
    # The same calls with prepared statements off (as configured above) all succeed.
    fixed = ddb.Database(url=bouncer.url_for("tiny"), prepare_threshold=None, pool_min_size=2)
    with fixed:
        kv = ddb.RepositoryFactory(fixed).cache.kv
        for i in range(4):
            kv.set(f"k{i}", i)
        assert kv.get_many([f"k{i}" for i in range(4)]) == {f"k{i}": i for i in range(4)}


def test_session_settings_do_not_reach_the_server_through_the_bouncer(
    factory: ddb.RepositoryFactory,
) -> None:
    """Why SETUP.md says to set the timeouts on the role: the ``options`` startup parameter
    (statement_timeout / lock_timeout) is ignored by pgbouncer, so a server connection has
    the server's defaults unless the role or database carries them."""
    with factory.db.connection() as conn:
        row = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
    assert row is not None
    assert row[0] == "0"
    assert factory.db.settings.statement_timeout_ms == 30_000
