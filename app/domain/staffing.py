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
from dataclasses import dataclass

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
