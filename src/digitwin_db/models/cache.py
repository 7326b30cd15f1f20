"""Models of the L2 cache: search hits, cached LLM responses, statistics, cleanup reports."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from digitwin_db.cache_registry import CACHE_NAMES
from digitwin_db.models.common import Row

__all__ = [
    "CACHE_NAMES",
    "CacheCounts",
    "CacheStats",
    "CachedLLMResponse",
    "CleanupReport",
    "SearchHit",
]


class SearchHit(BaseModel):
    """One ranked result of a vector search: the document ``id``, its ``score`` and an
    optional JSON ``payload``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=1000)
    score: float
    payload: dict[str, Any] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        # Integer and UUID document ids are common; they are stored (and returned) as text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("score must be a finite number")
        return value


class CachedLLMResponse(Row):
    """A cached LLM response with its metadata and hit count.

    ``hit_count`` is the flushed count plus the hits this process has not flushed yet
    (this one included); after ``flush_stats()`` the stored count is exact.
    """

    model: str
    prompt: str
    params: dict[str, Any]
    response: str
    metadata: dict[str, Any]
    hit_count: int
    created_at: datetime
    expires_at: datetime


class CacheCounts(BaseModel):
    """Statistics of one cache: flushed hits and misses plus this process's unflushed ones,
    and the live entries with their approximate size in bytes."""

    model_config = ConfigDict(frozen=True)

    name: str
    hits: int
    misses: int
    entries: int
    bytes: int
    # Near cache (SPEC §2.10): flushed counters of every process, and this process's copies.
    near_hits: int = 0
    near_misses: int = 0
    near_invalidations: int = 0
    near_evictions: int = 0
    near_entries: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CacheStats(BaseModel):
    """Result of ``cache.stats()``: one :class:`CacheCounts` per cache of the registry
    (``digitwin_db.cache_registry``; a test keeps these fields equal to its names).

    Read them as attributes (``stats.kv.hits``) or by name (``stats["kv"]``).
    """

    model_config = ConfigDict(frozen=True)

    embedding: CacheCounts
    vector_search: CacheCounts
    llm_response: CacheCounts
    kv: CacheCounts
    collected_at: datetime

    @property
    def caches(self) -> dict[str, CacheCounts]:
        return {name: getattr(self, name) for name in CACHE_NAMES}

    def __getitem__(self, name: str) -> CacheCounts:
        if name not in CACHE_NAMES:
            raise KeyError(name)
        counts: CacheCounts = getattr(self, name)
        return counts


class CleanupReport(BaseModel):
    """Result of ``cache.cleanup_expired()``: expired rows removed per table."""

    model_config = ConfigDict(frozen=True)

    removed: dict[str, int]
    batches: int = 0
    elapsed_ms: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def __getitem__(self, table: str) -> int:
        return self.removed[table]
