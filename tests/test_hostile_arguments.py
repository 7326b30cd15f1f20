"""Hostile arguments: a 3000-level nested list (or an object whose repr explodes) passed
as an id, a batch size or any other argument gives a ValidationError with a short message —
never a RecursionError — and nothing stored changes; lone surrogates in LLM metadata and
params are refused before SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from digitwin_db import Database, RepositoryFactory, ValidationError
from digitwin_db._sync.cleanup import CleanupJob
from digitwin_db.validation import shown


def _deep(levels: int = 3000) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(levels):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return root


class _ExplodingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("boom")


DEEP = _deep()
HOSTILE = [DEEP, _ExplodingRepr(), "x" * 1_000_000, 10**5000, {"k": DEEP}]
NIL = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def factory(pg_url: str) -> Iterator[RepositoryFactory]:
    with Database(url=pg_url, pool_min_size=0) as db:
        repositories = RepositoryFactory(db)
        yield repositories
        repositories.close()


def _calls(f: RepositoryFactory, bad: Any) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("users.find", lambda: f.users.find(bad)),
        ("users.get", lambda: f.users.get(bad)),
        ("users.update", lambda: f.users.update(bad, name="x")),
        ("users.list limit", lambda: f.users.list(limit=bad)),
        (
            "users.create tier",
            lambda: f.users.create(email="a@b.c", name="n", subscription_tier=bad),
        ),
        ("voice_models.get", lambda: f.voice_models.get(bad)),
        ("face_models.list_for_user", lambda: f.face_models.list_for_user(bad)),
        (
            "voice_models.create status",
            lambda: f.voice_models.create(
                user_id=NIL, name="n", provider="p", model_ref="r", status=bad
            ),
        ),
        ("sessions.get", lambda: f.sessions.get(bad)),
        ("sessions.add_turn role", lambda: f.sessions.add_turn(NIL, role=bad, content="x")),
        ("documents.get", lambda: f.documents.get(bad)),
        ("audit_logs.log user_id", lambda: f.audit_logs.log("a.b", user_id=bad)),
        ("audit_logs.log result", lambda: f.audit_logs.log("a.b", result=bad)),
        ("audit_logs.log ip", lambda: f.audit_logs.log("a.b", ip_address=bad)),
        ("audit_logs.query limit", lambda: f.audit_logs.query(limit=bad)),
        ("audit purge batch_size", lambda: f.audit_logs.purge_older_than(90, batch_size=bad)),
        ("audit purge days", lambda: f.audit_logs.purge_older_than(bad)),
        ("cache cleanup batch_size", lambda: f.cache.cleanup_expired(batch_size=bad)),
        ("cleanup job batch_size", lambda: CleanupJob(f, batch_size=bad)),
        ("rate_limits.cleanup_idle", lambda: f.rate_limits.cleanup_idle(older_than=bad)),
        ("for_user", lambda: f.for_user(bad)),
    ]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_arguments_give_short_validation_errors(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, index: int
) -> None:
    bad = HOSTILE[index]
    outcomes: dict[str, str] = {}
    for name, call in _calls(factory, bad):
        try:
            call()
        except ValidationError as exc:
            outcomes[name] = "refused" if len(str(exc)) < 400 else f"too long: {str(exc)[:80]}"
        except BaseException as exc:  # the failure this test exists for
            outcomes[name] = f"{type(exc).__name__}"
        else:
            outcomes[name] = "accepted"
    assert outcomes == {name: "refused" for name, _ in _calls(factory, bad)}
    counts = raw_conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM audit_logs), "
        "(SELECT count(*) FROM voice_models)"
    ).fetchone()
    assert counts == (0, 0, 0)


def test_shown_is_bounded() -> None:
    assert len(shown(DEEP)) <= 80 and shown(DEEP).startswith("[[")
    assert shown(_ExplodingRepr()).startswith("<_ExplodingRepr")
    assert len(shown("y" * 10_000)) <= 80
    assert shown(10**5000).startswith(("<int>", "1"))


# By name: a parameter value holding DEEP would be walked recursively by pytest plugins.
LLM_CASES: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "params value": ({"stop": "x\ud800y"}, None),
    "params nested": ({"nested": {"a": ["\udfff"]}}, None),
    "params key": ({"\ud800": 1}, None),
    "metadata value": (None, {"note": "x\ud800y"}),
    "metadata nested": (None, {"nested": [{"k": "\udc00"}]}),
    "metadata key": (None, {"\udc00key": 1}),
    "metadata deep": (None, {"deep": DEEP}),
}


@pytest.mark.parametrize("case", sorted(LLM_CASES))
def test_llm_surrogates_are_refused_before_sql(
    factory: RepositoryFactory, raw_conn: psycopg.Connection, case: str
) -> None:
    params, metadata = LLM_CASES[case]
    with pytest.raises(ValidationError):
        factory.cache.set_llm_response(
            "prompt", "response", model="m", params=params, metadata=metadata
        )
    if params is not None:
        with pytest.raises(ValidationError):
            factory.cache.get_llm_response("prompt", model="m", params=params)
    assert raw_conn.execute("SELECT count(*) FROM llm_response_cache").fetchone() == (0,)
