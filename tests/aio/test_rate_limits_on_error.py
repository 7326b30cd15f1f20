"""Settings.rate_limit_on_error against databases that really cannot answer: a server
that is not there, a pool with every connection taken, a bucket locked past lock_timeout."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import RateLimitUnavailableError
from digitwin_db.models.rate_limits import Limit

POLICIES = ["raise", "allow", "deny"]


def closed_port_url() -> str:
    """A URL whose port has nothing listening (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture
async def unreachable() -> AsyncIterator[dict[str, AsyncRepositoryFactory]]:
    """One factory per policy, each on a database with no server behind it."""
    factories: dict[str, AsyncRepositoryFactory] = {}
    for policy in POLICIES:
        db = AsyncDatabase(
            url=closed_port_url(),
            pool_min_size=0,
            pool_max_size=2,
            pool_timeout=0.3,
            connect_timeout=1,
            rate_limit_on_error=policy,
        )
        await db.open(wait=False)  # lazily: the first check finds out
        factories[policy] = AsyncRepositoryFactory(db)
    yield factories
    for factory in factories.values():
        await factory.close()


async def test_server_gone_raise(unreachable: dict[str, AsyncRepositoryFactory]) -> None:
    rl = unreachable["raise"].rate_limits
    user = uuid.uuid4()
    with pytest.raises(RateLimitUnavailableError):
        await rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
    with pytest.raises(RateLimitUnavailableError):
        await rl.check_and_increment(user, "e", 5, 60)
    with pytest.raises(RateLimitUnavailableError):
        await rl.check_many(user, [Limit(endpoint="e", capacity=5, refill_rate=1)])
    with pytest.raises(RateLimitUnavailableError):
        await rl.peek(user, "e", capacity=5, refill_rate=1)


async def test_server_gone_allow(unreachable: dict[str, AsyncRepositoryFactory]) -> None:
    rl = unreachable["allow"].rate_limits
    user = uuid.uuid4()
    result = await rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
    assert result.allowed and result.degraded
    assert result.limit == 5 and result.retry_after == 0
    assert "Retry-After" not in result.headers()
    many = await rl.check_many(user, [Limit(endpoint="e", capacity=5, refill_rate=1)])
    assert many.allowed and many.degraded


async def test_server_gone_deny(unreachable: dict[str, AsyncRepositoryFactory]) -> None:
    rl = unreachable["deny"].rate_limits
    user = uuid.uuid4()
    result = await rl.check_and_consume(user, "e", capacity=5, window_seconds=10, cost=2)
    assert not result.allowed and result.degraded
    assert result.remaining == 0
    assert result.retry_after == pytest.approx(4.0)  # the time 2 tokens take at 0.5/s
    assert result.headers()["Retry-After"] == "4"
    many = await rl.check_many(user, [Limit(endpoint="e", capacity=5, refill_rate=1)])
    assert not many.allowed and many.degraded


@pytest.mark.parametrize("policy", POLICIES)
async def test_pool_exhausted(pg_url: str, policy: str) -> None:
    db = AsyncDatabase(
        url=pg_url, pool_min_size=1, pool_max_size=1, pool_timeout=0.2, rate_limit_on_error=policy
    )
    async with db:
        rl = AsyncRepositoryFactory(db).rate_limits
        async with db.connection():  # the only connection is taken
            if policy == "raise":
                with pytest.raises(RateLimitUnavailableError):
                    await rl.check_and_consume(uuid.uuid4(), "e", capacity=5, refill_rate=1)
            else:
                result = await rl.check_and_consume(uuid.uuid4(), "e", capacity=5, refill_rate=1)
                assert result.degraded and result.allowed is (policy == "allow")
        # Once a connection is free again, real decisions resume.
        result = await rl.check_and_consume(uuid.uuid4(), "e", capacity=5, refill_rate=1)
        assert result.allowed and not result.degraded


@pytest.mark.parametrize("policy", POLICIES)
async def test_bucket_locked_past_lock_timeout(
    pg_url: str, raw_conn: psycopg.Connection, policy: str
) -> None:
    user = uuid.uuid4()
    db = AsyncDatabase(url=pg_url, pool_min_size=1, lock_timeout_ms=100, rate_limit_on_error=policy)
    async with db:
        rl = AsyncRepositoryFactory(db).rate_limits
        await rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
        with raw_conn.transaction():  # another session holds the bucket's row lock
            raw_conn.execute(
                "SELECT 1 FROM rate_limits WHERE user_id = %s FOR UPDATE", (str(user),)
            )
            if policy == "raise":
                with pytest.raises(RateLimitUnavailableError):
                    await rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
            else:
                result = await rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
                assert result.degraded and result.allowed is (policy == "allow")
