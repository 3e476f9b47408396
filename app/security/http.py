"""SIP bans over HTTP, for supervisors and admins: the list, and lifting one.

`/api/...` with the bearer token, `/panel/api/...` with a panel session (and CSRF token for
the DELETE), like the routing API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from app.domain.access import may_supervise
from app.domain.sip_bans import Ban, canonical
from app.security.service import SipBanService
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, NotFound

BANS = web.AppKey("sip_bans", SipBanService)


def ban_view(ban: Ban, now: datetime) -> dict[str, Any]:
    return {
        "address": ban.address,
        "since": ban.since.isoformat(),
        "until": ban.until.isoformat(),
        "left_s": max(0, round((ban.until - now).total_seconds())),
        "failures": ban.failures,
    }


async def list_bans(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see SIP bans")
    service = request.app[BANS]
    now = service.now()
    return web.json_response([ban_view(b, now) for b in service.active])


async def lift_ban(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may lift SIP bans")
    address = canonical(request.match_info["address"])
    if address is None:
        raise BadRequest(f"not an IP address: {request.match_info['address']!r}")
    service = request.app[BANS]
    ban = service.lift(address, who.username)
    if ban is None:
        raise NotFound(f"{address} is not banned")
    return web.json_response(ban_view(ban, service.now()))


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/security/bans", list_bans)
        app.router.add_delete(f"{prefix}/security/bans/{{address}}", lift_ban)
