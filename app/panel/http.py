"""The agent panel over HTTP: sign-in pages, the agent and supervisor pages, their JSON API
under /panel/api/, and the live websocket /ws.

Refusals follow one model. JSON calls get an AppError as JSON (401 not signed in or session
over, 403 wrong role, other agent or bad CSRF token, 429 throttled); pages redirect to
/login instead of a 401. Checks run in this order, each before anything changes: session,
then same-origin and CSRF token for writes, then role, then the request's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import secrets as pysecrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from app.dialer.http import DIALER, panel_campaign_view
from app.domain.access import AGENT_ROLES, Principal, may_manage_experts, may_supervise
from app.domain.staffing import STAFFING_COLUMNS
from app.errors import AppError
from app.experts.http import EXPERTS
from app.panel import calls, expert_admin, experts, outbound, pages, pop_pages, report_pages, softphone
from app.panel.coaching import live_calls_section
from app.panel.i18n import LANG_COOKIE, Lang, pick_language, t
from app.panel.live import LIVE, Subscription
from app.panel.pop import POPS
from app.routing.http import DESK, agent_view, change_state
from app.security.http import BANS, ban_view
from app.supervision.http import PERIOD_REPORTS, REPORTS, WALLBOARD, day_query, number_query, period_report
from app.supervision.reports import PeriodError
from app.web.auth import (
    AUTH,
    CSRF_FIELD,
    SESSION_COOKIE,
    CsrfFailed,
    Forbidden,
    NotSignedIn,
    PanelSession,
    SessionExpired,
    TooManyAttempts,
    WrongCredentials,
    origin_host,
    same_origin,
    session_of,
    writing_session,
)
from app.web.http import SETTINGS, BadRequest, form_body, json_body

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Sections feature folders add to the agent's call box (the composition root lists them), so
# the panel need not know each feature: (request, page language) -> markup, "" for none.
CallBoxPart = Callable[[web.Request, Lang], str]
CALL_BOX_PARTS = web.AppKey("call_box_parts", tuple[CallBoxPart, ...])
LOGIN_FORM_COOKIE = "lianluo_login_form"
# How often an open websocket re-checks (and keeps alive) its session.
WS_SESSION_CHECK_S = 30.0
# Closing codes the browser sees when the server ends the socket (4000-4999: application).
WS_SESSION_OVER = 4401
WS_SIGNED_OUT = 4001
WS_ENDED = 4000

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# -- request helpers ------------------------------------------------------------------------------


def language(request: web.Request) -> Lang:
    return pick_language(
        request.query.get("lang"), request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language")
    )


def page_headers(request: web.Request) -> dict[str, str]:
    """PAGE_HEADERS, with the softphone's SIP websocket (another origin: Asterisk) in connect-src."""
    extra = softphone.connect_sources(request.app[SETTINGS], request.host)
    if not extra:
        return PAGE_HEADERS
    csp = PAGE_HEADERS["Content-Security-Policy"].replace(
        "connect-src 'self';", f"connect-src 'self' {' '.join(extra)};", 1
    )
    return {**PAGE_HEADERS, "Content-Security-Policy": csp}


def html(
    request: web.Request, body: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    headers = {**page_headers(request), **(headers or {})}
    resp = web.Response(text=body, status=status, content_type="text/html", headers=headers)
    chosen = request.query.get("lang")
    if chosen in ("en", "zh"):
        resp.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, httponly=True, samesite="Lax", path="/")
    return resp


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return request.content_type == "application/json" or "application/json" in accept


def home_of(who: Principal) -> str:
    if who.role.value == "qa":
        return "/qa"  # the QA desk (app/recording/http.py)
    return "/panel" if who.role in AGENT_ROLES else "/supervisor"


def user_line(lang: Lang, session: PanelSession) -> str:
    user = session.user
    return t(lang, "signed_in_as", name=user.display_name, role=t(lang, f"role.{user.role.value}"))


def set_session_cookie(request: web.Request, resp: web.StreamResponse, token: str) -> None:
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/")


def clear_session_cookie(resp: web.StreamResponse) -> None:
    resp.del_cookie(SESSION_COOKIE, path="/")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def redirect_to_login(request: web.Request, exc: AppError) -> web.Response:
    resp = see_other("/login?expired=1" if isinstance(exc, SessionExpired) else "/login")
    if request.cookies.get(SESSION_COOKIE):
        clear_session_cookie(resp)
    return resp


