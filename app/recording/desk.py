"""The QA desk's page (/qa): search, the player, and scoring the call being played with a form
(a plain form post, /qa/evaluate, so it works without script). The markup is
app/panel/qa_pages.py; the JSON API is app/recording/http.py and app/recording/scoring.py."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from app.domain.access import Principal
from app.domain.call_review import ivr_path, transfer_marks
from app.domain.evaluation import QA_BY, calibration, qa_trend_columns
from app.domain.screen_pop import EventRecord
from app.errors import AppError
from app.panel import qa_pages
from app.panel.http import html, language, redirect_to_login, see_other, user_line
from app.panel.pages import client_texts
from app.recording.http import (
    CALL_FLOWS,
    QA_ROLES,
    RECORDING_ROWS,
    allowed,
    behind,
    may_search,
    search_of,
    transcript_of,
    view,
    voicemail_view,
    with_voicemails,
)
from app.recording.scoring import SCORING, report_query
from app.recording.scoring import view as evaluation_view
from app.web.auth import Forbidden, NotSignedIn, SessionExpired, session_of, writing_session
from app.web.http import SETTINGS, BadRequest, form_body


async def qa_page(request: web.Request) -> web.Response:
    try:
        session = await session_of(request)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    lang = language(request)
    who = session.principal
    line = user_line(lang, session)
    store = request.app[RECORDING_ROWS]
    try:
        only = may_search(request, who)
        search = search_of(request, only)
        rows = await with_voicemails(request, await store.search(search))
        # A call that only left a message (no recording) is found by the same filters.
        alone = [
            {**voicemail_view(v), "kind": "voicemail"}
            for v in await store.search_voicemails(search)
            if not v["recordings"]
        ]
        playing_voicemail = await _voicemail_to_play(request, who)
    except AppError as exc:
        return html(request, qa_pages.message(lang, session.csrf_token, line, exc.message), exc.http_status)
    results = sorted(
        [*rows, *alone], key=lambda r: str(r.get("started_at") or r.get("recorded_at")), reverse=True
    )[: search.limit]
    filters = {k: request.query.get(k, "") for k in qa_pages.FILTERS}
    playing = next((r for r in rows if r["id"] == request.query.get("play")), None)
    voicemails: list[dict[str, Any]] = []
    if playing is not None and playing["voicemails"]:
        linked = await store.voicemails_of([playing["interaction_id"]])
        voicemails = [voicemail_view(v) for v in linked.get(playing["interaction_id"], [])]
    scoring: dict[str, Any] | None = None
    if playing is not None and who.role.value in QA_ROLES:
        desk = request.app[SCORING]
        evaluations = [evaluation_view(e) for e in await desk.store.of_recording(playing["id"])]
        forms = list(desk.forms.values())
        chosen = next((f for f in forms if f.name == request.query.get("form")), forms[0] if forms else None)
        scoring = {
            "form": chosen,
            "forms": [f.name for f in forms],
            "evaluations": evaluations,
            "calibration": dataclasses.asdict(calibration([float(e["score"]) for e in evaluations])),
            "message": request.query.get("scored", ""),
        }
    transcript = (
        await transcript_of(request.app, playing["id"], playing["part"]) if playing is not None else None
    )
    if playing is not None:
        playing = {**playing, **await _call_review(request, playing, lang)}
    page = qa_pages.qa_page(
        lang,
        session.csrf_token,
        line,
        filters,
        results,
        playing,
        scoring,
        voicemails=voicemails,
        playing_voicemail=playing_voicemail,
        transcript=transcript,
        behind=behind(request.app),
    )
    return html(request, page)


async def _call_review(request: web.Request, playing: dict[str, Any], lang: str) -> dict[str, Any]:
    """Beside the player: the call's transfers (marks on its time line), the caller's way
    through the IVR by the flow's labels, and the agent's wrap-up code with its label."""
    rows = await request.app[RECORDING_ROWS].events_of(playing["interaction_id"])
    events = [EventRecord(at, kind, data) for at, kind, data in rows]
    started = datetime.fromisoformat(playing["started_at"])
    flows = request.app[CALL_FLOWS]() if CALL_FLOWS in request.app else None
    path = ivr_path(events, flows, lang)
    code = playing["disposition"]
    named = next((c for c in request.app[SETTINGS].web.wrap_up_codes if c.code == code), None)
    return {
        "transfers": [dataclasses.asdict(m) for m in transfer_marks(events, started, playing["duration_s"])],
        "ivr_path": dataclasses.asdict(path),
        "disposition_label": ((named.zh if lang == "zh" else "") or named.en) if named else None,
    }


async def _voicemail_to_play(request: web.Request, who: Principal) -> dict[str, Any] | None:
    """`?voicemail=<id>`: the message to put in the player, if `who` may hear it (the audio's
    fetch is what the audit log records, as for a recording; a refusal is recorded here)."""
    voicemail_id = request.query.get("voicemail")
    if not voicemail_id:
        return None
    row = await allowed(request, who, None, "voicemail", voicemail_id)
    found = [await request.app[RECORDING_ROWS].get(r) for r in row["recordings"]]
    return {**voicemail_view(row), "call_recordings": [view(r) for r in found if r is not None]}


async def report_page(request: web.Request) -> web.Response:
    """The QA report (/qa/report): per agent or queue, per week or day, with its trend chart,
    its tables and their CSV. A period that cannot be read shows the default, and says why."""
    try:
        session = await session_of(request)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    lang = language(request)
    who = session.principal
    line = user_line(lang, session)
    if who.role.value not in QA_ROLES:
        text = "the QA report is for QA staff and supervisors"
        return html(request, qa_pages.message(lang, session.csrf_token, line, text), 403)
    scoring = request.app[SCORING]
    notice = ""
    try:
        by, per, first, last = report_query(request)
        report = await scoring.trend(by, per, first, last)
    except BadRequest as exc:
        notice = exc.message
        asked = request.query.get("by", "agent")
        report = await scoring.trend(asked if asked in QA_BY else "agent", "week", None, None)
    columns = qa_trend_columns(str(report["by"]))
    page = qa_pages.report_page(
        lang, session.csrf_token, line, report, columns, client_texts(lang, ()), notice
    )
    return html(request, page)


async def evaluate(request: web.Request) -> web.Response:
    """The scoring form of the player: answers as `q.<question id>` fields."""
    form = await form_body(request)
    try:
        session = await writing_session(request, form)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    who = session.principal
    if who.role.value not in QA_ROLES:
        raise Forbidden("only QA staff and supervisors score calls")
    recording_id = str(form.get("recording", ""))
    row = await request.app[RECORDING_ROWS].get(recording_id) if len(recording_id) == 36 else None
    if row is None:
        raise BadRequest(f"no recording {recording_id}")
    answers: dict[str, Any] = {}
    for key, value in form.items():
        if key.startswith("q.") and isinstance(value, str):
            answers[key[2:]] = int(value) if value.isdigit() else value
    back = {"play": recording_id, "ani": str(form.get("ani", "")), "form": str(form.get("form", ""))}
    try:
        result = await request.app[SCORING].submit(
            row, str(form.get("form", "")), answers, str(form.get("comment", "")), who.username
        )
    except BadRequest as exc:
        back["scored"] = exc.message
    else:
        back["scored"] = f"{result['score']:g}"
    return see_other("/qa?" + urlencode({k: v for k, v in back.items() if v}))


async def mine_page(request: web.Request) -> web.Response:
    """The signed-in agent's evaluations (/qa/mine)."""
    try:
        session = await session_of(request)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    lang = language(request)
    who = session.principal
    line = user_line(lang, session)
    if who.agent_id is None:
        return html(
            request, qa_pages.message(lang, session.csrf_token, line, "only agents have evaluations"), 403
        )
    rows = [evaluation_view(e) for e in await request.app[SCORING].store.of_agent(who.agent_id)]
    return html(request, qa_pages.mine_page(lang, session.csrf_token, line, rows))


async def answer(request: web.Request) -> web.Response:
    """The agent acknowledges an evaluation, or disputes it with a comment."""
    form = await form_body(request)
    try:
        session = await writing_session(request, form)
    except (NotSignedIn, SessionExpired) as exc:
        return redirect_to_login(request, exc)
    who = session.principal
    scoring = request.app[SCORING]
    evaluation_id = str(form.get("evaluation", ""))
    found = await scoring.store.get(evaluation_id) if len(evaluation_id) == 36 else None
    if found is None:
        raise BadRequest(f"no evaluation {evaluation_id}")
    if who.agent_id is None or who.agent_id != found["agent_id"]:
        raise Forbidden("only the agent evaluated acknowledges an evaluation")
    disputed = form.get("dispute") == "1"
    comment = str(form.get("comment", "")).strip()
    if disputed and not comment:
        raise BadRequest("a dispute says why (comment)")
    await scoring.store.acknowledge(evaluation_id, disputed, comment, scoring.clock())
    return see_other("/qa/mine")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/qa", qa_page)
    app.router.add_post("/qa/evaluate", evaluate)
    app.router.add_get("/qa/mine", mine_page)
    app.router.add_get("/qa/report", report_page)
    app.router.add_post("/qa/mine/answer", answer)
