"""The fax desk's page (/faxes) for supervisors and admins, and its two form posts: fax catalogue
documents to a number, and resend a job. The markup is app/panel/fax_pages.py; the JSON API,
the PDFs and the previews are app/fax/http.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from app.domain.access import may_supervise
from app.domain.fax import FaxJob
from app.errors import AppError
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
    """`number` and one `documents` field per chosen code: a new job; back to the page, which
    says what was queued or, beside the form, why not."""
    form = await form_body(request)
    session = await _supervisor(request, form)
    number = str(form.get("number", "")).strip()
    codes = [str(c) for c in form.getall("documents", [])]
    who = session.principal
    return await _queued(request, lambda jobs: jobs.queue(number, codes, f"{who.role}:{who.username}"))


async def resend(request: web.Request) -> web.Response:
    """A finished job's documents to its number again (app/fax/jobs.py decides)."""
    form = await form_body(request)
    session = await _supervisor(request, form)
    by = f"resend:{session.principal.username}"
    return await _queued(request, lambda jobs: jobs.resend(request.match_info["job_id"], by))


async def _supervisor(request: web.Request, form: MultiDictProxy[Any]) -> PanelSession:
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
    sent = fax_pages.text(lang, "queued", documents=", ".join(job.documents), number=job.number)
    return see_other("/faxes?" + urlencode({"sent": sent}))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/faxes", faxes_page)
    app.router.add_post("/faxes/send", send)
    app.router.add_post("/faxes/jobs/{job_id}/resend", resend)
