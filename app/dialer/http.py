"""Campaigns over HTTP: their live state and abandon-rate gauge, and the kill switch."""

from __future__ import annotations

from aiohttp import web

from app.dialer.service import CampaignState, DialerService
from app.domain.campaign import Lead
from app.errors import AppError
from app.web.auth import Forbidden, bearer, principal
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


# -- the agent panel: the signed-in agent's own campaigns and previews -----------------------------


def panel_campaign_view(state: CampaignState) -> dict[str, object]:
    c = state.settings
    return {"name": c.name, "mode": c.mode, "active": state.active, "preview_hold_s": c.preview_hold_s}


async def _my_campaign(request: web.Request) -> tuple[str, str]:
    """(campaign, agent id) for a write from the panel: only a campaign the agent works."""
    who = await principal(request, write=True)
    name = request.match_info["name"]
    if who.agent_id is None or name not in {
        s.settings.name for s in request.app[DIALER].campaigns_of(who.agent_id)
    }:
        raise Forbidden(f"campaign {name!r} is not one you work")
    return name, who.agent_id


async def my_campaigns(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    states = request.app[DIALER].campaigns_of(who.agent_id) if who.agent_id else []
    return web.json_response([panel_campaign_view(s) for s in states])


async def my_preview_next(request: web.Request) -> web.Response:
    name, agent_id = await _my_campaign(request)
    lead = await request.app[DIALER].preview_next(name, agent_id)
    return web.json_response(_lead_view(lead) if lead is not None else None)


async def my_preview_call(request: web.Request) -> web.Response:
    name, agent_id = await _my_campaign(request)
    attempt = await request.app[DIALER].preview_call(name, _lead_id(request), agent_id)
    return web.json_response({"attempt_id": attempt.id, "phone": attempt.phone}, status=201)


async def my_preview_skip(request: web.Request) -> web.Response:
    name, agent_id = await _my_campaign(request)
    await request.app[DIALER].preview_skip(name, _lead_id(request), agent_id)
    return web.json_response({"skipped": _lead_id(request)})


def add_preview_routes(app: web.Application) -> None:
    app.router.add_post("/api/campaigns/{name}/preview", preview_next)
    app.router.add_post("/api/campaigns/{name}/preview/{lead_id}/call", preview_call)
    app.router.add_post("/api/campaigns/{name}/preview/{lead_id}/skip", preview_skip)
    app.router.add_get("/panel/api/campaigns", my_campaigns)
    app.router.add_post("/panel/api/campaigns/{name}/preview", my_preview_next)
    app.router.add_post("/panel/api/campaigns/{name}/preview/{lead_id}/call", my_preview_call)
    app.router.add_post("/panel/api/campaigns/{name}/preview/{lead_id}/skip", my_preview_skip)
