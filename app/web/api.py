"""A small supervisor API for live routing changes, behind a bearer token.

For scripts and other machines: one generated token (var/secrets.yaml, `api_token`) stands
for the supervisor/admin role. People make the same changes from the panel
(app/panel/http.py) with their own sign-in and role. Every change takes effect at the next
routing decision; nothing restarts.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from app.appkeys import ROUTING, SECRETS
from app.domain.agent_state import Agent
from app.domain.screen_pop import wrap_up_left_s
from app.errors import AppError


class Unauthorized(AppError):
    def __init__(self) -> None:
        super().__init__(
            "unauthorized", "a valid 'Authorization: Bearer <api_token>' header is required", {}, 401
        )


class BadRequest(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("bad-request", message, {}, 400)


def authorize(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = request.app[SECRETS].api_token
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized()
    return "supervisor-api"


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "state": agent.state.value,
        "state_since": agent.state_since.isoformat() if agent.state_since else None,
        "not_ready_reason": agent.not_ready_reason,
        "device_registered": agent.device_registered,
        "skills": dict(sorted(agent.skills.items())),
        "groups": sorted(agent.groups),
        "calls_answered": agent.calls_answered,
        "interaction_id": agent.interaction_id,
        "wrap_up_until": agent.wrap_up_until.isoformat() if agent.wrap_up_until else None,
        # Relative, so the panel's countdown does not depend on the browser's clock.
        "wrap_up_left_s": wrap_up_left_s(agent.state, agent.wrap_up_until, datetime.now(UTC)),
    }


async def list_agents(request: web.Request) -> web.Response:
    authorize(request)
    routing = request.app[ROUTING]
    return web.json_response([agent_view(a) for a in routing.agents.values()])


async def set_state(request: web.Request) -> web.Response:
    authorize(request)
    body = await json_body(request)
    state, reason = body.get("state"), body.get("reason")
    if not isinstance(state, str) or (reason is not None and not isinstance(reason, str)):
        raise BadRequest("expected {'state': 'ready'|'not_ready'|'logged_out', 'reason': optional text}")
    agent = request.app[ROUTING].set_state(request.match_info["agent_id"], state, reason)
    return web.json_response(agent_view(agent))


async def put_skill(request: web.Request) -> web.Response:
    who = authorize(request)
    body = await json_body(request)
    level = body.get("level")
    if not isinstance(level, int) or isinstance(level, bool):
        raise BadRequest("expected {'level': 1..10}")
    agent = await request.app[ROUTING].set_skill(
        request.match_info["agent_id"], request.match_info["skill"], level, who
    )
    return web.json_response(agent_view(agent))


async def delete_skill(request: web.Request) -> web.Response:
    who = authorize(request)
    agent = await request.app[ROUTING].set_skill(
        request.match_info["agent_id"], request.match_info["skill"], None, who
    )
    return web.json_response(agent_view(agent))


async def list_queues(request: web.Request) -> web.Response:
    authorize(request)
    routing = request.app[ROUTING]
    out = []
    for name in routing.queue_settings:
        st = routing.stats(name)
        out.append(
            {
                "name": name,
                "agents_logged_in": st.agents_logged_in,
                "agents_ready": st.agents_ready,
                "waiting": st.waiting,
                "oldest_wait_s": st.oldest_wait_s,
                "expected_wait_s": st.expected_wait_s,
                "average_speed_of_answer_s": st.average_speed_of_answer_s,
            }
        )
    return web.json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/agents", list_agents)
    app.router.add_post("/api/agents/{agent_id}/state", set_state)
    app.router.add_put("/api/agents/{agent_id}/skills/{skill}", put_skill)
    app.router.add_delete("/api/agents/{agent_id}/skills/{skill}", delete_skill)
    app.router.add_get("/api/queues", list_queues)
