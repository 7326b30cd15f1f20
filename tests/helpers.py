"""Small helpers shared by several test modules (plain SQL, so that tests of one repository
do not depend on another repository's code)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from digitwin_db import migrations


def insert_user(raw_conn: psycopg.Connection, email: str | None = None) -> uuid.UUID:
    """Insert a live user straight into ``users``; return its id."""
    row = raw_conn.execute(
        "INSERT INTO users (email, name) VALUES (%s, 'Test User') RETURNING id",
        (email or f"{uuid.uuid4().hex[:12]}@example.com",),
    ).fetchone()
    assert row is not None
    new_id: uuid.UUID = row[0]
    return new_id


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; every thread must finish."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "threads did not finish (deadlock?)"
    assert errors == []
    return results


@contextmanager
def scratch_database(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test server (its URL); dropped afterwards."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def roll_back_to_before(url: str, migration_id: str) -> None:
    """Roll back, newest first, until ``migration_id`` is no longer applied."""
    while any(s.applied for s in migrations.status(url) if s.id == migration_id):
        migrations.rollback(url)


def month_start(offset: int) -> datetime:
    """The first instant (UTC) of the month ``offset`` months from this one."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
