"""Supervision over HTTP, for supervisors and admins: `GET /api/wallboard` (and
`/panel/api/...`; the page `/wallboard` is the panel's), the interval report
`GET /api/reports/interval` as JSON or CSV (the page `/reports` is the panel's), and listening
in on live calls (`/api/supervision/...`, app/supervision/coaching.py)."""

from __future__ import annotations

import csv
import io
from datetime import date

from aiohttp import web

from app.domain.access import Principal, may_supervise
from app.domain.coaching import parse_mode
from app.domain.reports import COLUMNS, INTERVALS_MIN
from app.supervision.coaching import Coaching
from app.supervision.reports import Reports
from app.supervision.wallboard import WallboardService
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest

WALLBOARD = web.AppKey("wallboard", WallboardService)
REPORTS = web.AppKey("reports", Reports)
COACHING = web.AppKey("coaching", Coaching)


async def wallboard(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see the wallboard")
    return web.json_response(request.app[WALLBOARD].view())


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/wallboard", wallboard)
    add_report_routes(app)
    add_coaching_routes(app)


# -- reports --------------------------------------------------------------------------------------


async def interval_report(request: web.Request) -> web.StreamResponse:
    """`?date=YYYY-MM-DD` (default today, in the center's time zone), `&minutes=15|30|60`,
    `&format=csv` for a file a spreadsheet opens."""
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see reports")
    reports = request.app[REPORTS]
    try:
        minutes = int(request.query.get("minutes", "30"))
        day = date.fromisoformat(request.query["date"]) if "date" in request.query else None
    except ValueError as exc:
        raise BadRequest(f"date is YYYY-MM-DD and minutes a number: {exc}") from exc
    if minutes not in INTERVALS_MIN:
        raise BadRequest("minutes is 15, 30 or 60")
    report = await reports.interval(day, minutes)
    if request.query.get("format") == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for row in report["rows"]:
            writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
        name = f"interval-{report['date']}-{minutes}min.csv"
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )
    return web.json_response(report)


def add_report_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/reports/interval", interval_report)


# -- listen, whisper, barge ------------------------------------------------------------------------


async def _supervisor(request: web.Request, write: bool) -> Principal:
    who = await principal(request, write=write)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may listen to calls")
    return who


async def live_calls(request: web.Request) -> web.Response:
    """The calls an agent is talking on, and the asker's own session (null when none)."""
    who = await _supervisor(request, write=False)
    coaching = request.app[COACHING]
    mine = coaching.session_of(who.username)
    return web.json_response({"calls": coaching.live_calls(), "mine": None if mine is None else mine.view()})


async def join_call(request: web.Request) -> web.Response:
    """`POST .../supervision/calls/{interaction_id}/listen|whisper|barge`: the asker's phone
    rings; on the call already listened to, the mode changes on the same phone call."""
    who = await _supervisor(request, write=True)
    try:
        mode = parse_mode(request.match_info["mode"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    session = request.app[COACHING].join(who.username, request.match_info["interaction_id"], mode)
    return web.json_response(session.view())


async def leave_call(request: web.Request) -> web.Response:
    who = await _supervisor(request, write=True)
    return web.json_response(request.app[COACHING].leave(who.username).view())


def add_coaching_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/supervision/calls", live_calls)
        app.router.add_post(f"{prefix}/supervision/calls/{{interaction_id}}/{{mode}}", join_call)
        app.router.add_post(f"{prefix}/supervision/end", leave_call)
