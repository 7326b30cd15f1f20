# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_rate_limits_on_error.py
"""Settings.rate_limit_on_error against databases that really cannot answer: a server
that is not there, a pool with every connection taken, a bucket locked past lock_timeout."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
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
def unreachable() -> Iterator[dict[str, RepositoryFactory]]:
    """One factory per policy, each on a database with no server behind it."""
    factories: dict[str, RepositoryFactory] = {}
    for policy in POLICIES:
        db = Database(
            url=closed_port_url(),
            pool_min_size=0,
            pool_max_size=2,
            pool_timeout=0.3,
            connect_timeout=1,
            rate_limit_on_error=policy,
        )
        db.open(wait=False)  # lazily: the first check finds out
        factories[policy] = RepositoryFactory(db)
    yield factories
    for factory in factories.values():
        factory.close()


def test_server_gone_raise(unreachable: dict[str, RepositoryFactory]) -> None:
    rl = unreachable["raise"].rate_limits
    user = uuid.uuid4()
    with pytest.raises(RateLimitUnavailableError):
        rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
    with pytest.raises(RateLimitUnavailableError):
        rl.check_and_increment(user, "e", 5, 60)
    with pytest.raises(RateLimitUnavailableError):
        rl.check_many(user, [Limit(endpoint="e", capacity=5, refill_rate=1)])
    with pytest.raises(RateLimitUnavailableError):
        rl.peek(user, "e", capacity=5, refill_rate=1)


def test_server_gone_allow(unreachable: dict[str, RepositoryFactory]) -> None:
    rl = unreachable["allow"].rate_limits
    user = uuid.uuid4()
    result = rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
    assert result.allowed and result.degraded
    assert result.limit == 5 and result.retry_after == 0
    assert "Retry-After" not in result.headers()
    many = rl.check_many(user, [Limit(endpoint="e", capacity=5, refill_rate=1)])
    assert many.allowed and many.degraded


def test_server_gone_deny(unreachable: dict[str, RepositoryFactory]) -> None:
    rl = unreachable["deny"].rate_limits
    user = uuid.uuid4()
    result = rl.check_and_consume(user, "e", capacity=5, window_seconds=10, cost=2)
    assert not result.allowed and result.degraded
    assert result.remaining == 0
    assert result.retry_after == pytest.approx(4.0)  # the time 2 tokens take at 0.5/s
    assert result.headers()["Retry-After"] == "4"
    many = rl.check_many(user, [Limit(endpoint="e", capacity=5, refill_rate=1)])
    assert not many.allowed and many.degraded


@pytest.mark.parametrize("policy", POLICIES)
def test_pool_exhausted(pg_url: str, policy: str) -> None:
    db = Database(
        url=pg_url, pool_min_size=1, pool_max_size=1, pool_timeout=0.2, rate_limit_on_error=policy
    )
    with db:
        rl = RepositoryFactory(db).rate_limits
        with db.connection():  # the only connection is taken
            if policy == "raise":
                with pytest.raises(RateLimitUnavailableError):
                    rl.check_and_consume(uuid.uuid4(), "e", capacity=5, refill_rate=1)
            else:
                result = rl.check_and_consume(uuid.uuid4(), "e", capacity=5, refill_rate=1)
                assert result.degraded and result.allowed is (policy == "allow")
        # Once a connection is free again, real decisions resume.
        result = rl.check_and_consume(uuid.uuid4(), "e", capacity=5, refill_rate=1)
        assert result.allowed and not result.degraded


@pytest.mark.parametrize("policy", POLICIES)
def test_bucket_locked_past_lock_timeout(
    pg_url: str, raw_conn: psycopg.Connection, policy: str
) -> None:
    user = uuid.uuid4()
    db = Database(url=pg_url, pool_min_size=1, lock_timeout_ms=100, rate_limit_on_error=policy)
    with db:
        rl = RepositoryFactory(db).rate_limits
        rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
        with raw_conn.transaction():  # another session holds the bucket's row lock
            raw_conn.execute(
                "SELECT 1 FROM rate_limits WHERE user_id = %s FOR UPDATE", (str(user),)
            )
            if policy == "raise":
                with pytest.raises(RateLimitUnavailableError):
                    rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
            else:
                result = rl.check_and_consume(user, "e", capacity=5, refill_rate=1)
                assert result.degraded and result.allowed is (policy == "allow")
