"""Small web apps for the end-to-end tests: Flask + Flask-Limiter and FastAPI + slowapi
on the ``postgresql://`` limits storage, and the workers that call them from another
process (module-level functions, so that a spawned process can import them)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from flask import Flask
from flask_limiter import Limiter as FlaskLimiter
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded

import digitwin_db.contrib.limits  # noqa: F401  (registers postgresql://)

#: Every request of these apps counts against one subject, whichever thread or process
#: sends it, so "exactly N pass" is about the storage, not about client addresses.
SUBJECT = "shared-client"


def flask_app(url: str, limit: str, strategy: str) -> Any:
    app = Flask(__name__)
    limiter = FlaskLimiter(
        key_func=lambda: SUBJECT,
        app=app,
        storage_uri=url,
        strategy=strategy,
        headers_enabled=True,
    )

    @app.get("/ping")
    @limiter.limit(limit)
    def ping() -> str:
        return "pong"

    return app


def slowapi_app(url: str, limit: str, strategy: str) -> Any:
    limiter = Limiter(key_func=lambda request: SUBJECT, storage_uri=url, strategy=strategy)
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/ping")
    @limiter.limit(limit)
    async def ping(request: Request) -> dict[str, str]:
        return {"ping": "pong"}

    return app


def _wait_until(start_at: float) -> None:
    """Sleep until ``start_at`` (epoch seconds) so that workers send at the same time."""
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def flask_statuses(
    url: str, limit: str, strategy: str, requests: int, start_at: float = 0.0
) -> list[int]:
    client = flask_app(url, limit, strategy).test_client()
    _wait_until(start_at)
    return [client.get("/ping").status_code for _ in range(requests)]


def slowapi_statuses(
    url: str, limit: str, strategy: str, requests: int, start_at: float = 0.0
) -> list[int]:
    with TestClient(slowapi_app(url, limit, strategy)) as client:
        _wait_until(start_at)
        return [client.get("/ping").status_code for _ in range(requests)]
