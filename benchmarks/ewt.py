"""Expected-wait accuracy: the product's expected wait (`Router.expected_wait`, the live-queue model of
app/domain/ewt.py) against Asterisk's rule, on the same simulated traces.

    .venv/bin/python benchmarks/ewt.py            # 9 scenarios x 20 days of 8 h, about 30 s
    .venv/bin/python benchmarks/ewt.py --quick    # 3 scenarios x 2 days of 2 h, about 2 s (a smoke run)

A discrete-event simulation of one FIFO queue served by c identical agents (M/G/c+G): Poisson
arrivals, some with a burst of extra load; lognormal handle times (talk plus wrap-up); callers who
give up after an exponential or lognormal patience. Each caller is told an estimate when they
arrive and again every 30 s while they wait; we keep every estimate of callers who were answered
and compare it with the wait that actually followed. Three estimators see the same events:

- ours: what the product runs. A `Router` (app/domain/routing.py) holding one queue, fed as
  app/routing/desk.py feeds it (`record_answer` when a caller is connected, `record_handle_time`
  when a call ends, `record_abandon` when a caller gives up) and asked
  `Router.expected_wait(queue, position, agents_ready, agents_serving)`, as the announcements
  ask it (`RoutingService.place_in_line`). Every agent serves the queue, so agents serving is c;
- Asterisk: app_queue's `holdtime`, exactly as `recalc_holdtime` keeps it (integer seconds,
  starts at 0, `(3 * holdtime + newholdtime) >> 2` when a caller is connected, newholdtime being
  that caller's wait) and as `say_position` announces it: `labs(holdtime - waited)` (Asterisk then
  rounds to minutes or `roundingseconds`; we do not round, which only helps it);
- elapsed: the same model (`WaitEstimator`, fed the same events) also told how long each call in
  progress has lasted (`busy_elapsed_s`), a refinement of app/domain/ewt.py that
  `Router.expected_wait` does not use: what passing the calls' elapsed times would add.

A fourth column, the floor, is the best any estimator could do: for a sample of callers, the
mean wait of the answered over futures drawn from the simulator's own laws, starting from what
was visible when the caller joined (see `floor_estimate`). It shows how much of the error is
chance that no estimator can remove.

The first 30 simulated minutes of each day warm the estimators up and are not scored. Figures
are mean absolute errors in seconds and, the figure to quote, their ratio to Asterisk's in the
same run. Deterministic: every random stream is seeded from the scenario and the seed.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.ewt import WaitEstimator
from app.domain.routing import QueueConfig, Router

WARM_UP_S = 1800.0
ANNOUNCE_EVERY_S = 30.0


@dataclass(frozen=True)
class Scenario:
    name: str
    agents: int
    handle_mean_s: float
    handle_cv: float
    load: float  # offered load per agent: arrival rate x mean handle time / agents
    patience_mean_s: float | None  # None: nobody gives up
    patience_cv: float = 1.0  # 1 with "exp"; the lognormal's coefficient of variation otherwise
    patience_law: str = "exp"  # "exp" or "lognormal"
    burst: tuple[float, float, float] | None = None  # (start s, duration s, arrival-rate factor)


SCENARIOS = (
    # Well staffed (Erlang C regime): queues stay short, most of the wait is chance.
    Scenario("2 agents", 2, 240, 1.0, 0.80, 300),
    Scenario("5 agents", 5, 300, 0.7, 0.90, 240, 1.0, "lognormal"),
    Scenario("5 agents, heavy tail", 5, 360, 1.5, 0.85, 400),
    Scenario("5 agents, patient callers", 5, 300, 0.8, 0.95, 900, 1.0, "lognormal"),
    Scenario("20 agents, 95 %", 20, 180, 1.0, 0.95, 180),
    Scenario("20 agents, no abandon", 20, 240, 0.8, 0.93, None),
    # Queues that build: a burst above capacity, or a whole day understaffed (Erlang A regime).
    Scenario("10 agents, burst", 10, 200, 0.9, 0.80, 200, 1.0, "lognormal", (3 * 3600, 2700, 1.5)),
    Scenario("20 agents, burst", 20, 300, 1.2, 0.80, 240, 1.0, "exp", (3 * 3600, 3600, 1.35)),
    Scenario("20 agents, understaffed", 20, 240, 1.0, 1.10, 300),
)


class AsteriskHoldtime:
    """app_queue.c's per-queue hold time (recalc_holdtime / say_position)."""

    def __init__(self) -> None:
        self.holdtime = 0  # seconds, an int as in struct call_queue

    def connected(self, joined_at: float, now: float) -> None:
        newholdtime = int(now) - int(joined_at)  # time(NULL) - qe->start
        self.holdtime = ((self.holdtime << 2) - self.holdtime + newholdtime) >> 2

    def announce(self, joined_at: float, now: float) -> float:
        return float(abs(self.holdtime - (int(now) - int(joined_at))))


