# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_cache_entries.py
"""The purpose-built caches: embeddings, vector-search results, LLM responses."""

from __future__ import annotations

import math
import struct
from typing import Any

import psycopg
import pytest

from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import ValidationError
from digitwin_db.models.cache import SearchHit


def _count(raw_conn: psycopg.Connection, table: str) -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _f32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


# ---------------------------------------------------------------- embeddings


def test_embedding_round_trip_in_float32(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    vector = [0.1, -2.5, 3.14159265358979, 1e-8, 0.0, 12345.678]
    cache.set_embedding("hello", vector, model="m1")
    got = cache.get_embedding("hello", model="m1")
    assert got == _f32(vector)
    assert got is not None
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(got, vector, strict=True))
    row = raw_conn.execute(
        "SELECT dimensions, octet_length(embedding) FROM embedding_cache"
    ).fetchone()
    assert row == (6, 24)  # 4 bytes a dimension
    assert cache.get_embedding("hello", model="m2") is None
    assert cache.get_embedding("Hello", model="m1") is None


def test_same_text_under_two_models_is_two_entries(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    cache.set_embedding("text", [1.0, 2.0], model="small")
    cache.set_embedding("text", [3.0, 4.0, 5.0], model="large")
    assert cache.get_embedding("text", model="small") == [1.0, 2.0]
    assert cache.get_embedding("text", model="large") == [3.0, 4.0, 5.0]
    assert _count(raw_conn, "embedding_cache") == 2


def test_bulk_embeddings(factory: RepositoryFactory) -> None:
    cache = factory.cache
    mapping = {f"text {i}": [float(i), float(-i), 0.5] for i in range(50)}
    cache.set_embeddings(mapping, model="m")
    texts = ["text 3", "absent", "text 49", "text 0", "text 3"]
    assert cache.get_embeddings(texts, model="m") == [
        [3.0, -3.0, 0.5],
        None,
        [49.0, -49.0, 0.5],
        [0.0, 0.0, 0.5],
        [3.0, -3.0, 0.5],
    ]
    assert cache.get_embeddings(["text 1"], model="other") == [None]
    before = {s.operation: s.calls for s in factory.stats()}
    cache.get_embeddings(list(mapping), model="m")
    cache.set_embeddings(mapping, model="m")
    after = {s.operation: s.calls for s in factory.stats()}
    assert after["cache.get_embeddings"] - before["cache.get_embeddings"] == 1
    assert after["cache.set_embeddings"] - before["cache.set_embeddings"] == 1


def test_bad_embeddings_are_rejected_and_nothing_stored(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    bad_vectors: list[object] = [
        [],
        [1.0, math.nan],
        [math.inf, 1.0],
        [-math.inf],
        [1e39],  # beyond float32
        ["1.0", 2.0],
        [True, 1.0],
        "1,2,3",
        None,
        {"a": 1.0},
    ]
    for vector in bad_vectors:
        with pytest.raises(ValidationError):
            cache.set_embedding("t", vector, model="m")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            cache.set_embeddings({"ok": [1.0, 2.0], "t": vector}, model="m")  # type: ignore[dict-item]
    cache.set_embeddings({}, model="m")  # an empty batch does nothing
    with pytest.raises(ValidationError):
        cache.set_embeddings({"a": [1.0], "b": [1.0, 2.0]}, model="m")
    with pytest.raises(ValidationError):
        cache.set_embedding("t", [1.0], model="")
    with pytest.raises(ValidationError):
        cache.set_embedding("t", [1.0], model="m", ttl=-3)
    assert cache.get_embeddings([], model="m") == []
    assert _count(raw_conn, "embedding_cache") == 0


def test_dimension_must_match_the_models_stored_embeddings(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    cache.set_embedding("a", [1.0, 2.0, 3.0], model="m")
    with pytest.raises(ValidationError, match="3 dimensions"):
        cache.set_embedding("b", [1.0, 2.0], model="m")
    with pytest.raises(ValidationError, match="3 dimensions"):
        cache.set_embedding("a", [1.0, 2.0, 3.0, 4.0], model="m")
    with pytest.raises(ValidationError):
        cache.set_embeddings({"c": [1.0], "d": [2.0]}, model="m")
    assert _count(raw_conn, "embedding_cache") == 1
    assert cache.get_embedding("a", model="m") == [1.0, 2.0, 3.0]
    cache.set_embedding("b", [1.0, 2.0], model="other")  # another model: fine
    cache.set_embeddings({"c": [1.0, 1.0, 1.0]}, model="m")
    assert _count(raw_conn, "embedding_cache") == 3


def test_expired_embedding_is_never_returned(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    cache.set_embedding("a", [1.0], model="m", ttl=60)
    cache.set_embeddings({"b": [2.0]}, model="m")
    raw_conn.execute("UPDATE embedding_cache SET expires_at = now() - interval '1 ms'")
    assert cache.get_embedding("a", model="m") is None
    assert cache.get_embeddings(["a", "b"], model="m") == [None, None]
    # An expired vector no longer fixes the model's dimension.
    cache.set_embedding("a", [1.0, 2.0], model="m")
    assert cache.get_embedding("a", model="m") == [1.0, 2.0]


# ---------------------------------------------------------------- vector search


def test_search_results_round_trip(factory: RepositoryFactory) -> None:
    cache = factory.cache
    hits: list[Any] = [
        SearchHit(id="doc-1", score=0.93, payload={"title": "A", "tags": ["x"]}),
        {"id": "doc-7", "score": 0.5},
        ("doc-3", 0.25, {"n": 1}),
        (42, 0.1),
    ]
    cache.set_search_results("what is x?", hits, index="docs", params={"k": 4})
    got = cache.get_search_results("what is x?", index="docs", params={"k": 4})
    assert got == [
        SearchHit(id="doc-1", score=0.93, payload={"title": "A", "tags": ["x"]}),
        SearchHit(id="doc-7", score=0.5),
        SearchHit(id="doc-3", score=0.25, payload={"n": 1}),
        SearchHit(id="42", score=0.1),
    ]
    assert cache.get_search_results("what is x?", index="docs") is None
    assert cache.get_search_results("what is x?", index="docs", params={"k": 5}) is None
    assert cache.get_search_results("what is x?", index="other", params={"k": 4}) is None
    cache.set_search_results("nothing", [], index="docs")
    assert cache.get_search_results("nothing", index="docs") == []


def test_search_params_are_canonical(factory: RepositoryFactory) -> None:
    cache = factory.cache
    cache.set_search_results("q", [("a", 1.0)], index="i", params={"k": 3, "filter": "x"})
    got = cache.get_search_results("q", index="i", params={"filter": "x", "k": 3})
    assert got == [SearchHit(id="a", score=1.0)]


def test_bad_search_input(factory: RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    cache = factory.cache
    bad_hits: list[Any] = [[("a", math.nan)], [{"id": "a"}], "abc", [("a",)], [object()]]
    for hits in bad_hits:
        with pytest.raises(ValidationError):
            cache.set_search_results("q", hits, index="i")
    with pytest.raises(ValidationError):
        cache.set_search_results("q", [], index="i", params={"x": object()})
    with pytest.raises(ValidationError):
        cache.set_search_results("q", [], index="i", ttl=0)
    assert _count(raw_conn, "vector_search_cache") == 0


# ---------------------------------------------------------------- LLM responses


def test_llm_response_params_make_separate_entries(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    prompt = "Say hi"
    cache.set_llm_response(prompt, "hi (cold)", model="gpt", params={"temperature": 0.0})
    cache.set_llm_response(prompt, "HI! (hot)", model="gpt", params={"temperature": 1.0})
    cache.set_llm_response(
        prompt, "hi.", model="gpt", params={"temperature": 0.0, "stop": ["."], "max_tokens": 5}
    )
    cache.set_llm_response(prompt, "other model", model="claude")
    cold = cache.get_llm_response(prompt, model="gpt", params={"temperature": 0.0})
    hot = cache.get_llm_response(prompt, model="gpt", params={"temperature": 1.0})
    stop = cache.get_llm_response(
        prompt, model="gpt", params={"max_tokens": 5, "stop": ["."], "temperature": 0.0}
    )
    assert cold is not None and cold.response == "hi (cold)"
    assert hot is not None and hot.response == "HI! (hot)"
    assert stop is not None and stop.response == "hi."
    assert cache.get_llm_response(prompt, model="gpt") is None
    assert cache.get_llm_response(prompt, model="gpt", params={"temperature": 0.5}) is None
    other = cache.get_llm_response(prompt, model="claude")
    assert other is not None and other.response == "other model"
    assert _count(raw_conn, "llm_response_cache") == 4


def test_llm_metadata_and_hit_counts_exact_after_flush(
    factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = factory.cache
    cache.set_llm_response("p", "r", model="m", metadata={"tokens": 12, "finish": "stop"}, ttl=100)
    for i in range(1, 6):
        got = cache.get_llm_response("p", model="m")
        assert got is not None
        assert got.hit_count == i  # unflushed hits of this process included
        assert got.metadata == {"tokens": 12, "finish": "stop"}
        assert got.response == "r"
        assert got.created_at.tzinfo is not None
    row = raw_conn.execute("SELECT hit_count FROM llm_response_cache").fetchone()
    assert row == (0,)  # no write on the read path
    cache.flush_stats()
    row = raw_conn.execute("SELECT hit_count FROM llm_response_cache").fetchone()
    assert row == (5,)
    got = cache.get_llm_response("p", model="m")
    assert got is not None and got.hit_count == 6
    cache.set_llm_response("p", "new", model="m")  # replaced: counting starts again
    cache.flush_stats()
    got = cache.get_llm_response("p", model="m")
    assert got is not None and got.response == "new"


def test_bad_llm_input(factory: RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    cache = factory.cache
    with pytest.raises(ValidationError):
        cache.set_llm_response("p", "r", model="m", metadata={"x": object()})
    with pytest.raises(ValidationError):
        cache.set_llm_response("p", "r", model="m", params={"temperature": math.nan})
    with pytest.raises(ValidationError):
        cache.set_llm_response("p", "r", model="m", params=[1])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        cache.set_llm_response("p", None, model="m")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        cache.set_llm_response("p", "r", model="m", ttl=-1)
    assert _count(raw_conn, "llm_response_cache") == 0
