"""Users (SPEC §2.1): the row model and the accepted values."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from digitwin_db.models.common import Row

__all__ = ["SUBSCRIPTION_TIERS", "SubscriptionTier", "User"]

SubscriptionTier = Literal["free", "pro", "enterprise"]
#: The tiers the ``users_subscription_tier`` CHECK accepts.
SUBSCRIPTION_TIERS: tuple[str, ...] = ("free", "pro", "enterprise")


class User(Row):
    """One row of ``users``; ``deleted_at`` is set when soft-deleted."""

    id: UUID
    email: str
    name: str
    personality_traits: list[str]
    preferences: dict[str, Any]
    settings: dict[str, Any]
    subscription_tier: SubscriptionTier
    last_active_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None
