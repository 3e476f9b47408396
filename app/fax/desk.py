"""The fax desk's page (/faxes) for supervisors and admins, and its two form posts: fax catalogue
documents to a number, and resend a job. The markup is app/panel/fax_pages.py; the JSON API,
the PDFs and the previews are app/fax/http.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from app.domain.access import may_supervise
from app.domain.fax import FaxJob
from app.errors import AppError
from app.fax.agent import UPLOADS
from app.fax.http import FAXES, JOBS
from app.fax.jobs import FaxJobs
from app.panel import fax_pages
from app.panel.http import for_supervisors, html, language, see_other, user_line
from app.panel.i18n import Lang
from app.web.auth import Forbidden, PanelSession, writing_session
from app.web.http import form_body


@for_supervisors("faxes")
async def faxes_page(request: web.Request, session: PanelSession, lang: Lang) -> web.Response:
    store, jobs = request.app[FAXES], request.app[JOBS]
    page = fax_pages.faxes_page(
        lang,
        session.csrf_token,
        user_line(lang, session),
        await store.recent(),
        await store.jobs(),
        jobs.catalogue.documents,
        message=request.query.get("sent", ""),
        error=request.query.get("error", ""),
    )
    return html(request, page)


async def send(request: web.Request) -> web.Response:
    """`number`, one `documents` field per chosen code and an optional `pdf` file: a new job;
    back to the page, which says what was queued or, beside the form, why not (a bad upload
    included: nothing is queued then)."""
    signed_in: list[PanelSession] = []

    async def authorize(fields: Any) -> None:
        signed_in.append(await _supervisor(request, fields))

    uploads = request.app[UPLOADS]
    try:
        form = await uploads.read_form(request, authorize)
    except AppError as exc:
        if not signed_in:  # who is asking was refused: as JSON, like every other refusal
            raise
        return see_other("/faxes?" + urlencode({"error": exc.message}))  # the file: beside the form
    who = signed_in[0].principal
    number = str(form.fields.get("number", "")).strip()
    codes = [c for c in form.fields.getall("documents", []) if c]

    async def make(jobs: FaxJobs) -> FaxJob:
        jobs.check(number, codes, 1 if form.file is not None else 0)
        upload = await uploads.accept(form)
        return await jobs.queue(
            number, codes, f"{who.role}:{who.username}", uploads=[upload] if upload else []
        )

    answer = await _queued(request, make)
    if "error=" in answer.headers.get("Location", ""):
        form.discard()  # nothing was queued: the upload goes too
    return answer


async def resend(request: web.Request) -> web.Response:
    """A finished job's documents to its number again (app/fax/jobs.py decides)."""
    form = await form_body(request)
    session = await _supervisor(request, form)
    by = f"resend:{session.principal.username}"
    return await _queued(request, lambda jobs: jobs.resend(request.match_info["job_id"], by))


async def _supervisor(request: web.Request, form: Mapping[str, Any]) -> PanelSession:
    session = await writing_session(request, form)
    if not may_supervise(session.principal):
        raise Forbidden("only supervisors and admins may send faxes")
    return session


async def _queued(request: web.Request, make: Callable[[FaxJobs], Awaitable[FaxJob]]) -> web.Response:
    """Queue the job (the outbound policy, the catalogue and the daily limit decide) and go back
    to the page with what happened."""
    try:
        job = await make(request.app[JOBS])
    except AppError as exc:
        return see_other("/faxes?" + urlencode({"error": exc.message}))
    lang = language(request)
    sent = fax_pages.text(lang, "queued", documents=", ".join(job.contents), number=job.number)
    return see_other("/faxes?" + urlencode({"sent": sent}))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/faxes", faxes_page)
    app.router.add_post("/faxes/send", send)
    app.router.add_post("/faxes/jobs/{job_id}/resend", resend)
