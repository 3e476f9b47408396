"""Call controls over HTTP, for the agent on the call (panel session and CSRF token) and for
supervisors (panel, or the bearer token). The call's own task carries each request out
(app/calls/conversation.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.calls.conversation import ACTIONS, Conversation
from app.calls.events import ControlRequest
from app.calls.legs import decline
from app.calls.session import Call
from app.calls.switchboard import Switchboard
from app.domain.access import SUPERVISING_ROLES
from app.errors import AppError
from app.routing.http import DESK, agent_view
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, NotFound, json_body

BOARD = web.AppKey("switchboard", Switchboard)


def conversation_of(call: Call | None) -> Conversation | None:
    conv = call.conversation if call is not None else None
    return conv if isinstance(conv, Conversation) else None


def call_of_agent(board: Switchboard, agent_id: str) -> Conversation | None:
    """The call an agent is talking on (in control or in a conference)."""
    for call in board.live_calls():
        conv = conversation_of(call)
        if conv is not None and conv.has_agent(agent_id):
            return conv
    return None


def consulted_call(board: Switchboard, agent_id: str) -> Conversation | None:
    """The call an agent is being consulted about (ringing or talking to the first agent)."""
    for call in board.live_calls():
        conv = conversation_of(call)
        if conv is not None and conv.consult is not None and conv.consult.agent_id == agent_id:
            return conv
    return None


def _conversation(request: web.Request) -> Conversation:
    interaction_id = request.match_info["interaction_id"]
    conv = conversation_of(request.app[BOARD].call(interaction_id))
    if conv is None or conv.call.ended:
        raise NotFound(f"no call {interaction_id} in progress")
    return conv


async def _request(request: web.Request, by: str) -> ControlRequest:
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    body = await json_body(request) if request.can_read_body else {}
    target, digits = body.get("target"), body.get("digits")
    if not isinstance(target, str | None) or not isinstance(digits, str | None):
        raise BadRequest(
            "expected {'target': 'agent:<id>', 'queue:<name>' or 'number:<digits>', 'digits': keys}"
        )
    return ControlRequest(action, by, target=target, digits=digits)


async def control(request: web.Request) -> web.Response:
    """The agent on the call, or a supervisor (panel or token)."""
    who = await principal(request, write=True)
    conv = _conversation(request)
    if who.role not in SUPERVISING_ROLES and (who.agent_id is None or who.agent_id != conv.agent_id):
        raise Forbidden("only the agent on this call (or a supervisor) can control it")
    result = await conv.control(await _request(request, who.username))
    return web.json_response({**result, "call": conv.view()})


async def current_call(request: web.Request) -> web.Response:
    """The signed-in agent's call, with their part in it: "agent" (the one who controls it),
    "conference" (a second agent in a three-way call) or "consulted" (asked by the agent on
    the call, not yet given the caller). null when they have no call."""
    who = await principal(request, write=False)
    if who.agent_id is None:
        return web.json_response(None)
    board = request.app[BOARD]
    conv = call_of_agent(board, who.agent_id)
    part = "agent" if conv is not None and conv.agent_id == who.agent_id else "conference"
    if conv is None:
        conv, part = consulted_call(board, who.agent_id), "consulted"
    if conv is None:
        return web.json_response(None)
    view: dict[str, Any] = {**conv.view(), "your_part": part}
    return web.json_response(view)


async def decline_offer(request: web.Request) -> web.Response:
    """The agent's Decline button on a ringing offer: their phone stops ringing and the caller
    goes on to the next agent. Only the agent it rings for, and only while it rings."""
    who = await principal(request, write=True)
    interaction_id = request.match_info["interaction_id"]
    if who.agent_id is None:
        raise Forbidden("only the agent an offer rings for can decline it")
    agent = request.app[DESK].agent(who.agent_id)
    if agent.interaction_id != interaction_id:
        raise Forbidden("this offer is not ringing for you")
    if not agent.controls().decline:
        raise AppError("not-ringing", f"nothing to decline: you are {agent.state.value}", {}, 409)
    call = request.app[BOARD].call(interaction_id)
    if call is None:
        raise AppError("not-ringing", "the offer stopped ringing meanwhile", {}, 409)
    request.app[DESK].declined(who.agent_id)
    if not await decline(call, who.agent_id):
        raise AppError("not-ringing", "the offer stopped ringing meanwhile", {}, 409)
    call.log.info("agent %s declined the offer", who.agent_id)
    return web.json_response(agent_view(agent))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/panel/api/offers/{interaction_id}/decline", decline_offer)
    app.router.add_post("/api/calls/{interaction_id}/{action}", control)
    app.router.add_post("/panel/api/calls/{interaction_id}/{action}", control)
    app.router.add_get("/panel/api/calls/current", current_call)
