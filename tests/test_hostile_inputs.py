"""Inputs a careless or hostile caller sends get a digitwin_db error (found by review)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import digitwin_db as ddb
from digitwin_db.settings import ENV_FILE_VARIABLE

HUGE = 10**400  # an int that no float can hold


def _deep(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.fixture
def repos(pg_url: str):
    db = ddb.Database(url=pg_url, pool_min_size=0)
    db.open()
    factory = ddb.RepositoryFactory(db)
    yield factory
    factory.close()


def test_huge_integers_are_validation_errors(repos: ddb.RepositoryFactory) -> None:
    calls = [
        lambda: repos.users.list(limit=HUGE),
        lambda: repos.users.list(offset=HUGE),
        lambda: repos.cache.kv.set("k", 1, ttl=HUGE),
        lambda: repos.cache.kv.set("k", 1, ttl=10**12),
        lambda: repos.cache.set_embedding("t", [1.0], model="m", ttl=HUGE),
        lambda: repos.cache.kv.get_or_set("k", lambda: 1, lock_timeout=HUGE),
        lambda: repos.rate_limits.cleanup_idle(older_than=HUGE),
        lambda: repos.audit_logs.purge_older_than(HUGE),
        lambda: repos.documents.search("00000000-0000-0000-0000-000000000000", "x", limit=HUGE),
    ]
    for call in calls:
        with pytest.raises(ddb.ValidationError):
            call()
    assert repos.cache.kv.get("k") is None


def test_deeply_nested_json_is_a_validation_error(repos: ddb.RepositoryFactory) -> None:
    with pytest.raises(ddb.ValidationError, match="nested too deeply"):
        repos.users.create(email="deep@example.com", name="Deep", preferences=_deep(5000))
    with pytest.raises(ddb.ValidationError):
        repos.audit_logs.log("probe.deep", metadata=_deep(5000))
    assert repos.users.count() == 0


def test_include_deleted_must_be_a_bool(repos: ddb.RepositoryFactory) -> None:
    with pytest.raises(ddb.ValidationError, match="include_deleted"):
        repos.users.list(include_deleted="no")  # type: ignore[arg-type]


def test_empty_prefix_is_refused(repos: ddb.RepositoryFactory) -> None:
    repos.cache.kv.set("keep", 1)
    with pytest.raises(ddb.ValidationError, match="prefix"):
        repos.cache.kv.delete_prefix("")
    assert repos.cache.kv.get("keep") == 1


def test_bad_database_arguments_are_configuration_errors() -> None:
    with pytest.raises(ddb.ConfigurationError, match="DATABASE_URL") as excinfo:
        ddb.Database(url="mysql://user:topsecret@h/d")
    assert "topsecret" not in str(excinfo.value)
    with pytest.raises(ddb.ConfigurationError, match="POOL_MIN_SIZE"):
        ddb.Database(url="postgresql://h/d", pool_min_size=-1)
    with pytest.raises(ddb.ConfigurationError):
        ddb.RepositoryFactory.instance("postgresql://h/d")  # type: ignore[arg-type]


def test_cli_rejects_non_positive_rollback_steps() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "digitwin_db", "rollback", "--steps", "0"],
        capture_output=True,
        text=True,
        env={
            "DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x",
            "PATH": "/usr/bin:/bin",
            ENV_FILE_VARIABLE: os.devnull,
        },
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_cli_invalid_url_does_not_echo_the_password() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "digitwin_db", "status"],
        capture_output=True,
        text=True,
        env={
            "DATABASE_URL": "mysql://u:topsecret@h/d",
            "PATH": "/usr/bin:/bin",
            ENV_FILE_VARIABLE: os.devnull,
        },
    )
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr
    assert "topsecret" not in done.stderr + done.stdout
