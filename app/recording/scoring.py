"""QA evaluations over HTTP: score a recorded call with a form, amend (never edit) a score,
see the evaluators' spread on one call (calibration), and the agent's side: their evaluations,
acknowledged or disputed. The rules are app/domain/evaluation.py; the rows migration 013."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from app.adapters.recording_store import EvaluationRow, EvaluationStore, qa_trend_rows
from app.calls.ports import Clock
from app.domain.access import Principal
from app.domain.evaluation import (
    QA_BY,
    QA_PERIODS,
    AnswerError,
    Form,
    Question,
    Section,
    calibration,
    check_amendment,
    qa_trend,
    qa_trend_columns,
    score,
)
from app.recording.http import QA_ROLES, RECORDING_ROWS
from app.supervision.http import csv_response
from app.web.auth import Forbidden, principal
from app.web.http import BadRequest, NotFound, json_body

UTC_ZONE = ZoneInfo("UTC")


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


REPORT_MAX_DAYS = 366  # the longest period one QA report covers
REPORT_DEFAULT_WEEKS = 8


class Scoring:
    def __init__(
        self,
        forms: Mapping[str, Form],
        store: EvaluationStore,
        clock: Clock,
        zone: ZoneInfo = UTC_ZONE,
    ) -> None:
        """`zone`: the center's time zone, in which the QA report's days and weeks run."""
        self.forms = dict(forms)
        self.store = store
        self.clock = clock
        self.zone = zone

    def report_period(self, first: date | None, last: date | None) -> tuple[date, date]:
        """The days asked for: by default the last 8 weeks up to today (the center's today)."""
        for day in (first, last):
            if day is not None and not 1970 <= day.year <= 9998:  # before any date arithmetic
                raise BadRequest(f"a QA report's days are from 1970 to 9998, not {day}")
        last = last or self.clock().astimezone(self.zone).date()
        first = first or max(
            date(1970, 1, 1), last - timedelta(weeks=REPORT_DEFAULT_WEEKS) + timedelta(days=1)
        )
        if last < first:
            raise BadRequest(f"the period ends ({last}) before it starts ({first})")
        if (last - first).days >= REPORT_MAX_DAYS:
            raise BadRequest(f"a QA report covers at most {REPORT_MAX_DAYS} days")
        return first, last

    async def trend(self, by: str, per: str, first: date | None, last: date | None) -> dict[str, Any]:
        """Per agent or queue and per week or day of the center's time zone: evaluations, mean
        score, critical failures and disputes (app/domain/evaluation.py `qa_trend`)."""
        first, last = self.report_period(first, last)

        def midnight(day: date) -> datetime:
            return datetime(day.year, day.month, day.day, tzinfo=self.zone)

        rows = await qa_trend_rows(
            self.store.pool, by, per, midnight(first), midnight(last + timedelta(days=1)), str(self.zone)
        )
        # A year per day and agent is tens of thousands of rows: folded off the loop.
        report = await asyncio.to_thread(qa_trend, rows, by)
        return {
            "by": by,
            "per": per,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "timezone": str(self.zone),
            **report,
        }

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


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        raise BadRequest(f"{name} is a day written YYYY-MM-DD, not {raw!r}") from None


def report_query(request: web.Request) -> tuple[str, str, date | None, date | None]:
    """`by` (agent, queue), `per` (week, day), `from`, `to` (days in the center's time zone)."""
    by = request.query.get("by", "agent")
    if by not in QA_BY:
        raise BadRequest("by: agent or queue")
    per = request.query.get("per", "week")
    if per not in QA_PERIODS:
        raise BadRequest("per: week or day")
    return by, per, _day(request, "from"), _day(request, "to")


async def report(request: web.Request) -> web.StreamResponse:
    """The QA report: per agent or queue and per week or day, JSON or `format=csv`
    (`table=totals`: one line per agent or queue)."""
    _qa(await principal(request, write=False))
    by, per, first, last = report_query(request)
    result = await request.app[SCORING].trend(by, per, first, last)
    if request.query.get("format") == "csv":
        tables = qa_trend_columns(by)
        table = request.query.get("table", "rows")
        if table not in tables:
            raise BadRequest(f"table is one of {', '.join(tables)}")
        suffix = "" if table == "rows" else f"-{table}"
        name = f"qa-{by}-{per}{suffix}-{result['from']}-{result['to']}.csv"
        return csv_response(result[table], tables[table], name)
    return web.json_response(result)


def add_routes(app: web.Application) -> None:
    for prefix in ("/api", "/panel/api"):
        app.router.add_get(f"{prefix}/qa/forms", forms)
        app.router.add_get(f"{prefix}/qa/report", report)
        app.router.add_post(f"{prefix}/recordings/{{recording_id}}/evaluations", submit)
        app.router.add_get(f"{prefix}/recordings/{{recording_id}}/evaluations", of_recording)
        app.router.add_post(f"{prefix}/evaluations/{{evaluation_id}}/amend", amend)
    app.router.add_get("/panel/api/evaluations/mine", mine)
    app.router.add_post("/panel/api/evaluations/{evaluation_id}/acknowledge", acknowledge)
