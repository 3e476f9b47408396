"""How many agents a queue needs: Erlang C (callers wait as long as it takes) and Erlang A
(callers give up after an exponential patience, Palm's M/M/N+M), side by side.

Inputs per interval: the arrival rate (calls/s), the average handle time (s), the service-level
target (answered within `target_s`, as a fraction) and, for Erlang A, the callers' mean patience
(s, estimated from abandons). Erlang C is the industry's classic and overstaffs when callers
abandon; Erlang A, which lets them, is closer to what a queue with impatient callers needs.

Pure maths, no I/O; checked against published Erlang C tables (tests/unit/test_staffing.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.reports import CallFacts, StateChange, state_spans

MAX_AGENTS = 5000


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a caller waits, for `traffic` Erlangs offered to `agents` agents
    (1.0 when the agents cannot keep up). Computed with the Erlang B recursion: stable for
    thousands of agents, where factorials overflow."""
    if agents <= 0 or traffic >= agents:
        return 1.0
    if traffic <= 0:
        return 0.0
    b = 1.0  # Erlang B for 0 agents
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return agents * b / (agents - traffic * (1 - b))


@dataclass(frozen=True)
class Performance:
    agents: int
    p_wait: float  # probability of waiting at all
    service_level: float  # answered within the target, as a fraction of all callers
    asa_s: float  # average speed of answer (over every caller; Erlang A: over those served)
    p_abandon: float = 0.0  # Erlang A only
    occupancy: float = 0.0


def erlang_c_performance(rate_per_s: float, aht_s: float, agents: int, target_s: float) -> Performance:
    traffic = rate_per_s * aht_s
    if agents <= traffic:
        return Performance(agents, 1.0, 0.0, math.inf, 0.0, 1.0)
    pw = erlang_c(traffic, agents)
    spare = (agents - traffic) / aht_s  # rate at which the queue drains
    return Performance(
        agents,
        pw,
        1 - pw * math.exp(-spare * target_s),
        pw / spare,
        0.0,
        traffic / agents,
    )


def erlang_a_performance(
    rate_per_s: float, aht_s: float, patience_s: float, agents: int, target_s: float
) -> Performance:
    """M/M/N+M: service rate 1/aht, each waiting caller abandons at rate 1/patience.

    The queue length's stationary distribution is a birth-death chain; a caller who arrives
    behind k others is answered when k+1 service completions or departures ahead have happened
    before they give up. Service level = answered within `target_s` over all callers; ASA over
    those answered."""
    if agents <= 0:
        return Performance(agents, 1.0, 0.0, math.inf, 1.0, 1.0)
    mu, theta = 1 / aht_s, 1 / patience_s
    # Stationary distribution, unnormalised, up to where it no longer matters.
    weights = [1.0]
    n = 0
    while True:
        n += 1
        death = min(n, agents) * mu + max(0, n - agents) * theta
        weights.append(weights[-1] * rate_per_s / death)
        if n > agents and (weights[-1] < 1e-14 * sum(weights) or n > agents + 100_000):
            break
    total = sum(weights)
    pi = [w / total for w in weights]
    p_wait = sum(pi[agents:])
    queue_mean = sum((k - agents) * p for k, p in enumerate(pi) if k > agents)
    p_abandon = theta * queue_mean / rate_per_s
    # Callers who wait: k = 0.. ahead of them (PASTA: they see the stationary distribution).
    ahead = pi[agents:]
    answered_in_time, wait_of_served = _answered_by(ahead, agents * mu, theta, target_s)
    served = 1 - p_abandon
    busy = (rate_per_s * served) * aht_s
    return Performance(
        agents,
        p_wait,
        (1 - p_wait) + answered_in_time,
        wait_of_served / served if served > 0 else math.inf,
        p_abandon,
        min(1.0, busy / agents),
    )


