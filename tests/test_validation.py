"""The shared input checks: every bad input is a ValidationError naming the argument."""

from __future__ import annotations

import math
import uuid

import pytest

from digitwin_db.errors import ValidationError
from digitwin_db.validation import (
    check_json_object,
    check_number,
    check_optional_int,
    check_text,
    parse_uuid,
)


def test_parse_uuid_accepts_uuid_and_string() -> None:
    value = uuid.uuid4()
    assert parse_uuid(value) == value
    assert parse_uuid(str(value)) == value


@pytest.mark.parametrize("bad", ["", "not-a-uuid", "1' OR '1'='1", 42, None, "x" * 10_000, b"\x00"])
def test_parse_uuid_rejects(bad: object) -> None:
    with pytest.raises(ValidationError, match="user_id must be a UUID"):
        parse_uuid(bad, "user_id")


def test_check_text() -> None:
    assert check_text("  Ada ", "name", max_length=10) == "Ada"
    with pytest.raises(ValidationError, match="name must not be empty"):
        check_text("   ", "name", max_length=10)
    with pytest.raises(ValidationError, match="name is too long"):
        check_text("x" * 11, "name", max_length=10)
    with pytest.raises(ValidationError, match="name must be a string"):
        check_text(5, "name", max_length=10)
    with pytest.raises(ValidationError, match="NUL"):
        check_text("a\x00b", "name", max_length=10)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "3", None])
def test_check_number_rejects(bad: object) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        check_number(bad, "ttl")


def test_check_number_bounds_and_ints() -> None:
    assert check_number(2.5, "x", minimum=0) == 2.5
    with pytest.raises(ValidationError, match=">= 0"):
        check_number(-1, "x", minimum=0)
    with pytest.raises(ValidationError, match="integer"):
        check_optional_int(1.5, "asr_ms")
    assert check_optional_int(None, "asr_ms") is None
    assert check_optional_int(7, "asr_ms") == 7


def test_check_json_object() -> None:
    assert check_json_object(None, "metadata") == {}
    assert check_json_object({"a": [1, "b"]}, "metadata") == {"a": [1, "b"]}
    with pytest.raises(ValidationError, match="metadata must be a JSON object"):
        check_json_object([1], "metadata")
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        check_json_object({"a": object()}, "metadata")
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        check_json_object({"a": math.nan}, "metadata")
    with pytest.raises(ValidationError, match="too large"):
        check_json_object({"a": "x" * 2_000_000}, "metadata")


def test_lone_surrogates_are_refused_but_real_characters_pass() -> None:
    assert check_text("emoji 😀 ok", "name", max_length=20) == "emoji 😀 ok"
    assert check_json_object({"e": "😀"}, "metadata") == {"e": "😀"}
    with pytest.raises(ValidationError, match="name is not valid Unicode"):
        check_text("bad \ud800", "name", max_length=20)
    with pytest.raises(ValidationError, match="metadata is not valid Unicode"):
        check_json_object({"k": "\udfff"}, "metadata")
    with pytest.raises(ValidationError, match="metadata is not valid Unicode"):
        check_json_object({"\ud800": 1}, "metadata")


def test_check_page() -> None:
    from digitwin_db.validation import check_page

    assert check_page(50, 0) == (50, 0)
    for limit, offset in [(0, 0), (1001, 0), (10, -1), (1.5, 0), (True, 0), (10, "0")]:
        with pytest.raises(ValidationError):
            check_page(limit, offset)
