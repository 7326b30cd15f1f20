"""The security API of SPEC §2.12 through both APIs (tests/sync is generated from this
file): ``for_user`` scopes an application-role factory to one user, ``verify_chain`` and
``chain_head`` report on the audit hash chain."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import NotFoundError
from tests.conftest import RoleUrls


@pytest.fixture
async def app_role_factory(
    role_urls: RoleUrls, pg_url: str
) -> AsyncIterator[AsyncRepositoryFactory]:
    db = AsyncDatabase(url=role_urls.app, pool_min_size=0, pool_max_size=4)
    await db.open()
    factory = AsyncRepositoryFactory(db)
    yield factory
    await factory.close()


async def test_for_user_hides_other_users(app_role_factory: AsyncRepositoryFactory) -> None:
    alice = await app_role_factory.users.create(email="alice@example.com", name="Alice")
    bob = await app_role_factory.users.create(email="bob@example.com", name="Bob")
    doc = await app_role_factory.documents.create(user_id=bob.id, title="t", content="c")
    scoped = app_role_factory.for_user(alice.id)
    assert (await scoped.users.list()).total == 1
    with pytest.raises(NotFoundError):
        await scoped.users.get(bob.id)
    with pytest.raises(NotFoundError):
        await scoped.documents.get(doc.id)
    assert (await app_role_factory.users.list()).total == 2


async def test_the_chain_verifies_and_has_a_head(
    app_role_factory: AsyncRepositoryFactory,
) -> None:
    assert await app_role_factory.audit_logs.chain_head() is None
    for i in range(3):
        await app_role_factory.audit_logs.log("login", metadata={"i": i})
    report = await app_role_factory.audit_logs.verify_chain()
    assert report.ok and report.rows_checked == 3
    head = await app_role_factory.audit_logs.chain_head()
    assert head is not None and head.seq == 3 and report.head == head
