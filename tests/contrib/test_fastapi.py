"""digitwin_db.contrib.fastapi: the rate_limit() dependency, add_exception_handlers(), the
rate_limit_on_error policy under FastAPI, and README's example service — through httpx
against the ASGI app, on a real embedded PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from digitwin_db._async.database import AsyncDatabase
from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.contrib.fastapi import add_exception_handlers, rate_limit
from digitwin_db.errors import ValidationError
from digitwin_db.models.rate_limits import Limit
from tests.contrib.helpers import closed_port_url

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
async def factory(pg_url: str) -> AsyncIterator[AsyncRepositoryFactory]:
    db = AsyncDatabase(url=pg_url, pool_min_size=1, pool_max_size=5)
    await db.open()
    repositories = AsyncRepositoryFactory(db)
    yield repositories
    await repositories.close()


def client(app: FastAPI, address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://service")


def limited_app(factory: AsyncRepositoryFactory, spec: Any, **options: Any) -> FastAPI:
    app = FastAPI()
    add_exception_handlers(app)

    @app.get("/items", dependencies=[Depends(rate_limit(spec, factory=factory, **options))])
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    return app


RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


async def test_admissions_carry_headers_and_the_n_plus_first_is_429(
    factory: AsyncRepositoryFactory,
) -> None:
    async with client(limited_app(factory, "3/minute")) as http:
        admitted = [await http.get("/items") for _ in range(3)]
        denied = await http.get("/items")
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert [r.headers["X-RateLimit-Remaining"] for r in admitted] == ["2", "1", "0"]
    for response in admitted:
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert "Retry-After" not in response.headers
        assert response.headers["RateLimit-Policy"] == '"GET /items";q=3;w=60'
        assert response.headers["RateLimit"].startswith('"GET /items";r=')
    assert denied.status_code == 429
    assert denied.json() == {"detail": "rate limit exceeded"}
    assert 1 <= int(denied.headers["Retry-After"]) <= 20  # one token of 3/minute: 20 s
    assert denied.headers["X-RateLimit-Remaining"] == "0"
    assert denied.headers["RateLimit"].startswith('"GET /items";r=0;t=')


async def test_default_subject_is_the_client_address(factory: AsyncRepositoryFactory) -> None:
    app = limited_app(factory, "1/hour")
    async with client(app, "198.51.100.1") as first, client(app, "198.51.100.2") as second:
        assert (await first.get("/items")).status_code == 200
        assert (await first.get("/items")).status_code == 429
        assert (await second.get("/items")).status_code == 200
    usage = await factory.rate_limits.usage("198.51.100.1")
    assert [(u.endpoint, u.allowed, u.denied) for u in usage] == [("GET /items", 1, 1)]


async def test_key_and_endpoint_options(factory: AsyncRepositoryFactory) -> None:
    async def tenant(request: Request) -> str:  # an async key function
        return request.headers["x-tenant"]

    app = limited_app(factory, Limit(endpoint="ignored", capacity=2, window_seconds=3600))
    app2 = limited_app(factory, "2/hour", key=tenant, endpoint="search")
    async with client(app2) as http:
        statuses = [
            (await http.get("/items", headers={"x-tenant": "acme"})).status_code for _ in range(3)
        ]
        other = await http.get("/items", headers={"x-tenant": "globex"})
    assert statuses == [200, 200, 429]
    assert other.status_code == 200
    assert [u.endpoint for u in await factory.rate_limits.usage("acme")] == ["search"]
    async with client(app) as http:  # a Limit keeps its own endpoint
        assert (await http.get("/items")).status_code == 200
    assert [u.endpoint for u in await factory.rate_limits.usage("203.0.113.7")] == ["ignored"]


async def test_several_limits_are_all_or_nothing(factory: AsyncRepositoryFactory) -> None:
    app = limited_app(factory, "3/hour;2/hour", endpoint="chat")
    async with client(app) as http:
        statuses = [(await http.get("/items")).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    # The denials consumed nothing from the bucket that still had a token.
    hourly3 = await factory.rate_limits.peek(
        "203.0.113.7", "chat [3 per 1 hour]", capacity=3, window_seconds=3600
    )
    assert hourly3.remaining == 1
    usage = {
        u.endpoint: (u.allowed, u.denied) for u in await factory.rate_limits.usage("203.0.113.7")
    }
    assert usage == {"chat [2 per 1 hour]": (2, 2), "chat [3 per 1 hour]": (2, 2)}


@pytest.mark.parametrize("bad", ["lots", "5/fortnight", "", 42, None, [], ["1/second", 3]])
def test_malformed_limits_are_validation_errors_at_once(bad: Any) -> None:
    with pytest.raises(ValidationError):
        rate_limit(bad)


def test_malformed_endpoint_is_a_validation_error_at_once() -> None:
    with pytest.raises(ValidationError):
        rate_limit("1/second", endpoint="bad\nname")


@pytest.mark.parametrize(("policy", "status"), [("raise", 503), ("allow", 200), ("deny", 429)])
async def test_rate_limit_on_error_through_fastapi(policy: str, status: int) -> None:
    db = AsyncDatabase(
        url=closed_port_url(),
        pool_min_size=0,
        pool_max_size=1,
        pool_timeout=0.3,
        connect_timeout=1,
        rate_limit_on_error=policy,
    )
    await db.open(wait=False)
    unreachable = AsyncRepositoryFactory(db)
    try:
        async with client(limited_app(unreachable, "5/minute")) as http:
            response = await http.get("/items")
    finally:
        await unreachable.close()
    assert response.status_code == status
    if status == 503:
        assert response.headers["Retry-After"] == "1"
        assert "postgres@" not in response.text
    else:
        assert response.headers["X-RateLimit-Limit"] == "5"


async def test_exception_handlers_map_the_error_tree(factory: AsyncRepositoryFactory) -> None:
    app = FastAPI()
    add_exception_handlers(app)
    unreachable_db = AsyncDatabase(url=closed_port_url(), connect_timeout=1)

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, str]:
        user = await factory.users.get(user_id)
        return {"id": str(user.id)}

    @app.post("/users")
    async def create_user(email: str) -> dict[str, str]:
        user = await factory.users.create(email=email, name="N")
        return {"id": str(user.id)}

    @app.get("/down")
    async def down() -> None:
        await unreachable_db.open()

    async with client(app) as http:
        missing = await http.get(f"/users/{uuid.uuid4()}")
        invalid = await http.get("/users/not-a-uuid")
        created = await http.post("/users", params={"email": "a@example.com"})
        duplicate = await http.post("/users", params={"email": "a@example.com"})
        unavailable = await http.get("/down")
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFoundError")
    assert (invalid.status_code, invalid.json()["error"]) == (422, "ValidationError")
    assert created.status_code == 200
    assert (duplicate.status_code, duplicate.json()["error"]) == (409, "ConflictError")
    assert duplicate.json()["constraint"]
    assert (unavailable.status_code, unavailable.json()["error"]) == (
        503,
        "DatabaseUnavailableError",
    )
    assert unavailable.headers["Retry-After"] == "1"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- fastapi-example:start -->\n```python\n(.*?)```\n<!-- fastapi-example:end -->",
        text,
        re.S,
    )
    assert match is not None, "README lost its FastAPI example"
    return match.group(1)


async def test_readme_example_service(factory: AsyncRepositoryFactory) -> None:
    await AsyncRepositoryFactory.instance(factory.db)  # the example's singleton is ours
    try:
        namespace: dict[str, Any] = {}
        exec(compile(readme_example(), str(README), "exec"), namespace)
        app: FastAPI = namespace["app"]
        user = await factory.users.create(email="ada@example.com", name="Ada")
        async with client(app) as http:
            searches = [
                await http.get("/search", params={"q": "x"}, headers={"x-api-key": "key-1"})
                for _ in range(6)
            ]
            other_key = await http.get("/search", params={"q": "x"}, headers={"x-api-key": "k2"})
            chats = [(await http.post("/chat")).status_code for _ in range(3)]
            found = await http.get(f"/users/{user.id}")
            missing = await http.get(f"/users/{uuid.uuid4()}")
            invalid = await http.get("/users/42")
    finally:
        await AsyncRepositoryFactory.reset()
    assert [r.status_code for r in searches] == [200] * 5 + [429]
    assert searches[0].json() == {"q": "x"}
    assert searches[0].headers["X-RateLimit-Remaining"] == "4"
    assert int(searches[-1].headers["Retry-After"]) >= 1
    assert other_key.status_code == 200
    assert chats == [200, 200, 429]
    assert found.json() == {"id": str(user.id), "name": "Ada"}
    assert (missing.status_code, invalid.status_code) == (404, 422)
