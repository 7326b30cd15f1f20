"""Rules of conversation sessions and turns (pure checks, no I/O): content, latency and
token limits."""

from __future__ import annotations

from typing import Any, NoReturn

from digitwin_db.errors import NotFoundError, ValidationError
from digitwin_db.validation import check_optional_int

# Limits of the tables' CHECK constraints, checked here first so that bad input fails with
# a clear message before any SQL runs.
CONTENT_MAX = 100_000
LATENCY_MAX_MS = 3_600_000
TOKENS_MAX = 10_000_000
#: The stages of a turn whose latencies are reported.
STAGES = ("asr", "llm", "tts", "total")


def check_latency(value: object, what: str) -> int | None:
    return check_optional_int(value, what, minimum=0, maximum=LATENCY_MAX_MS)


def check_tokens(value: object, what: str) -> int | None:
    return check_optional_int(value, what, minimum=0, maximum=TOKENS_MAX)


def raise_start_failure(params: dict[str, Any], state: dict[str, Any]) -> NoReturn:
    """Turn START_DIAGNOSE's answer into the error that explains why START did nothing."""
    user_id = params["user_id"]
    if state["user_live"] is None:
        raise NotFoundError(f"user {user_id} does not exist")
    if not state["user_live"]:
        raise NotFoundError(f"user {user_id} is deleted")
    for kind in ("voice", "face"):
        model_id = params[f"{kind}_model_id"]
        if model_id is None:
            continue
        if state[f"{kind}_owner"] is None:
            raise NotFoundError(f"{kind} model {model_id} does not exist")
        if state[f"{kind}_owner"] != user_id:
            raise ValidationError(f"{kind} model {model_id} belongs to another user")
        if not state[f"{kind}_live"]:
            raise NotFoundError(f"{kind} model {model_id} is deleted")
    # Everything checks out now: a concurrent change raced the insert.
    raise NotFoundError(f"user {user_id} or a model changed while the session was starting")
