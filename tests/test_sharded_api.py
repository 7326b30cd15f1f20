"""The sharded façades (issue 16) override every public method of what they stand in
for: a method added to the cache, a namespace or the rate limiter later and not routed
here would otherwise run on one shard only. Checked for the asyncio and the sync API."""

from __future__ import annotations

import inspect

import pytest

from digitwin_db._async.repositories.cache import AsyncCacheRepository
from digitwin_db._async.repositories.cache_kv import AsyncKVNamespace
from digitwin_db._async.repositories.rate_limits import AsyncRateLimitRepository
from digitwin_db._async.sharded_cache import AsyncShardedCache, AsyncShardedKVNamespace
from digitwin_db._async.sharded_rate_limits import AsyncShardedRateLimits
from digitwin_db._sync.repositories.cache import CacheRepository
from digitwin_db._sync.repositories.cache_kv import KVNamespace
from digitwin_db._sync.repositories.rate_limits import RateLimitRepository
from digitwin_db._sync.sharded_cache import ShardedCache, ShardedKVNamespace
from digitwin_db._sync.sharded_rate_limits import ShardedRateLimits

PAIRS = [
    (AsyncCacheRepository, AsyncShardedCache),
    (AsyncKVNamespace, AsyncShardedKVNamespace),
    (AsyncRateLimitRepository, AsyncShardedRateLimits),
    (CacheRepository, ShardedCache),
    (KVNamespace, ShardedKVNamespace),
    (RateLimitRepository, ShardedRateLimits),
]


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize(("base", "facade"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_method_is_routed(base: type, facade: type) -> None:
    public = _public_methods(base)
    assert public  # the check looks at something
    missing = sorted(n for n in public if facade.__dict__.get(n) is None)
    assert missing == [], f"{facade.__name__} does not route: {missing}"
    for name in public:
        ours = inspect.signature(facade.__dict__[name])
        theirs = inspect.signature(getattr(base, name))
        assert list(ours.parameters) == list(theirs.parameters), name
