"""Outbound pacing: our predictive rule (app/domain/pacing.py) against the usual dialers, on the
same simulated campaigns.

    .venv/bin/python benchmarks/dialer_sim.py                 # 9 scenarios, 8 h days, about 2 min
    .venv/bin/python benchmarks/dialer_sim.py --quick         # smoke run: 2 scenarios, 1 h days, ~10 s
    .venv/bin/python benchmarks/dialer_sim.py --seed 11       # other days (other customers)
    .venv/bin/python benchmarks/dialer_sim.py --check-model   # the model against Monte Carlo, 40 s

A discrete-event simulation (a heap of timed events, fixed seeds, standard library only) of one
outbound campaign served by a fixed team. Every second the dialer under test says how many new
numbers to dial. Each dial rings and ends one way:

- live answer (the scenario's answer rate): after a lognormal ring (median 9 s), then the
  customer needs an agent within the connect window (2 s). An agent free then, or freeing within
  it, takes the call; otherwise the call is abandoned (the customer hears the identifying
  message). Talk is lognormal (median 3 min), then wrap-up (lognormal, median 12 s);
- answering machine (a quarter of the rest): the ring, then 3.5 s of AMD, then hang-up;
- busy or failed (a sixth of the rest): 2-6 s;
- no answer (the remainder): we give up after 25 s of ring (the rules ask for at least 15 s).

The dialers, all deciding once a second from what a real dialer sees:

- progressive: one line per free agent (no ringing line beyond the free agents);
- ratio r: r lines per free agent (ringing and waiting calls count against them);
- best ratio: the largest r in [1, 10] per free agent whose days stay <= 3 % abandoned, found
  by bisection on the same days (it is tuned in hindsight, which no real campaign can do);
- VICIdial adaptive: lines = level x active agents (free or talking), counting every call of
  the campaign (ringing, waiting and talking); every 15 s
  level <- level x (1 + (free agents - waiting calls) / agents), kept in [1, max level 3];
  with its "hard limit", back to level 1 while its drop figure (drops over all dials, as
  VICIdial counts them) is at the 3 % limit;
- VICIdial adaptive, tuned: the same with drops over live answers and the largest max level
  that keeps the day <= 3 %, found by bisection in hindsight;
- ours: `CampaignStatistics`, `ComplianceGauge` and `decide` from app/domain/pacing.py, fed with
  the simulated events as the service feeds them, at balance 0 (the default) and +1.

Every dialer meets the same customers: the outcome, ring time and talk time of the k-th dial of
a day are drawn from one stream seeded with the scenario and the day, so two dialers differ only
by their decisions. A day starts with every agent free and the estimators at their priors. Teams
of 10 get two days, so that every scenario counts live answers in the thousands.

Figures per scenario: talk minutes per agent-hour (talk only, not wrap-up); abandoned, over live
answers; over-dial, the time average of lines ringing or waiting for an agent over the time
average of free agents (how far a dialer dials ahead of its free agents: 1 or less is
progressive); dials per connected call; and the wait of live-answered customers until an agent
or the message (mean and 95th percentile, in seconds; an abandoned customer counts as the full
connect window).

`--check-model` instead compares, on states met by our dialer, the expected abandons of the
calls in progress as app/domain/pacing.py computes them with a Monte Carlo estimate from the
simulator's own laws (`true_abandons`). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.pacing import (
    BusyAgent,
    CampaignStatistics,
    ComplianceGauge,
    DialMode,
    DialOutcome,
    PacingSettings,
    PacingSnapshot,
    decide,
)

CONNECT_WINDOW_S = 2.0
RING_TIMEOUT_S = 25.0
TARGET = 0.03
TICK_S = 1.0


@dataclass(frozen=True)
class Scenario:
    answer_rate: float
    agents: int
    talk_median_s: float = 180.0
    talk_sigma: float = 0.8  # mean about 248 s
    wrap_median_s: float = 12.0
    wrap_sigma: float = 0.5
    answer_ring_median_s: float = 9.0
    answer_ring_sigma: float = 0.45

    @property
    def name(self) -> str:
        return f"answer {self.answer_rate:.0%}, {self.agents} agents"


SCENARIOS = tuple(Scenario(rate, agents) for rate in (0.15, 0.3, 0.6) for agents in (10, 25, 50))
# --quick: a small team (two days) and a low answer rate (many dials per connect), one hour each.
QUICK = (Scenario(0.3, 10), Scenario(0.15, 25))
QUICK_HOURS, QUICK_STEPS = 1.0, 3


@dataclass(frozen=True)
class Dial:
    outcome: DialOutcome
    ring_s: float
    talk_s: float
    wrap_s: float


def draw_dial(sc: Scenario, rng: random.Random) -> Dial:
    u = rng.random()
    talk = rng.lognormvariate(math.log(sc.talk_median_s), sc.talk_sigma)
    wrap = rng.lognormvariate(math.log(sc.wrap_median_s), sc.wrap_sigma)
    ring = rng.lognormvariate(math.log(sc.answer_ring_median_s), sc.answer_ring_sigma)
    ring = min(max(ring, 2.0), RING_TIMEOUT_S - 0.5)
    if u < sc.answer_rate:
        return Dial(DialOutcome.LIVE, ring, talk, wrap)
    rest = (u - sc.answer_rate) / (1 - sc.answer_rate)
    if rest < 0.25:
        return Dial(DialOutcome.MACHINE, ring + 3.5, 0.0, 0.0)
    if rest < 0.25 + 1 / 6:
        return Dial(DialOutcome.BUSY, 2.0 + 4.0 * rng.random(), 0.0, 0.0)
    return Dial(DialOutcome.NO_ANSWER, RING_TIMEOUT_S, 0.0, 0.0)


class Customers:
    """The k-th dial of a day: the same for every dialer."""

    def __init__(self, sc: Scenario, day: int) -> None:
        self.sc = sc
        self._drawn: list[Dial] = []
        self._rng = random.Random(f"{sc.name}/{day}/customers")

    def dial(self, k: int) -> Dial:
        while len(self._drawn) <= k:
            self._drawn.append(draw_dial(self.sc, self._rng))
        return self._drawn[k]


# -- what a dialer sees, and the dialers -----------------------------------------------------------


@dataclass
class State:
    agents: int
    free: int
    talking: dict[int, float] = field(default_factory=dict)  # agent -> talk started
    wrapping: dict[int, float] = field(default_factory=dict)  # agent -> wrap-up started
    ringing: dict[int, float] = field(default_factory=dict)  # dial -> dialed at
    waiting: deque[tuple[int, float]] = field(default_factory=deque)  # (dial, answered at)
    dials: int = 0
    live: int = 0
    abandoned: int = 0


class Dialer:
    name = ""

    def calls(self, s: State, now: float) -> int:
        raise NotImplementedError

    # events, for the dialers that learn
    def outcome(self, outcome: DialOutcome, ring_s: float, now: float) -> None:
        pass

    def connected(self, now: float) -> None:
        pass

    def abandoned(self, now: float) -> None:
        pass

    def talk_ended(self, talk_s: float, now: float) -> None:
        pass

    def wrap_ended(self, wrap_s: float, now: float) -> None:
        pass


class Progressive(Dialer):
    name = "progressive"

    def calls(self, s: State, now: float) -> int:
        return max(0, s.free - len(s.ringing) - len(s.waiting))


class PerFreeAgent(Dialer):
    def __init__(self, ratio: float, label: str | None = None) -> None:
        self.ratio = ratio
        self.name = label or f"ratio {ratio:g} per free agent"

    def calls(self, s: State, now: float) -> int:
        return max(0, math.floor(self.ratio * s.free + 1e-9) - len(s.ringing) - len(s.waiting))


class VicidialAdaptive(Dialer):
    """VICIdial's adaptive dial level, as described in the module docstring."""

    def __init__(self, max_level: float, live_denominator: bool, label: str) -> None:
        self.max_level = max_level
        self.live_denominator = live_denominator
        self.level = 1.0
        self.next_adjust = 0.0
        self.name = label

    def calls(self, s: State, now: float) -> int:
        if now >= self.next_adjust:
            self.next_adjust = now + 15.0
            change = 1.0 + (s.free - len(s.waiting)) / s.agents
            self.level = min(self.max_level, max(1.0, self.level * change))
        denominator = s.live if self.live_denominator else s.dials
        level = self.level
        if denominator and s.abandoned / denominator >= TARGET:
            level = 1.0
        # Agents in wrap-up are not active: at level 1 this is progressive.
        active = s.free + len(s.talking)
        lines = len(s.ringing) + len(s.waiting) + len(s.talking)
        return max(0, math.floor(level * active + 1e-9) - lines)


