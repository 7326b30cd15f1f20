"""The pure rules shared by the async and sync APIs (validation, rules/, rate-limit policy)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pydantic
import pydantic_core
import pytest

from digitwin_db.errors import ValidationError
from digitwin_db.models.rate_limits import Limit, RateLimitResult
from digitwin_db.ratelimit_policy import BucketConfig, bucket_config
from digitwin_db.validation import check_aware_datetime, check_fields, check_int_range


def test_check_aware_datetime() -> None:
    now = datetime.now(UTC)
    assert check_aware_datetime(now, "since") is now
    assert check_aware_datetime(None, "since") is None
    with pytest.raises(ValidationError, match="since must be a datetime"):
        check_aware_datetime("2026-01-01", "since")
    with pytest.raises(ValidationError, match="until must be timezone-aware"):
        check_aware_datetime(datetime(2026, 1, 1), "until")


def test_check_fields_names_every_unknown_field_sorted() -> None:
    check_fields({"a": 1}, ("a", "b"), "thing")
    with pytest.raises(ValidationError, match=r"cannot update x, y of a thing; updatable: a, b$"):
        check_fields({"y": 1, "x": 2, "a": 3}, ("b", "a"), "thing")


def test_check_int_range_refuses_bools_and_out_of_range() -> None:
    assert check_int_range(5, "n", 1, 5) == 5
    for bad in (True, 0, 6, 1.0, "3"):
        with pytest.raises(ValidationError, match="n must be an integer from 1 to 5"):
            check_int_range(bad, "n", 1, 5)


def test_bucket_config_has_named_fields() -> None:
    config = bucket_config(10, None, 5.0, 2)
    assert config == BucketConfig(capacity=10.0, refill_rate=2.0, cost=2.0)


def test_result_from_bucket_state() -> None:
    config = BucketConfig(capacity=10.0, refill_rate=2.0, cost=3.0)
    allowed = RateLimitResult.from_bucket(True, 4.5, 0.0, config, "chat")
    assert (allowed.allowed, allowed.limit, allowed.remaining, allowed.retry_after) == (
        True,
        10,
        4,
        0.0,
    )
    assert (allowed.reset_after, allowed.window, allowed.policy) == (2.75, 5.0, "chat")
    denied = RateLimitResult.from_bucket(False, 1.0, 0.5, config, "chat")
    assert denied.retry_after == pytest.approx(0.5 + 1.0 + 1e-6)
    assert denied.remaining == 1 and not denied.degraded


def test_undecided_results_are_degraded() -> None:
    config = BucketConfig(capacity=10.0, refill_rate=2.0, cost=3.0)
    allow = RateLimitResult.undecided(True, config, "chat")
    assert (allow.allowed, allow.remaining, allow.retry_after, allow.degraded) == (
        True,
        7,
        0.0,
        True,
    )
    deny = RateLimitResult.undecided(False, config, "chat")
    assert (deny.allowed, deny.remaining, deny.retry_after, deny.reset_after) == (
        False,
        0,
        1.5,
        5.0,
    )
    assert deny.degraded


def test_public_results_serialise_as_json_objects_with_named_fields() -> None:
    # What web frameworks do with a returned dataclass (FastAPI: dataclasses.asdict, then
    # JSON; pydantic: to_jsonable_python): an object with named fields, never an array.
    result = RateLimitResult.from_bucket(True, 4.0, 0.0, BucketConfig(10.0, 2.0, 1.0), "chat")
    expected = {
        "allowed": True,
        "limit": 10,
        "remaining": 4,
        "retry_after": 0.0,
        "reset_after": 3.0,
        "window": 5.0,
        "policy": "chat",
        "degraded": False,
    }
    assert dataclasses.asdict(result) == expected
    assert pydantic_core.to_jsonable_python(result) == expected
    assert json.loads(pydantic.TypeAdapter(RateLimitResult).dump_json(result)) == expected
    limit = Limit("chat", 10, window_seconds=60)
    assert pydantic_core.to_jsonable_python(limit) == {
        "endpoint": "chat",
        "capacity": 10,
        "refill_rate": None,
        "window_seconds": 60,
        "cost": 1,
    }
    assert limit.config == BucketConfig(10.0, 10 / 60, 1.0)
