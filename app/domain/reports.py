"""The reports, from the event log in the center's time zone, by the wallboard's rules (a call
counts where and when it first joined a line; short abandons apart and out of the service
level): the interval report (per queue and 15, 30 or 60 minutes of a day), the queue report
(per queue and day), the agent report (time in each state, from agent state changes), the IVR
report (where callers leave a flow, which choices they make), callbacks and voicemail, and the
outbound campaigns (attempts, results, abandon rate per day and over 30 days).

Pure: the caller gives the facts as read from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from app.domain.campaign import abandon_rate

INTERVALS_MIN = (15, 30, 60)


@dataclass(frozen=True)
class CallFacts:
    queue: str
    tier: str
    queued_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None


@dataclass
class Row:
    start: datetime
    queue: str
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    wait_answered_s: float = 0.0
    handled: int = 0
    handle_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, c: CallFacts, target_s: Callable[[str, str], float], short_abandon_s: float) -> None:
        """One call, where it first joined a line: the wallboard's rules."""
        self.offered += 1
        if c.answered_at is not None:
            wait = max(0.0, (c.answered_at - c.queued_at).total_seconds())
            self.answered += 1
            self.wait_answered_s += wait
            self.answered_in_target += int(wait <= target_s(c.queue, c.tier))
            if c.ended_at is not None:
                self.handled += 1
                self.handle_s += max(0.0, (c.ended_at - c.answered_at).total_seconds())
        elif c.outcome == "abandoned" and c.ended_at is not None:
            wait = max(0.0, (c.ended_at - c.queued_at).total_seconds())
            self.abandoned += 1
            self.short_abandoned += int(wait < short_abandon_s)

    def view(self) -> dict[str, Any]:
        counted = self.answered + self.abandoned - self.short_abandoned
        return {
            "start": self.start.isoformat(),
            "queue": self.queue,
            "offered": self.offered,
            "answered": self.answered,
            "answered_in_target": self.answered_in_target,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "service_level_percent": round(100 * self.answered_in_target / counted, 1) if counted else None,
            "asa_s": round(self.wait_answered_s / self.answered, 1) if self.answered else None,
            "aht_s": round(self.handle_s / self.handled, 1) if self.handled else None,
        }


COLUMNS = (
    "start", "queue", "offered", "answered", "answered_in_target", "abandoned", "short_abandoned",
    "service_level_percent", "asa_s", "aht_s",
)  # fmt: skip


def interval_report(
    calls: Iterable[CallFacts],
    day_start: datetime,
    minutes: int,
    target_s: Callable[[str, str], float],
    short_abandon_s: float,
) -> list[dict[str, Any]]:
    """Rows for every interval of the day that had a call, by start then queue."""
    if minutes not in INTERVALS_MIN:
        raise ValueError(f"an interval is 15, 30 or 60 minutes, not {minutes}")
    step = timedelta(minutes=minutes)
    rows: dict[tuple[int, str], Row] = {}
    for c in calls:
        k = int((c.queued_at - day_start) / step)
        if not 0 <= k < int(timedelta(days=1) / step):
            continue
        rows.setdefault((k, c.queue), Row(day_start + k * step, c.queue)).count(c, target_s, short_abandon_s)
    return [rows[k].view() for k in sorted(rows)]


# -- many days: the queue report -----------------------------------------------------------------