class Ours:
    """The product's expected wait: a `Router` with one queue, fed and asked as
    app/routing/desk.py does (simulated seconds become datetimes from a fixed start)."""

    QUEUE = "ewt"
    START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

    def __init__(self) -> None:
        self.router = Router({self.QUEUE: QueueConfig(self.QUEUE)})

    def _at(self, now: float) -> datetime:
        return self.START + timedelta(seconds=now)

    def record_answer(self, caller: int, waited_s: float, now: float) -> None:
        self.router.record_answer(self.QUEUE, f"c{caller}", waited_s, self._at(now))

    def record_handle(self, handle_s: float, now: float) -> None:
        self.router.record_handle_time(self.QUEUE, handle_s, self._at(now))

    def record_abandon(self, waited_s: float, now: float) -> None:
        self.router.record_abandon(self.QUEUE, waited_s, self._at(now))

    def estimate(self, position: int, ready: int, serving: int) -> float | None:
        return self.router.expected_wait(self.QUEUE, position, ready, serving)


@dataclass
class Caller:
    arrived: float
    queued: bool = False  # found no free agent
    answered: float | None = None
    # (when, ours, asterisk, elapsed) for every estimate told to this caller
    told: list[tuple[float, float | None, float, float | None]] = field(default_factory=list)
    # what could be seen when first told, kept for a sample of callers (see floor_mae)
    snapshot: Snapshot | None = None


@dataclass(frozen=True)
class Snapshot:
    position: int
    busy_elapsed_s: tuple[float, ...]
    ahead_waited_s: tuple[float, ...]  # callers ahead, first in line first


def _lognormal(rng: random.Random, mean: float, cv: float) -> float:
    sigma2 = math.log1p(cv * cv)
    return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


def _lognormal_beyond(rng: random.Random, mean: float, cv: float, elapsed: float) -> float:
    """What remains of a lognormal duration that has already lasted `elapsed`."""
    sigma2 = math.log1p(cv * cv)
    mu, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
    if elapsed <= 0:
        return rng.lognormvariate(mu, sigma)
    lo = NormalDist().cdf((math.log(elapsed) - mu) / sigma)
    u = min(lo + (1 - lo) * rng.random(), 1 - 1e-12)
    return max(0.0, math.exp(mu + sigma * NormalDist().inv_cdf(u)) - elapsed)


def _patience(sc: Scenario, rng: random.Random, waited: float = 0.0) -> float:
    if sc.patience_mean_s is None:
        return math.inf
    if sc.patience_law == "exp":
        return rng.expovariate(1 / sc.patience_mean_s)
    return _lognormal_beyond(rng, sc.patience_mean_s, sc.patience_cv, waited)


def _arrivals(sc: Scenario, rng: random.Random, hours: float) -> list[float]:
    base = sc.load * sc.agents / sc.handle_mean_s
    top = base * max(1.0, sc.burst[2] if sc.burst else 1.0)
    out: list[float] = []
    t = 0.0
    end = hours * 3600
    while True:
        t += rng.expovariate(top)
        if t >= end:
            return out
        rate = base
        if sc.burst and sc.burst[0] <= t < sc.burst[0] + sc.burst[1]:
            rate = base * sc.burst[2]
        if rng.random() * top < rate:  # thinning
            out.append(t)


