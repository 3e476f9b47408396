"""Recordings over HTTP: search, replay and download, the retention job (the QA desk's page is
app/recording/desk.py).

Who may hear what is `app/domain/recording.may_listen`: QA staff, supervisors and admins every
recording; an agent only their own calls' and only where `recording.agents_hear_own` is set.
Every listen and download, and every refused attempt, is a `recording_access` row. A player
asks for the file in pieces (HTTP ranges, to seek): only the request that starts at the top
of the file counts as a listen.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from app.adapters.recording_store import RecordingStore, Search
from app.adapters.transcript_store import TranscriptStore
from app.domain.access import SUPERVISING_ROLES, Principal
from app.domain.ivr_flow import FlowSet
from app.domain.recording import may_listen
from app.domain.transcript import search_terms
from app.errors import AppError
from app.recording.service import RecordingService
from app.recording.transcripts import Transcripts
from app.web.auth import Forbidden, principal
from app.web.http import SETTINGS, BadRequest, NotFound

RECORDINGS = web.AppKey("recordings", RecordingService)
RECORDING_ROWS = web.AppKey("recording_rows", RecordingStore)
TRANSCRIPT_LINES = web.AppKey("transcript_lines", TranscriptStore)
TRANSCRIPTS = web.AppKey("transcripts", Transcripts)  # only where recording.transcripts is on
# The IVR flows in use now (a reload replaces them): their labels name the caller's choices.
CALL_FLOWS: web.AppKey[Callable[[], FlowSet | None]] = web.AppKey("call_flows")

QA_ROLES = frozenset({"qa", "supervisor", "admin"})


def may_search(request: web.Request, who: Principal) -> str | None:
    """None: every recording; an agent id: only that agent's; Forbidden otherwise."""
    if who.role.value in QA_ROLES:
        return None
    if who.agent_id is not None and request.app[SETTINGS].recording.agents_hear_own:
        return who.agent_id
    raise Forbidden("the QA desk is for QA staff and supervisors")


