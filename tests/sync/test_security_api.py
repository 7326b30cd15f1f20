# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# tests/aio/test_security_api.py
"""The security API of SPEC §2.12 through both APIs (tests/sync is generated from this
file): ``for_user`` scopes an application-role factory to one user, ``verify_chain`` and
``chain_head`` report on the audit hash chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from digitwin_db._sync.database import Database
from digitwin_db._sync.factory import RepositoryFactory
from digitwin_db.errors import NotFoundError
from tests.conftest import RoleUrls


@pytest.fixture
def app_role_factory(role_urls: RoleUrls, pg_url: str) -> Iterator[RepositoryFactory]:
    db = Database(url=role_urls.app, pool_min_size=0, pool_max_size=4)
    db.open()
    factory = RepositoryFactory(db)
    yield factory
    factory.close()


def test_for_user_hides_other_users(app_role_factory: RepositoryFactory) -> None:
    alice = app_role_factory.users.create(email="alice@example.com", name="Alice")
    bob = app_role_factory.users.create(email="bob@example.com", name="Bob")
    doc = app_role_factory.documents.create(user_id=bob.id, title="t", content="c")
    scoped = app_role_factory.for_user(alice.id)
    assert (scoped.users.list()).total == 1
    with pytest.raises(NotFoundError):
        scoped.users.get(bob.id)
    with pytest.raises(NotFoundError):
        scoped.documents.get(doc.id)
    assert (app_role_factory.users.list()).total == 2


def test_the_chain_verifies_and_has_a_head(
    app_role_factory: RepositoryFactory,
) -> None:
    assert app_role_factory.audit_logs.chain_head() is None
    for i in range(3):
        app_role_factory.audit_logs.log("login", metadata={"i": i})
    report = app_role_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 3
    head = app_role_factory.audit_logs.chain_head()
    assert head is not None and head.seq == 3 and report.head == head
