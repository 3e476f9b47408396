"""GET /health: is every part of the contact center up? 200 when all are, else 503."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from app.appkeys import AMI, ARI, ASTERISK, STORE
from app.errors import PbxError


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


async def handler(request: web.Request) -> web.Response:
    names = ("asterisk", "ari", "ami", "database")
    results = await asyncio.gather(_asterisk(request), _ari(request), _ami(request), _database(request))
    body: dict[str, Any] = dict(zip(names, results, strict=True))
    ok = all(part["ok"] for part in results)
    body["status"] = "ok" if ok else "degraded"
    return web.json_response(body, status=200 if ok else 503)
