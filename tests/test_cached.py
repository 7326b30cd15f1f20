"""@digitwin_db.cached on sync and async functions, and the LLM-response single-flight
helper: concurrent misses run the function once (threads and asyncio tasks, counted
exactly), keys, invalidate, hostile input."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

import digitwin_db as ddb
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from tests.helpers import run_threads


@pytest.fixture
def factory(sync_factory: ddb.RepositoryFactory) -> ddb.RepositoryFactory:
    return sync_factory


def test_cached_sync_function_runs_once_for_16_concurrent_misses(
    factory: ddb.RepositoryFactory,
) -> None:
    calls: list[int] = []
    guard = threading.Lock()

    @ddb.cached(ttl=60, namespace="fn", factory=factory)
    def slow_square(x: int, *, scale: int = 1) -> Sequence[int]:
        with guard:
            calls.append(x)
        time.sleep(0.2)
        return x, x * x * scale

    results = run_threads(16, lambda _: slow_square(3))
    assert calls == [3]
    assert results == [[3, 9]] * 16  # a tuple is JSON's list, on the miss too
    assert slow_square(3, scale=1) == [3, 9]  # same key: defaults applied
    assert slow_square(x=3) == [3, 9]
    assert calls == [3]
    assert slow_square(3, scale=2) == [3, 18]
    assert calls == [3, 3]
    assert slow_square.invalidate(3) is True  # type: ignore[attr-defined]
    assert slow_square.invalidate(3) is False  # type: ignore[attr-defined]
    assert slow_square(3) == [3, 9]
    assert calls == [3, 3, 3]
    key = slow_square.cache_key(3)  # type: ignore[attr-defined]
    assert key.startswith("tests.test_cached.")
    assert factory.cache.namespace("fn").exists(key)


def test_cached_with_a_key_function_pickle_and_none_results(
    factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    calls: list[object] = []

    class Service:
        @ddb.cached(key=lambda self, user: f"profile:{user}", factory=lambda: factory)
        def profile(self, user: str) -> None:
            calls.append(user)

        @ddb.cached(serializer="pickle", factory=factory, key=lambda self: "pair")
        def pair(self) -> tuple[int, set[int]]:
            calls.append("pair")
            return 1, {2}

    service = Service()
    assert service.profile("ann") is None
    assert service.profile("ann") is None  # a cached None is a hit
    assert service.pair() == (1, {2})
    assert service.pair() == (1, {2})
    assert calls == ["ann", "pair"]
    keys = {r[0] for r in raw_conn.execute("SELECT key FROM kv_cache").fetchall()}
    assert keys == {"profile:ann", "pair"}


def test_cached_hostile_input_is_a_validation_error_and_nothing_is_stored(
    factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    for bad in [
        lambda: ddb.cached(ttl=-1),
        lambda: ddb.cached(namespace=""),
        lambda: ddb.cached(serializer="yaml"),
        lambda: ddb.cached(key="not callable"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ddb.ValidationError):
            bad()

    @ddb.cached(factory=factory)
    def echo(value: Any) -> Any:
        return value

    with pytest.raises(ddb.ValidationError, match="key= function"):
        echo(object())  # arguments that are not JSON need a key function
    with pytest.raises(ddb.ValidationError):
        echo("\ud800")
    with pytest.raises(ddb.ValidationError):
        echo(1, 2)  # type: ignore[call-arg]  # does not bind to the signature
    with pytest.raises(ddb.ValidationError):
        echo([float("nan")])

    @ddb.cached(factory=factory, key=lambda: 42)  # type: ignore[arg-type, return-value]
    def bad_key() -> int:
        return 1

    with pytest.raises(ddb.ValidationError, match="not str"):
        bad_key()

    @ddb.cached(factory=factory)
    def returns_unstorable() -> object:
        return {"x": "\ud800"}

    with pytest.raises(ddb.ValidationError):
        returns_unstorable()
    assert raw_conn.execute("SELECT count(*) FROM kv_cache").fetchone() == (0,)


def test_cached_async_function_runs_once_for_concurrent_tasks(pg_url: str) -> None:
    calls: list[str] = []

    async def main() -> None:
        db = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=20, pool_timeout=30.0)
        await db.open()
        try:
            repositories = AsyncRepositoryFactory(db)

            @ddb.cached(ttl=60, factory=repositories)
            async def embed(text: str) -> list[float]:
                calls.append(text)
                await asyncio.sleep(0.2)
                return [float(len(text))]

            results = await asyncio.gather(*(embed("hello") for _ in range(12)))
            assert results == [[5.0]] * 12
            assert calls == ["hello"]
            assert await embed.invalidate("hello") is True  # type: ignore[attr-defined]
            assert await embed("hello") == [5.0]
            assert calls == ["hello", "hello"]
            await repositories.close()
        finally:
            await db.close()

    asyncio.run(main())


def test_20_concurrent_requests_for_3_prompts_make_3_llm_calls(
    factory: ddb.RepositoryFactory,
) -> None:
    calls: list[str] = []
    guard = threading.Lock()

    def ask(i: int) -> ddb.CachedLLMResponse:
        prompt = f"prompt {i % 3}"

        def generate() -> tuple[str, dict[str, int]]:
            with guard:
                calls.append(prompt)
            time.sleep(0.2)
            return f"answer to {prompt}", {"tokens": 7}

        return factory.cache.get_or_set_llm_response(
            prompt, generate, model="m", params={"temperature": 0}
        )

    results = run_threads(20, ask)
    assert sorted(calls) == ["prompt 0", "prompt 1", "prompt 2"]
    assert [r.response for r in results] == [f"answer to prompt {i % 3}" for i in range(20)]
    assert all(r.metadata == {"tokens": 7} for r in results)
    hit = factory.cache.get_llm_response("prompt 1", model="m", params={"temperature": 0})
    assert hit is not None and hit.response == "answer to prompt 1"


def test_llm_single_flight_hostile_input(
    factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    for generate in [
        lambda: 42,
        lambda: ("text", "not a mapping"),
        lambda: "nul\x00",
        lambda: ("text", {"bad": float("nan")}),
    ]:
        with pytest.raises(ddb.ValidationError):
            cache.get_or_set_llm_response("p", generate, model="m")
    with pytest.raises(ddb.ValidationError):
        cache.get_or_set_llm_response("p", "not callable", model="m")  # type: ignore[arg-type]
    with pytest.raises(ddb.ValidationError):
        cache.get_or_set_llm_response("p", lambda: "x", model="m", lock_timeout=0)

    def boom() -> str:
        raise RuntimeError("the model is down")

    with pytest.raises(RuntimeError, match="the model is down"):
        cache.get_or_set_llm_response("p", boom, model="m")
    assert raw_conn.execute("SELECT count(*) FROM llm_response_cache").fetchone() == (0,)
