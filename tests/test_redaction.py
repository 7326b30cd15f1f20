"""Secrets never shown: one redaction function (``digitwin_db.redaction.redact``) over every
form a connection string takes, used in every place one is shown — ``Settings.safe_url``,
``Database.safe_url``, ``repr``/``str``, configuration errors, logs and the command line."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import pydantic
import pytest

from digitwin_db import ConfigurationError, Database, DatabaseUnavailableError, Settings
from digitwin_db.redaction import redact
from digitwin_db.settings import redact_url

SECRET = "Hunter2xyz"

# Every form, with what redaction must leave of it.
FORMS: list[tuple[str, str]] = [
    (f"postgresql://app:{SECRET}@db:5432/twin", "postgresql://app:***@db:5432/twin"),
    (f"postgres://app:{SECRET}@db/twin", "postgres://app:***@db/twin"),
    ("postgresql://app:Hunter%402xyz@db/twin", "postgresql://app:***@db/twin"),
    ("postgresql://app:Hunter@2xyz@db/twin", "postgresql://app:***@db/twin"),
    ("postgresql://app:Hunter'2xyz@db/twin", "postgresql://app:***@db/twin"),
    (
        f"postgresql://app:{SECRET}@h1:5432,h2:5433/twin",
        "postgresql://app:***@h1:5432,h2:5433/twin",
    ),
    (f"postgresql://:{SECRET}@db/twin", "postgresql://:***@db/twin"),
    (f"postgresql://app@db/twin?password={SECRET}", "postgresql://app@db/twin?password=***"),
    (
        f"postgresql://db/twin?sslmode=disable&PASSWORD={SECRET}&connect_timeout=3",
        "postgresql://db/twin?sslmode=disable&PASSWORD=***&connect_timeout=3",
    ),
    (f"postgresql://db/twin?pass%77ord={SECRET}", "postgresql://db/twin?pass%77ord=***"),
    (f"postgresql://db/twin?sslpassword={SECRET}#x", "postgresql://db/twin?sslpassword=***#x"),
    (
        f"host=db user=app password={SECRET} dbname=twin",
        "host=db user=app password=*** dbname=twin",
    ),
    ("host=db password = 'Hunter 2xyz' dbname=twin", "host=db password = *** dbname=twin"),
    ("host=db password='Hunter\\'2xyz' dbname=twin", "host=db password=*** dbname=twin"),
    (f"host=db PASSWORD={SECRET}", "host=db PASSWORD=***"),
    (f"host=db sslpassword={SECRET} sslmode=require", "host=db sslpassword=*** sslmode=require"),
    (f"PGPASSWORD={SECRET} psql", "PGPASSWORD=*** psql"),
    ("postgresql://db/twin", "postgresql://db/twin"),
    ("host=db dbname=twin user=app", "host=db dbname=twin user=app"),
]
# The secret's parts that must never show (percent-encoded or not).
FRAGMENTS = ("Hunter", "2xyz", "%402xyz")


def _clean(text: str) -> bool:
    return not any(fragment in text for fragment in FRAGMENTS)


@pytest.mark.parametrize(("raw", "expected"), FORMS)
def test_redact_every_form(raw: str, expected: str) -> None:
    assert redact(raw) == expected
    assert redact_url(raw) == expected
    # ... also inside a longer message, and twice in one.
    message = f"cannot connect to {raw} (refused); retried {raw}"
    assert redact(message) == f"cannot connect to {expected} (refused); retried {expected}"


@pytest.mark.parametrize(("raw", "expected"), FORMS)
def test_settings_and_database_never_show_it(raw: str, expected: str) -> None:
    settings = Settings(_env_file=None, database_url=raw)
    assert settings.safe_url == expected
    assert _clean(repr(settings)) and _clean(str(settings.model_dump()))
    if "PASSWORD=" in raw:  # libpq refuses an upper-case key: the error is clean too
        with pytest.raises(ConfigurationError, match="invalid DATABASE_URL") as excinfo:
            Database(settings)
        assert _clean(str(excinfo.value))
        return
    db = Database(settings)
    for shown in (db.safe_url, repr(db), str(db), db.target):
        assert _clean(shown), shown


SECRET_FORMS = [raw for raw, _ in FORMS if SECRET in raw or "Hunter" in raw]


@pytest.mark.parametrize("raw", SECRET_FORMS)
def test_invalid_url_errors_never_show_it(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "mysql" + raw[raw.index("://") :] if "://" in raw else "x" + raw.replace("=", " ")
    with pytest.raises(pydantic.ValidationError) as excinfo:
        Settings(_env_file=None, database_url=bad)
    assert "DATABASE_URL" in str(excinfo.value).upper() and _clean(str(excinfo.value))
    with pytest.raises(ConfigurationError) as config_error:
        Database(url=bad)
    assert _clean(str(config_error.value))
    # The command line's configuration error.
    env = {**os.environ, "DATABASE_URL": bad}
    done = subprocess.run(
        [sys.executable, "-m", "digitwin_db", "status"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "DATABASE_URL" in done.stderr
    assert _clean(done.stdout + done.stderr), done.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://app:{secret}@127.0.0.1:{port}/twin",
        "postgresql://app@127.0.0.1:{port}/twin?password={secret}",
        "postgresql://app:Hunter%402xyz@127.0.0.1:{port}/twin",
        "host=127.0.0.1 port={port} user=app password={secret} dbname=twin",
    ],
)
def test_connection_failures_never_show_it(template: str, caplog: pytest.LogCaptureFixture) -> None:
    url = template.format(secret=SECRET, port=_closed_port())
    caplog.set_level(logging.DEBUG)
    db = Database(url=url, connect_timeout=1, pool_min_size=1)
    with pytest.raises(DatabaseUnavailableError) as excinfo:
        db.open()
    db.close()
    assert _clean(str(excinfo.value))
    assert _clean("\n".join(r.getMessage() for r in caplog.records))
    # The command line: migrate ("cannot connect … to migrate") and health, also with -v.
    env = {**os.environ, "DATABASE_URL": url, "CONNECT_TIMEOUT": "1", "POOL_TIMEOUT": "1"}
    for command in (["migrate"], ["-v", "migrate"], ["health"], ["-v", "status"]):
        done = subprocess.run(
            [sys.executable, "-m", "digitwin_db", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert _clean(done.stdout + done.stderr), (command, done.stderr)


def test_shell_scripts_redact_the_same_way() -> None:
    lib = os.path.join(os.path.dirname(__file__), "..", "scripts", "lib.sh")
    for raw, expected in FORMS:
        for python in (sys.executable, "/nonexistent"):  # the package, then the sed fallback
            done = subprocess.run(
                ["bash", "-c", f'source "{lib}"; PY="{python}"; redact "$1"', "-", raw],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0
            assert _clean(done.stdout), (python, raw, done.stdout)
            if python == sys.executable:
                assert done.stdout.strip() == expected