def _answered_by(ahead: list[float], drain: float, theta: float, target_s: float) -> tuple[float, float]:
    """For callers arriving behind k others with probability ahead[k]: the probability of being
    answered within target_s, and the mean wait of those answered (times their probability).

    Stage k: k callers ahead; it moves to k-1 at rate drain + k*theta (a service completion or
    one ahead giving up), from stage 0 the caller is answered at rate `drain`; the caller gives
    up at rate theta throughout. Uniformised over every stage at once (the dynamics do not
    depend on where a caller started), so the cost is stages x Poisson terms."""
    stages = len(ahead)
    progress = [drain + k * theta for k in range(stages)]
    uniform = max(progress) + theta
    stay = [1 - (p + theta) / uniform for p in progress]
    step = [p / uniform for p in progress]
    # Mean wait of the answered: from stage k, expected time to answer given answered.
    survive = [p / (p + theta) for p in progress]
    reach = 0.0
    wait = 0.0
    for k, weight in enumerate(ahead):
        if weight == 0:
            continue
        prob, time = 1.0, 0.0
        for j in range(k, -1, -1):
            prob *= survive[j]
            time += 1 / (progress[j] + theta)
        reach += weight * prob
        wait += weight * prob * time
    # Probability answered by target_s: uniformisation with Poisson(uniform * target_s) jumps.
    lam = uniform * target_s
    vector = list(ahead)
    answered = 0.0
    term = math.exp(-lam)
    cumulative = 0.0
    jumps = 0
    limit = int(lam + 12 * math.sqrt(lam) + 30)
    absorbed_by_jump = 0.0  # answered within `jumps` jumps
    while jumps <= limit:
        cumulative += term
        answered += term * absorbed_by_jump
        new = [
            vector[k] * stay[k] + (vector[k + 1] * step[k + 1] if k + 1 < stages else 0.0)
            for k in range(stages)
        ]
        absorbed_by_jump += vector[0] * step[0]
        vector = new
        jumps += 1
        term *= lam / jumps
    answered += (1 - cumulative) * absorbed_by_jump
    return answered, wait


def agents_needed(
    rate_per_s: float,
    aht_s: float,
    target_s: float,
    service_level: float,
    patience_s: float | None = None,
) -> Performance:
    """The fewest agents that reach the service level (Erlang A when a patience is given,
    else Erlang C), and how the queue does with them."""
    if rate_per_s <= 0:
        return Performance(0, 0.0, 1.0, 0.0)
    traffic = rate_per_s * aht_s
    # Erlang C needs more agents than the traffic; with abandons fewer can do.
    start = max(1, math.floor(traffic) + 1) if not patience_s else max(1, math.floor(traffic * 0.5))
    for n in range(start, MAX_AGENTS + 1):
        perf = (
            erlang_a_performance(rate_per_s, aht_s, patience_s, n, target_s)
            if patience_s
            else erlang_c_performance(rate_per_s, aht_s, n, target_s)
        )
        if perf.service_level >= service_level:
            return perf
    raise ValueError(f"more than {MAX_AGENTS} agents would be needed")


# -- staffing a queue's day from its history ------------------------------------------------------


@dataclass(frozen=True)
class IntervalHistory:
    """What one queue's interval saw: calls offered, handled (with their total handle time),
    counted abandons, the total time every caller waited (until answered or until they gave
    up), and agent-seconds staffed (logged in and serving the queue)."""

    start: datetime
    offered: float = 0  # a forecast's averages are fractional
    handled: float = 0
    handle_s: float = 0.0
    abandoned: float = 0
    waited_s: float = 0.0
    staffed_s: float = 0.0


def patience_estimate(waited_s: float, abandoned: float) -> float | None:
    """Callers' mean patience, for exponential patience: all the time callers spent waiting
    (those answered only tell that they would have waited at least that long) over the number
    who gave up. The maximum-likelihood estimate with answered callers as censored; None with
    no abandon (no sign of a limit: Erlang C applies)."""
    return waited_s / abandoned if abandoned > 0 and waited_s > 0 else None


STAFFING_COLUMNS = (
    "start", "queue", "offered", "calls_per_hour", "aht_s", "patience_s", "erlang_c_agents",
    "erlang_a_agents", "erlang_a_abandon_percent", "agents_staffed",
)  # fmt: skip


def staffing_row(
    queue: str,
    h: IntervalHistory,
    interval_s: float,
    target_s: float,
    service_level: float,
    staffed: bool = True,
) -> dict[str, Any]:
    """The agents one interval needs for the service level (`service_level` of callers answered
    within `target_s`) by Erlang C and by Erlang A, beside the agents it had (their average
    number over the interval; None when `staffed` is False, as for a forecast)."""
    rate = h.offered / interval_s
    aht = h.handle_s / h.handled if h.handled else None
    patience = patience_estimate(h.waited_s, h.abandoned)
    row: dict[str, Any] = {
        "start": h.start.isoformat(),
        "queue": queue,
        "offered": round(h.offered, 1),
        "calls_per_hour": round(rate * 3600, 1),
        "aht_s": None if aht is None else round(aht, 1),
        "patience_s": None if patience is None else round(patience, 1),
        "erlang_c_agents": 0 if h.offered == 0 else None,
        "erlang_a_agents": 0 if h.offered == 0 else None,
        "erlang_a_abandon_percent": None,
        "agents_staffed": round(h.staffed_s / interval_s, 1) if staffed else None,
    }
    if h.offered and aht:
        c = agents_needed(rate, aht, target_s, service_level)
        a = agents_needed(rate, aht, target_s, service_level, patience) if patience else c
        row["erlang_c_agents"] = c.agents
        row["erlang_a_agents"] = a.agents
        row["erlang_a_abandon_percent"] = round(100 * a.p_abandon, 1)
    return row


