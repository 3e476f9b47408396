"""The routing desk over HTTP: agents' live state and skills, and the queues' figures.

One handler per action, for people and scripts alike: the panel calls `/panel/api/...` with
its session (and CSRF token for changes), scripts and other machines call `/api/...` with the
bearer token, which stands for the supervisor/admin role. The same rules apply to both (app/
domain/access.py). Every change takes effect at the next routing decision; nothing restarts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from app.domain.access import Principal, may_change_state, may_supervise, may_view_agent
from app.domain.agent_state import Agent
from app.domain.screen_pop import wrap_up_left_s
from app.routing.desk import RoutingService
from app.web.auth import TOKEN_PRINCIPAL, Forbidden, principal
from app.web.http import SETTINGS, BadRequest, json_body

log = logging.getLogger(__name__)

DESK = web.AppKey("routing_desk", RoutingService)


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "state": agent.state.value,
        "state_since": agent.state_since.isoformat() if agent.state_since else None,
        # Relative, like wrap_up_left_s: the panel's timers count from it with the browser's clock.
        "state_for_s": (
            round(max(0.0, (datetime.now(UTC) - agent.state_since).total_seconds()), 1)
            if agent.state_since
            else None
        ),
        "not_ready_reason": agent.not_ready_reason,
        # "Not Ready after this call" asked for, with its reason (None when not asked).
        "not_ready_next": agent.not_ready_next,
        # The state buttons that mean something now (app/domain/agent_state.py decides).
        "controls": list(agent.controls().names()),
        "device_registered": agent.device_registered,
        "outbound_line": agent.outbound_line,
        "skills": dict(sorted(agent.skills.items())),
        "groups": sorted(agent.groups),
        "calls_answered": agent.calls_answered,
        "interaction_id": agent.interaction_id,
        "wrap_up_until": agent.wrap_up_until.isoformat() if agent.wrap_up_until else None,
        # Relative, so the panel's countdown does not depend on the browser's clock.
        "wrap_up_left_s": wrap_up_left_s(agent.state, agent.wrap_up_until, datetime.now(UTC)),
    }


def change_state(
    app: web.Application, who: Principal, agent_id: str, state: str, reason: str | None
) -> dict[str, Any]:
    """The one rule for changing an agent's state, whoever asks and however."""
    if not may_change_state(who, agent_id):
        raise Forbidden("agents may change only their own state")
    allowed = ("ready", "not_ready", "logged_out") if may_supervise(who) else ("ready", "not_ready")
    if state not in allowed:
        raise BadRequest(f"state must be one of {', '.join(allowed)}; got {state!r}")
    codes = [r.code for r in app[SETTINGS].web.not_ready_reasons]
    if state == "not_ready" and reason not in codes:
        raise BadRequest(f"Not Ready needs a reason code, one of {', '.join(codes)}; got {reason!r}")
    agent = app[DESK].set_state(agent_id, state, reason if state == "not_ready" else None)
    log.info("%s set agent %s %s (%s)", who.username, agent_id, state, reason or "-")
    return agent_view(agent)


async def list_agents(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may list every agent")
    return web.json_response([agent_view(a) for a in request.app[DESK].agents.values()])


async def get_agent(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    agent_id = request.match_info["agent_id"]
    if not may_view_agent(who, agent_id):
        raise Forbidden("agents may see only their own state")
    return web.json_response(agent_view(request.app[DESK].agent(agent_id)))


async def set_state(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    body = await json_body(request)
    state, reason = body.get("state"), body.get("reason")
    if not isinstance(state, str) or (reason is not None and not isinstance(reason, str)):
        raise BadRequest("expected {'state': 'ready'|'not_ready'|'logged_out', 'reason': a reason code}")
    return web.json_response(change_state(request.app, who, request.match_info["agent_id"], state, reason))


def _changed_by(who: Principal) -> str:
    return who.username if who == TOKEN_PRINCIPAL else f"panel:{who.username}"


async def put_skill(request: web.Request) -> web.Response:
    return await _skill(request, remove=False)


async def delete_skill(request: web.Request) -> web.Response:
    return await _skill(request, remove=True)


async def _skill(request: web.Request, remove: bool) -> web.Response:
    who = await principal(request, write=True)
    if not may_supervise(who):  # before the body is even read
        raise Forbidden("only supervisors and admins may change skills")
    level: int | None = None
    if not remove:
        body = await json_body(request)
        value = body.get("level")
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadRequest("expected {'level': 1..10}")
        level = value
    agent = await request.app[DESK].set_skill(
        request.match_info["agent_id"], request.match_info["skill"], level, _changed_by(who)
    )
    return web.json_response(agent_view(agent))


async def list_queues(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see the queues")
    desk = request.app[DESK]
    out = []
    for name in desk.queue_settings:
        st = desk.stats(name)
        out.append(
            {
                "name": name,
                "agents_logged_in": st.agents_logged_in,
                "agents_ready": st.agents_ready,
                "waiting": st.waiting,
                "oldest_wait_s": st.oldest_wait_s,
                "expected_wait_s": st.expected_wait_s,
                "average_speed_of_answer_s": st.average_speed_of_answer_s,
                "service_level_percent": st.service_level_percent,
            }
        )
    return web.json_response(out)


async def call_targets(request: web.Request) -> web.Response:
    """Where a call can go, for the panel's transfer and consult pickers: the queues (and
    whether anyone could answer there) and the other agents (and whether they are Ready now).
    Read-only and deliberately small: names and availability, nothing about their calls."""
    who = await principal(request, write=False)
    desk = request.app[DESK]
    queues = [{"name": name, "staffed": desk.anyone_logged_in(name)} for name in desk.queue_settings]
    agents = [
        {"id": a.id, "name": a.name, "ready": a.routable}
        for a in sorted(desk.agents.values(), key=lambda a: a.id)
        if a.id != who.agent_id
    ]
    return web.json_response({"queues": queues, "agents": agents})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/api/calls/targets", call_targets)
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/agents", list_agents)
        app.router.add_get(f"{prefix}/agents/{{agent_id}}", get_agent)
        app.router.add_post(f"{prefix}/agents/{{agent_id}}/state", set_state)
        app.router.add_put(f"{prefix}/agents/{{agent_id}}/skills/{{skill}}", put_skill)
        app.router.add_delete(f"{prefix}/agents/{{agent_id}}/skills/{{skill}}", delete_skill)
        app.router.add_get(f"{prefix}/queues", list_queues)
