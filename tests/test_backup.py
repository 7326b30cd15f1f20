"""scripts/db_backup.sh and scripts/db_restore.sh against the test server.

Backup, then restore into an empty database: the same tables with the same row counts,
the audit guard still in place, and migrations still recorded as applied.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from digitwin_db import migrations

ROOT = Path(__file__).resolve().parents[1]
BACKUP = ROOT / "scripts" / "db_backup.sh"
RESTORE = ROOT / "scripts" / "db_restore.sh"

pytestmark = pytest.mark.slow


def run_script(
    script: Path, *args: str, url: str, stdin: str = "", extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, **(extra_env or {})}
    return subprocess.run(
        ["bash", str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def row_counts(url: str) -> dict[str, int]:
    """Rows per table of the public schema (migration bookkeeping included)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        out = {}
        for table in tables:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            out[table] = int(row[0])
        return out


@pytest.fixture
def empty_database(pg_url: str) -> Iterator[str]:
    name = f"restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def seed(conn: psycopg.Connection) -> None:
    user = conn.execute(
        "INSERT INTO users (email, name, subscription_tier) VALUES "
        "('ada@example.com', 'Ada', 'pro') RETURNING id"
    ).fetchone()
    assert user is not None
    conn.execute(
        "INSERT INTO users (email, name, deleted_at) VALUES ('gone@example.com', 'Gone', now())"
    )
    conn.execute(
        "INSERT INTO audit_logs (user_id, action, ip_address, metadata) "
        "SELECT %s, 'user.login', '10.0.0.1', %s FROM generate_series(1, 25)",
        (user[0], Jsonb({"k": "v"})),
    )
    conn.execute(
        "INSERT INTO kv_cache (key_hash, namespace, key, value_json, byte_size, expires_at) "
        "SELECT g, 'default', 'k' || g, %s, 8, now() + interval '1 hour' "
        "  FROM generate_series(1, 40) AS g",
        (Jsonb([1, 2]),),
    )
    conn.execute(
        "INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens) "
        "SELECT 'u' || g, '/chat', 10, 1, 4 FROM generate_series(1, 7) AS g"
    )


def test_backup_then_restore_into_an_empty_database(
    pg_url: str, raw_conn: psycopg.Connection, empty_database: str, tmp_path: Path
) -> None:
    seed(raw_conn)
    before = row_counts(pg_url)
    assert before["audit_logs"] == 25 and before["kv_cache"] == 40 and before["users"] == 2

    backup = run_script(BACKUP, url=pg_url, extra_env={"BACKUP_DIR": str(tmp_path)})
    assert backup.returncode == 0, backup.stderr
    dump = Path(backup.stdout.strip())
    assert dump.parent == tmp_path and dump.name.startswith("digitwin-") and dump.is_file()
    assert not list(tmp_path.glob("*.partial"))

    restore = run_script(RESTORE, str(dump), "--yes", url=empty_database)
    assert restore.returncode == 0, restore.stderr
    assert row_counts(empty_database) == before
    assert migrations.status(empty_database) == migrations.status(pg_url)

    with psycopg.connect(empty_database, autocommit=True) as conn:
        # The append-only guard came back with the table.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_logs")
        # Identity sequences continue after the restored rows.
        row = conn.execute(
            "INSERT INTO audit_logs (action) VALUES ('after.restore') RETURNING id"
        ).fetchone()
        assert row is not None and row[0] == 26
        persistence = conn.execute(
            "SELECT relpersistence FROM pg_class WHERE relname = 'kv_cache'"
        ).fetchone()
        assert persistence == ("u",)  # still UNLOGGED


def test_restore_over_existing_data_replaces_it(
    pg_url: str, raw_conn: psycopg.Connection, empty_database: str, tmp_path: Path
) -> None:
    seed(raw_conn)
    before = row_counts(pg_url)
    dump = run_script(BACKUP, url=pg_url, extra_env={"BACKUP_DIR": str(tmp_path)}).stdout
    # Restoring twice: the second run drops and re-creates everything (audit rows included).
    for _ in range(2):
        restore = run_script(RESTORE, dump.strip(), "--yes", url=empty_database)
        assert restore.returncode == 0, restore.stderr
    assert row_counts(empty_database) == before


def test_restore_asks_before_overwriting(
    pg_url: str, raw_conn: psycopg.Connection, empty_database: str, tmp_path: Path
) -> None:
    seed(raw_conn)
    dump = run_script(BACKUP, url=pg_url, extra_env={"BACKUP_DIR": str(tmp_path)}).stdout.strip()
    for answer in ("", "no\n", "y\n"):
        refused = run_script(RESTORE, dump, url=empty_database, stdin=answer)
        assert refused.returncode != 0
        assert "OVERWRITES" in refused.stderr and "nothing was changed" in refused.stderr
        assert row_counts(empty_database) == {}
    confirmed = run_script(RESTORE, dump, url=empty_database, stdin="yes\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert row_counts(empty_database) == row_counts(pg_url)


def test_backup_keeps_the_last_n(pg_url: str, tmp_path: Path) -> None:
    made = []
    for _ in range(4):
        result = run_script(
            BACKUP, "--keep", "2", url=pg_url, extra_env={"BACKUP_DIR": str(tmp_path)}
        )
        assert result.returncode == 0, result.stderr
        made.append(Path(result.stdout.strip()))
    assert len(set(made)) == 4
    assert sorted(tmp_path.glob("digitwin-*.dump")) == sorted(made[-2:])


def test_scripts_fail_clearly(pg_url: str, tmp_path: Path) -> None:
    missing = run_script(RESTORE, str(tmp_path / "nope.dump"), "--yes", url=pg_url)
    assert missing.returncode != 0 and "not found" in missing.stderr
    junk = tmp_path / "junk.dump"
    junk.write_text("not a dump")
    bad = run_script(RESTORE, str(junk), "--yes", url=pg_url)
    assert bad.returncode != 0 and "not a pg_dump custom-format backup" in bad.stderr
    keep = run_script(BACKUP, "--keep", "0", url=pg_url)
    assert keep.returncode != 0 and "positive integer" in keep.stderr
    down = run_script(
        BACKUP,
        url="postgresql://postgres:hunter2@127.0.0.1:1/postgres",
        extra_env={"BACKUP_DIR": str(tmp_path / "down")},
    )
    assert down.returncode != 0
    assert "hunter2" not in down.stderr + down.stdout
    assert not list((tmp_path / "down").glob("*"))
    for script in (BACKUP, RESTORE):
        helped = run_script(script, "--help", url=pg_url)
        assert helped.returncode == 0 and "Usage" not in helped.stderr
        assert "DATABASE_URL" in helped.stdout