def forecast(
    days: Sequence[Sequence[IntervalHistory]],
    day_start: datetime,
    interval_s: float,
    volume_percent: float = 100.0,
    aht_percent: float = 100.0,
) -> list[IntervalHistory]:
    """A forecast day from past days (e.g. the same weekday of recent weeks), each a list of its
    intervals: per time of day, the average offered calls times `volume_percent`/100, the
    average handle time times `aht_percent`/100, the callers' patience as seen over those
    days, and the agents staffed on average."""
    if not days:
        return []
    if volume_percent < 0 or aht_percent <= 0:
        raise ValueError("the volume is 0 % or more and the handle time more than 0 %")
    n = len(days)
    sums: dict[int, list[float]] = {}
    for day in days:
        if not day:
            continue
        for h in day:
            midnight = h.start.replace(hour=0, minute=0, second=0, microsecond=0)
            slot = int((h.start - midnight).total_seconds() // interval_s)
            s = sums.setdefault(slot, [0.0] * 6)
            for i, v in enumerate((h.offered, h.handled, h.handle_s, h.abandoned, h.waited_s, h.staffed_s)):
                s[i] += v
    out = []
    for slot in sorted(sums):
        offered, handled, handle_s, abandoned, waited_s, staffed_s = sums[slot]
        scale = volume_percent / 100
        # The averages keep each day's ratios (AHT, patience) and scale only the volume.
        out.append(
            IntervalHistory(
                day_start + timedelta(seconds=slot * interval_s),
                offered=offered / n * scale,
                handled=handled / n * scale,
                handle_s=handle_s / n * scale * aht_percent / 100,
                abandoned=abandoned / n * scale,
                waited_s=waited_s / n * scale,
                staffed_s=staffed_s / n,
            )
        )
    return out


def interval_histories(
    calls: Iterable[CallFacts],
    changes: Iterable[StateChange],
    serves: Callable[[str, str], bool],
    queues: Sequence[str],
    day_start: datetime,
    interval_s: float,
) -> dict[str, list[IntervalHistory]]:
    """Per queue, every interval of the day that starts at `day_start`: its calls (where they
    first joined a line; every abandon counts for patience, short ones too) and the agents who
    served it (`serves(agent, queue)`) while logged in."""
    slots = round(86_400 / interval_s)
    end = day_start + timedelta(seconds=slots * interval_s)
    sums = {q: [[0.0] * 6 for _ in range(slots)] for q in queues}  # as IntervalHistory's fields
    for c in calls:
        k = int((c.queued_at - day_start).total_seconds() // interval_s)
        if c.queue not in sums or not 0 <= k < slots:
            continue
        s = sums[c.queue][k]
        s[0] += 1
        if c.answered_at is not None:
            s[4] += max(0.0, (c.answered_at - c.queued_at).total_seconds())
            if c.ended_at is not None:
                s[1] += 1
                s[2] += max(0.0, (c.ended_at - c.answered_at).total_seconds())
        elif c.ended_at is not None:
            s[4] += max(0.0, (c.ended_at - c.queued_at).total_seconds())
            s[3] += int(c.outcome == "abandoned")
    for agent, state, _, since, until in state_spans(changes, day_start, end):
        if state == "logged_out":
            continue
        for q in queues:
            if not serves(agent, q):
                continue
            # Spread the stretch over the intervals it covers.
            at = since
            while at < until:
                k = int((at - day_start).total_seconds() // interval_s)
                edge = min(until, day_start + timedelta(seconds=(k + 1) * interval_s))
                sums[q][k][5] += (edge - at).total_seconds()
                at = edge
    return {
        q: [IntervalHistory(day_start + timedelta(seconds=k * interval_s), *rows[k]) for k in range(slots)]
        for q, rows in sums.items()
    }
