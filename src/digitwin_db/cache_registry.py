"""The caches of the L2 cache, declared once.

Each cache has a name (as in statistics and ``Settings``), a table, the column that says how
old an entry is (eviction order), the ``Settings`` field of its default TTL and the two
``Settings`` fields of its caps. Every other module (the cache core and repository, the
models, the SQL, maintenance, settings) reads this registry instead of listing the caches
again. Pure data: it imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CACHES",
    "CACHE_NAMES",
    "CACHE_TABLES",
    "CAP_SETTINGS",
    "STATS_TABLE",
    "CacheSpec",
    "cache_spec",
]


@dataclass(frozen=True, slots=True)
class CacheSpec:
    """One cache: its name, table and the ``Settings`` fields that configure it."""

    name: str
    table: str
    #: Column ordering entries by age: the oldest are evicted first above a cap.
    age_column: str
    #: ``Settings`` field of the default TTL in seconds (``None`` there: no expiry).
    ttl_setting: str
    max_entries_setting: str
    max_bytes_setting: str


CACHES: tuple[CacheSpec, ...] = (
    CacheSpec(
        name="embedding",
        table="embedding_cache",
        age_column="created_at",
        ttl_setting="embedding_cache_ttl",
        max_entries_setting="embedding_cache_max_entries",
        max_bytes_setting="embedding_cache_max_bytes",
    ),
    CacheSpec(
        name="vector_search",
        table="vector_search_cache",
        age_column="created_at",
        ttl_setting="search_cache_ttl",
        max_entries_setting="search_cache_max_entries",
        max_bytes_setting="search_cache_max_bytes",
    ),
    CacheSpec(
        name="llm_response",
        table="llm_response_cache",
        age_column="created_at",
        ttl_setting="llm_cache_ttl",
        max_entries_setting="llm_cache_max_entries",
        max_bytes_setting="llm_cache_max_bytes",
    ),
    CacheSpec(
        name="kv",
        table="kv_cache",
        age_column="updated_at",
        ttl_setting="kv_default_ttl",
        max_entries_setting="kv_cache_max_entries",
        max_bytes_setting="kv_cache_max_bytes",
    ),
)

#: The caches, as named in statistics: embedding, vector_search, llm_response, kv.
CACHE_NAMES: tuple[str, ...] = tuple(c.name for c in CACHES)
#: Their tables, in the same order.
CACHE_TABLES: tuple[str, ...] = tuple(c.table for c in CACHES)
#: The table of the flushed hit/miss counters (one row per cache name).
STATS_TABLE = "cache_stats"
#: Every cap field of ``Settings`` (an empty value there means "no cap").
CAP_SETTINGS: tuple[str, ...] = tuple(
    field for c in CACHES for field in (c.max_entries_setting, c.max_bytes_setting)
)

_BY_NAME = {c.name: c for c in CACHES}


def cache_spec(name: str) -> CacheSpec:
    """The cache called ``name`` (``KeyError`` for an unknown name)."""
    return _BY_NAME[name]