def simulate(sc: Scenario, seed: int, hours: float, snapshot_share: float = 0.0) -> list[Caller]:
    rng_arrivals = random.Random(f"{sc.name}/{seed}/arrivals")
    rng_handle = random.Random(f"{sc.name}/{seed}/handle")
    rng_patience = random.Random(f"{sc.name}/{seed}/patience")
    rng_snapshot = random.Random(f"{sc.name}/{seed}/snapshot")
    ours = Ours()
    asterisk = AsteriskHoldtime()
    with_elapsed = WaitEstimator()

    callers = [Caller(t) for t in _arrivals(sc, rng_arrivals, hours)]
    events: list[tuple[float, int, int, int]] = []  # (time, seq, kind, caller or agent)
    arrive, end_call, give_up, announce = 0, 1, 2, 3
    seq = 0

    def push(t: float, kind: int, who: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, who))

    for i, c in enumerate(callers):
        push(c.arrived, arrive, i)
    line: list[int] = []  # callers waiting, first in line first
    free = list(range(sc.agents))
    busy_since: dict[int, float] = {}  # agent -> start of the call in progress
    handle: dict[int, float] = {}

    def tell(i: int, now: float) -> None:
        c = callers[i]
        position = line.index(i) + 1 if c.queued else 1
        elapsed = [now - s for s in busy_since.values()]
        est = with_elapsed.estimate(position, sc.agents, len(free), busy_elapsed_s=elapsed)
        c.told.append(
            (
                now,
                ours.estimate(position, len(free), sc.agents),
                asterisk.announce(c.arrived, now),
                est.seconds if est is not None else None,
            )
        )
        if c.queued and len(c.told) == 1 and rng_snapshot.random() < snapshot_share:
            ahead = tuple(now - callers[j].arrived for j in line[: position - 1])
            c.snapshot = Snapshot(position, tuple(elapsed), ahead)

    def connect(i: int, agent: int, now: float) -> None:
        c = callers[i]
        c.answered = now
        ours.record_answer(i, now - c.arrived, now)
        with_elapsed.record_answer(now - c.arrived, now)
        asterisk.connected(c.arrived, now)
        busy_since[agent] = now
        handle[agent] = _lognormal(rng_handle, sc.handle_mean_s, sc.handle_cv)
        push(now + handle[agent], end_call, agent)

    while events:
        now, _, kind, who = heapq.heappop(events)
        if kind == arrive:
            c = callers[who]
            if free:
                tell(who, now)
                connect(who, free.pop(), now)
                continue
            c.queued = True
            line.append(who)
            tell(who, now)
            push(now + ANNOUNCE_EVERY_S, announce, who)
            push(now + _patience(sc, rng_patience), give_up, who)
        elif kind == end_call:
            ours.record_handle(handle[who], now)
            with_elapsed.record_handle(handle[who], now)
            del busy_since[who]
            if line:
                connect(line.pop(0), who, now)
            else:
                free.append(who)
        elif kind == give_up:
            c = callers[who]
            if c.answered is None and who in line:
                line.remove(who)
                ours.record_abandon(now - c.arrived, now)
                with_elapsed.record_abandon(now - c.arrived, now)
        elif kind == announce:
            if callers[who].answered is None and who in line:
                tell(who, now)
                push(now + ANNOUNCE_EVERY_S, announce, who)
    return callers


def floor_estimate(sc: Scenario, snap: Snapshot, rng: random.Random, reps: int) -> float | None:
    """The best any estimator could say from what is visible when a caller joins: the mean wait
    of the answered among `reps` futures drawn from the simulator's own laws (true handle-time and
    patience distributions, the calls in progress conditioned on how long they have lasted, the
    callers ahead on how long they have waited). None if no future had the caller answered."""
    total = 0.0
    answered = 0
    for _ in range(reps):
        frees = [_lognormal_beyond(rng, sc.handle_mean_s, sc.handle_cv, a) for a in snap.busy_elapsed_s]
        frees += [0.0] * (sc.agents - len(frees))
        heapq.heapify(frees)
        gone_at = [_patience(sc, rng, w) for w in snap.ahead_waited_s]
        own = _patience(sc, rng)
        nxt = 0
        while True:
            t = heapq.heappop(frees)
            while nxt < len(gone_at) and gone_at[nxt] <= t:
                nxt += 1  # gave up before this agent freed up
            if nxt == len(gone_at):
                break
            nxt += 1
            heapq.heappush(frees, t + _lognormal(rng, sc.handle_mean_s, sc.handle_cv))
        if t <= own:
            total += t
            answered += 1
    return total / answered if answered else None


