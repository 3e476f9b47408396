"""Faxes over HTTP: the list of faxes sent and received, and a received fax's PDF."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from app.adapters.fax_store import FaxStore
from app.errors import AppError
from app.fax.jobs import FaxJobs
from app.web.auth import bearer
from app.web.http import BadRequest, json_body

FAXES = web.AppKey("faxes", FaxStore)
JOBS = web.AppKey("fax_jobs", FaxJobs)


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


async def queue_job(request: web.Request) -> web.Response:
    """`{"number": "010...", "documents": ["101", "102"]}`: fax these documents to the number."""
    bearer(request)
    body = await json_body(request)
    number, documents = body.get("number"), body.get("documents")
    if not isinstance(number, str) or not isinstance(documents, list):
        raise BadRequest("give number (text) and documents (a list of catalogue codes)")
    job = await request.app[JOBS].queue(number, [str(d) for d in documents], "api")
    return web.json_response(_view(job.__dict__ | {"documents": list(job.documents)}), status=201)


async def list_jobs(request: web.Request) -> web.Response:
    bearer(request)
    jobs = await request.app[FAXES].jobs()
    return web.json_response(
        [_view(j | {"attempt_results": [_view(a) for a in j["attempt_results"]]}) for j in jobs]
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/faxes", list_faxes)
    app.router.add_get("/api/faxes/{fax_id}/pdf", fax_pdf)
    app.router.add_post("/api/faxes/jobs", queue_job)
    app.router.add_get("/api/faxes/jobs", list_jobs)
