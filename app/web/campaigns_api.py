"""Campaigns over HTTP: their live state and abandon-rate gauge, and the kill switch."""

from __future__ import annotations

from aiohttp import web

from app.appkeys import DIALER
from app.errors import AppError
from app.web.api import BadRequest, authorize, json_body


class CampaignNotFound(AppError):
    def __init__(self, name: str) -> None:
        super().__init__("not-found", f"no campaign {name!r}", {}, 404)


async def list_campaigns(request: web.Request) -> web.Response:
    authorize(request)
    dialer = request.app[DIALER]
    return web.json_response([dialer.view(state) for state in dialer.campaigns.values()])


async def set_active(request: web.Request) -> web.Response:
    authorize(request)
    dialer = request.app[DIALER]
    name = request.match_info["name"]
    if name not in dialer.campaigns:
        raise CampaignNotFound(name)
    body = await json_body(request)
    active = body.get("active")
    if not isinstance(active, bool):
        raise BadRequest("expected {'active': true|false}")
    return web.json_response(dialer.view(dialer.set_active(name, active)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/campaigns", list_campaigns)
    app.router.add_post("/api/campaigns/{name}/active", set_active)