@dataclass
class Errors:
    n: int = 0
    ours: float = 0.0
    asterisk: float = 0.0
    elapsed: float = 0.0
    floor: float = 0.0
    ours_bias: float = 0.0
    ours_unknown: int = 0  # estimates for which ours said None (scored as 0)

    def add(
        self,
        actual: float,
        ours: float | None,
        asterisk: float,
        elapsed: float | None,
        floor: float | None = None,
    ) -> None:
        self.n += 1
        self.ours_unknown += ours is None
        self.ours += abs((ours if ours is not None else 0.0) - actual)
        self.ours_bias += (ours if ours is not None else 0.0) - actual
        self.asterisk += abs(asterisk - actual)
        self.elapsed += abs((elapsed if elapsed is not None else 0.0) - actual)
        self.floor += abs((floor if floor is not None else 0.0) - actual)

    def mae(self, what: str) -> float:
        return float(getattr(self, what)) / self.n if self.n else math.nan

    def ratio(self, what: str = "ours") -> float:
        return self.mae(what) / self.mae("asterisk") if self.asterisk > 0 else math.nan


@dataclass
class Score:
    queued_arrival: Errors = field(default_factory=Errors)  # told on arrival, had to wait
    every_30s: Errors = field(default_factory=Errors)  # every estimate told to those who waited
    all_arrivals: Errors = field(default_factory=Errors)  # on arrival, everyone answered
    in_burst: Errors = field(default_factory=Errors)  # had to wait, joined in a burst (+30 min)
    sampled: Errors = field(default_factory=Errors)  # had to wait, sample scored against the floor
    callers: int = 0
    abandoned: int = 0
    waits: list[float] = field(default_factory=list)


def score(sc: Scenario, callers: Sequence[Caller], into: Score, rng: random.Random, reps: int) -> None:
    for c in callers:
        if c.arrived < WARM_UP_S:
            continue
        into.callers += 1
        if c.answered is None:
            into.abandoned += 1
            continue
        into.waits.append(c.answered - c.arrived)
        in_burst = sc.burst is not None and sc.burst[0] <= c.arrived < sc.burst[0] + sc.burst[1] + 1800
        for k, (when, ours, ast, elapsed) in enumerate(c.told):
            actual = c.answered - when
            if k == 0:
                into.all_arrivals.add(actual, ours, ast, elapsed)
            if not c.queued:
                continue
            into.every_30s.add(actual, ours, ast, elapsed)
            if k > 0:
                continue
            into.queued_arrival.add(actual, ours, ast, elapsed)
            if in_burst:
                into.in_burst.add(actual, ours, ast, elapsed)
            if c.snapshot is not None:
                best = floor_estimate(sc, c.snapshot, rng, reps)
                if best is not None:
                    into.sampled.add(actual, ours, ast, elapsed, best)


def run(
    scenarios: Sequence[Scenario], seeds: Sequence[int], hours: float, floor_points: int, reps: int
) -> list[tuple[Scenario, Score]]:
    results: list[tuple[Scenario, Score]] = []
    for sc in scenarios:
        s = Score()
        # A first pass counts the callers who wait, to sample about `floor_points` of them.
        share = 0.0
        if floor_points:
            waited = sum(1 for c in simulate(sc, seeds[0], hours) if c.queued and c.arrived >= WARM_UP_S)
            share = min(1.0, floor_points / max(1, waited * len(seeds)))
        rng = random.Random(f"{sc.name}/floor")
        for seed in seeds:
            score(sc, simulate(sc, seed, hours, share), s, rng, reps)
        results.append((sc, s))
        _print_scenario(sc, s)
    return results


def _row(label: str, e: Errors) -> str:
    return (
        f"  {label:<30} {e.n:>7,} {e.mae('ours'):>8.1f} {e.mae('asterisk'):>9.1f} {e.ratio():>6.2f}"
        f" {e.mae('elapsed'):>8.1f} {e.ours_bias / max(e.n, 1):>+9.1f}"
    )


