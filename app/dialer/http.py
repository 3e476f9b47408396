"""Campaigns over HTTP: their live state and abandon-rate gauge, and the kill switch."""

from __future__ import annotations

from aiohttp import web

from app.dialer.service import DialerService
from app.domain.campaign import Lead
from app.errors import AppError
from app.web.auth import bearer
from app.web.http import BadRequest, json_body

DIALER = web.AppKey("dialer", DialerService)


class CampaignNotFound(AppError):
    def __init__(self, name: str) -> None:
        super().__init__("not-found", f"no campaign {name!r}", {}, 404)


async def list_campaigns(request: web.Request) -> web.Response:
    bearer(request)
    dialer = request.app[DIALER]
    return web.json_response([dialer.view(state) for state in dialer.campaigns.values()])


async def set_active(request: web.Request) -> web.Response:
    bearer(request)
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
    add_preview_routes(app)


async def _agent_of(request: web.Request) -> str:
    body = await json_body(request)
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str):
        raise BadRequest("expected {'agent_id': '1001'}")
    return agent_id


def _lead_view(lead: Lead) -> dict[str, object]:
    return {
        "id": lead.id,
        "phone": lead.phone,
        "timezone": lead.timezone,
        "attributes": lead.attributes,
        "attempts": lead.attempts,
        "last_result": lead.last_result.value if lead.last_result else None,
    }


async def preview_next(request: web.Request) -> web.Response:
    """Preview mode: the next customer for an agent to look at (held for them)."""
    bearer(request)
    lead = await request.app[DIALER].preview_next(request.match_info["name"], await _agent_of(request))
    return web.json_response(_lead_view(lead) if lead is not None else None)


async def preview_call(request: web.Request) -> web.Response:
    bearer(request)
    attempt = await request.app[DIALER].preview_call(
        request.match_info["name"], _lead_id(request), await _agent_of(request)
    )
    return web.json_response({"attempt_id": attempt.id, "phone": attempt.phone}, status=201)


async def preview_skip(request: web.Request) -> web.Response:
    bearer(request)
    await request.app[DIALER].preview_skip(
        request.match_info["name"], _lead_id(request), await _agent_of(request)
    )
    return web.json_response({"skipped": _lead_id(request)})


def _lead_id(request: web.Request) -> int:
    try:
        return int(request.match_info["lead_id"])
    except ValueError:
        raise BadRequest("lead id must be a number") from None


def add_preview_routes(app: web.Application) -> None:
    app.router.add_post("/api/campaigns/{name}/preview", preview_next)
    app.router.add_post("/api/campaigns/{name}/preview/{lead_id}/call", preview_call)
    app.router.add_post("/api/campaigns/{name}/preview/{lead_id}/skip", preview_skip)
