"""Fax from the agent's call box: catalogue documents and an uploaded PDF to the caller's fax,
during the call or after it, and the job's result live in the same box.

`POST /panel/api/interactions/<id>/faxes` (multipart: `number`, one `documents` per catalogue
code, an optional `pdf` file) queues an outbound job (app/fax/jobs.py) linked to the call: the
number goes through the one outbound policy there, the call's journey gets `fax_job_queued` and
later `fax_job_finished`. Only an agent who handled the call (or is on it) may send, and
supervisors (app/domain/fax.py, `may_fax_for`). `GET` on the same path lists the call's jobs;
`FaxBoxWatch` pushes each change of a job to the sending agent's panels (`{"type": "fax_job"}`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from app.adapters.fax_store import job_view
from app.bus import FaxJobChanged
from app.domain.access import Principal
from app.domain.agent_state import AgentState
from app.domain.fax import may_fax_for
from app.errors import AppError
from app.fax.box import fax_section
from app.fax.http import FAXES, JOBS
from app.fax.uploads import FaxUploads
from app.panel.i18n import Lang
from app.panel.live import LiveHub
from app.panel.pop import POPS
from app.routing.http import DESK
from app.web.auth import Forbidden, session_of, writing_session
from app.web.http import SETTINGS, NotFound

log = logging.getLogger(__name__)

UPLOADS = web.AppKey("fax_uploads", FaxUploads)
# The agent's states in which the call they hold is theirs to fax to (the desk knows it before
# the interaction's row does).
_WORKING = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})


def jsonable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in view.items()}


class FaxBoxWatch:
    """Follows fax jobs (the bus) and tells the agent who sent one how it goes."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    def job_changed(self, notice: FaxJobChanged) -> None:
        job = notice.job
        if job.agent_id is None or job.interaction_id is None:
            return
        sent = self.hub.push(job.agent_id, {"type": "fax_job", "job": jsonable(job_view(job))})
        log.debug("fax job %s (%s): agent %s told (%d)", job.id, job.status, job.agent_id, sent)


async def _may_fax(request: web.Request, who: Principal) -> str:
    """The interaction's id, once `who` may fax to its caller: 404 unknown, 403 not theirs."""
    raw = request.match_info["interaction_id"]
    try:
        interaction_id = str(uuid.UUID(raw))
    except ValueError:
        raise NotFound(f"no interaction {raw!r}") from None
    owner = await request.app[POPS].store.owner(interaction_id)
    if owner is None:
        raise NotFound(f"no interaction {interaction_id}")
    agent = request.app[DESK].agents.get(who.agent_id) if who.agent_id else None
    holds = agent is not None and agent.interaction_id == interaction_id and agent.state in _WORKING
    if not may_fax_for(who, owner.handled_by, holds):
        raise Forbidden("agents may fax only to the callers of calls they handled")
    return interaction_id


async def list_call_faxes(request: web.Request) -> web.Response:
    """The fax jobs sent from this call's box, oldest first."""
    session = await session_of(request)
    interaction_id = await _may_fax(request, session.principal)
    jobs = await request.app[FAXES].jobs_of(interaction_id)
    return web.json_response([jsonable(job_view(j)) for j in jobs])


async def send_call_fax(request: web.Request) -> web.Response:
    """Queue a fax to this call's customer: catalogue codes and/or one uploaded PDF."""
    who: list[Principal] = []
    checked: list[str] = []

    async def authorize(fields: Any) -> None:
        session = await writing_session(request, fields)
        checked.append(await _may_fax(request, session.principal))
        who.append(session.principal)

    uploads, jobs = request.app[UPLOADS], request.app[JOBS]
    form = await uploads.read_form(request, authorize)
    try:
        number = form.fields.get("number", "").strip()
        codes = [c.strip() for c in form.fields.getall("documents", []) if c.strip()]
        jobs.check(number, codes, 1 if form.file is not None else 0)  # before the upload is converted
        upload = await uploads.accept(form)
        principal, interaction_id = who[0], checked[0]
        job = await jobs.queue(
            number,
            codes,
            f"{principal.role}:{principal.username}",
            uploads=[upload] if upload else [],
            interaction_id=interaction_id,
            agent_id=principal.agent_id,
        )
    except AppError:
        form.discard()  # nothing queued: the upload goes too
        raise
    log.info(
        "interaction %s: %s faxes %s to %s (job %s)",
        interaction_id,
        principal.username,
        ", ".join(job.contents),
        number,
        job.id,
    )
    return web.json_response(jsonable(job_view(job)), status=201)


def call_box_part(request: web.Request, lang: Lang) -> str:
    """ "Send by fax" in the agent's call box, when the center can fax out at all."""
    jobs = request.app.get(JOBS)
    if jobs is None or not jobs.can_dial:
        return ""
    return fax_section(lang, jobs.catalogue.documents, request.app[SETTINGS].fax.max_upload_mb)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/api/interactions/{interaction_id}/faxes", list_call_faxes)
    app.router.add_post("/panel/api/interactions/{interaction_id}/faxes", send_call_fax)