def _print_scenario(sc: Scenario, s: Score) -> None:
    patience = "none" if sc.patience_mean_s is None else f"{sc.patience_law} mean {sc.patience_mean_s:.0f} s"
    burst = ""
    if sc.burst:
        burst = f", x{sc.burst[2]} for {sc.burst[1] / 60:.0f} min from {sc.burst[0] / 3600:.0f} h"
    waits = sorted(s.waits)
    mean_wait = sum(waits) / max(len(waits), 1)
    p90 = waits[int(0.9 * (len(waits) - 1))] if waits else 0.0
    print(
        f"\n{sc.name}: handle lognormal mean {sc.handle_mean_s:.0f} s cv {sc.handle_cv},"
        f" offered load {sc.load:.0%}{burst}, patience {patience}"
    )
    print(
        f"  {s.callers:,} callers scored, {s.abandoned / max(s.callers, 1):.1%} abandoned;"
        f" wait of the answered: mean {mean_wait:.0f} s, p90 {p90:.0f} s"
    )
    print(
        f"  {'MAE, seconds':<30} {'n':>7} {'ours':>8} {'Asterisk':>9} {'ratio':>6}"
        f" {'elapsed':>8} {'our bias':>9}"
    )
    print(_row("on arrival, had to wait", s.queued_arrival))
    print(_row("every 30 s while waiting", s.every_30s))
    print(_row("on arrival, every caller", s.all_arrivals))
    if s.in_burst.n:
        print(_row("on arrival, burst, had to wait", s.in_burst))
    if s.sampled.n:
        print(
            f"  floor on {s.sampled.n:,} of those who had to wait:"
            f" best possible {s.sampled.mae('floor'):.1f} s"
            f" ({s.sampled.ratio('floor'):.2f} of Asterisk's error), ours {s.sampled.mae('ours'):.1f} s"
            f" ({s.sampled.ratio():.2f})"
        )


def _summary(results: Sequence[tuple[Scenario, Score]]) -> None:
    print("\nSummary: callers who had to wait, estimate told on arrival, MAE in seconds\n")
    cols = (
        "scenario",
        "mean wait",
        "ours",
        "Asterisk",
        "ratio",
        "every 30 s",
        "floor",
        "ours on floor sample",
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("-" * (len(c) + 1) + ":" for c in cols) + "|")
    for sc, s in results:
        e = s.queued_arrival
        mean_wait = sum(s.waits) / max(len(s.waits), 1)
        floor = f"{s.sampled.ratio('floor'):.2f} | {s.sampled.ratio():.2f}" if s.sampled.n else "- | -"
        print(
            f"| {sc.name} | {mean_wait:.0f} s | {e.mae('ours'):.1f} | {e.mae('asterisk'):.1f}"
            f" | {e.ratio():.2f} | {s.every_30s.ratio():.2f} | {floor} |"
        )
    print(
        "\nratio, every 30 s, floor: MAE / Asterisk's MAE on the same estimates. floor: the best any"
        "\nestimator could do from what is visible (see floor_estimate), on a sample of the callers."
    )


def broken(results: Sequence[tuple[Scenario, Score]]) -> list[str]:
    """What says the path is broken, rather than merely inaccurate: a scenario with nobody who had to
    wait, or where ours gave no estimate after the warm-up (it knows handle times by then)."""
    problems = []
    for sc, s in results:
        e = s.queued_arrival
        if e.n == 0:
            problems.append(f"{sc.name}: no caller who had to wait was scored")
        elif e.ours_unknown or s.every_30s.ours_unknown:
            problems.append(
                f"{sc.name}: ours gave no estimate {e.ours_unknown + s.every_30s.ours_unknown} times"
            )
        elif not math.isfinite(e.ratio()):
            problems.append(f"{sc.name}: no ratio to Asterisk's error")
    return problems


QUICK = ("2 agents", "5 agents, patient callers", "10 agents, burst")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {len(QUICK)} scenarios, 2 days of 5 h (the burst included), small floor sample",
    )
    parser.add_argument("--seeds", type=int, default=20, help="8-hour days per scenario (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours per day (default 8)")
    parser.add_argument(
        "--floor", type=int, default=500, help="callers per scenario scored against the floor (0: skip)"
    )
    args = parser.parse_args()
    scenarios: tuple[Scenario, ...] = SCENARIOS
    n_seeds, floor_points, reps = args.seeds, args.floor, 200
    if args.quick:
        scenarios = tuple(sc for sc in SCENARIOS if sc.name in QUICK)
        n_seeds, floor_points, reps, args.hours = 2, 30, 50, 5.0
    seeds = list(range(args.seed, args.seed + n_seeds))
    started = time.perf_counter()
    print(
        f"Expected wait, ours vs Asterisk's holdtime: {n_seeds} days of {args.hours:g} h per scenario,"
        f" estimates every {ANNOUNCE_EVERY_S:.0f} s, first {WARM_UP_S / 60:.0f} min not scored"
    )
    results = run(scenarios, seeds, args.hours, floor_points, reps)
    _summary(results)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    problems = broken(results)
    for problem in problems:
        print(f"BROKEN: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
