"""``@digitwin_db.cached(...)``: cache a function's results in the kv store.

Works on sync and async functions alike (the async one awaits the asyncio API). Built on
``kv.get_or_set``: when N callers miss the same key at once — threads, tasks, processes or
hosts — the function runs once and the others get its stored result.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db._async.repositories.cache_kv import AsyncKVNamespace
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db._sync.repositories.cache_kv import KVNamespace
from digitwin_db.cache_codec import Seconds, check_name, check_ttl
from digitwin_db.errors import ValidationError
from digitwin_db.kv_codec import encode_json, resolve_codec

__all__ = ["cached"]

P = ParamSpec("P")
R = TypeVar("R")


def _default_key(fn: Callable[..., Any]) -> Callable[..., str]:
    """The key of a call: the function's qualified name and its bound arguments (defaults
    applied, so ``f(1)`` and ``f(x=1)`` share an entry) as JSON."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    signature = inspect.signature(fn)

    def key(*args: Any, **kwargs: Any) -> str:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValidationError(f"{name}: {exc}") from None
        bound.apply_defaults()
        try:
            data = encode_json(list(bound.arguments.items()), "the arguments")
        except ValidationError as exc:
            raise ValidationError(
                f"{name}: {exc}; give @cached a key= function for such arguments"
            ) from None
        return f"{name}:{data.decode()}"

    return key


def cached(
    *,
    ttl: Seconds | None = None,
    namespace: str = "default",
    key: Callable[..., str] | None = None,
    serializer: object = "json",
    factory: Any = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Cache the decorated function's results in the kv namespace ``namespace``.

    ``key(*args, **kwargs) -> str`` names an entry (default: the function's qualified name
    and its arguments as JSON — arguments that are not JSON, such as ``self``, need a
    ``key``). ``ttl``: seconds an entry lives (default: ``Settings.kv_default_ttl``).
    ``serializer``: as for ``cache.namespace`` (``"json"`` turns a returned tuple into a
    list — on a miss too, so hits and misses return the same thing). ``factory``: the
    repository factory to use (default: ``RepositoryFactory.instance()``, or
    ``AsyncRepositoryFactory.instance()`` for a coroutine function), or a callable returning
    it. ``fn.invalidate(*args, **kwargs)`` removes the entry of those arguments (a coroutine
    for an async function); ``fn.cache_key(*args, **kwargs)`` tells its key.
    """
    check_name(namespace, "namespace")
    ttl_seconds = check_ttl(ttl, None)
    resolve_codec(serializer)  # refused here, at decoration, rather than at the first call
    if key is not None and not callable(key):
        raise ValidationError("key must be a callable returning a string")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        make_key = key or _default_key(fn)

        def key_of(*args: Any, **kwargs: Any) -> str:
            value = make_key(*args, **kwargs)
            if not isinstance(value, str):
                raise ValidationError(f"key function returned {type(value).__name__}, not str")
            return value

        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], _async_wrapper(fn, key_of))
        return _sync_wrapper(fn, key_of)

    def _sync_kv() -> KVNamespace:
        found = factory() if callable(factory) else factory
        repositories = found if found is not None else RepositoryFactory.instance()
        if not isinstance(repositories, RepositoryFactory):
            raise ValidationError("factory must be a RepositoryFactory for a sync function")
        return repositories.cache.namespace(namespace, serializer=serializer)

    async def _async_kv() -> AsyncKVNamespace:
        found = factory() if callable(factory) else factory
        if inspect.isawaitable(found):
            found = await found
        repositories = found if found is not None else await AsyncRepositoryFactory.instance()
        if not isinstance(repositories, AsyncRepositoryFactory):
            raise ValidationError(
                "factory must be an AsyncRepositoryFactory for a coroutine function"
            )
        return repositories.cache.namespace(namespace, serializer=serializer)

    def _sync_wrapper(fn: Callable[P, R], key_of: Callable[..., str]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            cache_key = key_of(*args, **kwargs)
            return cast(
                R, _sync_kv().get_or_set(cache_key, lambda: fn(*args, **kwargs), ttl=ttl_seconds)
            )

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            return _sync_kv().delete(key_of(*args, **kwargs))

        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.cache_key = key_of  # type: ignore[attr-defined]
        return wrapper

    def _async_wrapper(
        fn: Callable[..., Awaitable[Any]], key_of: Callable[..., str]
    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            cache_key = key_of(*args, **kwargs)
            kv = await _async_kv()
            return await kv.get_or_set(cache_key, lambda: fn(*args, **kwargs), ttl=ttl_seconds)

        async def invalidate(*args: Any, **kwargs: Any) -> bool:
            kv = await _async_kv()
            return await kv.delete(key_of(*args, **kwargs))

        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.cache_key = key_of  # type: ignore[attr-defined]
        return wrapper

    return decorate
