"""The two pieces of the PgBouncer workload (issue 16) that need other features: the near
cache with its listener on ``listen_url`` (a direct connection: LISTEN does not work in
transaction mode, NOTIFY does) while every other call goes through the bouncer, and
``factory.for_user`` scoping as the application role through the bouncer (the scope is
``set_config(..., true)`` inside each call's transaction, so it cannot leak to the next
client of the same server connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import digitwin_db as ddb
from digitwin_db.testing import EmbeddedPostgres, PgBouncer, embedded_pgbouncer
from tests.conftest import APP_ROLE, RoleUrls

WAIT = 10.0  # seconds; generous for a loaded machine (never a timing assertion)


@pytest.fixture(scope="module")
def bouncer(pg_server: EmbeddedPostgres) -> Iterator[PgBouncer]:
    with embedded_pgbouncer(pg_server, pool_mode="transaction", users=(APP_ROLE,)) as b:
        yield b


def _fence(factory: ddb.RepositoryFactory, raw_conn: psycopg.Connection) -> None:
    """Wait until the listener applied a notification sent after every write so far
    (notifications arrive in commit order)."""
    near = factory.cache.near
    assert near is not None
    token = f"!fence-{time.monotonic_ns()}"
    arrived = threading.Event()
    near.listener.add_observer(lambda p: arrived.set() if p == token else None)
    raw_conn.execute("SELECT pg_notify('digitwin_cache', %s)", (token,))
    assert arrived.wait(WAIT), "the fence notification never arrived"


def test_near_cache_behind_the_bouncer_listens_on_listen_url(
    bouncer: PgBouncer, pg_url: str, raw_conn: psycopg.Connection
) -> None:
    common: dict[str, Any] = {"prepare_threshold": None, "pool_min_size": 1, "pool_max_size": 4}
    with (
        ddb.Database(url=bouncer.url, near_cache=True, listen_url=pg_url, **common) as db,
        ddb.Database(url=bouncer.url, **common) as writer_db,
    ):
        reader = ddb.RepositoryFactory(db)
        writer = ddb.RepositoryFactory(writer_db)
        near = reader.cache.near
        assert near is not None and near.listener.wait_listening(WAIT)
        with db.connection() as conn:  # the reader's own calls really go through the bouncer
            row = conn.execute("SELECT inet_client_port() <> %s", (bouncer.port,)).fetchone()
        assert row == (True,)

        writer.cache.kv.set("k", {"v": 1})
        _fence(reader, raw_conn)
        assert reader.cache.kv.get("k") == {"v": 1}  # fill
        assert reader.cache.kv.get("k") == {"v": 1}  # memory
        # A write through the bouncer (its NOTIFY passes transaction mode) drops the copy.
        writer.cache.kv.set("k", {"v": 2})
        _fence(reader, raw_conn)
        assert reader.cache.kv.get("k") == {"v": 2}
        # So does a delete, and plain SQL on a direct connection.
        writer.cache.kv.delete("k")
        _fence(reader, raw_conn)
        assert reader.cache.kv.get("k") is None
        writer.cache.kv.set("k", {"v": 3})
        _fence(reader, raw_conn)
        assert reader.cache.kv.get("k") == {"v": 3}  # fill
        raw_conn.execute("DELETE FROM kv_cache")
        _fence(reader, raw_conn)
        assert reader.cache.kv.get("k") is None
        stats = reader.cache.stats().kv
        assert stats.near_hits == 1
        assert stats.near_invalidations >= 1
        reader.close()
        writer.close()


def test_for_user_scoping_as_the_application_role_through_the_bouncer(
    bouncer: PgBouncer, role_urls: RoleUrls, raw_conn: psycopg.Connection
) -> None:
    url = make_conninfo(bouncer.url, user=APP_ROLE)
    # Two connections of the client on ONE server connection would be the worst case for a
    # leaking scope: a pool of one server connection makes every call share it.
    with ddb.Database(url=url, prepare_threshold=None, pool_min_size=1, pool_max_size=4) as db:
        factory = ddb.RepositoryFactory(db)
        alice = factory.users.create(email="alice@example.com", name="Alice")
        bob = factory.users.create(email="bob@example.com", name="Bob")
        factory.documents.create(user_id=bob.id, title="b", content="bob's words")
        mine = factory.documents.create(user_id=alice.id, title="a", content="alice's words")
        scoped = factory.for_user(alice.id)
        assert scoped.users.find(bob.id) is None
        assert scoped.users.list().total == 1
        assert [d.id for d in scoped.documents.list_for_user(alice.id).items] == [mine.id]
        for attempt in (
            lambda: scoped.documents.list_for_user(bob.id),  # Bob is invisible: not found
            lambda: scoped.users.get(bob.id),
            lambda: scoped.users.update(bob.id, name="Mallory"),
        ):
            with pytest.raises(ddb.NotFoundError):
                attempt()
        # The scope ended with its transaction: unscoped calls through the bouncer (maybe on
        # the same server connection) see everyone again.
        assert factory.users.list().total == 2
        assert factory.users.get(bob.id).name == "Bob"
        factory.close()
    assert raw_conn.execute("SELECT name FROM users ORDER BY name").fetchall() == [
        ("Alice",),
        ("Bob",),
    ]
