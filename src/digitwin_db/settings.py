"""Configuration, read from the environment (prefix-free names) and from ``.env``.

Every field maps to an environment variable of the same name in upper case, e.g.
``DATABASE_URL``, ``POOL_MAX_SIZE``, ``CACHE_FAIL_OPEN``. Invalid values are rejected when
``Settings()`` is built, and pydantic's error names the offending variable.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from digitwin_db.cache_registry import CAP_SETTINGS
from digitwin_db.redaction import redact

__all__ = ["Settings", "describe_settings_error", "redact_url"]

DEFAULT_URL = "postgresql://localhost:5432/digitwin"
#: Environment variable naming the .env file to read (default: ".env" in the working directory).
ENV_FILE_VARIABLE = "DIGITWIN_DB_ENV_FILE"


def redact_url(url: str) -> str:
    """Return ``url`` (a URL or a libpq ``key=value`` string) with every password replaced
    by ``***`` (safe for logs and errors); see :func:`digitwin_db.redaction.redact`."""
    return redact(url)


def describe_settings_error(exc: pydantic.ValidationError) -> str:
    """``VARIABLE: problem`` for each invalid setting — never the value (it may be a
    password)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"]).upper() or "SETTINGS"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class Settings(BaseSettings):
    """Runtime settings of the data layer.

    Raises ``pydantic.ValidationError`` (naming the variable) when a value is invalid.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
        # A rejected value may be a URL with a password: errors never echo the input.
        hide_input_in_errors=True,
    )

    # The URL is a secret because it may carry a password: repr() and logs show "**********".
    database_url: SecretStr = Field(default=SecretStr(DEFAULT_URL))
    # The roles of SPEC §2.12: DATABASE_URL is the application role's; the owner's URL runs
    # migrate / rollback / grant, the maintenance role's runs cleanup. Unset: DATABASE_URL.
    owner_database_url: SecretStr | None = None
    maintenance_database_url: SecretStr | None = None

    pool_min_size: int = Field(default=2, ge=0, le=1000)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    connect_timeout: float = Field(default=5.0, gt=0, le=600)
    # How long a caller waits for a free pooled connection before DatabaseUnavailableError.
    pool_timeout: float = Field(default=10.0, gt=0, le=3600)
    # Idle connections above pool_min_size are closed after this many seconds.
    pool_max_idle: float = Field(default=300.0, gt=0)
    pool_max_lifetime: float = Field(default=3600.0, gt=0)
    # Seconds close() waits for checked-out connections to come back.
    pool_close_timeout: float = Field(default=5.0, ge=0)
    # Circuit breaker (digitwin_db.circuit): after this many consecutive connection failures
    # calls fail at once for circuit_breaker_open_seconds, then one probe call is let through;
    # 0 disables it.
    circuit_breaker_failures: int = Field(default=1, ge=0, le=1000)
    circuit_breaker_open_seconds: float = Field(default=2.0, ge=0, le=3600)
    # Server-side statement_timeout in milliseconds; 0 disables it.
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    lock_timeout_ms: int = Field(default=5_000, ge=0)
    # psycopg prepares a statement after it ran this many times on a connection. Set it
    # to None (env: PREPARE_THRESHOLD=) behind PgBouncer in transaction mode before 1.21.
    prepare_threshold: int | None = Field(default=0, ge=0)
    application_name: str = Field(default="digitwin-db", max_length=63)

    # Calls slower than this are logged as slow (milliseconds).
    slow_call_ms: float = Field(default=200.0, ge=0)

    # Cache defaults (seconds).
    embedding_cache_ttl: float = Field(default=3600.0, gt=0)
    search_cache_ttl: float = Field(default=1800.0, gt=0)
    llm_cache_ttl: float = Field(default=3600.0, gt=0)
    kv_default_ttl: float | None = Field(default=None, gt=0)
    # Transient errors on cache reads become logged misses when on.
    cache_fail_open: bool = True
    # In-process hit/miss counters are flushed to the database this often (seconds).
    cache_stats_flush_interval: float = Field(default=10.0, gt=0)
    # Optional caps per cache (entries / bytes of stored values); empty = unbounded. The
    # registry (digitwin_db.cache_registry) names which fields belong to which cache. Above a
    # cap the oldest entries are evicted first, checked every cache_cap_check_writes writes.
    embedding_cache_max_entries: int | None = Field(default=None, ge=1)
    embedding_cache_max_bytes: int | None = Field(default=None, ge=1)
    search_cache_max_entries: int | None = Field(default=None, ge=1)
    search_cache_max_bytes: int | None = Field(default=None, ge=1)
    llm_cache_max_entries: int | None = Field(default=None, ge=1)
    llm_cache_max_bytes: int | None = Field(default=None, ge=1)
    kv_cache_max_entries: int | None = Field(default=None, ge=1)
    kv_cache_max_bytes: int | None = Field(default=None, ge=1)
    # Writes to one cache (per process) between two checks of its caps.
    cache_cap_check_writes: int = Field(default=100, ge=1)

    # Near cache (SPEC §2.10): an in-process copy of hot cache entries, kept coherent by
    # LISTEN/NOTIFY. Off by default. Bounds: entries, bytes (values + keys + ~200 bytes of
    # bookkeeping each) and seconds a copy may live in memory (never past its expires_at).
    near_cache: bool = False
    near_cache_max_entries: int = Field(default=10_000, ge=1)
    near_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    near_cache_max_age: float = Field(default=60.0, gt=0, le=86_400)
    # A direct connection for LISTEN (behind PgBouncer in transaction mode LISTEN does not
    # work, NOTIFY does); None = DATABASE_URL. A secret like DATABASE_URL.
    listen_url: SecretStr | None = None

    # What the rate limiter answers when the database cannot decide.
    rate_limit_on_error: Literal["raise", "allow", "deny"] = "raise"

    # Audit retention for the cleanup job (days).
    audit_retention_days: int = Field(default=90, ge=1)
    # Rate-limit buckets untouched this long are removed by the cleanup job (seconds).
    rate_limit_idle_seconds: float = Field(default=86_400.0, gt=0)

    # Month partitions of conversation_turns prepared ahead by migrate and the cleanup job.
    partition_months_ahead: int = Field(default=3, ge=0, le=120)
    # Turns older than this are dropped by the cleanup job, a whole month partition at a
    # time (empty: keep every turn).
    turn_retention_days: int | None = Field(default=None, ge=1)

    # Read replicas (streaming standbys) for factory.replica(): their URLs (env: a JSON list
    # or comma-separated). Secrets like DATABASE_URL. Caches and rate limits never use them.
    replica_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # A replica read that cannot reach its replica: run it on the primary, or raise
    # DatabaseUnavailableError.
    replica_fallback: Literal["primary", "raise"] = "primary"
    # Seconds a replica that failed is skipped before it is tried again.
    replica_retry_after: float = Field(default=5.0, ge=0)
    # Read-your-writes calls wait this long (seconds) for a lagging replica to replay the
    # primary's position before they run on the primary instead.
    replica_catch_up_wait: float = Field(default=0.0, ge=0, le=60)

    # Cache sharding (SPEC §2.13): the servers that hold the cache tables and the rate-limit
    # buckets, spread by key with rendezvous hashing (digitwin_db.sharding). Empty: the
    # primary holds them. Env: a JSON list or comma-separated; secrets like DATABASE_URL.
    cache_shard_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    def __init__(self, **values: Any) -> None:
        # The .env file: DIGITWIN_DB_ENV_FILE names it; otherwise ".env" in the working
        # directory (only there: not next to the package, not in a parent directory).
        path = os.environ.get(ENV_FILE_VARIABLE)
        if path and "_env_file" not in values:
            values["_env_file"] = path
        super().__init__(**values)

    @field_validator("prepare_threshold", "kv_default_ttl", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @field_validator(*CAP_SETTINGS, mode="before")
    @classmethod
    def _empty_cap_is_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @field_validator("turn_retention_days", mode="before")
    @classmethod
    def _empty_retention_is_none(cls, value: object) -> object:
        return cls._empty_is_none(value)

    @field_validator("replica_urls", "cache_shard_urls", mode="before")
    @classmethod
    def _split_replica_urls(cls, value: object) -> object:
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                return json.loads(stripped)  # a JSON list
            return [u.strip() for u in stripped.split(",") if u.strip()]
        return value

    @field_validator("replica_urls")
    @classmethod
    def _check_replica_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        for url in value:
            try:
                cls._check_url(url)
            except ValueError:
                raise ValueError(
                    "REPLICA_URLS entries must be postgresql:// URLs or libpq key=value strings"
                ) from None
        return value

    @field_validator("cache_shard_urls")
    @classmethod
    def _check_cache_shard_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        for url in value:
            try:
                cls._check_url(url)
            except ValueError:
                raise ValueError(
                    "CACHE_SHARD_URLS entries must be postgresql:// URLs or libpq key=value strings"
                ) from None
        return value

    @field_validator("owner_database_url", "maintenance_database_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url", "owner_database_url", "maintenance_database_url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in ("postgresql", "postgres") and not (
            not scheme and "=" in raw  # libpq "key=value" connection string
        ):
            raise ValueError("DATABASE_URL must be a postgresql:// URL or a libpq key=value string")
        return value

    @field_validator("listen_url")
    @classmethod
    def _check_listen_url(cls, value: SecretStr | None) -> SecretStr | None:
        # After SecretStr wrapping: a refused value is never echoed in the error.
        raw = "" if value is None else value.get_secret_value().strip()
        if not raw:
            return None
        if not (
            raw.startswith(("postgresql://", "postgres://")) or ("://" not in raw and "=" in raw)
        ):
            raise ValueError("LISTEN_URL must be a postgresql:// URL or a libpq key=value string")
        return value

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"POOL_MIN_SIZE ({self.pool_min_size}) must not exceed "
                f"POOL_MAX_SIZE ({self.pool_max_size})"
            )
        return self

    @property
    def url(self) -> str:
        """The connection URL, password included (never log this; use ``safe_url``)."""
        return self.database_url.get_secret_value()

    @property
    def owner_url(self) -> str:
        """The owner role's URL (migrations, grants): OWNER_DATABASE_URL or DATABASE_URL."""
        url = self.owner_database_url
        return self.url if url is None else url.get_secret_value()

    @property
    def maintenance_url(self) -> str:
        """The maintenance role's URL (cleanup job): MAINTENANCE_DATABASE_URL or
        DATABASE_URL."""
        url = self.maintenance_database_url
        return self.url if url is None else url.get_secret_value()

    @property
    def near_listen_url(self) -> str:
        """The near cache listener's URL: ``listen_url``, else the database URL (secret)."""
        return self.url if self.listen_url is None else self.listen_url.get_secret_value()

    @property
    def safe_url(self) -> str:
        """The connection URL with the password masked."""
        return redact_url(self.url)
