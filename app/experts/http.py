"""Experts over HTTP: an agent asks from the call box, an expert accepts or rejects the preview.

| call | who |
|---|---|
| `GET /panel/api/experts`, `GET /api/experts` | anyone signed in: the directory with live state |
| `POST /panel/api/experts/ask/{interaction id}` | the agent on that call (or a supervisor) |
| `GET /panel/api/experts/offer` | the signed-in expert: the preview they hold, or null |
| `POST /panel/api/experts/offers/{offer id}/{accept or reject}` | the expert offered it |
| `POST /api/experts/{id}/state` | supervisors: Ready / Not Ready of an expert on an outside number |
| `PATCH /api/experts/{id}` | supervisors: expertise, groups, languages, max_calls (kept) |
| `GET /api/experts/report?hours=24` | supervisors: offers, accepts, rejects, timeouts, talk time... |
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from app.calls.events import ControlRequest
from app.calls.http import BOARD, conversation_of
from app.domain.access import SUPERVISING_ROLES, may_supervise
from app.experts.service import ExpertService
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, NotFound, json_body

EXPERTS = web.AppKey("experts", ExpertService)

MAX_NOTE = 500


async def directory(request: web.Request) -> web.Response:
    await principal(request, write=False)
    service = request.app[EXPERTS]
    return web.json_response(
        {
            "experts": [service.view(e) for e in service.directory.experts],
            "groups": [{"name": g.name, "offer_s": g.offer_s} for g in service.directory.groups],
        }
    )


async def ask(request: web.Request) -> web.Response:
    """Ask an expert about the caller: {"target": "group:mortgage" | "expertise:<tag>" |
    "expert:<id>", "note": text, "blind": false}."""
    who = await principal(request, write=True)
    interaction_id = request.match_info["interaction_id"]
    conv = conversation_of(request.app[BOARD].call(interaction_id))
    if conv is None or conv.call.ended:
        raise NotFound(f"no call {interaction_id} in progress")
    if who.role not in SUPERVISING_ROLES and (who.agent_id is None or who.agent_id != conv.agent_id):
        raise Forbidden("only the agent on this call (or a supervisor) can ask an expert about it")
    body = await json_body(request)
    target, note, blind = body.get("target"), body.get("note", ""), body.get("blind", False)
    if not isinstance(target, str) or not isinstance(note, str) or not isinstance(blind, bool):
        raise BadRequest("expected {'target': 'group:<name>', 'note': text, 'blind': true or false}")
    if len(note) > MAX_NOTE:
        raise BadRequest(f"the note is at most {MAX_NOTE} characters")
    service = request.app[EXPERTS]
    asker = service.desk.agents.get(conv.agent_id or "")
    groups = tuple(sorted(asker.groups)) if asker is not None else ()
    if who.role in SUPERVISING_ROLES and asker is None:
        groups = tuple(sorted({g for a in service.desk.agents.values() for g in a.groups}))
    the_ask = await service.ask_for(conv.call, target, groups)
    req = ControlRequest("expert", who.username, target=target, note=note.strip(), blind=blind, ask=the_ask)
    result = await conv.control(req)
    return web.json_response({**result, "call": conv.view()})


async def my_offer(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if who.agent_id is None:
        return web.json_response(None)
    return web.json_response(request.app[EXPERTS].offer_of(who.agent_id))


async def reply(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    verdict = request.match_info["verdict"]
    offer_id = request.match_info["offer_id"]
    if who.agent_id is None:
        raise Forbidden("only the expert offered the call can accept or reject it")
    request.app[EXPERTS].reply(offer_id, verdict, who.agent_id, who.username)
    return web.json_response({"offer_id": offer_id, "verdict": verdict}, status=202)


async def outside_state(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    if not may_supervise(who):
        raise Forbidden("supervisors set an outside expert's state")
    body = await json_body(request)
    state, reason = body.get("state"), body.get("reason")
    if not isinstance(state, str) or not isinstance(reason, str | None):
        raise BadRequest("expected {'state': 'ready' or 'not_ready', 'reason': text}")
    view: dict[str, Any] = request.app[EXPERTS].set_outside_state(
        request.match_info["expert_id"], state, reason
    )
    return web.json_response(view)


async def change_expert(request: web.Request) -> web.Response:
    """{"expertise": {"mortgage": 8}, "groups": [...], "languages": [...], "max_calls": 2}:
    supervisors; kept over restarts; the next choice uses it."""
    who = await principal(request, write=True)
    if not may_supervise(who):
        raise Forbidden("supervisors change the expert directory")
    body = await json_body(request)
    view = await request.app[EXPERTS].change(request.match_info["expert_id"], body, who.username)
    return web.json_response(view)


async def add_expert(request: web.Request) -> web.Response:
    """{"id": "zhao", "name": "Zhao Lei", "number": "13900001234", "groups": [...], ...}: a new
    expert on an outside number (supervisors); kept over restarts."""
    who = await principal(request, write=True)
    if not may_supervise(who):
        raise Forbidden("supervisors change the expert directory")
    body = await json_body(request)
    return web.json_response(await request.app[EXPERTS].add(body, who.username), status=201)


async def remove_expert(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    if not may_supervise(who):
        raise Forbidden("supervisors change the expert directory")
    await request.app[EXPERTS].remove(request.match_info["expert_id"], who.username)
    return web.Response(status=204)


async def expert_report(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("expert reports are for supervisors")
    try:
        hours = float(request.query.get("hours", "24"))
    except ValueError as exc:
        raise BadRequest("hours: a number") from exc
    if not 0 < hours <= 24 * 92:
        raise BadRequest("hours: more than 0, at most 92 days")
    return web.json_response(await request.app[EXPERTS].report(hours))


LINK_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


async def link_page(request: web.Request) -> web.Response:
    """An outside expert's one-time look at the offer's preview. Anything but a live, unopened
    token gets the same 404, which says nothing about why."""
    preview = await request.app[EXPERTS].open_link(request.match_info["token"])
    if preview is None:
        return web.Response(status=404, text="Not found.", headers=LINK_HEADERS)
    c, ivr = preview["customer"], preview["ivr"]
    rows = [
        ("Customer", " · ".join(str(v) for v in (c.get("name"), c.get("ani"), c.get("tier")) if v)),
        ("VIP", "yes" if c.get("vip") else "no"),
        ("Keys pressed", ivr.get("digits") or "-"),
        *((f"Entered: {k}", str(v)) for k, v in (ivr.get("collected") or {}).items()),
        ("Agent's note", preview.get("note") or "-"),
        ("Asked by", preview["asked_by"].get("name") or "-"),
        ("Why you", preview.get("reason") or "-"),
    ]
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    html = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>A caller for you</title>"
        "<style>body{font-family:sans-serif;margin:1em}dt{font-weight:bold}dd{margin:0 0 .6em}</style>"
        f"</head><body><h1>A caller for you</h1><dl>{body}</dl>"
        "<p>This page opens once: keep it open while you talk.</p></body></html>"
    )
    return web.Response(text=html, content_type="text/html", headers=LINK_HEADERS)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/experts/link/{token}", link_page)
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/experts/report", expert_report)
        app.router.add_get(f"{prefix}/experts", directory)
        app.router.add_post(f"{prefix}/experts", add_expert)
        app.router.add_delete(f"{prefix}/experts/{{expert_id}}", remove_expert)
        app.router.add_post(f"{prefix}/experts/ask/{{interaction_id}}", ask)
        app.router.add_post(f"{prefix}/experts/{{expert_id}}/state", outside_state)
        app.router.add_patch(f"{prefix}/experts/{{expert_id}}", change_expert)
    app.router.add_get("/panel/api/experts/offer", my_offer)
    app.router.add_post("/panel/api/experts/offers/{offer_id}/{verdict}", reply)
