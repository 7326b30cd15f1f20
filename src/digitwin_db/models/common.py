"""Models shared by every repository: pages, health reports, base row model."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DatabaseHealth", "HealthReport", "Page", "RepositoryCheck", "Row"]

T = TypeVar("T")


class Row(BaseModel):
    """Base of every model built from a table row (immutable, strict field names)."""

    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing: ``items`` plus the ``total`` number of matching rows."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


class DatabaseHealth(BaseModel):
    """Result of ``Database.health_check()``."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    latency_ms: float | None = None
    server_version: str | None = None
    pending_migrations: list[str] = Field(default_factory=list)
    pool: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    checked_at: datetime


class RepositoryCheck(BaseModel):
    """One repository's part of the health report."""

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class HealthReport(BaseModel):
    """Result of ``RepositoryFactory.health()``: the database plus every repository."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    database: DatabaseHealth
    repositories: list[RepositoryCheck] = Field(default_factory=list)

    @property
    def latency_ms(self) -> float | None:
        return self.database.latency_ms

    @property
    def pending_migrations(self) -> list[str]:
        return self.database.pending_migrations

    @property
    def pool(self) -> dict[str, int]:
        return self.database.pool
