"""Supervision over HTTP, for supervisors and admins: `GET /api/wallboard` (and
`/panel/api/...`; the page `/wallboard` is the panel's) and the interval report
`GET /api/reports/interval` as JSON or CSV (the page `/reports` is the panel's)."""

from __future__ import annotations

import csv
import io
from datetime import date

from aiohttp import web

from app.domain.access import may_supervise
from app.domain.reports import COLUMNS, INTERVALS_MIN
from app.supervision.reports import Reports
from app.supervision.wallboard import WallboardService
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest

WALLBOARD = web.AppKey("wallboard", WallboardService)
REPORTS = web.AppKey("reports", Reports)


async def wallboard(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see the wallboard")
    return web.json_response(request.app[WALLBOARD].view())


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/wallboard", wallboard)
    add_report_routes(app)


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
