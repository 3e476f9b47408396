"""The wallboard over HTTP: `GET /api/wallboard` (and `/panel/api/wallboard`) for supervisors and
admins, and the page `/wallboard` (live over the panel's websocket)."""

from __future__ import annotations

from aiohttp import web

from app.domain.access import may_supervise
from app.supervision.wallboard import WallboardService
from app.web.auth import Forbidden, principal

WALLBOARD = web.AppKey("wallboard", WallboardService)


async def wallboard(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see the wallboard")
    return web.json_response(request.app[WALLBOARD].view())


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/wallboard", wallboard)