def local_days(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    if last < first:
        raise ValueError(f"the last day {last} is before the first {first}")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def queue_report(
    calls: Iterable[CallFacts],
    zone: tzinfo,
    first: date,
    last: date,
    target_s: Callable[[str, str], float],
    short_abandon_s: float,
) -> list[dict[str, Any]]:
    """Per queue and day (in the center's zone), by the interval report's rules, plus the longest
    wait of an answered caller and of one who gave up. Rows by queue, then day."""
    local_days(first, last)  # a range that ends before it starts is an error
    rows: dict[tuple[str, date], Row] = {}
    longest: dict[tuple[str, date], list[float]] = {}
    for c in calls:
        day = c.queued_at.astimezone(zone).date()
        if not first <= day <= last:
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        rows.setdefault((c.queue, day), Row(start, c.queue)).count(c, target_s, short_abandon_s)
        waits = longest.setdefault((c.queue, day), [0.0, 0.0])
        if c.answered_at is not None:
            waits[0] = max(waits[0], (c.answered_at - c.queued_at).total_seconds())
        elif c.outcome == "abandoned" and c.ended_at is not None:
            waits[1] = max(waits[1], (c.ended_at - c.queued_at).total_seconds())
    out = []
    for key in sorted(rows):
        view = rows[key].view()
        view["start"] = key[1].isoformat()
        view["longest_answered_wait_s"] = round(longest[key][0], 1)
        view["longest_abandoned_wait_s"] = round(longest[key][1], 1)
        out.append(view)
    return out


QUEUE_COLUMNS = (
    "start", "queue", "offered", "answered", "answered_in_target", "abandoned", "short_abandoned",
    "service_level_percent", "asa_s", "aht_s", "longest_answered_wait_s", "longest_abandoned_wait_s",
)  # fmt: skip


# -- the agent report: time in each state from agent_state_events -------------------------------


@dataclass(frozen=True)
class StateChange:
    agent_id: str
    at: datetime
    from_state: str
    to_state: str
    reason: str | None = None


AGENT_COLUMNS = (
    "agent", "calls", "logged_in_s", "ready_s", "ringing_s", "talk_s", "wrap_up_s", "not_ready_s",
    "aht_s", "occupancy_percent", "not_ready_by_reason",
)  # fmt: skip


def state_spans(
    changes: Iterable[StateChange], start: datetime, end: datetime
) -> Iterator[tuple[str, str, str | None, datetime, datetime]]:
    """(agent, state, reason, since, until) for each stretch of an agent's time within [start,
    end). Each change opens its `to_state` until the agent's next change; before an agent's
    first change they were in its `from_state` (give the last change before `start` too, to know
    where they stood then)."""
    by_agent: dict[str, list[StateChange]] = {}
    for ch in sorted(changes, key=lambda c: (c.agent_id, c.at)):
        by_agent.setdefault(ch.agent_id, []).append(ch)
    for agent, seq in by_agent.items():
        spans: list[tuple[str, str | None, datetime, datetime]] = [
            (seq[0].from_state, None, start, seq[0].at)
        ]
        for i, ch in enumerate(seq):
            spans.append((ch.to_state, ch.reason, ch.at, seq[i + 1].at if i + 1 < len(seq) else end))
        for state, reason, since, until in spans:
            since, until = max(since, start), min(until, end)
            if until > since:
                yield agent, state, reason, since, until


def agent_time(changes: Iterable[StateChange], start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """Per agent: seconds in each state within [start, end) but logged out, Not Ready seconds
    by reason, and calls (times the agent went on a call)."""
    changes = list(changes)
    out: dict[str, dict[str, Any]] = {}
    for agent, state, reason, since, until in state_spans(changes, start, end):
        if state != "logged_out":
            add_agent_time(out, agent, state, reason, (until - since).total_seconds(), 0)
    for ch in changes:
        if ch.to_state == "on_call" and start <= ch.at < end:
            add_agent_time(out, ch.agent_id, "on_call", None, 0.0, 1)
    return out


BUCKET_S = 900  # the agent time kept per quarter hour: every time zone's offset is a multiple


def agent_buckets(
    changes: Iterable[StateChange], start: datetime, end: datetime
) -> list[tuple[str, datetime, str, str | None, float, int]]:
    """The agent time of [start, end) (a whole number of quarter hours) per quarter hour, as
    kept once a day is over: (agent, quarter's start, state, reason, seconds, calls begun)."""
    changes = list(changes)
    out: dict[tuple[str, datetime, str, str | None], list[float]] = {}
    step = timedelta(seconds=BUCKET_S)
    for agent, state, reason, since, until in state_spans(changes, start, end):
        if state == "logged_out":
            continue
        at = since
        while at < until:
            k = start + ((at - start) // step) * step
            edge = min(until, k + step)
            out.setdefault((agent, k, state, reason if state == "not_ready" else None), [0.0, 0])[0] += (
                edge - at
            ).total_seconds()
            at = edge
    for ch in changes:
        if ch.to_state == "on_call" and start <= ch.at < end:
            k = start + ((ch.at - start) // step) * step
            out.setdefault((ch.agent_id, k, "on_call", None), [0.0, 0])[1] += 1
    return [
        (a, k, st, r, v[0], int(v[1])) for (a, k, st, r), v in sorted(out.items(), key=lambda kv: kv[0][:3])
    ]


def add_agent_time(
    into: dict[str, dict[str, Any]], agent: str, state: str, reason: str | None, seconds: float, calls: int
) -> None:
    """Fold one stretch (or a kept quarter hour) into `agent_time`'s shape."""
    t = into.setdefault(agent, {"seconds": {}, "not_ready_by_reason": {}, "calls": 0})
    if seconds:
        t["seconds"][state] = t["seconds"].get(state, 0.0) + seconds
        if state == "not_ready":
            t["not_ready_by_reason"][reason or ""] = t["not_ready_by_reason"].get(reason or "", 0.0) + seconds
    t["calls"] += calls


def agent_report(changes: Iterable[StateChange], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One row per agent over [start, end), from their state changes (see `agent_rows`)."""
    return agent_rows(agent_time(changes, start, end))


def agent_rows(times: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per agent: calls, time logged in and in each state, AHT (talk and after-call
    work per call) and occupancy (busy over busy plus ready; Not Ready is neither, as the
    industry counts it)."""
    rows = []
    for agent, t in sorted(times.items()):
        s = t["seconds"]
        ringing = s.get("ringing", 0.0) + s.get("reserved", 0.0)
        talk, wrap, ready = s.get("on_call", 0.0), s.get("wrap_up", 0.0), s.get("ready", 0.0)
        busy = ringing + talk + wrap
        calls = int(t["calls"])
        rows.append(
            {
                "agent": agent,
                "calls": calls,
                "logged_in_s": round(sum(s.values())),
                "ready_s": round(ready),
                "ringing_s": round(ringing),
                "talk_s": round(talk),
                "wrap_up_s": round(wrap),
                "not_ready_s": round(s.get("not_ready", 0.0)),
                "aht_s": round((talk + wrap) / calls, 1) if calls else None,
                "occupancy_percent": round(100 * busy / (busy + ready), 1) if busy + ready else None,
                "not_ready_by_reason": {k: round(v) for k, v in sorted(t["not_ready_by_reason"].items())},
            }
        )
    return rows


AGENT_INTERVAL_COLUMNS = (
    "start", "agents_logged_in", "ready_s", "talk_s", "wrap_up_s", "not_ready_s", "occupancy_percent",
    "not_ready_by_reason",
)  # fmt: skip


def agent_intervals(
    changes: Iterable[StateChange], day_start: datetime, minutes: int, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Per interval of the day (15, 30 or 60 minutes) with anyone logged in, every agent taken
    together: the agents logged in on average, seconds ready, talking (ringing included) and in
    after-call work, Not Ready (and by reason), and occupancy (busy over busy plus ready, as in
    the agent report). Time from `until` (now, for today) on is nobody's yet."""
    if minutes not in INTERVALS_MIN:
        raise ValueError(f"an interval is 15, 30 or 60 minutes, not {minutes}")
    step = timedelta(minutes=minutes)
    rows: dict[int, dict[str, Any]] = {}
    end = day_start + timedelta(days=1)
    end = max(day_start, min(until, end)) if until is not None else end
    for _, quarter, state, reason, seconds, _ in agent_buckets(changes, day_start, end):
        k = int((quarter - day_start) / step)
        r = rows.setdefault(
            k, {"logged_in": 0.0, "ready": 0.0, "talk": 0.0, "wrap": 0.0, "nr": 0.0, "by": {}}
        )
        r["logged_in"] += seconds
        if state == "ready":
            r["ready"] += seconds
        elif state == "wrap_up":
            r["wrap"] += seconds
        elif state == "not_ready":
            r["nr"] += seconds
            r["by"][reason or ""] = r["by"].get(reason or "", 0.0) + seconds
        else:  # reserved, ringing, on a call
            r["talk"] += seconds
    out = []
    for k in sorted(rows):
        r = rows[k]
        busy = r["talk"] + r["wrap"]
        out.append(
            {
                "start": (day_start + k * step).isoformat(),
                "agents_logged_in": round(r["logged_in"] / step.total_seconds(), 1),
                "ready_s": round(r["ready"]),
                "talk_s": round(r["talk"]),
                "wrap_up_s": round(r["wrap"]),
                "not_ready_s": round(r["nr"]),
                "occupancy_percent": round(100 * busy / (busy + r["ready"]), 1)
                if busy + r["ready"]
                else None,
                "not_ready_by_reason": {k2: round(v) for k2, v in sorted(r["by"].items())},
            }
        )
    return out


# -- the IVR report: where callers leave a flow, which choices they make -------------------------


IVR_EVENTS = (
    "flow", "prompt_played", "menu_choice", "branch", "invalid_input", "no_input", "invalid_entry",
    "self_service", "queued", "voicemail_started", "ended",
)  # fmt: skip
START = "(start)"  # before the caller reached any named step of the flow

# How a call left the flow: by the outcome of the call, unless it reached a queue or voicemail.
EXITS = {
    "hung_up_in_ivr": "hung_up",
    "no_input": "no_input",
    "self_service": "self_service",
    "closed": "closed",
    "blocked": "blocked",
    "fax": "fax",
}


def ivr_report(
    events: Iterable[tuple[str, str, datetime, dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """From the events of calls that entered a flow (interaction, kind, at, data; in order):
    `exits`, per flow, the step where callers left and how (hung up, no input, to a queue, to
    voicemail, served by the IVR, ...), with its share of the calls that entered the flow; and
    `choices`, per flow and menu, each key or word chosen, where it led, and its share of that
    menu's choices. A call counts once, where it first left its flow."""
    calls: dict[str, dict[str, Any]] = {}
    for iid, kind, _, data in events:
        c = calls.get(iid)
        if kind == "flow":
            if c is None:
                calls[iid] = {"flow": str(data.get("name", "")), "step": START, "exit": None, "choices": []}
            continue
        if c is None or c["exit"] is not None:
            continue
        if kind == "prompt_played":
            c["step"] = str(data.get("prompt", c["step"]))
        elif kind == "menu_choice":
            choice = str(data.get("key") or data.get("word") or "")
            c["choices"].append((str(data.get("menu", "")), choice, str(data.get("to", ""))))
            c["step"] = str(data.get("to", c["step"]))
        elif kind == "branch":
            c["step"] = str(data.get("to") or c["step"])
        elif kind == "queued":
            c["exit"] = f"queue:{data.get('queue', '')}"
        elif kind == "voicemail_started":
            c["exit"] = "voicemail"
        elif kind == "ended":
            outcome = str(data.get("outcome", ""))
            c["exit"] = EXITS.get(outcome, outcome)
    entered: dict[str, int] = {}
    exits: dict[tuple[str, str, str], int] = {}
    choices: dict[tuple[str, str, str, str], int] = {}
    for c in calls.values():
        entered[c["flow"]] = entered.get(c["flow"], 0) + 1
        key = (c["flow"], c["step"], c["exit"] or "in_flow")
        exits[key] = exits.get(key, 0) + 1
        for menu, choice, to in c["choices"]:
            k = (c["flow"], menu, choice, to)
            choices[k] = choices.get(k, 0) + 1
    per_menu: dict[tuple[str, str], int] = {}
    for (flow, menu, _, _), n in choices.items():
        per_menu[(flow, menu)] = per_menu.get((flow, menu), 0) + n
    return {
        "exits": [
            {"flow": f, "step": s, "exit": x, "calls": n, "percent": round(100 * n / entered[f], 1)}
            for (f, s, x), n in sorted(exits.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1:]))
        ],
        "choices": [
            {
                "flow": f,
                "menu": m,
                "choice": ch,
                "to": to,
                "calls": n,
                "percent": round(100 * n / per_menu[(f, m)], 1),
            }
            for (f, m, ch, to), n in sorted(choices.items(), key=lambda kv: (kv[0][:2], -kv[1], kv[0][2:]))
        ],
    }


IVR_EXIT_COLUMNS = ("flow", "step", "exit", "calls", "percent")
IVR_CHOICE_COLUMNS = ("flow", "menu", "choice", "to", "calls", "percent")


# -- callbacks and voicemail -------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackFacts:
    queue: str
    source: str  # ivr, web, voicemail
    requested_at: datetime
    status: str  # waiting, dialing, completed, failed, cancelled
    attempts: int
    done_at: datetime | None  # when it was completed, failed or cancelled


@dataclass(frozen=True)
class VoicemailFacts:
    queue: str
    recorded_at: datetime
    duration_s: float | None
    handled: bool


WORK_COLUMNS = (
    "start", "queue", "callbacks_requested", "from_ivr", "from_web", "from_voicemail",
    "callbacks_completed", "callbacks_failed", "callbacks_cancelled", "callbacks_open",
    "attempts", "avg_time_to_complete_s", "voicemails", "voicemails_handled", "avg_voicemail_s",
)  # fmt: skip


def work_report(
    callbacks: Iterable[CallbackFacts],
    voicemails: Iterable[VoicemailFacts],
    zone: tzinfo,
    first: date,
    last: date,
) -> list[dict[str, Any]]:
    """Per queue and day the callback was requested (or the message left), in the center's zone:
    callbacks by source and by how they stand now, dial attempts, the mean time from request to
    completion; voicemails left, handled and their mean length. Rows by queue, then day."""
    local_days(first, last)
    rows: dict[tuple[str, date], dict[str, Any]] = {}
    sums: dict[tuple[str, date], list[float]] = {}  # complete_s, completed, vm_s, vm_timed

    def row(queue: str, at: datetime) -> tuple[tuple[str, date], dict[str, Any]] | None:
        day = at.astimezone(zone).date()
        if not first <= day <= last:
            return None
        key = (queue, day)
        if key not in rows:
            rows[key] = {c: 0 for c in WORK_COLUMNS} | {"start": day.isoformat(), "queue": queue}
            sums[key] = [0.0, 0, 0.0, 0]
        return key, rows[key]

    for cb in callbacks:
        found = row(cb.queue, cb.requested_at)
        if found is None:
            continue
        key, r = found
        r["callbacks_requested"] += 1
        r[f"from_{cb.source}"] = r.get(f"from_{cb.source}", 0) + 1
        r["attempts"] += cb.attempts
        if cb.status in ("completed", "failed", "cancelled"):
            r[f"callbacks_{cb.status}"] += 1
        else:
            r["callbacks_open"] += 1
        if cb.status == "completed" and cb.done_at is not None:
            sums[key][0] += max(0.0, (cb.done_at - cb.requested_at).total_seconds())
            sums[key][1] += 1
    for vm in voicemails:
        found = row(vm.queue, vm.recorded_at)
        if found is None:
            continue
        key, r = found
        r["voicemails"] += 1
        r["voicemails_handled"] += int(vm.handled)
        if vm.duration_s is not None:
            sums[key][2] += vm.duration_s
            sums[key][3] += 1
    out = []
    for key in sorted(rows):
        r, s = rows[key], sums[key]
        r["avg_time_to_complete_s"] = round(s[0] / s[1], 1) if s[1] else None
        r["avg_voicemail_s"] = round(s[2] / s[3], 1) if s[3] else None
        out.append({c: r[c] for c in WORK_COLUMNS})
    return out


# -- outbound campaigns ------------------------------------------------------------------------


@dataclass(frozen=True)
class DialFacts:
    campaign: str
    started_at: datetime
    result: str | None
    live_answer: bool
    abandoned: bool


CAMPAIGN_COLUMNS = (
    "start", "campaign", "attempts", "live_answers", "abandoned", "abandon_percent",
    "abandon_percent_30d", "results",
)  # fmt: skip
ROLLING_DAYS = 30


def campaign_report(
    dials: Iterable[DialFacts], zone: tzinfo, first: date, last: date
) -> list[dict[str, Any]]:
    """Per campaign and day (center's zone): attempts, results, live answers, abandons and the
    abandon rate (abandons over live answers, app/domain/campaign.py), the day's and over the 30
    days ending that day (give the dials of the 29 days before `first` too)."""
    days = local_days(first, last)
    counts: dict[tuple[str, date], list[int]] = {}  # attempts, live answers, abandons
    results: dict[tuple[str, date], dict[str, int]] = {}
    for d in dials:
        day = d.started_at.astimezone(zone).date()
        c = counts.setdefault((d.campaign, day), [0, 0, 0])
        c[0] += 1
        c[1] += int(d.live_answer)
        c[2] += int(d.abandoned)
        res = results.setdefault((d.campaign, day), {})
        res[d.result or "pending"] = res.get(d.result or "pending", 0) + 1
    out = []
    for campaign in sorted({k[0] for k in counts}):
        for day in days:
            if (campaign, day) not in counts:
                continue
            attempts, live, abandoned = counts[(campaign, day)]
            window = [counts.get((campaign, day - timedelta(days=n)), [0, 0, 0]) for n in range(ROLLING_DAYS)]
            live_30, abandoned_30 = sum(w[1] for w in window), sum(w[2] for w in window)
            out.append(
                {
                    "start": day.isoformat(),
                    "campaign": campaign,
                    "attempts": attempts,
                    "live_answers": live,
                    "abandoned": abandoned,
                    "abandon_percent": round(100 * abandon_rate(abandoned, live), 2),
                    "abandon_percent_30d": round(100 * abandon_rate(abandoned_30, live_30), 2),
                    "results": dict(sorted(results[(campaign, day)].items())),
                }
            )
    return out
