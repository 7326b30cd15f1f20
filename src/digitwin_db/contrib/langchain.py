"""LangChain on the L2 cache (extra ``langchain``).

* :class:`PostgresLLMCache` — a ``BaseCache`` (sync and async) over the LLM-response cache:
  ``set_llm_cache(PostgresLLMCache(factory))``. An entry's key is (model, prompt,
  ``{"llm_string": …}``): LangChain's ``llm_string`` carries the model and every generation
  parameter (temperature, stop words…), so another model or other params are another entry.
* :class:`PostgresByteStore` — a ``ByteStore`` over one kv namespace (default
  ``"langchain"``), e.g. the store of ``CacheBackedEmbeddings``.

Each takes a sync repository factory (or ``factory.cache``), an async one, or both
(``async_cache=``): sync methods need the first, ``a*`` methods use the second when given
and otherwise run the sync method in a thread (LangChain's default).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core._api import suppress_langchain_beta_warning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumps, loads
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from langchain_core.stores import ByteStore

from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.repositories.cache_kv import AsyncKVNamespace
from digitwin_db._sync.repositories.cache import CacheRepository
from digitwin_db._sync.repositories.cache_kv import KVNamespace
from digitwin_db.cache_codec import Seconds
from digitwin_db.errors import ConfigurationError, ValidationError

__all__ = ["PostgresByteStore", "PostgresLLMCache"]

#: The classes a cached response may revive (generations and chat messages): nothing else
#: is instantiated from a stored row.
_ALLOWED: list[type[Serializable]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    FunctionMessage,
    ChatMessage,
]

#: The model name inside an ``llm_string`` (chat models: JSON ``"model_name": "…"``; LLMs:
#: ``('model_name', '…')``), only to label entries; the full string is part of the key.
_MODEL = re.compile(r"""["']model(?:_name)?["']\s*[:,]\s*["']([^"']{1,200})["']""")
_DEFAULT_MODEL = "langchain"


def _repo(cache: object, kind: type[Any], what: str) -> Any:
    """``cache`` (a factory or its ``.cache``) as a repository of ``kind``; None stays None."""
    if cache is None:
        return None
    repo = getattr(cache, "cache", cache)
    if not isinstance(repo, kind):
        raise ConfigurationError(f"expected {what}, got {type(cache).__name__}")
    return repo


def _split(cache: object, async_cache: object) -> tuple[Any, Any]:
    """(sync repo, async repo) from the positional argument (either kind) and async_cache."""
    repo = getattr(cache, "cache", cache)
    if isinstance(repo, AsyncCacheRepository):
        if async_cache is not None:
            raise ConfigurationError("two async caches given")
        return None, repo
    sync = _repo(cache, CacheRepository, "a RepositoryFactory or CacheRepository")
    aio = _repo(async_cache, AsyncCacheRepository, "an AsyncRepositoryFactory")
    if sync is None and aio is None:
        raise ConfigurationError("give a repository factory (sync, async or both)")
    return sync, aio


def _model_of(llm_string: str) -> str:
    found = _MODEL.search(llm_string)
    return found.group(1) if found and found.group(1).strip() else _DEFAULT_MODEL


class PostgresLLMCache(BaseCache):
    """LangChain's LLM cache in ``llm_response_cache`` (see the module docstring).

    ``ttl``: seconds an entry lives (default ``Settings.llm_cache_ttl``). ``clear()``
    empties the whole LLM-response cache. A stored row that does not revive as
    generations is a miss.
    """

    def __init__(
        self,
        cache: object = None,
        *,
        async_cache: object = None,
        ttl: Seconds | None = None,
    ) -> None:
        self._sync, self._async = _split(cache, async_cache)
        self._ttl = ttl

    def _need_sync(self) -> CacheRepository:
        if self._sync is None:
            raise ConfigurationError(
                "PostgresLLMCache was built with an async factory only: use alookup/aupdate"
            )
        repo: CacheRepository = self._sync
        return repo

    @staticmethod
    def _key(llm_string: str) -> tuple[str, dict[str, str]]:
        if not isinstance(llm_string, str):
            raise ValidationError("llm_string must be a string")
        return _model_of(llm_string), {"llm_string": llm_string}

    @staticmethod
    def _encode(return_val: RETURN_VAL_TYPE) -> str:
        if not isinstance(return_val, Sequence) or not all(
            isinstance(g, Generation) for g in return_val
        ):
            raise ValidationError("return_val must be a list of Generation objects")
        return dumps(list(return_val))

    @staticmethod
    def _decode(text: str) -> RETURN_VAL_TYPE | None:
        try:
            with suppress_langchain_beta_warning():
                value = loads(text, allowed_objects=_ALLOWED)
        except Exception:
            return None
        if isinstance(value, list) and all(isinstance(g, Generation) for g in value):
            return value
        return None

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations of ``prompt`` under this LLM configuration, or None."""
        model, params = self._key(llm_string)
        hit = self._need_sync().get_llm_response(prompt, model=model, params=params)
        return None if hit is None else self._decode(hit.response)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Cache ``return_val`` (a list of generations)."""
        model, params = self._key(llm_string)
        self._need_sync().set_llm_response(
            prompt, self._encode(return_val), model=model, params=params, ttl=self._ttl
        )

    def clear(self, **kwargs: Any) -> None:
        """Empty the LLM-response cache."""
        self._need_sync().clear("llm")

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if self._async is None:
            return await super().alookup(prompt, llm_string)
        model, params = self._key(llm_string)
        repo: AsyncCacheRepository = self._async
        hit = await repo.get_llm_response(prompt, model=model, params=params)
        return None if hit is None else self._decode(hit.response)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self._async is None:
            await super().aupdate(prompt, llm_string, return_val)
            return
        model, params = self._key(llm_string)
        repo: AsyncCacheRepository = self._async
        await repo.set_llm_response(
            prompt, self._encode(return_val), model=model, params=params, ttl=self._ttl
        )

    async def aclear(self, **kwargs: Any) -> None:
        if self._async is None:
            await super().aclear(**kwargs)
            return
        repo: AsyncCacheRepository = self._async
        await repo.clear("llm")


def _check_bytes(pairs: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    mapping: dict[str, bytes] = {}
    for key, value in pairs:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValidationError(f"a ByteStore value must be bytes, got {type(value).__name__}")
        mapping[key] = bytes(value)
    return mapping


class PostgresByteStore(ByteStore):
    """A LangChain ``ByteStore`` over the kv namespace ``namespace`` (bytes stored raw).

    ``ttl``: seconds a value lives (default: the namespace's, normally no expiry).
    ``yield_keys`` streams the keys in pages (no particular order).
    """

    def __init__(
        self,
        cache: object = None,
        *,
        async_cache: object = None,
        namespace: str = "langchain",
        ttl: Seconds | None = None,
    ) -> None:
        sync, aio = _split(cache, async_cache)
        self._kv: KVNamespace | None = None if sync is None else sync.namespace(namespace)
        self._akv: AsyncKVNamespace | None = None if aio is None else aio.namespace(namespace)
        self._ttl = ttl

    def _need_sync(self) -> KVNamespace:
        if self._kv is None:
            raise ConfigurationError(
                "PostgresByteStore was built with an async factory only: use the a* methods"
            )
        return self._kv

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found = self._need_sync().get_many(list(keys))
        return [found.get(key) for key in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        self._need_sync().set_many(_check_bytes(key_value_pairs), ttl=self._ttl)

    def mdelete(self, keys: Sequence[str]) -> None:
        self._need_sync().delete_many(list(keys))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        yield from self._need_sync().keys(prefix or "")

    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        if self._akv is None:
            return await super().amget(keys)
        found = await self._akv.get_many(list(keys))
        return [found.get(key) for key in keys]

    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        if self._akv is None:
            await super().amset(key_value_pairs)
            return
        await self._akv.set_many(_check_bytes(key_value_pairs), ttl=self._ttl)

    async def amdelete(self, keys: Sequence[str]) -> None:
        if self._akv is None:
            await super().amdelete(keys)
            return
        await self._akv.delete_many(list(keys))

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        if self._akv is None:
            async for key in super().ayield_keys(prefix=prefix):
                yield key
            return
        async for key in self._akv.keys(prefix or ""):
            yield key
