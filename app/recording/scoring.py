"""QA evaluations over HTTP: score a recorded call with a form, amend (never edit) a score,
see the evaluators' spread on one call (calibration), and the agent's side: their evaluations,
acknowledged or disputed. The rules are app/domain/evaluation.py; the rows migration 013."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from app.adapters.recording_store import EvaluationRow, EvaluationStore, qa_report_rows
from app.calls.ports import Clock
from app.domain.access import Principal
from app.domain.evaluation import (
    AnswerError,
    Form,
    Question,
    Section,
    calibration,
    check_amendment,
    qa_report,
    score,
)
from app.recording.http import QA_ROLES, RECORDING_ROWS
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, NotFound, json_body


def form_json(form: Form) -> dict[str, Any]:
    data = dataclasses.asdict(form)
    data.pop("source", None)
    return data


def form_of_json(data: Mapping[str, Any]) -> Form:
    return Form(
        str(data["name"]),
        str(data["title"]),
        tuple(
            Section(str(s["title"]), tuple(Question(**q) for q in s["questions"])) for s in data["sections"]
        ),
    )


class Scoring:
    def __init__(self, forms: Mapping[str, Form], store: EvaluationStore, clock: Clock) -> None:
        self.forms = dict(forms)
        self.store = store
        self.clock = clock

    async def submit(
        self, recording: Mapping[str, Any], form_name: str, answers: Mapping[str, Any], comment: str, by: str,
        agent_id: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        form = self.forms.get(form_name)
        if form is None:
            raise BadRequest(f"no form {form_name!r}; forms: {', '.join(sorted(self.forms)) or 'none'}")
        agents = list(recording["agents"])
        agent = agent_id or (agents[-1] if agents else None)
        if agent is not None and agent not in agents:
            raise BadRequest(f"agent {agent} did not talk on this call")
        try:
            result = score(form, answers)
        except AnswerError as exc:
            raise BadRequest(str(exc)) from None
        row = EvaluationRow(
            id=str(uuid.uuid4()),
            recording_id=str(recording["id"]),
            interaction_id=str(recording["interaction_id"]),
            agent_id=agent,
            form_name=form.name,
            form=form_json(form),
            evaluator=by,
            answers=dict(answers),
            comment=comment,
            score=result.score,
            failed_critical=result.failed_critical,
            submitted_at=self.clock(),
        )
        await self.store.add(row)
        found = await self.store.get(row.id)
        assert found is not None
        return view(found)

    async def amend(
        self, evaluation_id: str, answers: Mapping[str, Any], why: str, by: str
    ) -> dict[str, Any]:
        data = await self.store.form_of(evaluation_id)
        if data is None:
            raise NotFound(f"no evaluation {evaluation_id}")
        try:
            check_amendment(why)
            result = score(form_of_json(data), answers)  # the form as it was when first scored
        except AnswerError as exc:
            raise BadRequest(str(exc)) from None
        await self.store.amend(
            evaluation_id, by, why, dict(answers), result.score, result.failed_critical, self.clock()
        )
        found = await self.store.get(evaluation_id)
        assert found is not None
        return view(found)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def view(e: Mapping[str, Any]) -> dict[str, Any]:
    amended = e["amended_at"] is not None
    return {
        "id": e["id"],
        "recording_id": e["recording_id"],
        "interaction_id": e["interaction_id"],
        "agent_id": e["agent_id"],
        "form": e["form_name"],
        "evaluator": e["evaluator"],
        "answers": e["amended_answers"] if amended else e["answers"],
        "comment": e["comment"],
        "score": e["score"],
        "failed_critical": list(e["amended_failed"] if amended else e["failed_critical"]),
        "submitted_at": _iso(e["submitted_at"]),
        "first_score": e["first_score"],
        "amended": None
        if not amended
        else {"by": e["amended_by"], "why": e["amended_why"], "at": _iso(e["amended_at"])},
        "acknowledged_at": _iso(e["acknowledged_at"]),
        "disputed": e["disputed"],
        "agent_comment": e["agent_comment"],
    }


SCORING = web.AppKey("scoring", Scoring)


def _qa(who: Principal) -> None:
    if who.role.value not in QA_ROLES:
        raise Forbidden("only QA staff and supervisors score calls")


def _answers(body: Mapping[str, Any]) -> dict[str, Any]:
    answers = body.get("answers")
    if not isinstance(answers, dict) or not all(isinstance(v, str | int) for v in answers.values()):
        raise BadRequest("answers: {question id: 'yes' | 'no' | 'na' | a number}")
    return answers


async def _recording(request: web.Request) -> dict[str, Any]:
    recording_id = request.match_info["recording_id"]
    try:
        uuid.UUID(recording_id)
    except ValueError:
        raise NotFound(f"no recording {recording_id}") from None
    row = await request.app[RECORDING_ROWS].get(recording_id)
    if row is None:
        raise NotFound(f"no recording {recording_id}")
    return row


def _evaluation_id(request: web.Request) -> str:
    evaluation_id = request.match_info["evaluation_id"]
    try:
        uuid.UUID(evaluation_id)
    except ValueError:
        raise NotFound(f"no evaluation {evaluation_id}") from None
    return evaluation_id


async def forms(request: web.Request) -> web.Response:
    _qa(await principal(request, write=False))
    return web.json_response([form_json(f) for f in request.app[SCORING].forms.values()])


async def submit(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    _qa(who)
    recording = await _recording(request)
    body = await json_body(request)
    agent = body.get("agent_id")
    evaluation = await request.app[SCORING].submit(
        recording,
        str(body.get("form", "")),
        _answers(body),
        str(body.get("comment", "")),
        who.username,
        agent_id=str(agent) if agent is not None else None,
    )
    return web.json_response(evaluation, status=201)


async def of_recording(request: web.Request) -> web.Response:
    _qa(await principal(request, write=False))
    recording = await _recording(request)
    rows = [view(e) for e in await request.app[SCORING].store.of_recording(recording["id"])]
    spread = calibration([float(e["score"]) for e in rows])
    return web.json_response({"evaluations": rows, "calibration": dataclasses.asdict(spread)})


async def amend(request: web.Request) -> web.Response:
    who = await principal(request, write=True)
    _qa(who)
    evaluation_id = _evaluation_id(request)
    found = await request.app[SCORING].store.get(evaluation_id)
    if found is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    if found["evaluator"] != who.username and who.role.value == "qa":
        raise Forbidden("only the evaluator (or a supervisor) amends an evaluation")
    body = await json_body(request)
    result = await request.app[SCORING].amend(
        evaluation_id, _answers(body), str(body.get("why", "")), who.username
    )
    return web.json_response(result)


async def mine(request: web.Request) -> web.Response:
    """The signed-in agent's evaluations."""
    who = await principal(request, write=False)
    if who.agent_id is None:
        raise Forbidden("only agents have evaluations of their own")
    rows = await request.app[SCORING].store.of_agent(who.agent_id)
    return web.json_response({"evaluations": [view(e) for e in rows]})


