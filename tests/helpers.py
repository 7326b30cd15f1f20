"""Small helpers shared by several test modules (plain SQL, so that tests of one repository
do not depend on another repository's code)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg


def insert_user(raw_conn: psycopg.Connection, email: str | None = None) -> uuid.UUID:
    """Insert a live user straight into ``users``; return its id."""
    row = raw_conn.execute(
        "INSERT INTO users (email, name) VALUES (%s, 'Test User') RETURNING id",
        (email or f"{uuid.uuid4().hex[:12]}@example.com",),
    ).fetchone()
    assert row is not None
    new_id: uuid.UUID = row[0]
    return new_id


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(0..count-1)`` on ``count`` threads released at the same instant; the
    results in order (an exception in a thread is raised here)."""
    barrier = threading.Barrier(count)

    def task(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(task, range(count)))
