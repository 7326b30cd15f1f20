"""Rate limiter (factory.rate_limits): token-bucket semantics, validation, headers,
check_many, maintenance — against the real server.

Concurrency: tests/test_rate_limits_concurrency.py; on-error policies:
test_rate_limits_on_error.py."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db.errors import ValidationError
from digitwin_db.models.rate_limits import Limit, RateLimitResult
from digitwin_db.ratelimit_policy import bucket_config, check_user_id

# So slow that no token comes back while a test runs (one per ~11 days).
NEGLIGIBLE = 1e-6


@pytest.fixture
def rl(factory: AsyncRepositoryFactory) -> AsyncRateLimitRepository:
    return factory.rate_limits


def stored(raw_conn: psycopg.Connection, user: uuid.UUID, endpoint: str) -> dict[str, Any] | None:
    cur = raw_conn.execute(
        "SELECT tokens, capacity, refill_rate, allowed_count, denied_count FROM rate_limits"
        " WHERE user_id = %s AND endpoint = %s",
        (str(user), endpoint),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(("tokens", "capacity", "refill_rate", "allowed", "denied"), row, strict=True))


def bucket_count(raw_conn: psycopg.Connection) -> int:
    row = raw_conn.execute("SELECT count(*) FROM rate_limits").fetchone()
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------- check_and_consume
async def test_new_bucket_starts_full_and_counts_down(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    results = [
        await rl.check_and_consume(user, "chat", capacity=3, refill_rate=NEGLIGIBLE)
        for _ in range(4)
    ]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert all(r.limit == 3 for r in results)
    assert [r.retry_after for r in results[:3]] == [0.0, 0.0, 0.0]
    assert results[3].retry_after > 0
    row = stored(raw_conn, user, "chat")
    assert row is not None
    assert row["tokens"] < 1e-3 and row["allowed"] == 3 and row["denied"] == 1


async def test_cost_3_on_a_bucket_with_2_tokens_is_denied_and_leaves_2(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    first = await rl.check_and_consume(user, "gen", capacity=5, refill_rate=NEGLIGIBLE, cost=3)
    assert first.allowed and first.remaining == 2
    denied = await rl.check_and_consume(user, "gen", capacity=5, refill_rate=NEGLIGIBLE, cost=3)
    assert not denied.allowed
    assert denied.remaining == 2
    row = stored(raw_conn, user, "gen")
    assert row is not None
    assert 2.0 <= row["tokens"] < 2.001
    # The two tokens are still there for a request that fits.
    assert (
        await rl.check_and_consume(user, "gen", capacity=5, refill_rate=NEGLIGIBLE, cost=2)
    ).allowed


async def test_admitted_again_after_retry_after(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    # 20 tokens/s: a token every 50 ms keeps the test short. Call until denied (a slow
    # machine may see a token come back between the first calls).
    for _ in range(100):
        denied = await rl.check_and_consume(user, "fast", capacity=2, refill_rate=20)
        if not denied.allowed:
            break
    assert not denied.allowed
    assert 0 < denied.retry_after <= 0.05 + 1e-5
    await asyncio.sleep(denied.retry_after)
    assert (await rl.check_and_consume(user, "fast", capacity=2, refill_rate=20)).allowed


async def test_retry_after_covers_the_whole_cost(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    await rl.check_and_consume(user, "big", capacity=4, refill_rate=5, cost=4)
    denied = await rl.check_and_consume(user, "big", capacity=4, refill_rate=5, cost=3)
    assert not denied.allowed
    # 3 tokens at 5/s take 0.6 s, minus what refilled since the first call (< remaining + 1).
    assert (3 - denied.remaining - 1) / 5 <= denied.retry_after <= 0.6 + 1e-5
    await asyncio.sleep(denied.retry_after)
    assert (await rl.check_and_consume(user, "big", capacity=4, refill_rate=5, cost=3)).allowed


async def test_check_and_increment_is_limit_per_window(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    results = [await rl.check_and_increment(user, "/api/chat", 3, 60) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    # 3 per 60 s refills a token every 20 s.
    assert 19.9 < results[3].retry_after <= 20.0 + 1e-5
    assert results[3].window == pytest.approx(60.0)
    assert results[3].headers()["Retry-After"] == "20"


async def test_changed_capacity_is_adopted_and_tokens_clamped(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    assert (
        await rl.check_and_consume(user, "e", capacity=10, refill_rate=NEGLIGIBLE)
    ).remaining == 9
    smaller = await rl.check_and_consume(user, "e", capacity=4, refill_rate=NEGLIGIBLE)
    assert smaller.allowed and smaller.limit == 4 and smaller.remaining == 3
    row = stored(raw_conn, user, "e")
    assert row is not None and row["capacity"] == 4 and row["tokens"] <= 4
    bigger = await rl.check_and_consume(user, "e", capacity=100, window_seconds=10)
    assert bigger.limit == 100 and bigger.remaining <= 3  # no free tokens from a bigger limit
    row = stored(raw_conn, user, "e")
    assert row is not None and row["refill_rate"] == pytest.approx(10.0)


async def test_user_id_forms_share_one_bucket(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    await rl.check_and_consume(user, "e", capacity=3, refill_rate=NEGLIGIBLE)
    r = await rl.check_and_consume(str(user).upper(), "e", capacity=3, refill_rate=NEGLIGIBLE)
    assert r.remaining == 1
    r = await rl.check_and_consume(user.hex, "e", capacity=3, refill_rate=NEGLIGIBLE)
    assert r.remaining == 0
    other = await rl.check_and_consume(uuid.uuid4(), "e", capacity=3, refill_rate=NEGLIGIBLE)
    assert other.remaining == 2  # buckets are per user


async def test_integral_float_capacity_and_cost_are_accepted(rl: AsyncRateLimitRepository) -> None:
    r = await rl.check_and_consume(uuid.uuid4(), "e", capacity=5.0, refill_rate=1, cost=2.0)  # type: ignore[arg-type]
    assert r.allowed and r.limit == 5 and r.remaining == 3


GOOD: dict[str, Any] = {"capacity": 10, "refill_rate": 1.0}


@pytest.mark.parametrize(
    ("user", "endpoint", "options"),
    [
        ("u", "e", {"capacity": 0, "refill_rate": 1.0}),
        ("u", "e", {"capacity": -5, "refill_rate": 1.0}),
        ("u", "e", {"capacity": True, "refill_rate": 1.0}),
        ("u", "e", {"capacity": 2.5, "refill_rate": 1.0}),
        ("u", "e", {"capacity": math.nan, "refill_rate": 1.0}),
        ("u", "e", {"capacity": math.inf, "refill_rate": 1.0}),
        ("u", "e", {"capacity": "10", "refill_rate": 1.0}),
        ("u", "e", {"capacity": 10**12, "refill_rate": 1.0}),
        ("u", "e", {**GOOD, "cost": 0}),
        ("u", "e", {**GOOD, "cost": -1}),
        ("u", "e", {**GOOD, "cost": 11}),
        ("u", "e", {**GOOD, "cost": False}),
        ("u", "e", {**GOOD, "cost": 1.5}),
        ("u", "e", {"capacity": 10, "refill_rate": math.nan}),
        ("u", "e", {"capacity": 10, "refill_rate": math.inf}),
        ("u", "e", {"capacity": 10, "refill_rate": 0}),
        ("u", "e", {"capacity": 10, "refill_rate": -1.0}),
        ("u", "e", {"capacity": 10, "refill_rate": True}),
        ("u", "e", {"capacity": 10, "refill_rate": "1"}),
        ("u", "e", {"capacity": 10, "refill_rate": 1e-300}),
        ("u", "e", {"capacity": 10, "window_seconds": 0}),
        ("u", "e", {"capacity": 10, "window_seconds": math.inf}),
        ("u", "e", {"capacity": 10, "window_seconds": math.nan}),
        ("u", "e", {"capacity": 10, "window_seconds": -60}),
        ("u", "e", {"capacity": 10}),
        ("u", "e", {"capacity": 10, "refill_rate": 1.0, "window_seconds": 10}),
        ("u", "", GOOD),
        ("u", "x" * 501, GOOD),
        ("u", 42, GOOD),
        ("u", None, GOOD),
        ("u", "a\x00b", GOOD),
        ("u", "line\nbreak", GOOD),
        ("not\x00a-uuid", "e", GOOD),
        ("", "e", GOOD),
        (12345, "e", GOOD),
        (None, "e", GOOD),
        ("x" * 10_000, "e", GOOD),
    ],
)
async def test_bad_input_is_a_validation_error_and_writes_nothing(
    rl: AsyncRateLimitRepository,
    raw_conn: psycopg.Connection,
    user: Any,
    endpoint: Any,
    options: dict[str, Any],
) -> None:
    user_id = uuid.uuid4() if user == "u" else user
    with pytest.raises(ValidationError):
        await rl.check_and_consume(user_id, endpoint, **options)
    with pytest.raises(ValidationError):
        await rl.peek(user_id, endpoint, **options)
    assert bucket_count(raw_conn) == 0


async def test_validation_messages_name_the_problem(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    with pytest.raises(ValidationError, match=r"cost .* exceeds capacity"):
        await rl.check_and_consume(user, "e", capacity=2, refill_rate=1, cost=3)
    with pytest.raises(ValidationError, match="not both"):
        await rl.check_and_consume(user, "e", capacity=2, refill_rate=1, window_seconds=2)
    with pytest.raises(ValidationError, match="neither"):
        await rl.check_and_consume(user, "e", capacity=2)
    with pytest.raises(ValidationError, match="user_id"):
        await rl.check_and_consume("no\x00pe", "e", capacity=2, refill_rate=1)


# ---------------------------------------------------------------- peek
async def test_peek_consumes_nothing(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    fresh = await rl.peek(user, "e", capacity=5, refill_rate=NEGLIGIBLE)
    assert fresh.allowed and fresh.remaining == 5 and fresh.reset_after == 0
    assert bucket_count(raw_conn) == 0  # peeking creates no bucket
    await rl.check_and_consume(user, "e", capacity=5, refill_rate=NEGLIGIBLE, cost=4)
    for _ in range(3):
        seen = await rl.peek(user, "e", capacity=5, refill_rate=NEGLIGIBLE)
        assert seen.allowed and seen.remaining == 1
    assert not (await rl.peek(user, "e", capacity=5, refill_rate=NEGLIGIBLE, cost=2)).allowed
    row = stored(raw_conn, user, "e")
    assert row is not None and row["allowed"] == 1 and row["denied"] == 0


# ---------------------------------------------------------------- headers
async def test_headers_match_the_result(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    allowed = await rl.check_and_consume(user, "/v1/chat", capacity=2, window_seconds=60)
    h = allowed.headers()
    assert h["X-RateLimit-Limit"] == "2" == str(allowed.limit)
    assert h["X-RateLimit-Remaining"] == "1" == str(allowed.remaining)
    assert h["X-RateLimit-Reset"] == str(math.ceil(allowed.reset_after)) == "30"
    assert h["RateLimit-Policy"] == '"/v1/chat";q=2;w=60'
    assert h["RateLimit"] == '"/v1/chat";r=1;t=30'
    assert "Retry-After" not in h
    await rl.check_and_consume(user, "/v1/chat", capacity=2, window_seconds=60)
    denied = await rl.check_and_consume(user, "/v1/chat", capacity=2, window_seconds=60)
    h = denied.headers()
    assert not denied.allowed
    assert h["X-RateLimit-Remaining"] == "0"
    assert h["Retry-After"] == str(math.ceil(denied.retry_after)) == "30"
    assert int(h["Retry-After"]) >= denied.retry_after  # rounded up, never early
    assert h["RateLimit"] == f'"/v1/chat";r=0;t={math.ceil(denied.reset_after)}'


def test_headers_round_up_and_quote() -> None:
    result = RateLimitResult(False, 10, 0, 0.2, 5.01, 100.0, 'we"ird\\', False)
    h = result.headers()
    assert h["Retry-After"] == "1"
    assert h["X-RateLimit-Reset"] == "6"
    assert h["RateLimit-Policy"] == '"we\\"ird\\\\";q=10;w=100'
    assert RateLimitResult(True, 1, 1, 0, 0, 1, "é").headers()["RateLimit"] == '"default";r=1;t=0'


# ---------------------------------------------------------------- check_many
async def test_check_many_is_all_or_nothing(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    per_second = Limit(endpoint="chat:s", capacity=10, refill_rate=NEGLIGIBLE)
    per_day = Limit(endpoint="chat:day", capacity=2, window_seconds=86_400)
    first = await rl.check_many(user, [per_second, per_day])
    assert first.allowed
    assert first.policy == "chat:day" and first.remaining == 1  # the tightest bucket
    assert (await rl.check_many(user, [per_day, per_second])).allowed
    denied = await rl.check_many(user, [per_second, per_day])
    assert not denied.allowed
    assert denied.policy == "chat:day"
    assert 43_000 < denied.retry_after <= 43_200 + 1e-5  # a token every 12 h
    s, day = stored(raw_conn, user, "chat:s"), stored(raw_conn, user, "chat:day")
    assert s is not None and day is not None
    assert 8.0 <= s["tokens"] < 8.001  # the denial took nothing from the other bucket
    assert s["allowed"] == 2 and s["denied"] == 1 and day["denied"] == 1


async def test_check_many_with_an_exhausted_bucket_consumes_from_none(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    await rl.check_and_consume(user, "b", capacity=3, refill_rate=NEGLIGIBLE, cost=3)
    limits = [
        Limit(endpoint="a", capacity=5, refill_rate=NEGLIGIBLE),
        Limit(endpoint="b", capacity=3, refill_rate=NEGLIGIBLE),
        Limit(endpoint="c", capacity=7, refill_rate=NEGLIGIBLE, cost=2),
    ]
    result = await rl.check_many(user, limits)
    assert not result.allowed and result.policy == "b"
    for endpoint, capacity in (("a", 5), ("c", 7)):
        row = stored(raw_conn, user, endpoint)
        assert row is not None and row["tokens"] == capacity  # created full, untouched
    assert (await rl.peek(user, "a", capacity=5, refill_rate=NEGLIGIBLE)).remaining == 5


async def test_check_many_validation(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    ok = Limit(endpoint="a", capacity=5, refill_rate=1)
    for bad in ([], [ok, Limit(endpoint="a", capacity=9, refill_rate=2)], [ok, "b"], "a"):
        with pytest.raises(ValidationError):
            await rl.check_many(user, bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await rl.check_many("bad\nuser", [ok])
    with pytest.raises(ValidationError):
        Limit(endpoint="a", capacity=2, refill_rate=1, cost=3)
    with pytest.raises(ValidationError):
        Limit(endpoint="", capacity=2, refill_rate=1)
    with pytest.raises(ValidationError):
        Limit(endpoint="a", capacity=2)
    assert bucket_count(raw_conn) == 0
    single = await rl.check_many(user, ok)  # type: ignore[arg-type]
    assert single.allowed and single.remaining == 4


# ---------------------------------------------------------------- reset, usage, cleanup
async def test_reset_one_or_all_buckets(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    for endpoint in ("a", "b", "c"):
        await rl.check_and_consume(user, endpoint, capacity=1, refill_rate=NEGLIGIBLE)
    await rl.check_and_consume(other, "a", capacity=1, refill_rate=NEGLIGIBLE)
    assert not (await rl.check_and_consume(user, "a", capacity=1, refill_rate=NEGLIGIBLE)).allowed
    assert await rl.reset(user, "a") == 1
    assert (await rl.check_and_consume(user, "a", capacity=1, refill_rate=NEGLIGIBLE)).allowed
    assert await rl.reset(user, "missing") == 0
    assert await rl.reset(str(user)) == 3
    assert bucket_count(raw_conn) == 1  # the other user's bucket stays
    with pytest.raises(ValidationError):
        await rl.reset("no\x00pe")


async def test_usage_counts_per_endpoint(rl: AsyncRateLimitRepository) -> None:
    user = uuid.uuid4()
    assert await rl.usage(user) == []
    for _ in range(3):
        await rl.check_and_consume(user, "b", capacity=2, refill_rate=NEGLIGIBLE)
    await rl.check_and_consume(user, "a", capacity=2, refill_rate=NEGLIGIBLE)
    await rl.check_and_consume(uuid.uuid4(), "a", capacity=2, refill_rate=NEGLIGIBLE)
    usage = await rl.usage(user)
    assert [(u.endpoint, u.allowed, u.denied) for u in usage] == [("a", 1, 0), ("b", 2, 1)]
    assert all(u.first_seen <= u.last_seen for u in usage)
    assert usage[0].last_seen.tzinfo is not None
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await rl.usage(user, since=future) == []
    assert len(await rl.usage(user, since=datetime.now(UTC) - timedelta(hours=1))) == 2
    with pytest.raises(ValidationError):
        await rl.usage(user, since=datetime(2024, 1, 1))  # naive


async def test_cleanup_idle_removes_only_idle_full_buckets(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    await rl.check_and_consume(user, "fast", capacity=2, refill_rate=1000)  # full in 2 ms
    await rl.check_and_consume(user, "slow", capacity=2, refill_rate=NEGLIGIBLE)  # stays at 1
    assert await rl.cleanup_idle(older_than=timedelta(hours=1)) == 0  # nothing is that old
    await asyncio.sleep(0.2)
    # "slow" is idle too, but deleting it would hand back a token: it stays.
    assert await rl.cleanup_idle(older_than=0.1) == 1
    assert stored(raw_conn, user, "fast") is None
    assert stored(raw_conn, user, "slow") is not None
    with pytest.raises(ValidationError):
        await rl.cleanup_idle(older_than=-1)
    with pytest.raises(ValidationError):
        await rl.cleanup_idle(older_than=math.nan)


async def test_cleanup_idle_walks_the_whole_table_in_batches(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    # 20,000 buckets (several hundred heap blocks, many batches): half idle for two days.
    raw_conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens, refilled_at)"
        " SELECT gen_random_uuid()::text, 'e', 5, 1, 5,"
        "        now() - CASE WHEN g % 2 = 0 THEN interval '2 days' ELSE interval '1 minute' END"
        "   FROM generate_series(1, 20000) AS g"
    )
    assert await rl.cleanup_idle() == 10_000  # default: Settings.rate_limit_idle_seconds (1 day)
    assert bucket_count(raw_conn) == 10_000
    assert await rl.cleanup_idle() == 0


async def test_health_check_and_factory_wiring(factory: AsyncRepositoryFactory) -> None:
    assert isinstance(factory.rate_limits, AsyncRateLimitRepository)
    assert factory.rate_limits in factory.repositories
    check = await factory.rate_limits.check_health()
    assert check.ok and check.name == "rate_limits"


def test_validated_configs_are_cached_by_value_and_type() -> None:
    assert bucket_config(1, 1.0, None, 1) == (1.0, 1.0, 1.0)
    with pytest.raises(ValidationError):  # True == 1 and hashes alike: still refused
        bucket_config(True, 1.0, None, 1)
    with pytest.raises(ValidationError):
        bucket_config(1, 1.0, None, True)
    with pytest.raises(ValidationError):
        bucket_config(1, [1.0], None, 1)  # unhashable
    assert check_user_id("6F9619FF-8B86-D011-B42D-00C04FC964FF") == (
        "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    )
