"""GET /health: is every part of the contact center up? 200 when all are, else 503."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from app.adapters.ami import AmiConnection
from app.adapters.ari import AriClient
from app.adapters.asterisk_instance import AsteriskProcess
from app.adapters.db import Store
from app.errors import PbxError


@dataclass
class AppStatus:
    """The app's own part of the health page: when it started (a restart changes it), how many
    calls it follows and how many interaction writes wait for the database."""

    started_at: str
    calls: Callable[[], int] = lambda: 0
    writes_waiting: Callable[[], int] = lambda: 0


APP = web.AppKey("app_status", AppStatus)
ASTERISK = web.AppKey("asterisk", AsteriskProcess)
ARI = web.AppKey("ari", AriClient)
AMI = web.AppKey("ami", AmiConnection)
STORE = web.AppKey("store", Store)


async def _asterisk(request: web.Request) -> dict[str, Any]:
    process = request.app[ASTERISK]
    return {"ok": process.running, "restarts": process.restarts}


async def _ari(request: web.Request) -> dict[str, Any]:
    ari = request.app[ARI]
    try:
        info = await ari.asterisk_info()
    except PbxError as exc:
        return {"ok": False, "error": str(exc)}
    version = (info.get("system") or {}).get("version")
    return {"ok": ari.connected, "events_connected": ari.connected, "version": version}


async def _ami(request: web.Request) -> dict[str, Any]:
    return {"ok": await request.app[AMI].ping()}


async def _database(request: web.Request) -> dict[str, Any]:
    return {"ok": await request.app[STORE].ping()}


async def _app(request: web.Request) -> dict[str, Any]:
    status = request.app[APP]
    return {
        "ok": True,
        "pid": os.getpid(),
        "started_at": status.started_at,
        "calls": status.calls(),
        "writes_waiting": status.writes_waiting(),
    }


async def handler(request: web.Request) -> web.Response:
    names = ("app", "asterisk", "ari", "ami", "database")
    results = await asyncio.gather(
        _app(request), _asterisk(request), _ari(request), _ami(request), _database(request)
    )
    body: dict[str, Any] = dict(zip(names, results, strict=True))
    ok = all(part["ok"] for part in results)
    body["status"] = "ok" if ok else "degraded"
    return web.json_response(body, status=200 if ok else 503)
