"""Call controls over HTTP: for the agent on the call (panel session + CSRF) and for
supervisors (panel or the bearer-token API). The call's own task carries them out."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.appkeys import INBOUND
from app.domain.access import SUPERVISING_ROLES
from app.errors import AppError
from app.flows.call_controls import ACTIONS, ControlRequest
from app.flows.inbound import CallSession
from app.panel.auth import Forbidden
from app.panel.http import session_of, writing_session
from app.web.api import BadRequest, authorize, json_body


class CallNotFound(AppError):
    def __init__(self, interaction_id: str) -> None:
        super().__init__("not-found", f"no call {interaction_id} in progress", {}, 404)


def _session(request: web.Request) -> CallSession:
    interaction_id = request.match_info["interaction_id"]
    session = request.app[INBOUND].session_for(interaction_id)
    if session is None:
        raise CallNotFound(interaction_id)
    return session


async def _request(request: web.Request, by: str) -> ControlRequest:
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    body = await json_body(request) if request.can_read_body else {}
    target, digits = body.get("target"), body.get("digits")
    if not isinstance(target, str | None) or not isinstance(digits, str | None):
        raise BadRequest("expected {'target': 'agent:<id>' or 'queue:<name>', 'digits': keys}")
    return ControlRequest(action, by, target=target, digits=digits)


def call_view(session: CallSession) -> dict[str, Any]:
    controls = session.controls
    return {
        "interaction_id": session.it.id,
        "ani": session.it.ani,
        "queue": session.it.queue,
        "agent_id": session.agent_on_call,
        "conference": sorted(session.extra_agents.values()),
        "held": bool(controls and controls.held),
        "muted": bool(controls and controls.muted),
        "consult": None
        if controls is None or controls.consult is None
        else {"agent_id": controls.consult.agent_id, "answered": controls.consult.answered},
    }


async def api_control(request: web.Request) -> web.Response:
    """Bearer-token API (supervisors, tools)."""
    who = authorize(request)
    session = _session(request)
    result = await session.control(await _request(request, who))
    return web.json_response({**result, "call": call_view(session)})


async def panel_control(request: web.Request) -> web.Response:
    """The agent on the call, or a supervisor, from the panel."""
    panel = await writing_session(request)
    who = panel.principal
    session = _session(request)
    if who.role not in SUPERVISING_ROLES and (who.agent_id is None or who.agent_id != session.agent_on_call):
        raise Forbidden("only the agent on this call (or a supervisor) can control it")
    result = await session.control(await _request(request, who.username))
    return web.json_response({**result, "call": call_view(session)})


async def panel_current_call(request: web.Request) -> web.Response:
    panel = await session_of(request)
    agent_id = panel.principal.agent_id
    session = request.app[INBOUND].call_of_agent(agent_id) if agent_id else None
    return web.json_response(call_view(session) if session is not None else None)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/calls/{interaction_id}/{action}", api_control)
    app.router.add_post("/panel/api/calls/{interaction_id}/{action}", panel_control)
    app.router.add_get("/panel/api/calls/current", panel_current_call)
