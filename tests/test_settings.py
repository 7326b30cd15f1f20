"""Settings: environment parsing, validation naming the variable, secrets never shown."""

from __future__ import annotations

import pydantic
import pytest

from digitwin_db import Settings
from digitwin_db.settings import redact_url


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db.example:6432/twin")
    monkeypatch.setenv("POOL_MAX_SIZE", "25")
    monkeypatch.setenv("RATE_LIMIT_ON_ERROR", "deny")
    monkeypatch.setenv("PREPARE_THRESHOLD", "")
    settings = Settings(_env_file=None)
    assert settings.pool_max_size == 25
    assert settings.rate_limit_on_error == "deny"
    assert settings.prepare_threshold is None  # PgBouncer transaction mode
    assert settings.cache_fail_open is True
    assert settings.embedding_cache_ttl == 3600 and settings.search_cache_ttl == 1800


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POOL_MAX_SIZE", "0"),
        ("POOL_MIN_SIZE", "-1"),
        ("CONNECT_TIMEOUT", "abc"),
        ("RATE_LIMIT_ON_ERROR", "maybe"),
        ("CACHE_FAIL_OPEN", "perhaps"),
        ("EMBEDDING_CACHE_TTL", "-5"),
        ("DATABASE_URL", "mysql://x@y/z"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError) as excinfo:
        Settings(_env_file=None)
    assert variable.lower() in str(excinfo.value).lower()


def test_pool_min_above_max_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_MIN_SIZE", "20")
    monkeypatch.setenv("POOL_MAX_SIZE", "5")
    with pytest.raises(pydantic.ValidationError, match="POOL_MIN_SIZE"):
        Settings(_env_file=None)


def test_password_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db:5432/twin")
    settings = Settings(_env_file=None)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    assert "hunter2" not in settings.safe_url
    assert settings.safe_url == "postgresql://app:***@db:5432/twin"
    assert redact_url("postgresql://db/twin") == "postgresql://db/twin"
