"""Rate-limit subjects (SPEC §2.11): a UUID or any non-empty string — an IP address, an
API-key id, a tenant — in check_and_consume, check_many, peek, reset and usage; hostile
strings are ValidationErrors and write nothing."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db.errors import ValidationError
from digitwin_db.models.rate_limits import Limit
from digitwin_db.ratelimit_policy import MAX_SUBJECT_LENGTH

SUBJECTS = [
    "203.0.113.7",
    "2001:db8::ff00:42:8329",
    "key_live_8f3a2b",
    "tenant:acme-corp",
    "Ünïcödé tenant ✓",
    " ",
    "x" * MAX_SUBJECT_LENGTH,
]

HOSTILE = [
    "",
    "x" * (MAX_SUBJECT_LENGTH + 1),
    "a\x00b",
    "line\nbreak",
    "tab\there",
    "\ud800",
    "bell\x07",
    b"203.0.113.7",
    42,
    None,
    ["203.0.113.7"],
]


@pytest.fixture
def rl(factory: AsyncRepositoryFactory) -> AsyncRateLimitRepository:
    return factory.rate_limits


def bucket_rows(raw_conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return raw_conn.execute(
        "SELECT user_id, endpoint, tokens FROM rate_limits ORDER BY 1, 2"
    ).fetchall()


@pytest.mark.parametrize("subject", SUBJECTS)
async def test_any_string_subject_has_its_own_bucket(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection, subject: str
) -> None:
    for expected in (True, True, False):
        result = await rl.check_and_consume(subject, "api", capacity=2, window_seconds=3600)
        assert result.allowed is expected
    assert not (await rl.peek(subject, "api", capacity=2, window_seconds=3600)).allowed
    assert (await rl.peek("other", "api", capacity=2, window_seconds=3600)).allowed
    assert [(row[0], row[1]) for row in bucket_rows(raw_conn)] == [(subject, "api")]
    usage = await rl.usage(subject)
    assert [(u.endpoint, u.allowed, u.denied) for u in usage] == [("api", 2, 1)]
    assert await rl.reset(subject, "api") == 1
    assert bucket_rows(raw_conn) == []


async def test_check_many_and_reset_all_with_a_string_subject(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    limits = [
        Limit(endpoint="burst", capacity=2, window_seconds=1000),
        Limit(endpoint="daily", capacity=3, window_seconds=86400),
    ]
    outcomes = [(await rl.check_many("198.51.100.9", limits)).allowed for _ in range(3)]
    assert outcomes == [True, True, False]
    rows = bucket_rows(raw_conn)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("198.51.100.9", "burst", pytest.approx(0, abs=1e-2)),
        ("198.51.100.9", "daily", pytest.approx(1, abs=1e-2)),
    ]
    assert await rl.reset("198.51.100.9") == 2
    assert bucket_rows(raw_conn) == []


async def test_uuid_spellings_share_one_bucket(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection
) -> None:
    user = uuid.uuid4()
    spellings = [user, str(user), str(user).upper(), "{" + str(user) + "}", user.hex]
    for spelling in spellings:
        await rl.check_and_consume(spelling, "api", capacity=10, window_seconds=3600)
    assert bucket_rows(raw_conn) == [(str(user), "api", pytest.approx(5, abs=1e-2))]
    assert [(u.allowed, u.denied) for u in await rl.usage(user.hex)] == [(5, 0)]


@pytest.mark.parametrize("subject", HOSTILE, ids=repr)
async def test_hostile_subjects_are_validation_errors_and_change_nothing(
    rl: AsyncRateLimitRepository, raw_conn: psycopg.Connection, subject: Any
) -> None:
    await rl.check_and_consume("kept", "api", capacity=5, window_seconds=3600)
    before = bucket_rows(raw_conn)
    with pytest.raises(ValidationError, match="user_id"):
        await rl.check_and_consume(subject, "api", capacity=5, window_seconds=3600)
    with pytest.raises(ValidationError, match="user_id"):
        await rl.check_many(subject, [Limit(endpoint="api", capacity=5, window_seconds=3600)])
    with pytest.raises(ValidationError, match="user_id"):
        await rl.peek(subject, "api", capacity=5, window_seconds=3600)
    with pytest.raises(ValidationError, match="user_id"):
        await rl.reset(subject)
    with pytest.raises(ValidationError, match="user_id"):
        await rl.usage(subject)
    assert bucket_rows(raw_conn) == before