# -- sign in and out ------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    lang = language(request)
    with contextlib.suppress(NotSignedIn, SessionExpired):
        session = await session_of(request)
        return see_other(home_of(session.principal))
    message = ""
    if "expired" in request.query:
        message = t(lang, "session_expired")
    elif "signed_out" in request.query:
        message = t(lang, "signed_out")
    return login_response(request, lang, message)


def login_response(
    request: web.Request,
    lang: Lang,
    message: str = "",
    username: str = "",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The sign-in form, with a double-submit token against sign-in CSRF (there is no session
    yet to tie a token to): the same random value in a strict cookie and a hidden field."""
    token = request.cookies.get(LOGIN_FORM_COOKIE) or pysecrets.token_urlsafe(24)
    resp = html(request, pages.login_page(lang, token, message, username), status, headers)
    resp.set_cookie(
        LOGIN_FORM_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/login",
        max_age=3600,
    )
    return resp


async def login_submit(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    as_json = request.content_type == "application/json"
    lang = language(request)
    if as_json:
        # A JSON body cannot be sent cross-site without a CORS preflight we never grant.
        same_origin(request)
        body = await json_body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise BadRequest("expected {'username': text, 'password': text}")
    else:
        form = await form_body(request)
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        cookie = request.cookies.get(LOGIN_FORM_COOKIE)
        field = form.get(CSRF_FIELD)
        try:
            same_origin(request)
            if (
                not cookie
                or not isinstance(field, str)
                or not hmac.compare_digest(field.encode(), cookie.encode())
            ):
                raise CsrfFailed()
        except (CsrfFailed, Forbidden):
            return login_response(request, lang, t(lang, "form_expired"), username, 403)
    try:
        signed_in = await auth.sign_in(
            username, password, request.remote or "", request.headers.get("User-Agent", "")
        )
    except TooManyAttempts as exc:
        if as_json:
            raise
        msg = t(lang, "too_many", seconds=exc.details["retry_after_s"])
        return login_response(request, lang, msg, username, 429, exc.headers)
    except WrongCredentials:
        if as_json:
            raise
        return login_response(request, lang, t(lang, "wrong_credentials"), username, 401)
    # A new token at every sign-in (no fixation); a session this browser had is ended.
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        with contextlib.suppress(NotSignedIn, SessionExpired):
            previous = await auth.session_for(old)
            await auth.sign_out(previous)
            request.app[LIVE].end_session(previous.token_hash)
    session = signed_in.session
    home = home_of(session.principal)
    resp: web.StreamResponse
    if as_json:
        resp = web.json_response(
            {"user": me_view(session), "csrf_token": session.csrf_token, "home": home},
            headers={"Cache-Control": "no-store"},
        )
    else:
        resp = see_other(home)
        resp.del_cookie(LOGIN_FORM_COOKIE, path="/login")
    set_session_cookie(request, resp, signed_in.token)
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    form = None if request.content_type == "application/json" else await form_body(request)
    try:
        session = await writing_session(request, form)
    except (NotSignedIn, SessionExpired) as exc:
        if wants_json(request):
            raise
        return redirect_to_login(request, exc)
    except (CsrfFailed, Forbidden) as exc:
        if wants_json(request):
            raise
        lang = language(request)
        return html(request, pages.message_page(lang, t(lang, "sign_out"), exc.message), exc.http_status)
    await request.app[AUTH].sign_out(session)
    request.app[LIVE].end_session(session.token_hash)
    resp: web.StreamResponse = (
        web.json_response({"signed_out": True}) if wants_json(request) else see_other("/login?signed_out=1")
    )
    clear_session_cookie(resp)
    return resp


# -- pages ----------------------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    try:
        session = await session_of(request)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    return see_other(home_of(session.principal))


async def agent_page(request: web.Request) -> web.Response:
    try:
        session = await session_of(request)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    who = session.principal
    if who.agent_id is None:
        return see_other(home_of(who))
    lang = language(request)
    agent = agent_view(request.app[DESK].agent(who.agent_id))
    web_settings = request.app[SETTINGS].web
    # The call's controls first (the agent's hands are there during a call), then the pop.
    pop = calls.call_section(lang) + experts.expert_sections(lang)  # asking an expert; an expert's preview
    pop += pop_pages.pop_section(lang, session.csrf_token, web_settings, agent)
    for part in request.app.get(CALL_BOX_PARTS, ()):  # e.g. "Send by fax" (app/fax/agent.py)
        pop += part(request, lang)
    dialer = request.app.get(DIALER)
    if dialer is not None:  # the campaigns this agent works, with the preview card
        pop += outbound.outbound_section(
            lang, [panel_campaign_view(s) for s in dialer.campaigns_of(who.agent_id)]
        )
    phone = softphone.widget(lang) if softphone.enabled(request.app[SETTINGS], who.agent_id) else ""
    return html(
        request,
        pages.panel_page(
            lang,
            session.csrf_token,
            user_line(lang, session),
            agent,
            web_settings.not_ready_reasons,
            pop,
            softphone=phone,
        ),
    )


SupervisorPage = Callable[[web.Request, PanelSession, Lang], Awaitable[web.Response]]


def for_supervisors(
    title: str,
) -> Callable[[SupervisorPage], Callable[[web.Request], Awaitable[web.Response]]]:
    """A page for supervisors and admins: others signed in get 403 (a page titled `title`),
    anyone not signed in goes to sign in."""

    def wrap(page: SupervisorPage) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(page)
        async def handler(request: web.Request) -> web.Response:
            try:
                session = await session_of(request)
            except (NotSignedIn, SessionExpired) as exc:
                return redirect_to_login(request, exc)
            lang = language(request)
            if not may_supervise(session.principal):
                refused = pages.message_page(lang, t(lang, title), t(lang, "forbidden"), session.csrf_token)
                return html(request, refused, 403)
            return await page(request, session, lang)

        return handler

    return wrap


@for_supervisors("wallboard")
async def wallboard_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    board = request.app[WALLBOARD].view()
    big = request.query.get("big") == "1"
    reasons = request.app[SETTINGS].web.not_ready_reasons
    page = pages.wallboard_page(lang, session.csrf_token, user_line(lang, session), board, big, reasons)
    return html(request, page)


@for_supervisors("reports")
async def reports_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    try:
        minutes = int(request.query.get("minutes", "30"))
        day = date.fromisoformat(request.query["date"]) if request.query.get("date") else None
    except ValueError:
        minutes, day = 30, None
    if minutes not in (15, 30, 60):
        minutes = 30
    try:
        report = await request.app[REPORTS].interval(day, minutes)
    except PeriodError:  # a day no report can be about: today's, as for a date not understood
        report = await request.app[REPORTS].interval(None, minutes)
    nav, agents = report_pages.menu(lang, "interval"), report_pages.interval_agents(lang, report)
    page = pages.reports_page(lang, session.csrf_token, user_line(lang, session), report, nav, agents)
    return html(request, page)


@for_supervisors("reports")
async def period_report_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    """/reports/{queues,agents,ivr,work,campaigns}: a period that cannot be read shows today,
    with the reason."""
    kind = request.match_info["kind"]
    if kind not in PERIOD_REPORTS:
        raise web.HTTPNotFound()
    notice = ""
    try:
        result = await period_report(request, kind)
    except BadRequest as exc:
        notice = exc.message
        result = await getattr(request.app[REPORTS], PERIOD_REPORTS[kind][0])(None, None)
    page = report_pages.period_report_page(
        lang, session.csrf_token, user_line(lang, session), kind, result, PERIOD_REPORTS[kind][1], notice
    )
    return html(request, page)


@for_supervisors("reports")
async def staffing_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    """/staffing: a day's history (`date`) and a forecast day (`forecast`, `weeks`, `volume`,
    `aht`); settings that cannot be read fall back to the defaults, with the reason."""
    reports = request.app[REPORTS]
    notices = []
    try:
        minutes = int(number_query(request, "minutes", 30))
        if minutes not in (15, 30, 60):
            raise BadRequest("minutes is 15, 30 or 60")
        history = await reports.staffing(day_query(request, "date"), minutes)
    except (BadRequest, PeriodError) as exc:
        notices.append(exc.message if isinstance(exc, BadRequest) else str(exc))
        minutes, history = 30, await reports.staffing(None, 30)
    try:
        ahead = await reports.forecast(
            day_query(request, "forecast"),
            minutes,
            int(number_query(request, "weeks", 4)),
            number_query(request, "volume", 100),
            number_query(request, "aht", 100),
        )
    except (BadRequest, PeriodError) as exc:
        notices.append(exc.message if isinstance(exc, BadRequest) else str(exc))
        ahead = await reports.forecast(None, minutes)
    page = report_pages.staffing_page(
        lang,
        session.csrf_token,
        user_line(lang, session),
        history,
        ahead,
        STAFFING_COLUMNS,
        " ".join(notices),
    )
    return html(request, page)


@for_supervisors("supervisor")
async def supervisor_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    agents = [agent_view(a) for a in request.app[DESK].agents.values()]
    reasons = request.app[SETTINGS].web.not_ready_reasons
    service = request.app.get(BANS)
    bans = [ban_view(b, service.now()) for b in service.active] if service is not None else []
    expert_service = request.app.get(EXPERTS)
    board = "" if expert_service is None else experts.supervisor_section(lang, expert_service.views())
    if expert_service is not None and may_manage_experts(session.principal):
        board += expert_admin.link(lang)
    board += live_calls_section(lang)
    if softphone.enabled(request.app[SETTINGS], session.principal.username):
        board += softphone.widget(lang)  # the supervisor's phone for listening to calls
    return html(
        request,
        pages.supervisor_page(
            lang,
            session.csrf_token,
            user_line(lang, session),
            agents,
            reasons,
            bans,
            board,
            skill_labels=request.app[SETTINGS].web.skill_labels,
        ),
    )


async def state_form(request: web.Request) -> web.Response:
    """The Ready / Not Ready buttons without JavaScript: a form post, then back to the panel."""
    form = await form_body(request)
    lang = language(request)
    try:
        session = await writing_session(request, form)
        who = session.principal
        if who.agent_id is None:
            raise Forbidden("only agents have a state of their own")
        reason = form.get("reason")
        change_state(
            request.app,
            who,
            who.agent_id,
            str(form.get("state", "")),
            reason if isinstance(reason, str) else None,
        )
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    except AppError as exc:
        return html(request, pages.message_page(lang, t(lang, "your_state"), exc.message), exc.http_status)
    return see_other("/panel")


# -- the expert directory (admins) ------------------------------------------------------------


def _expert_directory(
    request: web.Request,
    session: PanelSession,
    lang: Lang,
    *,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> web.Response:
    service = request.app[EXPERTS]
    views = []
    for e in service.directory.experts:
        views.append({**service.view(e), "number": e.number})
    page = expert_admin.directory_page(
        lang,
        session.csrf_token,
        user_line(lang, session),
        views,
        frozenset(service.roster),
        [g.name for g in service.directory.groups],
        form=form,
        errors=errors,
        notice=notice,
    )
    return html(request, page, status)


def _refused_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    title = expert_admin.notice_text(lang, "title")
    return html(request, pages.message_page(lang, title, t(lang, "forbidden"), session.csrf_token), 403)


async def experts_page(request: web.Request) -> web.Response:
    """/experts: the directory with live state, and the form to add an outside expert (admins)."""
    try:
        session = await session_of(request)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    lang = language(request)
    if not may_manage_experts(session.principal):
        return _refused_page(request, session, lang)
    directory = request.app[EXPERTS].directory
    notice = ""
    if (added := request.query.get("added")) and directory.expert(added) is not None:
        notice = expert_admin.notice_text(lang, "added", id=added)
    elif (removed := request.query.get("removed")) and directory.expert(removed) is None:
        notice = expert_admin.notice_text(lang, "removed", id=removed)
    return _expert_directory(request, session, lang, notice=notice)


async def experts_add(request: web.Request) -> web.Response:
    """Add an expert on an outside number: the directory's own checks (as POST /api/experts); a
    refusal comes back with the error beside its field and what was typed kept."""
    raw = await form_body(request)
    lang = language(request)
    try:
        session = await writing_session(request, raw)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    if not may_manage_experts(session.principal):
        return _refused_page(request, session, lang)
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k in expert_admin.FIELDS}
    try:
        entry = expert_admin.entry_of(form)
        await request.app[EXPERTS].add(entry, session.principal.username)
    except expert_admin.FormProblem as exc:
        errors = {exc.field: exc.message}
    except AppError as exc:
        errors = {expert_admin.field_of(exc.message) or "id": exc.message}
    else:
        return see_other(f"/experts?added={entry['id']}")
    notice = expert_admin.notice_text(lang, "refused")
    return _expert_directory(request, session, lang, form=form, errors=errors, notice=notice, status=400)


async def experts_remove(request: web.Request) -> web.Response:
    raw = await form_body(request)
    lang = language(request)
    try:
        session = await writing_session(request, raw)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    if not may_manage_experts(session.principal):
        return _refused_page(request, session, lang)
    expert_id = request.match_info["expert_id"]
    try:
        await request.app[EXPERTS].remove(expert_id, session.principal.username)
    except AppError as exc:
        return _expert_directory(request, session, lang, notice=exc.message, status=exc.http_status)
    return see_other(f"/experts?removed={expert_id}")


# -- JSON API -------------------------------------------------------------------------------------


def me_view(session: PanelSession) -> dict[str, Any]:
    user = session.user
    return {
        "username": user.username,
        "name": user.display_name,
        "role": user.role.value,
        "agent_id": user.agent_id,
    }


async def api_me(request: web.Request) -> web.Response:
    session = await session_of(request)
    who = session.principal
    agent = agent_view(request.app[DESK].agent(who.agent_id)) if who.agent_id else None
    return web.json_response({"user": me_view(session), "agent": agent, "csrf_token": session.csrf_token})


# -- live -----------------------------------------------------------------------------------------


async def live_socket(request: web.Request) -> web.StreamResponse:
    """Pushes agent states: a snapshot first, then every change the viewer may see."""
    origin = request.headers.get("Origin")
    if origin is None or origin_host(origin) != request.host:
        raise Forbidden("the live socket is for this site's pages only")
    auth = request.app[AUTH]
    token = request.cookies.get(SESSION_COOKIE)
    session = await auth.session_for(token)
    who = session.principal
    agent_ids = None if may_supervise(who) else frozenset({who.agent_id} if who.agent_id else ())
    hub, routing = request.app[LIVE], request.app[DESK]
    sub = hub.subscribe(agent_ids, session.token_hash)
    ws = web.WebSocketResponse(heartbeat=25)
    try:
        await ws.prepare(request)
        snapshot = [agent_view(a) for a in routing.agents.values() if sub.wants(a.id)]
        await ws.send_json({"type": "snapshot", "agents": snapshot})
        if who.agent_id is not None:  # a reloaded panel gets back the call its agent works on
            pop = await request.app[POPS].current(who.agent_id)
            if pop is not None:
                await ws.send_json({"type": "pop", "pop": pop})
        pump = asyncio.create_task(
            _pump(ws, sub, lambda: auth.session_for(token)), name=f"panel-ws-{who.username}"
        )
        try:
            async for _ in ws:
                pass  # the browser only listens; messages from it are ignored
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
    finally:
        hub.unsubscribe(sub)
    return ws


async def _pump(
    ws: web.WebSocketResponse, sub: Subscription, recheck: Callable[[], Awaitable[object]]
) -> None:
    while True:
        try:
            async with asyncio.timeout(WS_SESSION_CHECK_S):
                message = await sub.queue.get()
        except TimeoutError:
            # An open panel keeps its session alive; a session ended elsewhere closes the socket.
            try:
                await recheck()
            except (NotSignedIn, SessionExpired):
                await ws.close(code=WS_SESSION_OVER, message=b"session over")
                return
            continue
        if message["type"] == "end":
            reason = str(message["reason"])
            codes = {"signed-out": WS_SIGNED_OUT, "server-stopping": int(WSCloseCode.GOING_AWAY)}
            await ws.close(code=codes.get(reason, WS_ENDED), message=reason.encode())
            return
        await ws.send_json(message)


async def close_live_sockets(app: web.Application) -> None:
    """on_shutdown: end every panel socket so stopping does not wait on open browsers."""
    hub = app.get(LIVE)
    if hub is not None:
        hub.close_all()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/panel", agent_page)
    app.router.add_post("/panel/state", state_form)
    app.router.add_get("/supervisor", supervisor_page)
    app.router.add_get("/wallboard", wallboard_page)
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/reports/{kind}", period_report_page)
    app.router.add_get("/staffing", staffing_page)
    app.router.add_get("/experts", experts_page)
    app.router.add_post("/experts", experts_add)
    app.router.add_post("/experts/{expert_id}/remove", experts_remove)
    app.router.add_get("/panel/api/me", api_me)
    app.router.add_get("/ws", live_socket)
    app.router.add_static("/static/", STATIC_DIR)
