"""Voice and face models (SPEC §2.2): row models and the accepted values."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import ConfigDict

from digitwin_db.models.common import Row

__all__ = ["MODEL_STATUSES", "AIModel", "FaceModel", "ModelStatus", "VoiceModel"]

ModelStatus = Literal["training", "ready", "failed"]
#: The statuses the ``*_models_status`` CHECKs accept; only ``ready`` can be activated.
MODEL_STATUSES: tuple[str, ...] = ("training", "ready", "failed")


class AIModel(Row):
    """Columns shared by ``voice_models`` and ``face_models``."""

    # "model_ref" would clash with pydantic's protected "model_" namespace otherwise.
    model_config = ConfigDict(protected_namespaces=())

    id: UUID
    user_id: UUID
    name: str
    provider: str
    model_ref: str
    quality_score: float | None
    status: ModelStatus
    is_active: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class VoiceModel(AIModel):
    """One row of ``voice_models``."""

    language: str | None
    sample_rate: int | None


class FaceModel(AIModel):
    """One row of ``face_models``; ``resolution`` like ``"1920x1080"``."""

    resolution: str | None
