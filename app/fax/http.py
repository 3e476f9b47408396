"""Faxes over HTTP: the list of faxes sent and received, and a received fax's PDF."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from app.adapters.fax_store import FaxStore
from app.errors import AppError
from app.web.auth import bearer

FAXES = web.AppKey("faxes", FaxStore)


class FaxNotFound(AppError):
    def __init__(self, fax_id: str) -> None:
        super().__init__("not-found", f"no fax {fax_id}", {}, 404)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


async def list_faxes(request: web.Request) -> web.Response:
    bearer(request)
    rows = await request.app[FAXES].recent()
    return web.json_response([_view(r) for r in rows])


async def fax_pdf(request: web.Request) -> web.StreamResponse:
    bearer(request)
    fax_id = request.match_info["fax_id"]
    try:
        uuid.UUID(fax_id)
    except ValueError:
        raise FaxNotFound(fax_id) from None
    row = next((r for r in await request.app[FAXES].recent(1000) if r["id"] == fax_id), None)
    path = Path(row["pdf_path"]) if row and row.get("pdf_path") else None
    if path is None or not await asyncio.to_thread(path.is_file):
        raise FaxNotFound(fax_id)
    return web.FileResponse(path, headers={"Content-Type": "application/pdf"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/faxes", list_faxes)
    app.router.add_get("/api/faxes/{fax_id}/pdf", fax_pdf)