async def acknowledge(request: web.Request) -> web.Response:
    """The evaluated agent acknowledges, or disputes with a comment."""
    who = await principal(request, write=True)
    evaluation_id = _evaluation_id(request)
    scoring = request.app[SCORING]
    found = await scoring.store.get(evaluation_id)
    if found is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    if who.agent_id is None or who.agent_id != found["agent_id"]:
        raise Forbidden("only the agent evaluated acknowledges an evaluation")
    body = await json_body(request)
    disputed = body.get("dispute", False)
    comment = body.get("comment", "")
    if not isinstance(disputed, bool) or not isinstance(comment, str):
        raise BadRequest("expected {'dispute': true|false, 'comment': text}")
    if disputed and not comment.strip():
        raise BadRequest("a dispute says why (comment)")
    await scoring.store.acknowledge(evaluation_id, disputed, comment, scoring.clock())
    again = await scoring.store.get(evaluation_id)
    assert again is not None
    return web.json_response(view(again))


async def report(request: web.Request) -> web.Response:
    """Per agent or queue (`by`), the last `weeks` weeks: evaluations, mean, failures, trend."""
    _qa(await principal(request, write=False))
    by = request.query.get("by", "agent")
    if by not in ("agent", "queue"):
        raise BadRequest("by: agent or queue")
    try:
        weeks = int(request.query.get("weeks", "8"))
    except ValueError:
        raise BadRequest("weeks: a whole number") from None
    scoring = request.app[SCORING]
    since = scoring.clock() - timedelta(weeks=max(1, min(weeks, 104)))
    rows = await qa_report_rows(scoring.store.pool, by, since)
    return web.json_response({"by": by, "since": since.isoformat(), "rows": qa_report(rows)})


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/qa/forms", forms)
        app.router.add_get(f"{prefix}/qa/report", report)
        app.router.add_post(f"{prefix}/recordings/{{recording_id}}/evaluations", submit)
        app.router.add_get(f"{prefix}/recordings/{{recording_id}}/evaluations", of_recording)
        app.router.add_post(f"{prefix}/evaluations/{{evaluation_id}}/amend", amend)
    app.router.add_get("/panel/api/evaluations/mine", mine)
    app.router.add_post("/panel/api/evaluations/{evaluation_id}/acknowledge", acknowledge)
