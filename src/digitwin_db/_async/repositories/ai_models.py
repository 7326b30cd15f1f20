"""VoiceModelRepository and FaceModelRepository (SPEC §2.2): one implementation,
``AsyncAIModelRepository``, parameterised by table, row model and kind-specific columns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from psycopg import sql

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.repositories.soft_delete import AsyncSoftDeleteRepository
from digitwin_db.errors import NotFoundError, QueryError, ValidationError
from digitwin_db.models.ai_models import AIModel, FaceModel, VoiceModel
from digitwin_db.models.common import Page
from digitwin_db.rules.ai_models import (
    COMMON_CHECKS,
    check_language,
    check_resolution,
    check_sample_rate,
)
from digitwin_db.sql import ai_models as q
from digitwin_db.sql.common import OWNED_BY
from digitwin_db.validation import check_fields

ModelT = TypeVar("ModelT", bound=AIModel)


class AsyncAIModelRepository(AsyncSoftDeleteRepository[ModelT]):
    """Shared behaviour of voice and face models: CRUD, at most one active model per user
    (a partial unique index), activation serialised on the user's row, soft delete."""

    #: "voice_model" / "face_model": audit action prefix and resource type.
    kind: ClassVar[str] = ""
    #: Kind-specific columns and their checks.
    extra_checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    soft_delete_extra_set: ClassVar[sql.Composable] = q.SOFT_DELETE_EXTRA_SET
    owner_table: ClassVar[str | None] = "users"

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        self._checks = {**COMMON_CHECKS, **self.extra_checks}
        insert_columns = ["user_id", *self._checks]
        fmt = {"table": self._table, "columns": self._columns}
        self._q_insert = q.INSERT.format(
            **fmt,
            insert_columns=sql.SQL(", ").join(sql.Identifier(c) for c in insert_columns),
            values=sql.SQL(", ").join(sql.Placeholder(c) for c in insert_columns),
        )
        self._q_lists = {
            deleted: self._listing(
                self.table, self._columns, [OWNED_BY, self._live_filter(deleted)]
            )
            for deleted in (False, True)
        }
        self._q_get_active = q.GET_ACTIVE.format(**fmt)
        self._q_owner = q.OWNER_OF_LIVE.format(**fmt)
        self._q_lock_model = q.LOCK_MODEL.format(**fmt)
        self._q_deactivate_others = q.DEACTIVATE_OTHERS.format(**fmt)
        self._q_activate = q.ACTIVATE.format(**fmt)
        self._q_deactivate = q.DEACTIVATE.format(**fmt)

    async def _create(self, user_id: object, fields: Mapping[str, Any]) -> ModelT:
        owner = self._parse_id(user_id, "user_id")
        params: dict[str, Any] = {"user_id": owner}
        for column, check in self._checks.items():
            params[column] = check(fields.get(column))
        async with self.db.connection(f"{self.name}.create") as conn:
            model = await self._fetch_one(conn, self._q_insert, params)
            if model is None:
                await self._require_user(conn, owner)
                raise NotFoundError(f"user {owner} is not live")
        return model

    async def list_for_user(
        self,
        user_id: UUID | str,
        *,
        include_deleted: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ModelT]:
        """A page of the user's models, newest first (live only unless
        ``include_deleted``), with the ``total`` that match; no items for a user without
        models. ``limit`` is 1-1000."""
        owner = self._parse_id(user_id, "user_id")
        return await self._list_page(
            f"{self.name}.list_for_user",
            self.row_model,
            self._q_lists[bool(include_deleted)],
            {"user_id": owner},
            limit,
            offset,
        )

    async def update(self, id: UUID | str, /, **changes: Any) -> ModelT:
        """Change some columns of a live model (``name``, ``provider``, ``model_ref``,
        ``status``, ``quality_score``, ``metadata`` and the kind's own). Unknown fields and
        bad values are a ``ValidationError``; so is moving the active model out of
        ``ready`` (deactivate it first)."""
        model_id = self._parse_id(id)
        check_fields(changes, self._checks, self.entity)
        values = {k: self._checks[k](v) for k, v in changes.items()}
        try:
            return await self._update_live(
                f"{self.name}.update", model_id, values, allowed=self._checks
            )
        except ValidationError as exc:
            if exc.constraint == f"{self.table}_active_ready":
                raise ValidationError(
                    f"{self.entity} {model_id} is active, so its status must stay 'ready'; "
                    "deactivate it first",
                    constraint=exc.constraint,
                ) from exc
            raise

    async def activate(self, id: UUID | str) -> ModelT:
        """Make this the user's only active model of this kind, atomically, and return it.

        Only a live ``ready`` model can be activated (else ``ValidationError``);
        ``NotFoundError`` if it is absent or deleted. Concurrent activations of one user's
        models are serialised on the user's row, so they end with exactly one active.
        """
        model_id = self._parse_id(id)
        async with self.db.transaction(f"{self.name}.activate") as conn:
            cur = await conn.execute(self._q_owner, {"id": model_id})
            found = await cur.fetchone()
            if found is None:
                raise NotFoundError(f"{self.entity} {model_id} not found")
            params = {"id": model_id, "user_id": found[0]}
            cur = await conn.execute(q.LOCK_LIVE_USER_EXCLUSIVE, params)
            if await cur.fetchone() is None:
                raise NotFoundError(f"the user of {self.entity} {model_id} is deleted")
            cur = await conn.execute(self._q_lock_model, params)
            state = await cur.fetchone()
            if state is None:  # soft-deleted while we waited for the user's lock
                raise NotFoundError(f"{self.entity} {model_id} not found")
            status, was_active = state
            if status != "ready":
                raise ValidationError(
                    f"only a ready {self.entity} can be activated; {model_id} is {status!r}"
                )
            await conn.execute(self._q_deactivate_others, params)
            model = await self._fetch_one(conn, self._q_activate, params)
            if model is None:
                raise QueryError("ai_models: the statement returned no row")
            if not was_active:
                await self._audit(
                    conn,
                    f"{self.kind}.activated",
                    user_id=model.user_id,
                    resource_type=self.kind,
                    resource_id=model.id,
                )
        return model

    async def deactivate(self, id: UUID | str) -> ModelT:
        """Switch a live model off (no-op if it was not active) and return it."""
        model_id = self._parse_id(id)
        async with self.db.connection(f"{self.name}.deactivate") as conn:
            model = await self._fetch_one(conn, self._q_deactivate, {"id": model_id})
        if model is None:
            raise NotFoundError(f"{self.entity} {model_id} not found")
        return model

    async def get_active(self, user_id: UUID | str) -> ModelT | None:
        """The user's active model of this kind, or ``None``."""
        owner = self._parse_id(user_id, "user_id")
        async with self.db.connection(f"{self.name}.get_active") as conn:
            return await self._fetch_one(conn, self._q_get_active, {"user_id": owner})


