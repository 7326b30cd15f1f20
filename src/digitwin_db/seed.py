"""Demo data for a fresh database: ``python -m digitwin_db seed`` (run by scripts/init_db.sh).

Two users (a ``free`` and a ``pro`` one), their voice and face models (one active of each
kind per user, all active ones ``ready``), knowledge documents in every processing state,
conversation sessions with turns and realistic per-stage latencies, and a few audit
entries.

Idempotent: every row has a natural key (the user's email; a model's or document's name
within its user; ``metadata["seed"]`` of a session; ``resource_id`` of an audit entry).
A run looks each one up and creates only what is missing, then moves what it finds towards
the planned state (a document along its lifecycle, missing turns of a session, the active
model), so a second run changes nothing and a run interrupted half-way is completed by the
next one. Turn latencies come from a random generator seeded with the turn's key, so they
are the same on every run. Two seeds started at once are serialised by an advisory lock.

The plan itself is data: ``digitwin_db/data/seed.json`` (a package resource).
Everything goes through the public sync API (``digitwin_db.RepositoryFactory``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict

from digitwin_db import (
    ConfigurationError,
    ConversationSession,
    Database,
    FaceModel,
    FaceModelRepository,
    KnowledgeDocument,
    NotFoundError,
    RepositoryFactory,
    Settings,
    User,
    VoiceModel,
    VoiceModelRepository,
)
from digitwin_db.sql import seed as q

__all__ = ["SEED_USERS", "SeedReport", "run", "seed"]


# ---------------------------------------------------------------------------- the plan
# The shape of ``data/seed.json`` (validated when read; lists become tuples).
class _Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeedModel(_Plan):
    name: str
    provider: str
    model_ref: str
    status: str
    quality_score: float | None
    active: bool = False
    extra: dict[str, Any] = {}  # language/sample_rate/resolution


class SeedDocument(_Plan):
    title: str
    content: str
    status: str  # the planned end state of its lifecycle
    mime_type: str = "text/plain"
    source: str | None = None
    chunk_count: int | None = None
    error: str | None = None


class SeedSession(_Plan):
    key: str  # stored as metadata["seed"]
    exchanges: tuple[tuple[str, str], ...]  # (user says, assistant answers)
    ended: bool
    channel: str = "web"


class SeedAudit(_Plan):
    key: str  # stored as resource_id
    action: str
    result: str
    ip_address: str
    user_agent: str


class SeedUser(_Plan):
    email: str
    name: str
    tier: str
    traits: tuple[str, ...]
    preferences: dict[str, Any]
    settings: dict[str, Any]
    voice_models: tuple[SeedModel, ...]
    face_models: tuple[SeedModel, ...]
    documents: tuple[SeedDocument, ...]
    sessions: tuple[SeedSession, ...]
    audit: tuple[SeedAudit, ...]


def _load_plan() -> tuple[SeedUser, ...]:
    """The demo data, read from the package resource ``digitwin_db/data/seed.json``."""
    text = resources.files("digitwin_db").joinpath("data/seed.json").read_text(encoding="utf-8")
    return tuple(SeedUser.model_validate(user) for user in json.loads(text)["users"])


#: The plan: users with their models, documents, sessions and audit entries.
SEED_USERS: tuple[SeedUser, ...] = _load_plan()

# The way to each document state from 'pending'.
_LIFECYCLE: dict[str, tuple[str, ...]] = {
    "pending": (),
    "processing": ("processing",),
    "ready": ("processing", "ready"),
    "failed": ("processing", "failed"),
}
_MAX_LISTED = 1000


# ---------------------------------------------------------------------------- the report
@dataclass
class SeedReport:
    """What a seed run found (``existing``) and created (``created``), per kind of row."""

    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, *, created: bool) -> None:
        target = self.created if created else self.existing
        target[kind] = target.get(kind, 0) + 1

    @property
    def changed(self) -> bool:
        return any(self.created.values())

    def summary(self) -> str:
        kinds = sorted(set(self.created) | set(self.existing))
        return ", ".join(
            f"{kind} {self.created.get(kind, 0) + self.existing.get(kind, 0)} "
            f"({self.created.get(kind, 0)} new)"
            for kind in kinds
        )


# ---------------------------------------------------------------------------- the work
def seed(factory: RepositoryFactory) -> SeedReport:
    """Bring the demo data into the database behind ``factory`` (see the module docstring).

    Its pool needs two connections: one holds the seed lock while the other does the work.
    """
    if factory.db.settings.pool_max_size < 2:
        raise ConfigurationError("the seed needs a pool of at least 2 connections (POOL_MAX_SIZE)")
    report = SeedReport()
    with _seed_lock(factory.db):
        for plan in SEED_USERS:
            user = _user(factory, plan, report)
            for model in plan.voice_models:
                _model(factory.voice_models, "voice_models", user, model, report)
            for model in plan.face_models:
                _model(factory.face_models, "face_models", user, model, report)
            _documents(factory, user, plan.documents, report)
            _sessions(factory, user, plan, report)
            _audit(factory, user, plan.audit, report)
    return report


def run(settings: Settings | None = None) -> SeedReport:
    """Seed the database of ``settings`` (default: ``Settings()`` from the environment)."""
    database = Database(settings or Settings(), pool_min_size=0)
    database.open()
    factory = RepositoryFactory(database)
    try:
        return seed(factory)
    finally:
        factory.close()


@contextmanager
def _seed_lock(db: Database) -> Iterator[None]:
    # No operation name: the connection is held for the whole seed, which would otherwise be
    # recorded (and logged) as one very slow call.
    with db.connection() as conn:
        conn.execute(q.SEED_LOCK, {"key": q.SEED_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(q.SEED_UNLOCK, {"key": q.SEED_LOCK_KEY})


def _user(factory: RepositoryFactory, plan: SeedUser, report: SeedReport) -> User:
    try:
        user = factory.users.get_by_email(plan.email)
    except NotFoundError:
        user = factory.users.create(
            email=plan.email,
            name=plan.name,
            personality_traits=plan.traits,
            preferences=plan.preferences,
            settings=plan.settings,
            subscription_tier=plan.tier,
        )
        report.count("users", created=True)
    else:
        report.count("users", created=False)
    return user


def _model(
    repository: VoiceModelRepository | FaceModelRepository,
    kind: str,
    user: User,
    plan: SeedModel,
    report: SeedReport,
) -> None:
    """One seeded voice or face model (found by name), activated if the plan says so."""
    found = {m.name: m for m in repository.list_for_user(user.id, limit=_MAX_LISTED).items}
    model: VoiceModel | FaceModel | None = found.get(plan.name)
    report.count(kind, created=model is None)
    if model is None:
        model = repository.create(
            user_id=user.id,
            name=plan.name,
            provider=plan.provider,
            model_ref=plan.model_ref,
            status=plan.status,
            quality_score=plan.quality_score,
            metadata={"seed": True},
            **plan.extra,
        )
    if plan.active and not model.is_active:
        repository.activate(model.id)


def _documents(
    factory: RepositoryFactory,
    user: User,
    plans: tuple[SeedDocument, ...],
    report: SeedReport,
) -> None:
    page = factory.documents.list_for_user(user.id, limit=_MAX_LISTED)
    found: dict[str, KnowledgeDocument] = {d.title: d for d in page.items}
    for plan in plans:
        document = found.get(plan.title)
        report.count("documents", created=document is None)
        if document is None:
            document = factory.documents.create(
                user_id=user.id,
                title=plan.title,
                content=plan.content,
                source=plan.source,
                mime_type=plan.mime_type,
                metadata={"seed": True},
            )
        path = _LIFECYCLE[plan.status]
        # Walk the rest of the way from where the document is now (a document already
        # past the plan, or off it, is left as it is).
        if document.status == "pending":
            remaining = path
        elif document.status in path:
            remaining = path[path.index(document.status) + 1 :]
        else:
            remaining = ()
        for status in remaining:
            factory.documents.set_status(
                document.id,
                status,
                chunk_count=plan.chunk_count if status == "ready" else None,
                error=plan.error if status == "failed" else None,
            )


def _sessions(factory: RepositoryFactory, user: User, plan: SeedUser, report: SeedReport) -> None:
    page = factory.sessions.list_for_user(user.id, limit=_MAX_LISTED)
    found: dict[str, ConversationSession] = {
        str(s.metadata["seed"]): s for s in page.items if "seed" in s.metadata
    }
    voice = factory.voice_models.get_active(user.id)
    face = factory.face_models.get_active(user.id)
    for planned in plan.sessions:
        session = found.get(planned.key)
        report.count("sessions", created=session is None)
        if session is None:
            session = factory.sessions.start(
                user_id=user.id,
                voice_model_id=voice.id if voice else None,
                face_model_id=face.id if face else None,
                metadata={"seed": planned.key, "channel": planned.channel},
            )
        if session.status == "active":
            turns = _turns(planned)
            for number, turn in enumerate(turns, start=1):
                if number > session.turn_count:
                    factory.sessions.add_turn(session.id, **turn)
                    report.count("turns", created=True)
                else:
                    report.count("turns", created=False)
            if planned.ended:
                factory.sessions.end(session.id)
        else:
            for _ in range(session.turn_count):
                report.count("turns", created=False)


def _turns(plan: SeedSession) -> list[dict[str, Any]]:
    """The turns of a planned session with latencies drawn from generators seeded by the
    turn's key: a user turn carries its speech recognition time, an assistant turn the LLM
    and speech synthesis times and the end-to-end total of the exchange."""
    turns: list[dict[str, Any]] = []
    for index, (question, answer) in enumerate(plan.exchanges):
        rng = random.Random(f"{plan.key}:{index}")
        asr = rng.randint(90, 260)
        llm = rng.randint(320, 950)
        tts = rng.randint(140, 380)
        overhead = rng.randint(25, 70)
        words_in = len(question.split())
        words_out = len(answer.split())
        turns.append(
            {
                "role": "user",
                "content": question,
                "asr_ms": asr,
                "total_ms": asr + overhead // 2,
                "tokens_in": round(words_in * 1.3),
                "metadata": {"audio_ms": 400 * words_in},
            }
        )
        turns.append(
            {
                "role": "assistant",
                "content": answer,
                "llm_ms": llm,
                "tts_ms": tts,
                "total_ms": asr + llm + tts + overhead,
                "tokens_in": 180 + 40 * index + round(words_in * 1.3),
                "tokens_out": round(words_out * 1.3),
                "metadata": {"audio_ms": 380 * words_out},
            }
        )
    return turns


def _audit(
    factory: RepositoryFactory, user: User, plans: tuple[SeedAudit, ...], report: SeedReport
) -> None:
    for plan in plans:
        existing = factory.audit_logs.query(user_id=user.id, resource_id=plan.key, limit=1)
        report.count("audit_logs", created=not existing.items)
        if not existing.items:
            factory.audit_logs.log(
                plan.action,
                user_id=user.id,
                resource_type="seed",
                resource_id=plan.key,
                result=plan.result,
                ip_address=plan.ip_address,
                user_agent=plan.user_agent,
                metadata={"seed": True},
            )
