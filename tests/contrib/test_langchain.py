"""digitwin_db.contrib.langchain against LangChain's own standard suites (langchain-tests:
SyncCacheTestSuite, AsyncCacheTestSuite, BaseStoreSyncTests[bytes],
BaseStoreAsyncTests[bytes]) on a real server, plus the key rules and CacheBackedEmbeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests import (
    AsyncCacheTestSuite,
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    SyncCacheTestSuite,
)

from digitwin_db import RepositoryFactory, ValidationError
from digitwin_db.aio import AsyncDatabase, AsyncRepositoryFactory
from digitwin_db.contrib.langchain import PostgresByteStore, PostgresLLMCache


@pytest.fixture
async def async_factory(pg_url: str) -> AsyncIterator[AsyncRepositoryFactory]:
    db = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=4, pool_timeout=10.0)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    yield factory
    await factory.close()
    await db.close()


class TestPostgresLLMCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, sync_factory: RepositoryFactory) -> PostgresLLMCache:
        return PostgresLLMCache(sync_factory)


class TestPostgresLLMCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, async_factory: AsyncRepositoryFactory) -> PostgresLLMCache:
        return PostgresLLMCache(async_factory)


class TestPostgresByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, sync_factory: RepositoryFactory) -> PostgresByteStore:
        return PostgresByteStore(sync_factory)

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"\x00bar", b"buzz" * 1000


class TestPostgresByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, async_factory: AsyncRepositoryFactory) -> PostgresByteStore:
        return PostgresByteStore(async_factory)

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"\x00bar", b"buzz" * 1000


def test_llm_cache_key_is_prompt_and_llm_string(
    sync_factory: RepositoryFactory, raw_conn: psycopg.Connection
) -> None:
    cache = PostgresLLMCache(sync_factory, ttl=60)
    chat = '{"kwargs": {"model_name": "gpt-x", "temperature": 0}}'
    hot = '{"kwargs": {"model_name": "gpt-x", "temperature": 1}}'
    cache.update("p", chat, [ChatGeneration(message=AIMessage(content="cold"))])
    cache.update("p", hot, [Generation(text="hot")])
    cold = cache.lookup("p", chat)
    assert cold is not None and cold[0].text == "cold" and isinstance(cold[0], ChatGeneration)
    assert cache.lookup("p", hot) == [Generation(text="hot")]
    assert cache.lookup("other prompt", chat) is None
    rows = raw_conn.execute("SELECT DISTINCT model FROM llm_response_cache").fetchall()
    assert rows == [("gpt-x",)]  # labelled by model, keyed by the whole llm_string
    with pytest.raises(ValidationError):
        cache.update("p", chat, ["not a generation"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        cache.update("p\x00", chat, [Generation(text="x")])
    assert cache.lookup("p", hot) == [Generation(text="hot")]
    # A row that does not revive as generations (written by something else) is a miss.
    raw_conn.execute('UPDATE llm_response_cache SET response = \'{"lc": 1, "type": "x"}\'')
    assert cache.lookup("p", hot) is None


def test_byte_store_refuses_non_bytes_and_backs_cache_backed_embeddings(
    sync_factory: RepositoryFactory,
) -> None:
    store = PostgresByteStore(sync_factory, namespace="emb")
    with pytest.raises(ValidationError):
        store.mset([("a", "text")])  # type: ignore[list-item]
    assert store.mget(["a"]) == [None]

    class Counting(Embeddings):
        calls = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            Counting.calls += len(texts)
            return [[float(len(t)), 1.0] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return [float(len(text)), 1.0]

    embedder = CacheBackedEmbeddings.from_bytes_store(
        Counting(), store, namespace="m1", key_encoder="sha256"
    )
    assert embedder.embed_documents(["a", "bb"]) == [[1.0, 1.0], [2.0, 1.0]]
    assert embedder.embed_documents(["bb", "ccc"]) == [[2.0, 1.0], [3.0, 1.0]]
    assert Counting.calls == 3  # "bb" came from the store
    assert len(list(store.yield_keys(prefix="m1"))) == 3


def test_models_answer_from_the_cache(sync_factory: RepositoryFactory) -> None:
    """End to end: a LangChain LLM and chat model given the cache call the model once per
    prompt; another configuration (here: other stop words) is another entry."""
    cache = PostgresLLMCache(sync_factory)
    llm = FakeListLLM(responses=["first", "second", "third"], cache=cache)
    assert llm.invoke("hello") == "first"
    assert llm.invoke("hello") == "first"  # from the cache: the model was not called
    assert llm.invoke("hello", stop=["!"]) == "second"  # other params, other entry
    chat = FakeListChatModel(responses=["hi there", "unused"], cache=cache)
    assert chat.invoke("hello").content == "hi there"
    assert chat.invoke("hello").content == "hi there"
    assert llm.invoke("bye") == "third"
    rows = sync_factory.cache.stats().llm_response.entries
    assert rows == 4


async def test_models_answer_from_the_cache_async(async_factory: AsyncRepositoryFactory) -> None:
    cache = PostgresLLMCache(async_factory)
    chat = FakeListChatModel(responses=["one", "two"], cache=cache)
    assert (await chat.ainvoke("q")).content == "one"
    assert (await chat.ainvoke("q")).content == "one"
    assert (await chat.ainvoke("other")).content == "two"