class AsyncVoiceModelRepository(AsyncAIModelRepository[VoiceModel]):
    """Voice-cloning models (``voice_models``): language and sample rate on top."""

    name: ClassVar[str] = "voice_models"
    tables: ClassVar[tuple[str, ...]] = ("voice_models",)
    table: ClassVar[str] = "voice_models"
    row_model = VoiceModel
    entity: ClassVar[str] = "voice model"
    kind: ClassVar[str] = "voice_model"
    extra_checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "language": check_language,
        "sample_rate": check_sample_rate,
    }

    async def create(
        self,
        *,
        user_id: UUID | str,
        name: str,
        provider: str,
        model_ref: str,
        status: str = "training",
        metadata: Mapping[str, Any] | None = None,
        quality_score: float | None = None,
        language: str | None = None,
        sample_rate: int | None = None,
    ) -> VoiceModel:
        """Create a voice model of a live user (``NotFoundError`` otherwise), inactive."""
        return await self._create(
            user_id,
            {
                "name": name,
                "provider": provider,
                "model_ref": model_ref,
                "status": status,
                "metadata": metadata,
                "quality_score": quality_score,
                "language": language,
                "sample_rate": sample_rate,
            },
        )


class AsyncFaceModelRepository(AsyncAIModelRepository[FaceModel]):
    """Face-cloning models (``face_models``): resolution on top."""

    name: ClassVar[str] = "face_models"
    tables: ClassVar[tuple[str, ...]] = ("face_models",)
    table: ClassVar[str] = "face_models"
    row_model = FaceModel
    entity: ClassVar[str] = "face model"
    kind: ClassVar[str] = "face_model"
    extra_checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "resolution": check_resolution,
    }

    async def create(
        self,
        *,
        user_id: UUID | str,
        name: str,
        provider: str,
        model_ref: str,
        status: str = "training",
        metadata: Mapping[str, Any] | None = None,
        quality_score: float | None = None,
        resolution: str | None = None,
    ) -> FaceModel:
        """Create a face model of a live user (``NotFoundError`` otherwise), inactive."""
        return await self._create(
            user_id,
            {
                "name": name,
                "provider": provider,
                "model_ref": model_ref,
                "status": status,
                "metadata": metadata,
                "quality_score": quality_score,
                "resolution": resolution,
            },
        )
