"""The screen pop's and after-call work's HTTP side: dispositions and notes, customer profiles
for unknown callers, voicemail audio, and the idle report.

Refusals follow app/panel/http.py: session first, then same-origin and CSRF token for writes,
then who may, then the request's content; nothing is written before all of them pass.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from app.domain.access import AGENT_ROLES, Principal
from app.domain.screen_pop import (
    IDLE_REASON,
    InvalidInput,
    check_disposition,
    check_new_customer,
    may_go_idle,
    may_work_on,
    may_write_notes,
)
from app.errors import AppError
from app.panel import pages
from app.panel.http import html, language, redirect_to_login, see_other
from app.panel.i18n import t
from app.panel.pop import POPS, customer_view
from app.routing.http import DESK, agent_view
from app.voicemail.http import VOICEMAIL
from app.web.auth import Forbidden, NotSignedIn, SessionExpired, session_of, writing_session
from app.web.http import SETTINGS, BadRequest, form_body, json_body

log = logging.getLogger(__name__)


class NotFound(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("not-found", message, {}, 404)


class NotIdleNow(AppError):
    def __init__(self, state: str) -> None:
        super().__init__(
            "not-ready-state",
            f"only a Ready agent is set Not Ready for being idle; the agent is {state}",
            {"state": state},
            409,
        )


def _uuid(value: object, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


# -- disposition and notes ------------------------------------------------------------------------


async def save_disposition(
    request: web.Request, who: Principal, interaction_id: object, code: object, notes: object
) -> dict[str, Any]:
    if who.role not in AGENT_ROLES or who.agent_id is None:
        raise Forbidden("notes and a disposition are written by the agent who took the call")
    iid = _uuid(interaction_id, "interaction")
    pops = request.app[POPS]
    owner = await pops.store.owner(iid)
    if owner is None:
        raise NotFound(f"no interaction {iid}")
    if not may_write_notes(who, owner.handled_by):
        raise Forbidden("agents may write notes only on interactions they handled")
    codes = [c.code for c in request.app[SETTINGS].web.wrap_up_codes]
    try:
        code, text = check_disposition(code, notes, codes)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from exc
    at = pops.clock()
    if not await pops.store.save_disposition(iid, who.agent_id, code, text, at):
        raise Forbidden("agents may write notes only on interactions they handled")
    log.info("interaction %s: agent %s saved disposition %s (%d chars)", iid, who.agent_id, code, len(text))
    return {"interaction_id": iid, "code": code, "notes": text, "at": at.isoformat()}


async def api_disposition(request: web.Request) -> web.Response:
    session = await writing_session(request)
    body = await json_body(request)
    saved = await save_disposition(
        request, session.principal, request.match_info["interaction_id"], body.get("code"), body.get("notes")
    )
    return web.json_response(saved)


async def disposition_form(request: web.Request) -> web.Response:
    """The after-call form without JavaScript: a plain post, then back to the panel."""
    form = await form_body(request)
    lang = language(request)
    try:
        session = await writing_session(request, form)
        await save_disposition(
            request, session.principal, form.get("interaction_id", ""), form.get("code"), form.get("notes")
        )
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    except AppError as exc:
        return html(request, pages.message_page(lang, t(lang, "acw.title"), exc.message), exc.http_status)
    return see_other("/panel")


# -- customer profile for an unknown caller -------------------------------------------------------


async def api_create_customer(request: web.Request) -> web.Response:
    session = await writing_session(request)
    who = session.principal
    body = await json_body(request)
    pops = request.app[POPS]
    fields: dict[str, object] = dict(body)
    iid: str | None = None
    if body.get("interaction_id") is not None:
        iid = _uuid(body["interaction_id"], "interaction")
        owner = await pops.store.owner(iid)
        if owner is None:
            raise NotFound(f"no interaction {iid}")
        holds = who.agent_id is not None and request.app[DESK].agent(who.agent_id).interaction_id == iid
        if not may_work_on(who, holds, owner.agent_id):
            raise Forbidden("agents create a profile only for a caller offered to them or whom they served")
        if owner.customer_id is not None:
            raise AppError("customer-exists", "this call already has a customer profile", {}, 409)
        fields.setdefault("phone", owner.ani)
    elif not may_work_on(who, False, None):
        raise Forbidden("agents create a profile only from a call (give its interaction_id)")
    try:
        new = check_new_customer(fields)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from exc
    customer = await pops.store.create_customer(new, iid)
    log.info("panel: %s created customer %s for interaction %s", who.username, customer.id, iid or "-")
    return web.json_response(customer_view(customer), status=201)


# -- voicemail audio ------------------------------------------------------------------------------


async def api_voicemail_audio(request: web.Request) -> web.StreamResponse:
    session = await session_of(request)
    who = session.principal
    vm_id = _uuid(request.match_info["voicemail_id"], "voicemail")
    pops = request.app[POPS]
    exists, callback_id = await pops.store.voicemail_callback(vm_id)
    if not exists:
        raise NotFound(f"no voicemail {vm_id}")
    holds = handled = False
    if who.agent_id is not None and callback_id is not None:
        current = request.app[DESK].agent(who.agent_id).interaction_id
        owner = await pops.store.owner(current) if current else None
        holds = owner is not None and owner.callback_id == callback_id
        handled = holds or await pops.store.agent_took_callback(who.agent_id, callback_id)
    if not may_work_on(who, holds, who.agent_id if handled else None):
        raise Forbidden("agents may play only the voicemail behind a callback offered to them")
    voicemail = request.app.get(VOICEMAIL)
    if voicemail is None:
        raise NotFound("voicemail is not available on this server")
    path = voicemail.dir / f"{vm_id}.wav"
    if not await asyncio.to_thread(_is_file, path):
        raise NotFound(f"the audio of voicemail {vm_id} is gone")
    log.info("panel: %s plays voicemail %s", who.username, vm_id)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _is_file(path: Path) -> bool:
    return path.is_file()


# -- idle -----------------------------------------------------------------------------------------


async def api_idle(request: web.Request) -> web.Response:
    """The agent's own panel saw no keyboard or mouse for `web.idle_not_ready_s`. The desk sets
    Not Ready ("idle") only if the agent is Ready at this moment, checked and changed in one step."""
    session = await writing_session(request)
    who = session.principal
    agent_id = request.match_info["agent_id"]
    if who.agent_id != agent_id:
        raise Forbidden("only the agent's own panel reports them idle")
    routing = request.app[DESK]
    agent = routing.agent(agent_id)
    if not may_go_idle(agent.state):
        raise NotIdleNow(agent.state.value)
    routing.set_state(agent_id, "not_ready", IDLE_REASON)
    log.info("panel: agent %s idle for %s s: Not Ready", agent_id, request.app[SETTINGS].web.idle_not_ready_s)
    return web.json_response(agent_view(agent))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/panel/disposition", disposition_form)
    app.router.add_post("/panel/api/interactions/{interaction_id}/disposition", api_disposition)
    app.router.add_post("/panel/api/customers", api_create_customer)
    app.router.add_get("/panel/api/voicemails/{voicemail_id}/audio", api_voicemail_audio)
    app.router.add_post("/panel/api/agents/{agent_id}/idle", api_idle)
