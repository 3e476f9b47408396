"""Small pieces every HTTP route uses: the error middleware, JSON bodies, shared app keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app.adapters.asterisk_instance import Secrets
from app.config import Settings
from app.errors import AppError

SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)


class BadRequest(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("bad-request", message, {}, 400)


class NotFound(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("not-found", message, {}, 404)


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """One error model: an AppError anywhere becomes its JSON body and status."""
    try:
        return await handler(request)
    except AppError as exc:
        return web.json_response(
            {"error_id": exc.error_id, "message": exc.message, "details": exc.details},
            status=exc.http_status,
            headers=exc.headers,
        )
