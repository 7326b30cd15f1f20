"""FastAPI integration (extra ``fastapi``): a rate-limit dependency and exception handlers.

::

    from fastapi import Depends, FastAPI
    from digitwin_db.contrib.fastapi import add_exception_handlers, rate_limit

    app = FastAPI()
    add_exception_handlers(app)

    @app.get("/search", dependencies=[Depends(rate_limit("20/minute"))])
    async def search(q: str) -> dict[str, str]: ...

``rate_limit`` checks ``factory.rate_limits`` (the package's token buckets, one atomic
statement per check) for the request's subject. A denial is HTTP 429 with ``Retry-After``,
``X-RateLimit-*`` and ``RateLimit``/``RateLimit-Policy``; an admission adds the same
headers (without ``Retry-After``) to the response. When the database cannot decide,
``Settings.rate_limit_on_error`` applies: ``"raise"`` becomes HTTP 503, ``"allow"`` admits and
``"deny"`` refuses (429).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse_many

from digitwin_db._async.factory import AsyncRepositoryFactory
from digitwin_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    DigitwinDBError,
    NotFoundError,
    RateLimitUnavailableError,
    ValidationError,
)
from digitwin_db.models.rate_limits import Limit, RateLimitResult

__all__ = ["RateLimitSpec", "add_exception_handlers", "client_address", "rate_limit"]

#: What ``rate_limit`` accepts: a ``Limit``, a limits ``RateLimitItem``, a string in limits'
#: syntax (``"20/minute"``, ``"5 per second"``, ``"10/second;1000/day"``) or a list of them.
RateLimitSpec = Limit | RateLimitItem | str | Sequence[Limit | RateLimitItem | str]
#: ``key(request)`` returns the subject (a UUID or any non-empty string), maybe awaitably.
KeyFunction = Callable[[Request], Any]

#: Body of a 429 response.
DENIED_DETAIL = "rate limit exceeded"
#: Seconds a client is asked to wait when the limiter could not decide (HTTP 503).
UNAVAILABLE_RETRY_AFTER = 1


def client_address(request: Request) -> str:
    """The default subject: the client's IP address (``"unknown"`` when the server gives
    none). Behind a proxy, run uvicorn with ``--proxy-headers`` or pass ``key=``."""
    return request.client.host if request.client is not None else "unknown"


def _items(spec: RateLimitSpec) -> list[Limit | RateLimitItem]:
    if isinstance(spec, Limit | RateLimitItem | str):
        parts: Sequence[Any] = [spec]
    elif isinstance(spec, list | tuple):
        parts = spec
    else:
        parts = [spec]  # refused below, with its type named
    items: list[Limit | RateLimitItem] = []
    for part in parts:
        if isinstance(part, str):
            try:
                items.extend(parse_many(part))
            except ValueError as exc:
                raise ValidationError(f"not a rate limit in limits' syntax: {part!r}") from exc
        elif isinstance(part, Limit | RateLimitItem):
            items.append(part)
        else:
            raise ValidationError(
                f"a rate limit is a Limit, a limits RateLimitItem or a string like "
                f"'20/minute', not {type(part).__name__}"
            )
    if not items:
        raise ValidationError("rate_limit() needs at least one limit")
    return items


def _as_limit(item: Limit | RateLimitItem, endpoint: str) -> Limit:
    """A ``RateLimitItem`` ("N per M units") becomes a bucket of N tokens refilled over the
    window; a ``Limit`` keeps its own endpoint unless it is the only one (then ``endpoint``)."""
    if isinstance(item, Limit):
        return item
    return Limit(endpoint=endpoint, capacity=item.amount, window_seconds=item.get_expiry())


def rate_limit(
    limit: RateLimitSpec,
    *,
    key: KeyFunction | None = None,
    endpoint: str | None = None,
    factory: AsyncRepositoryFactory | None = None,
) -> Callable[[Request, Response], Awaitable[RateLimitResult]]:
    """A FastAPI dependency that rate-limits a route; it returns the ``RateLimitResult``.

    ``limit``: a ``Limit``, a limits ``RateLimitItem``, a string such as ``"20/minute"``,
    ``"5/second"``, ``"1000/day"`` (limits' syntax), or several (a list, or
    ``"10/second;1000/day"``): several limits are all-or-nothing (``check_many``): a request
    consumes from every bucket or from none. ``key(request)`` (sync or async) gives the
    subject — a UUID or any non-empty string; default :func:`client_address`.
    ``endpoint`` names the bucket (default ``"<METHOD> <route path>"``); with several
    limits each bucket is ``"<endpoint> [<limit>]"``. ``factory`` defaults to
    ``AsyncRepositoryFactory.instance()``.

    Raises ``ValidationError`` at once for a malformed limit or endpoint.
    """
    items = _items(limit)
    if endpoint is not None:
        for item in items:  # validates the endpoint now, not on the first request
            _as_limit(item, endpoint if len(items) == 1 else f"{endpoint} [{item}]")
    key_function = key or client_address

    async def dependency(request: Request, response: Response) -> RateLimitResult:
        base = endpoint or _route_name(request)
        limits = [
            _as_limit(item, base if len(items) == 1 else f"{base} [{item}]") for item in items
        ]
        subject = key_function(request)
        if inspect.isawaitable(subject):
            subject = await subject
        repositories = factory or await AsyncRepositoryFactory.instance()
        try:
            if len(limits) == 1:
                only = limits[0]
                capacity, rate, cost = only.config
                result = await repositories.rate_limits.check_and_consume(
                    subject, only.endpoint, capacity=int(capacity), refill_rate=rate, cost=int(cost)
                )
            else:
                result = await repositories.rate_limits.check_many(subject, limits)
        except RateLimitUnavailableError as exc:
            raise HTTPException(
                status_code=503,
                detail="rate limiter unavailable",
                headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
            ) from exc
        headers = result.headers()
        if not result.allowed:
            raise HTTPException(status_code=429, detail=DENIED_DETAIL, headers=headers)
        response.headers.update(headers)
        return result

    return dependency


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method} {path}"[:500]


_STATUS: list[tuple[type[DigitwinDBError], int]] = [
    (NotFoundError, 404),
    (ValidationError, 422),
    (ConflictError, 409),
    (DatabaseUnavailableError, 503),  # RateLimitUnavailableError is one
]


def add_exception_handlers(app: FastAPI) -> None:
    """Map the package's errors to HTTP responses (SPEC §2.11): ``NotFoundError`` → 404,
    ``ValidationError`` → 422, ``ConflictError`` → 409, ``DatabaseUnavailableError`` and
    ``RateLimitUnavailableError`` → 503 (with ``Retry-After``). The body is
    ``{"detail": message, "error": class name}`` (messages never carry secrets);
    ``ConflictError`` adds ``"constraint"``."""
    for error, status in _STATUS:
        app.add_exception_handler(error, _handler(status))


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
        if isinstance(exc, ConflictError):
            body["constraint"] = exc.constraint
        headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)} if status == 503 else None
        return JSONResponse(body, status_code=status, headers=headers)

    return handle