def _date(value: str | None, field: str, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{field}: a date (2026-12-03) or a time (2026-12-03T10:00:00+00:00)") from None
    if end and len(value) == 10:  # a whole day: up to its end
        if at.date() == date.max:
            raise BadRequest(f"{field}: a day before {date.max}")
        at += timedelta(days=1)
    return at


def _number(value: str | None, field: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{field}: a number") from None
    if not math.isfinite(number):  # nan and inf parse, but are no figure to search by
        raise BadRequest(f"{field}: a finite number, not {value!r}")
    return number


def _limit(value: str | None) -> int:
    if not value:
        return 100
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"limit: a whole number, not {value!r}") from None


def search_of(request: web.Request, only_agent: str | None) -> Search:
    q = request.query
    return Search(
        since=_date(q.get("since"), "since"),
        until=_date(q.get("until"), "until", end=True),
        agent=q.get("agent") or None,
        queue=q.get("queue") or None,
        campaign=q.get("campaign") or None,
        ani=q.get("ani") or None,
        disposition=q.get("disposition") or None,
        min_s=_number(q.get("min_s"), "min_s"),
        max_s=_number(q.get("max_s"), "max_s"),
        min_score=_number(q.get("min_score"), "min_score"),
        max_score=_number(q.get("max_score"), "max_score"),
        only_agent=only_agent,
        words=tuple(search_terms(q.get("words", ""))),
        limit=_limit(q.get("limit")),
    )


def view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "interaction_id": row["interaction_id"],
        "direction": row["direction"],
        "queue": row["queue"],
        "campaign": row["campaign"],
        "ani": row["ani"],
        "agents": list(row["agents"]),
        "started_at": row["started_at"].isoformat(),
        "duration_s": row["duration_ms"] / 1000,
        "channels": row["channels"],
        "sample_rate": row["sample_rate"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "spans": row["spans"],
        "rule": row["rule"],
        "retention_days": row["retention_days"],
        "disposition": row["disposition"],
        "outcome": row["outcome"],
        "score": row["score"],
        "part": row["part"],
    }


def voicemail_view(row: dict[str, Any]) -> dict[str, Any]:
    """A message as the QA desk shows it, with its call's recordings and agents."""
    return {
        "id": row["id"],
        "interaction_id": row["interaction_id"],
        "ani": row["ani"],
        "queue": row["queue"],
        "recorded_at": row["recorded_at"].isoformat(),
        "duration_s": row["duration_s"],
        "size_bytes": row["size_bytes"],
        "disposition": row["disposition"],
        "outcome": row["outcome"],
        "recordings": list(row["recordings"]),
        "agents": list(row["agents"]),
    }


async def with_voicemails(request: web.Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each recording's view, with the ids of the messages left on the same call."""
    linked = await request.app[RECORDING_ROWS].voicemails_of(sorted({r["interaction_id"] for r in rows}))
    return [{**view(r), "voicemails": [v["id"] for v in linked.get(r["interaction_id"], [])]} for r in rows]


async def search(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    only = may_search(request, who)
    rows = await request.app[RECORDING_ROWS].search(search_of(request, only))
    return web.json_response({"recordings": await with_voicemails(request, rows)})


async def search_voicemails(request: web.Request) -> web.Response:
    """Messages by the desk's filters (a call that only left a message has no recording)."""
    who = await principal(request, write=False)
    only = may_search(request, who)
    rows = await request.app[RECORDING_ROWS].search_voicemails(search_of(request, only))
    return web.json_response({"voicemails": [voicemail_view(r) for r in rows]})


async def allowed_voicemail(request: web.Request, who: Principal, action: str | None) -> dict[str, Any]:
    """The message if `who` may hear it, by the recordings' rule (the agents who talked on its
    call are its parties); audited like a recording, with kind "voicemail"."""
    return await allowed(request, who, action, "voicemail", request.match_info["voicemail_id"])


async def voicemail_detail(request: web.Request) -> web.Response:
    """The message's metadata, its call's recordings and (for QA and supervisors) its access log."""
    who = await principal(request, write=False)
    row = await allowed_voicemail(request, who, None)
    out = voicemail_view(row)
    if who.role.value in QA_ROLES:
        log = await request.app[RECORDING_ROWS].access_log(row["id"], kind="voicemail")
        out["access"] = [{**a, "at": a["at"].isoformat()} for a in log]
    return web.json_response(out)


async def voicemail_audio(request: web.Request) -> web.StreamResponse:
    """The message's WAV for the desk's player (HTTP ranges); audited as a recording is."""
    who = await principal(request, write=False)
    download = request.query.get("download") == "1"
    try:
        first_piece = request.http_range.start in (None, 0)
    except ValueError as exc:
        raise AppError("range-not-satisfiable", f"Range: {exc}", {}, 416) from exc
    action = ("download" if download else "listen") if first_piece else None
    row = await allowed_voicemail(request, who, action)
    path = Path(row["file_path"])
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("the voicemail's file is gone")
    disposition = "attachment" if download else "inline"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Cache-Control": "no-store",
            "Content-Disposition": f'{disposition}; filename="voicemail-{row["interaction_id"]}.wav"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _allowed_row(request: web.Request, who: Principal, action: str | None) -> dict[str, Any]:
    return await allowed(request, who, action, "recording", request.match_info["recording_id"])


async def allowed(
    request: web.Request, who: Principal, action: str | None, kind: str, item_id: str
) -> dict[str, Any]:
    """The recording or message (`kind`) if `who` may hear it; refusals, and grants for an
    `action` (listen, download), are in the audit log. One rule for both: `may_listen`."""
    try:
        uuid.UUID(item_id)
    except ValueError:
        raise NotFound(f"no {kind} {item_id}") from None
    rows = request.app[RECORDING_ROWS]
    row = await (rows.voicemail(item_id) if kind == "voicemail" else rows.get(item_id))
    if row is None:
        raise NotFound(f"no {kind} {item_id}")
    may = may_listen(
        role=who.role.value,
        agent_id=who.agent_id,
        parties=row["agents"],
        agents_hear_own=request.app[SETTINGS].recording.agents_hear_own,
    )
    if action is not None or not may:
        await rows.audit(
            item_id, who.username, who.role.value, action or "listen", may, request.remote or "", kind=kind
        )
    if not may:
        raise Forbidden(f"you may not hear this {kind}")
    return row


async def detail(request: web.Request) -> web.Response:
    """The recording's metadata, whether its file is still what was written, and (for
    supervisors and QA) who has listened to it."""
    who = await principal(request, write=False)
    row = await _allowed_row(request, who, None)
    service = request.app[RECORDINGS]
    out = view(row)
    out["checksum_ok"] = await service.verify(row["path"], row["sha256"])
    if who.role.value in QA_ROLES:
        out["access"] = [
            {**a, "at": a["at"].isoformat()} for a in await request.app[RECORDING_ROWS].access_log(row["id"])
        ]
    return web.json_response(out)


async def audio(request: web.Request) -> web.StreamResponse:
    who = await principal(request, write=False)
    download = request.query.get("download") == "1"
    try:
        first_piece = request.http_range.start in (None, 0)
    except ValueError as exc:  # the same answer aiohttp's FileResponse gives a Range it cannot read
        raise AppError("range-not-satisfiable", f"Range: {exc}", {}, 416) from exc
    row = await _allowed_row(request, who, ("download" if download else "listen") if first_piece else None)
    path = request.app[RECORDINGS].path_of(row["path"])
    if not path.exists():
        raise NotFound("the recording's file is gone")
    disposition = "attachment" if download else "inline"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Cache-Control": "no-store",
            "Content-Disposition": f'{disposition}; filename="{row["interaction_id"]}.wav"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def waveform(request: web.Request) -> web.Response:
    """Each side's level per 100 ms, for the player's waveform (not audited: no sound)."""
    who = await principal(request, write=False)
    row = await _allowed_row(request, who, None)
    return web.json_response(await request.app[RECORDING_ROWS].waveform(row["id"]) or {})


def behind(app: web.Application) -> dict[str, Any] | None:
    """How far behind transcripts are; None where they are off."""
    if TRANSCRIPTS not in app:
        return None
    b = app[TRANSCRIPTS].behind
    return {"waiting": b.waiting, "oldest_wait_s": b.oldest_wait_s}


async def transcript_of(
    app: web.Application, recording_id: str, part: str = "conversation"
) -> dict[str, Any]:
    """The lines, each with who spoke: the caller, or the center's side (the agent; in the IVR
    part, the IVR's prompts)."""
    store = app[TRANSCRIPT_LINES]
    center = "IVR" if part == "ivr" else "Agent"
    job = await store.job(recording_id)
    return {
        "recording_id": recording_id,
        "state": job["state"] if job else "none",
        "error": job["error"] if job else "",
        "engine": job["engine"] if job else None,
        "lines": [
            {**line, "who": "Caller" if line["side"] == "caller" else center}
            for line in await store.lines(recording_id)
        ],
        "behind": behind(app),
    }


async def transcript(request: web.Request) -> web.Response:
    """What each side said, line by line, with times (not audited as a listen: the same rights)."""
    who = await principal(request, write=False)
    row = await _allowed_row(request, who, None)
    return web.json_response(await transcript_of(request.app, row["id"], row["part"]))


async def retention(request: web.Request) -> web.Response:
    """Run the retention job now (supervisors, admins, the token)."""
    who = await principal(request, write=True)
    if who.role not in SUPERVISING_ROLES:
        raise Forbidden("only supervisors and admins run the retention job")
    deleted = await request.app[RECORDINGS].run_retention()
    return web.json_response({"deleted": deleted})


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/recordings", search)
        app.router.add_get(f"{prefix}/recordings/{{recording_id}}", detail)
        app.router.add_get(f"{prefix}/recordings/{{recording_id}}/audio", audio)
        app.router.add_get(f"{prefix}/recordings/{{recording_id}}/waveform", waveform)
        app.router.add_get(f"{prefix}/recordings/{{recording_id}}/transcript", transcript)
        app.router.add_post(f"{prefix}/recordings/retention", retention)
        app.router.add_get(f"{prefix}/qa/voicemails", search_voicemails)
        app.router.add_get(f"{prefix}/qa/voicemails/{{voicemail_id}}", voicemail_detail)
        app.router.add_get(f"{prefix}/qa/voicemails/{{voicemail_id}}/audio", voicemail_audio)
