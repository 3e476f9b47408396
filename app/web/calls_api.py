"""Call controls over HTTP: for the agent on the call (panel session + CSRF) and for
supervisors (panel or the bearer-token API). The call's own task carries them out."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.appkeys import INBOUND, ROUTING
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
    """The signed-in agent's call, with their part in it: "agent" (the one who controls it),
    "conference" (a second agent in a three-way call) or "consulted" (asked by the agent on
    the call, not yet given the caller). null when they have no call."""
    panel = await session_of(request)
    agent_id = panel.principal.agent_id
    if agent_id is None:
        return web.json_response(None)
    inbound = request.app[INBOUND]
    session = inbound.call_of_agent(agent_id)
    part = "agent" if session is not None and session.agent_on_call == agent_id else "conference"
    if session is None:
        session, part = inbound.consulted_call(agent_id), "consulted"
    if session is None:
        return web.json_response(None)
    return web.json_response({**call_view(session), "your_part": part})


async def panel_targets(request: web.Request) -> web.Response:
    """Where a call can go, for the panel's transfer and consult pickers: the queues (and
    whether anyone could answer there) and the other agents (and whether they are Ready now).
    Read-only and deliberately small: names and availability, nothing about their calls."""
    panel = await session_of(request)
    me = panel.principal.agent_id
    routing = request.app[ROUTING]
    queues = [{"name": name, "staffed": routing.anyone_logged_in(name)} for name in routing.queue_settings]
    agents = [
        {"id": a.id, "name": a.name, "ready": a.routable}
        for a in sorted(routing.agents.values(), key=lambda a: a.id)
        if a.id != me
    ]
    return web.json_response({"queues": queues, "agents": agents})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/calls/{interaction_id}/{action}", api_control)
    app.router.add_post("/panel/api/calls/{interaction_id}/{action}", panel_control)
    app.router.add_get("/panel/api/calls/current", panel_current_call)
    app.router.add_get("/panel/api/calls/targets", panel_targets)