class Ours(Dialer):
    def __init__(self, balance: float = 0.0) -> None:
        self.name = f"ours, balance {balance:+g}" if balance else "ours"
        self.settings = PacingSettings(
            mode=DialMode.PREDICTIVE,
            abandon_target=TARGET,
            balance=balance,
            connect_window_s=CONNECT_WINDOW_S,
        )
        self.stats = CampaignStatistics()
        self.gauge = ComplianceGauge(TARGET)
        self.decisions = 0
        self.expected_abandons = 0.0

    def snapshot(self, s: State, now: float) -> PacingSnapshot:
        busy = [BusyAgent(now - t) for t in s.talking.values()]
        busy += [BusyAgent(now - t, wrapping_up=True) for t in s.wrapping.values()]
        return PacingSnapshot(
            agents_free=s.free,
            estimates=self.stats.estimates(),
            busy=tuple(busy),
            ringing_s=tuple(now - t for t in s.ringing.values()),
            customers_waiting=len(s.waiting),
            headroom=self.gauge.reading(now).headroom,
        )

    def calls(self, s: State, now: float) -> int:
        return decide(self.snapshot(s, now), self.settings).calls

    def outcome(self, outcome: DialOutcome, ring_s: float, now: float) -> None:
        self.stats.record_dial(outcome, ring_s, now)

    def connected(self, now: float) -> None:
        self.gauge.record_connected(now)

    def abandoned(self, now: float) -> None:
        self.gauge.record_abandoned(now)

    def talk_ended(self, talk_s: float, now: float) -> None:
        self.stats.record_talk(talk_s, now)

    def wrap_ended(self, wrap_s: float, now: float) -> None:
        self.stats.record_wrap_up(wrap_s, now)


