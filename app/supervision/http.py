"""Supervision over HTTP, for supervisors and admins: `GET /api/wallboard` (and
`/panel/api/...`; the page `/wallboard` is the panel's), the reports
`GET /api/reports/{interval,queues,agents,ivr,work,campaigns}` and staffing
`GET /api/reports/{staffing,forecast}`, each as JSON or, with `format=csv`, CSV (the pages
`/reports...` and `/staffing` are the panel's), and listening in on live calls
(`/api/supervision/...`, app/supervision/coaching.py)."""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from typing import Any

from aiohttp import web

from app.domain.access import Principal, may_supervise
from app.domain.coaching import parse_mode
from app.domain.reports import (
    AGENT_COLUMNS,
    AGENT_INTERVAL_COLUMNS,
    CAMPAIGN_COLUMNS,
    COLUMNS,
    INTERVALS_MIN,
    IVR_CHOICE_COLUMNS,
    IVR_EXIT_COLUMNS,
    QUEUE_COLUMNS,
    WORK_COLUMNS,
)
from app.domain.staffing import STAFFING_COLUMNS
from app.supervision.coaching import Coaching
from app.supervision.reports import PeriodError, Reports
from app.supervision.wallboard import WallboardService
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, NotFound

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
    `&format=csv` for a file a spreadsheet opens (`&table=agents`: the agents' side)."""
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
    try:
        report = await reports.interval(day, minutes)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from exc
    if request.query.get("format") == "csv":
        name = f"interval-{report['date']}-{minutes}min"
        if request.query.get("table") == "agents":
            return csv_response(report["agents"], AGENT_INTERVAL_COLUMNS, f"{name}-agents.csv")
        return csv_response(report["rows"], COLUMNS, f"{name}.csv")
    return web.json_response(report)


def csv_cell(value: Any) -> Any:
    """A spreadsheet cell: empty for no figure; a breakdown (reason or result -> figure) as
    `key=value` pairs."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k or '-'}={v}" for k, v in value.items())
    return value


def csv_response(rows: list[dict[str, Any]], columns: tuple[str, ...], name: str) -> web.Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(row[k]) for k in columns})
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


# Each report over days: its service method, and its tables' columns (the first is `rows`).
PERIOD_REPORTS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "queues": ("queues", {"rows": QUEUE_COLUMNS}),
    "agents": ("agents", {"rows": AGENT_COLUMNS}),
    "ivr": ("ivr", {"rows": IVR_EXIT_COLUMNS, "choices": IVR_CHOICE_COLUMNS}),
    "work": ("work", {"rows": WORK_COLUMNS}),
    "campaigns": ("campaigns", {"rows": CAMPAIGN_COLUMNS}),
}


def day_query(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError as exc:
        raise BadRequest(f"{name} is a day written YYYY-MM-DD, not {raw!r}") from exc


def number_query(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise BadRequest(f"{name} is a number, not {raw!r}") from exc
    if not math.isfinite(value) or abs(value) > 1e6:
        raise BadRequest(f"{name} is a number up to a million, not {raw!r}")
    return value


async def period_report(request: web.Request, kind: str) -> dict[str, Any]:
    """A report over `?from=YYYY-MM-DD&to=YYYY-MM-DD` (default today, in the center's zone)."""
    method, _ = PERIOD_REPORTS[kind]
    first, last = day_query(request, "from"), day_query(request, "to")
    try:
        result: dict[str, Any] = await getattr(request.app[REPORTS], method)(first, last)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from exc
    return result


async def staffing_report(request: web.Request, kind: str) -> dict[str, Any]:
    """`staffing`: a day's history (`?date=`, default today); `forecast`: a day to come
    (`?date=`, default tomorrow) from the same weekday of `weeks` past weeks, with `volume`
    and `aht` in percent. Both per `minutes` (15, 30 or 60)."""
    minutes = int(number_query(request, "minutes", 30))
    if minutes not in INTERVALS_MIN:
        raise BadRequest("minutes is 15, 30 or 60")
    reports, day = request.app[REPORTS], day_query(request, "date")
    try:
        if kind == "staffing":
            return await reports.staffing(day, minutes)
        return await reports.forecast(
            day,
            minutes,
            int(number_query(request, "weeks", 4)),
            number_query(request, "volume", 100),
            number_query(request, "aht", 100),
        )
    except PeriodError as exc:
        raise BadRequest(str(exc)) from exc


async def any_report(request: web.Request, kind: str) -> dict[str, Any]:
    if kind in PERIOD_REPORTS:
        return await period_report(request, kind)
    return await staffing_report(request, kind)


def report_columns(kind: str) -> dict[str, tuple[str, ...]]:
    return PERIOD_REPORTS[kind][1] if kind in PERIOD_REPORTS else {"rows": STAFFING_COLUMNS}


async def report(request: web.Request) -> web.StreamResponse:
    """`GET /api/reports/{kind}`, JSON or `&format=csv` (`&table=choices` for the IVR's
    choices)."""
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see reports")
    kind = request.match_info["kind"]
    if kind not in PERIOD_REPORTS and kind not in ("staffing", "forecast"):
        raise NotFound(f"no report {kind!r}: {', '.join([*PERIOD_REPORTS, 'staffing', 'forecast'])}")
    result = await any_report(request, kind)
    if request.query.get("format") == "csv":
        tables = report_columns(kind)
        table = request.query.get("table", "rows")
        if table not in tables:
            raise BadRequest(f"table is one of {', '.join(tables)}")
        span = result.get("date") or f"{result['from']}-{result['to']}"
        suffix = "" if table == "rows" else f"-{table}"
        return csv_response(result[table], tables[table], f"{kind}{suffix}-{span}.csv")
    return web.json_response(result)


def add_report_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/reports/interval", interval_report)
        app.router.add_get(f"{prefix}/reports/{{kind}}", report)


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
