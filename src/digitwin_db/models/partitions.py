"""Month partitions of the append-only tables (``factory.partitions``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

__all__ = ["Partition"]


class Partition(BaseModel):
    """One partition: its UTC month ``[range_from, range_to)``, or the default partition
    (``is_default``, no bounds) that takes any timestamp outside the prepared months."""

    model_config = ConfigDict(frozen=True)

    name: str
    is_default: bool
    range_from: datetime | None
    range_to: datetime | None
    estimated_rows: int