# -- the simulation --------------------------------------------------------------------------------


@dataclass
class Result:
    agent_hours: float = 0.0
    talk_s: float = 0.0
    dials: int = 0
    live: int = 0
    connected: int = 0
    abandoned: int = 0
    lines_time: float = 0.0  # integral of ringing + waiting lines
    free_time: float = 0.0  # integral of free agents
    waits: list[float] = field(default_factory=list)

    def add(self, other: Result) -> None:
        for name in ("agent_hours", "talk_s", "lines_time", "free_time"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("dials", "live", "connected", "abandoned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.waits.extend(other.waits)

    @property
    def talk_min_per_agent_hour(self) -> float:
        return self.talk_s / 60 / self.agent_hours if self.agent_hours else 0.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.live if self.live else 0.0

    @property
    def lines_per_free_agent(self) -> float:
        return self.lines_time / self.free_time if self.free_time else math.inf

    @property
    def dials_per_connect(self) -> float:
        return self.dials / self.connected if self.connected else math.inf

    def wait(self, q: float | None = None) -> float:
        if not self.waits:
            return 0.0
        if q is None:
            return sum(self.waits) / len(self.waits)
        w = sorted(self.waits)
        return w[min(len(w) - 1, int(q * len(w)))]


TICK, OUTCOME, WINDOW_END, TALK_END, WRAP_END = range(5)


def simulate(sc: Scenario, day: int, hours: float, dialer: Dialer, customers: Customers) -> Result:
    end = hours * 3600.0
    s = State(agents=sc.agents, free=sc.agents)
    free_agents = list(range(sc.agents))
    r = Result(agent_hours=sc.agents * hours)
    events: list[tuple[float, int, int, int]] = []  # (time, seq, kind, dial or agent)
    seq = 0
    talk_of: dict[int, float] = {}  # agent -> talk length of the call in progress
    wrap_of: dict[int, float] = {}

    def push(t: float, kind: int, who: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, who))

    def connect(dial: int, now: float) -> None:
        agent = free_agents.pop()
        s.free -= 1
        d = customers.dial(dial)
        s.talking[agent] = now
        talk_of[agent], wrap_of[agent] = d.talk_s, d.wrap_s
        push(now + d.talk_s, TALK_END, agent)
        r.connected += 1
        dialer.connected(now)

    push(0.0, TICK, 0)
    last = 0.0
    while events:
        now, _, kind, who = heapq.heappop(events)
        if now > end:
            break
        dt = now - last
        r.lines_time += dt * (len(s.ringing) + len(s.waiting))
        r.free_time += dt * s.free
        last = now
        if kind == TICK:
            for _ in range(dialer.calls(s, now)):
                k = s.dials
                s.dials += 1
                r.dials += 1
                s.ringing[k] = now
                push(now + customers.dial(k).ring_s, OUTCOME, k)
            push(now + TICK_S, TICK, 0)
        elif kind == OUTCOME:
            d = customers.dial(who)
            del s.ringing[who]
            dialer.outcome(d.outcome, d.ring_s, now)
            if d.outcome is not DialOutcome.LIVE:
                continue
            s.live += 1
            r.live += 1
            if s.free:
                r.waits.append(0.0)
                connect(who, now)
            else:
                s.waiting.append((who, now))
                push(now + CONNECT_WINDOW_S, WINDOW_END, who)
        elif kind == WINDOW_END:
            for i, (dial, _) in enumerate(s.waiting):
                if dial == who:
                    del s.waiting[i]
                    s.abandoned += 1
                    r.abandoned += 1
                    r.waits.append(CONNECT_WINDOW_S)
                    dialer.abandoned(now)
                    break
        elif kind == TALK_END:
            started = s.talking.pop(who)
            r.talk_s += now - started
            dialer.talk_ended(now - started, now)
            s.wrapping[who] = now
            push(now + wrap_of[who], WRAP_END, who)
        elif kind == WRAP_END:
            dialer.wrap_ended(now - s.wrapping.pop(who), now)
            free_agents.append(who)
            s.free += 1
            if s.waiting:
                dial, answered = s.waiting.popleft()
                r.waits.append(now - answered)
                connect(dial, now)
    # talk still in progress at the end of the day counts up to the end
    r.talk_s += sum(end - t for t in s.talking.values())
    r.lines_time += (end - last) * (len(s.ringing) + len(s.waiting))
    r.free_time += (end - last) * s.free
    return r


def run_days(sc: Scenario, days: Sequence[int], hours: float, make: Callable[[], Dialer]) -> Result:
    total = Result()
    for day in days:
        total.add(simulate(sc, day, hours, make(), Customers(sc, day)))
    return total


def tune(
    sc: Scenario,
    days: Sequence[int],
    hours: float,
    make: Callable[[float], Dialer],
    lo: float,
    hi: float,
    steps: int,
) -> tuple[float, Result]:
    """The largest parameter in [lo, hi] whose days stay <= TARGET abandoned (bisection; the
    abandon rate grows with the parameter, up to noise)."""
    best = run_days(sc, days, hours, lambda: make(lo))
    top = run_days(sc, days, hours, lambda: make(hi))
    if top.abandon_rate <= TARGET:
        return hi, top
    best_x = lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        res = run_days(sc, days, hours, functools.partial(make, mid))
        if res.abandon_rate <= TARGET:
            lo, best_x, best = mid, mid, res
        else:
            hi = mid
    return best_x, best


def days_for(sc: Scenario, base_days: int, first: int = 1) -> list[int]:
    """Small teams get more days, so that the scenarios count live answers in the thousands."""
    return list(range(first, first + base_days * max(1, round(50 / sc.agents / 2))))


def run_scenario(args: tuple[Scenario, int, int, float, int]) -> tuple[Scenario, list[tuple[str, Result]]]:
    sc, base_days, first, hours, steps = args
    days = days_for(sc, base_days, first)
    rows: list[tuple[str, Result]] = []
    rows.append(("progressive", run_days(sc, days, hours, Progressive)))
    for ratio in (1.5, 2.0, 3.0):
        rows.append(
            (
                f"ratio {ratio:g} per free agent",
                run_days(sc, days, hours, functools.partial(PerFreeAgent, ratio)),
            )
        )
    x, res = tune(sc, days, hours, PerFreeAgent, 1.0, 10.0, steps)
    rows.append((f"best ratio <= 3 %: {x:.2f} per free agent", res))
    rows.append(
        (
            "VICIdial adaptive (max 3, drops/dials)",
            run_days(sc, days, hours, lambda: VicidialAdaptive(3.0, False, "")),
        )
    )
    x, res = tune(sc, days, hours, lambda m: VicidialAdaptive(m, True, ""), 1.0, 3.0, steps)
    rows.append((f"VICIdial adaptive, tuned: max {x:.2f}", res))
    rows.append(("ours", run_days(sc, days, hours, Ours)))
    rows.append(("ours, balance +1", run_days(sc, days, hours, lambda: Ours(1.0))))
    return sc, rows


def print_scenario(sc: Scenario, days: int, hours: float, rows: Sequence[tuple[str, Result]]) -> None:
    print(
        f"\n{sc.name}: {days} day(s) of {hours:g} h,"
        f" talk lognormal median {sc.talk_median_s:.0f} s, wrap-up median {sc.wrap_median_s:.0f} s"
    )
    print(
        f"| {'dialer':<42} | talk min/agent-h | abandoned | over-dial | dials/connect"
        " | wait mean s | wait p95 s | live answers |"
    )
    print("|" + "-" * 44 + "|" + "|".join("-" * (n + 1) + ":" for n in (16, 9, 9, 13, 11, 10, 12)) + "|")
    for label, r in rows:
        print(
            f"| {label:<42} | {r.talk_min_per_agent_hour:>16.1f} | {r.abandon_rate:>8.2%} "
            f"| {r.lines_per_free_agent:>9.2f} | {r.dials_per_connect:>13.2f} | {r.wait():>11.2f}"
            f" | {r.wait(0.95):>10.2f} | {r.live:>12,} |"
        )


def print_summary(results: Sequence[tuple[Scenario, Sequence[tuple[str, Result]]]]) -> None:
    print(
        f"\nSummary: talk minutes per agent-hour (abandoned), the best baseline within"
        f" {TARGET:.0%} against ours\n"
    )
    print(
        "| scenario | best baseline within target | talk | abandoned"
        " | ours | abandoned | ours, +1 | abandoned |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for sc, rows in results:
        ours = dict(rows)
        within = [(r.talk_min_per_agent_hour, label, r) for label, r in rows if not label.startswith("ours")]
        talk, label, best = max(t for t in within if t[2].abandon_rate <= TARGET)
        print(
            f"| {sc.name} | {label} | {talk:.1f} | {best.abandon_rate:.2%}"
            f" | {ours['ours'].talk_min_per_agent_hour:.1f} | {ours['ours'].abandon_rate:.2%}"
            f" | {ours['ours, balance +1'].talk_min_per_agent_hour:.1f}"
            f" | {ours['ours, balance +1'].abandon_rate:.2%} |"
        )


# -- checking the model against the simulator's truth -----------------------------------------------


def _beyond(rng: random.Random, median_s: float, sigma: float, elapsed: float) -> float:
    """What remains of a lognormal duration that has lasted `elapsed`."""
    mu = math.log(median_s)
    if elapsed <= 0:
        return rng.lognormvariate(mu, sigma)
    lo = NormalDist().cdf((math.log(elapsed) - mu) / sigma)
    u = min(lo + (1 - lo) * rng.random(), 1 - 1e-12)
    return max(0.0, math.exp(mu + sigma * NormalDist().inv_cdf(u)) - elapsed)


def true_abandons(sc: Scenario, s: State, now: float, rng: random.Random, reps: int) -> float:
    """Expected abandons among the calls not yet with an agent if no dial were added: Monte Carlo
    over futures drawn from the simulator's own laws, given what has happened so far."""
    lost = 0
    for _ in range(reps):
        frees = [0.0] * s.free
        frees += [
            _beyond(rng, sc.talk_median_s, sc.talk_sigma, now - t)
            + rng.lognormvariate(math.log(sc.wrap_median_s), sc.wrap_sigma)
            for t in s.talking.values()
        ]
        frees += [_beyond(rng, sc.wrap_median_s, sc.wrap_sigma, now - t) for t in s.wrapping.values()]
        answers = [at - now for _, at in s.waiting]
        for dialed in s.ringing.values():
            rung = now - dialed
            while (d := draw_dial(sc, rng)).ring_s <= rung:
                pass  # a dial of the same laws still ringing after `rung`
            if d.outcome is DialOutcome.LIVE:
                answers.append(d.ring_s - rung)
        heapq.heapify(frees)
        for t in sorted(answers):
            if frees and frees[0] <= t + CONNECT_WINDOW_S:
                heapq.heappop(frees)
            else:
                lost += 1
    return lost / reps


class ModelCheck(Ours):
    """Ours, which every `every_s` (after half an hour) compares the model's expected abandons of
    the calls in progress with `true_abandons`, where no dial is due to a free agent (so that
    the decision's figures are those of the calls in progress alone)."""

    def __init__(self, sc: Scenario, every_s: float, reps: int) -> None:
        super().__init__()
        self.sc = sc
        self.every_s = every_s
        self.reps = reps
        self.next_at = 1800.0
        self.rng = random.Random(f"{sc.name}/check")
        self.states = 0
        self.model = 0.0
        self.truth = 0.0

    def calls(self, s: State, now: float) -> int:
        snapshot = self.snapshot(s, now)
        if now >= self.next_at and s.free <= len(s.ringing) + len(s.waiting):
            self.next_at = now + self.every_s
            held = decide(snapshot, PacingSettings(mode=DialMode.PREDICTIVE, abandon_target=0.0))
            self.states += 1
            self.model += held.expected_abandons
            self.truth += true_abandons(self.sc, s, now, self.rng, self.reps)
        return decide(snapshot, self.settings).calls


def check_model(args: tuple[Scenario, float, int]) -> tuple[Scenario, int, float, float]:
    sc, hours, reps = args
    probe = ModelCheck(sc, every_s=30.0, reps=reps)
    simulate(sc, 1, hours, probe, Customers(sc, 1))
    return sc, probe.states, probe.model, probe.truth


def broken(results: Sequence[tuple[Scenario, Sequence[tuple[str, Result]]]]) -> list[str]:
    """What says the simulation or a dialer is broken, rather than merely worse: a dialer that
    dialed nothing or connected nobody, or no baseline within the target to compare with."""
    problems = []
    for sc, rows in results:
        for label, r in rows:
            if r.dials == 0 or r.connected == 0:
                problems.append(f"{sc.name}, {label}: {r.dials} dials, {r.connected} connected")
        if not any(r.abandon_rate <= TARGET for label, r in rows if not label.startswith("ours")):
            problems.append(f"{sc.name}: no baseline within {TARGET:.0%}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2 scenarios, 1 h days, 3 tuning steps (with --check-model: 2 scenarios, 1 h)",
    )
    parser.add_argument("--hours", type=float, default=8.0, help="hours per simulated day (default 8)")
    parser.add_argument(
        "--days", type=int, default=1, help="days for 25 or 50 agents; 10 agents get twice as many"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="first day (default 1): other days, other customers"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument(
        "--check-model",
        action="store_true",
        help="compare the model's expected abandons with Monte Carlo of the true future, and stop",
    )
    args = parser.parse_args()
    scenarios = QUICK if args.quick else SCENARIOS
    if args.check_model:
        started = time.perf_counter()
        hours, reps = (QUICK_HOURS, 100) if args.quick else (2.0, 300)
        print("Expected abandons of the calls in progress, model against the simulator's truth\n")
        print("| scenario | states | model | truth | model / truth |")
        print("|---|--:|--:|--:|--:|")
        checked = 0
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
            for sc, states, model, truth in pool.map(check_model, [(sc, hours, reps) for sc in scenarios]):
                ratio = f"{model / truth:.2f}" if truth else "-"
                print(f"| {sc.name} | {states} | {model:.1f} | {truth:.1f} | {ratio} |")
                checked += states > 0 and model + truth > 0
        print(f"\ntotal {time.perf_counter() - started:.1f} s")
        if checked < len(scenarios):
            print("BROKEN: a scenario had no state to check, or no abandon expected at all", file=sys.stderr)
            return 1
        return 0
    hours, steps = (QUICK_HOURS, QUICK_STEPS) if args.quick else (args.hours, 7)
    started = time.perf_counter()
    print(
        f"Outbound pacing, {len(scenarios)} scenarios; connect window {CONNECT_WINDOW_S:g} s,"
        f" ring timeout {RING_TIMEOUT_S:g} s, abandon target {TARGET:.0%} of live answers"
    )
    jobs = [(sc, args.days, args.seed, hours, steps) for sc in scenarios]
    results = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for sc, rows in pool.map(run_scenario, jobs):
            print_scenario(sc, len(days_for(sc, args.days, args.seed)), hours, rows)
            results.append((sc, rows))
    problems = broken(results)
    if not any(p.endswith(f"no baseline within {TARGET:.0%}") for p in problems):
        print_summary(results)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    for problem in problems:
        print(f"BROKEN: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
