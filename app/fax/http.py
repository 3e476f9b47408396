"""Faxes over HTTP, for supervisors and admins (and the API token): the faxes sent and received
with each one's PDF and a first-page preview, the outbound jobs, a new job and a resend. The
same routes under `/api` (token) and `/panel/api` (the `/faxes` page's session)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from app.adapters.fax_pages import FaxPages, FaxPagesError
from app.adapters.fax_store import FaxStore, job_view
from app.domain.access import Principal, may_supervise
from app.errors import AppError
from app.fax.jobs import FaxJobs
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, json_body

FAXES = web.AppKey("faxes", FaxStore)
JOBS = web.AppKey("fax_jobs", FaxJobs)


class FaxNotFound(AppError):
    def __init__(self, what: str) -> None:
        super().__init__("not-found", f"no {what}", {}, 404)


async def supervisor(request: web.Request, write: bool = False) -> Principal:
    who = await principal(request, write=write)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may see and send faxes")
    return who


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


async def list_faxes(request: web.Request) -> web.Response:
    await supervisor(request)
    rows = await request.app[FAXES].recent()
    return web.json_response([_view(r) for r in rows])


async def _fax(request: web.Request) -> dict[str, Any]:
    fax_id = request.match_info["fax_id"]
    try:
        uuid.UUID(fax_id)
    except ValueError:
        raise FaxNotFound(f"fax {fax_id}") from None
    row = await request.app[FAXES].one(fax_id)
    if row is None:
        raise FaxNotFound(f"fax {fax_id}")
    return row


async def pdf_of(row: dict[str, Any]) -> Path:
    """The fax as a PDF: a received one has its own; a sent one's pages are made into one, once."""
    if row.get("pdf_path") and await asyncio.to_thread(Path(row["pdf_path"]).is_file):
        return Path(row["pdf_path"])
    tiff = Path(row["tiff_path"]) if row.get("tiff_path") else None
    if tiff is None or not await asyncio.to_thread(tiff.is_file):
        raise FaxNotFound(f"pages for fax {row['id']} (the fax failed before any, or they were removed)")
    pdf = tiff.with_suffix(".pdf")
    if not await asyncio.to_thread(pdf.is_file):
        await FaxPages.to_pdf(tiff, pdf)
    return pdf


async def fax_pdf(request: web.Request) -> web.StreamResponse:
    await supervisor(request)
    pdf = await pdf_of(await _fax(request))
    return web.FileResponse(pdf, headers={"Content-Type": "application/pdf"})


async def fax_preview(request: web.Request) -> web.StreamResponse:
    """The first page as a small PNG, made from the PDF once and kept beside it."""
    await supervisor(request)
    pdf = await pdf_of(await _fax(request))
    png = pdf.with_suffix(".preview.png")
    if not await asyncio.to_thread(png.is_file):
        try:
            await FaxPages.preview(pdf, png)
        except FaxPagesError as exc:
            raise AppError("preview-failed", f"could not draw the first page: {exc}", {}, 500) from exc
    return web.FileResponse(
        png, headers={"Content-Type": "image/png", "Cache-Control": "private, max-age=3600"}
    )


async def queue_job(request: web.Request) -> web.Response:
    """`{"number": "010...", "documents": ["101", "102"]}`: fax these documents to the number."""
    who = await supervisor(request, write=True)
    body = await json_body(request)
    number, documents = body.get("number"), body.get("documents")
    if not isinstance(number, str) or not isinstance(documents, list):
        raise BadRequest("give number (text) and documents (a list of catalogue codes)")
    job = await request.app[JOBS].queue(number, [str(d) for d in documents], f"{who.role}:{who.username}")
    return web.json_response(_view(job_view(job)), status=201)


async def resend_job(request: web.Request) -> web.Response:
    """A finished job sent again as a new job (404 unknown, 409 not finished)."""
    who = await supervisor(request, write=True)
    job = await request.app[JOBS].resend(request.match_info["job_id"], f"resend:{who.username}")
    return web.json_response(_view(job_view(job)), status=201)


async def list_jobs(request: web.Request) -> web.Response:
    await supervisor(request)
    jobs = await request.app[FAXES].jobs()
    return web.json_response(
        [_view(j | {"attempt_results": [_view(a) for a in j["attempt_results"]]}) for j in jobs]
    )


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/faxes", list_faxes)
        app.router.add_get(f"{prefix}/faxes/jobs", list_jobs)
        app.router.add_post(f"{prefix}/faxes/jobs", queue_job)
        app.router.add_post(f"{prefix}/faxes/jobs/{{job_id}}/resend", resend_job)
        app.router.add_get(f"{prefix}/faxes/{{fax_id}}/pdf", fax_pdf)
        app.router.add_get(f"{prefix}/faxes/{{fax_id}}/preview.png", fax_preview)
