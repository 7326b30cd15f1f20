"""Read replicas (§2.13) against a real streaming standby: ``pg_basebackup -R`` of the
session's embedded server, started by the test (as the ``postgres`` user when root).

Lag is made on demand with ``pg_wal_replay_pause()`` on the standby, and a replica going
down is the standby really stopped (fast shutdown) and started again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pydantic
import pytest

import digitwin_db as ddb
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from digitwin_db.testing import EmbeddedPostgres, StreamingStandby, streaming_standby


@pytest.fixture(scope="module")
def standby(pg_server: EmbeddedPostgres) -> Iterator[StreamingStandby]:
    with streaming_standby(pg_server) as replica:
        yield replica


@pytest.fixture
def caught_up(standby: StreamingStandby, pg_url: str) -> StreamingStandby:
    """The standby, running, replaying, and level with the primary (tables emptied)."""
    standby.start()
    standby.resume_replay()
    standby.wait_caught_up()
    return standby


def _factory(pg_url: str, replica_url: str, **settings: Any) -> ddb.RepositoryFactory:
    db = ddb.Database(
        url=pg_url,
        replica_urls=[replica_url],
        connect_timeout=2,
        replica_retry_after=0,
        pool_min_size=1,
        **settings,
    )
    db.open()
    return ddb.RepositoryFactory(db)


@pytest.fixture
def factory(pg_url: str, caught_up: StreamingStandby) -> Iterator[ddb.RepositoryFactory]:
    repositories = _factory(pg_url, caught_up.url)
    yield repositories
    repositories.close()


def _new_user(factory: ddb.RepositoryFactory) -> ddb.User:
    return factory.users.create(email=f"{uuid.uuid4().hex[:10]}@example.com", name="R")


def test_reads_run_on_the_replica(
    factory: ddb.RepositoryFactory, caught_up: StreamingStandby
) -> None:
    user = _new_user(factory)
    session = factory.sessions.start(user_id=user.id)
    factory.sessions.add_turn(session.id, role="user", content="hello replica")
    doc = factory.documents.create(user_id=user.id, title="Replica notes", content="standby")
    factory.audit_logs.log("user.created", user_id=user.id)
    caught_up.wait_caught_up()
    replica = factory.replica()
    assert replica.users.get(user.id).email == user.email
    assert replica.users.get_by_email(user.email).id == user.id
    assert replica.users.list().total == 1
    assert replica.sessions.get_with_turns(session.id).turns[0].content == "hello replica"
    assert [h.id for h in replica.documents.search(user.id, "replica")] == [doc.id]
    on_primary = factory.audit_logs.query(user_id=user.id).total
    assert on_primary >= 1
    assert replica.audit_logs.query(user_id=user.id).total == on_primary
    assert replica.voice_models.get_active(user.id) is None
    assert factory.replica_router.counters.snapshot() == {
        "replica": 7,
        "primary_lagging": 0,
        "primary_replica_down": 0,
        "primary_no_replica": 0,
        "refused": 0,
    }


def test_a_lagging_replica_serves_stale_reads_unless_read_your_writes(
    factory: ddb.RepositoryFactory, caught_up: StreamingStandby
) -> None:
    caught_up.pause_replay()
    try:
        user = _new_user(factory)
        # The plain replica view reads the standby, which has not replayed the insert.
        assert factory.replica().users.find(user.id) is None
        with pytest.raises(ddb.NotFoundError):
            factory.replica().users.get(user.id)
        # Read-your-writes: the replica is behind the primary's position -> the primary.
        assert factory.replica(read_your_writes=True).users.get(user.id).id == user.id
        status = factory.replica_status()
        assert len(status) == 1 and status[0].ok and status[0].in_recovery
        assert status[0].lag_bytes is not None and status[0].lag_bytes > 0
        counters = factory.replica_router.counters
        assert (counters.replica, counters.primary_lagging) == (2, 1)
    finally:
        caught_up.resume_replay()
    caught_up.wait_caught_up()
    # Caught up: read-your-writes calls are served by the replica again.
    assert factory.replica(read_your_writes=True).users.get(user.id).id == user.id
    assert (counters.replica, counters.primary_lagging) == (3, 1)
    assert factory.replica_status()[0].lag_bytes == 0


def test_read_your_writes_waits_for_a_replica_that_catches_up(
    pg_url: str, caught_up: StreamingStandby
) -> None:
    repositories = _factory(pg_url, caught_up.url, replica_catch_up_wait=30.0)
    try:
        user = _new_user(repositories)
        # Replay is running: the replica catches up within the wait, and serves the read.
        assert repositories.replica(read_your_writes=True).users.get(user.id).id == user.id
        counters = repositories.replica_router.counters
        assert (counters.replica, counters.primary_lagging) == (1, 0)
    finally:
        repositories.close()


def test_a_replica_that_goes_down_falls_back_to_the_primary(
    factory: ddb.RepositoryFactory, caught_up: StreamingStandby, pg_url: str
) -> None:
    user = _new_user(factory)
    caught_up.wait_caught_up()
    assert factory.replica().users.get(user.id).id == user.id  # the replica's pool is open
    caught_up.stop()
    try:
        # REPLICA_FALLBACK=primary (default): the read runs on the primary.
        assert factory.replica().users.get(user.id).id == user.id
        counters = factory.replica_router.counters
        assert (counters.replica, counters.primary_replica_down) == (1, 1)
        status = factory.replica_status()
        assert status[0].ok is False and status[0].error
        # REPLICA_FALLBACK=raise: a typed error, naming no password.
        strict = _factory(pg_url, caught_up.url, replica_fallback="raise")
        try:
            with pytest.raises(ddb.DatabaseUnavailableError, match="no read replica"):
                strict.replica().users.get(user.id)
            assert strict.replica_router.counters.refused == 1
        finally:
            strict.close()
    finally:
        caught_up.start()
    caught_up.wait_caught_up()
    # Back up (REPLICA_RETRY_AFTER=0 here): the next read is served by the replica again.
    assert factory.replica().users.get(user.id).id == user.id
    assert factory.replica_router.counters.replica == 2


def test_replica_views_are_read_only_and_refuse_caches_and_rate_limits(
    factory: ddb.RepositoryFactory,
) -> None:
    replica = factory.replica()
    with pytest.raises(ddb.ConfigurationError, match="read-only"):
        replica.users.create(email="x@example.com", name="x")
    with pytest.raises(ddb.ConfigurationError, match=r"factory\.documents\.soft_delete"):
        replica.documents.soft_delete(uuid.uuid4())
    with pytest.raises(ddb.ConfigurationError, match="UNLOGGED"):
        _ = replica.cache
    with pytest.raises(ddb.ConfigurationError, match="always use the primary"):
        _ = replica.rate_limits
    assert factory.users.count() == 0  # nothing was written anywhere


def test_caches_and_rate_limits_pointed_at_a_standby_fail_typed(
    caught_up: StreamingStandby,
) -> None:
    """What REPLICA routing avoids: the UNLOGGED cache and rate-limit tables cannot be read
    on a standby. Pointed there by mistake, calls fail with a typed error (never a silent
    miss or an admission)."""
    with ddb.Database(url=caught_up.url, connect_timeout=2) as standby_db:
        repositories = ddb.RepositoryFactory(standby_db)
        with pytest.raises(ddb.QueryError, match="FeatureNotSupported"):
            repositories.cache.kv.get("k")
        with pytest.raises(ddb.QueryError):
            repositories.cache.kv.set("k", 1)
        # Every database failure follows rate_limit_on_error (default "raise"): typed.
        with pytest.raises(ddb.RateLimitUnavailableError, match="ReadOnlySqlTransaction"):
            repositories.rate_limits.check_and_consume(
                uuid.uuid4(), "e", capacity=1, window_seconds=60
            )
        with standby_db.connection() as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row == (True,)


def test_without_replicas_the_view_reads_the_primary(pg_url: str, raw_conn: Any) -> None:
    with ddb.Database(url=pg_url) as db:
        repositories = ddb.RepositoryFactory(db)
        user = _new_user(repositories)
        assert repositories.replica().users.get(user.id).id == user.id
        assert repositories.replica_status() == []
        assert repositories.replica_router.counters.primary_no_replica == 1
        repositories.close()


def test_async_replica_view(pg_url: str, caught_up: StreamingStandby) -> None:
    async def main() -> tuple[str, int]:
        db = AsyncDatabase(url=pg_url, replica_urls=[caught_up.url], connect_timeout=2)
        async with db:
            factory = AsyncRepositoryFactory(db)
            user = await factory.users.create(email="async@example.com", name="A")
            fresh = await factory.replica(read_your_writes=True).users.get(user.id)
            counters = factory.replica_router.counters
            await factory.close()
        return fresh.email, counters.replica + counters.primary_lagging

    email, routed = asyncio.run(main())
    assert email == "async@example.com"
    assert routed == 1


def test_replica_urls_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICA_URLS", "postgresql://app:s3cret@r1/db, postgresql://r2/db")
    settings = ddb.Settings()
    assert [u.get_secret_value() for u in settings.replica_urls] == [
        "postgresql://app:s3cret@r1/db",
        "postgresql://r2/db",
    ]
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("REPLICA_URLS", '["postgresql://r3/db"]')
    assert [u.get_secret_value() for u in ddb.Settings().replica_urls] == ["postgresql://r3/db"]
    monkeypatch.setenv("REPLICA_URLS", "")
    assert ddb.Settings().replica_urls == []
    monkeypatch.setenv("REPLICA_URLS", "mysql://u:topsecret@h/db")
    with pytest.raises(pydantic.ValidationError) as info:
        ddb.Settings()
    assert "REPLICA_URLS entries must be postgresql://" in str(info.value)
    assert "topsecret" not in ddb.settings.describe_settings_error(info.value)
    monkeypatch.setenv("REPLICA_URLS", "postgresql://r/db")
    monkeypatch.setenv("REPLICA_FALLBACK", "sometimes")
    with pytest.raises(pydantic.ValidationError):
        ddb.Settings()


def test_standby_is_really_a_streaming_standby(caught_up: StreamingStandby) -> None:
    with psycopg.connect(caught_up.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_is_in_recovery(), status FROM pg_stat_wal_receiver"
        ).fetchone()
    assert row == (True, "streaming")


def test_an_unreachable_replica_never_leaks_its_password(pg_url: str) -> None:
    from digitwin_db.testing import free_port

    replica_url = f"postgresql://postgres:topsecret@127.0.0.1:{free_port()}/test"
    with ddb.Database(url=pg_url, replica_urls=[replica_url], connect_timeout=1) as db:
        repositories = ddb.RepositoryFactory(db)
        user = _new_user(repositories)
        # Nothing listens there: the read runs on the primary, the replica is reported down.
        assert repositories.replica().users.get(user.id).id == user.id
        assert repositories.replica_router.counters.primary_replica_down == 1
        (status,) = repositories.replica_status()
        assert status.ok is False
        assert "topsecret" not in status.model_dump_json()
        assert "***" in status.target
        assert "topsecret" not in repr(db.settings)
        strict = ddb.Database(
            url=pg_url, replica_urls=[replica_url], connect_timeout=1, replica_fallback="raise"
        )
        with strict:
            strict_factory = ddb.RepositoryFactory(strict)
            with pytest.raises(ddb.DatabaseUnavailableError) as info:
                strict_factory.replica().users.get(user.id)
            assert "topsecret" not in str(info.value)
            strict_factory.close()
        repositories.close()
