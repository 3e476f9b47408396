"""Routing decision latency and throughput of `Router.decide`, printed as a table.

    .venv/bin/python benchmarks/routing_decisions.py            # full grid, under a minute
    .venv/bin/python benchmarks/routing_decisions.py --quick    # smoke run, a few seconds

Grid: 10, 100, 1,000 agents x 1, 10, 50 skills x 10, 1,000, 5,000 waiting interactions, in two
situations: "burst" (every agent ready: one pass makes min(agents, waiting) decisions, the worst
case) and "one ready" (a single agent just became ready while the queue is long: the pass that
runs after almost every agent event in a busy contact center).

Every figure is also given as a ratio to a floor measured in the same run on the same inputs:
sorting the waiting list by arrival and filtering the ready agents, the least any router must do
with those inputs. The machine is shared and noisy; the ratios move much less than the times.
Exits with 1 if no pass of a situation decided anything (the router is broken, not slow).
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.agent_state import Agent, AgentState
from app.domain.routing import (
    QueueConfig,
    Relaxation,
    Router,
    SkillRequirement,
    Strategy,
    Tier,
    WaitingInteraction,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
STRATEGIES = (
    Strategy.LONGEST_IDLE,
    Strategy.SKILLS_BEST,
    Strategy.FEWEST_CALLS,
    Strategy.SKILLS_LEAST_OCCUPIED,
    Strategy.ROUND_ROBIN,
    Strategy.LINEAR,
)
TIERS = (Tier.TOP, Tier.HIGH, Tier.MEDIUM, Tier.MEDIUM, Tier.MEDIUM, Tier.LOW)


@dataclass
class Scenario:
    queues: dict[str, QueueConfig]
    agents: list[Agent]
    waiting: list[WaitingInteraction]


def build(n_agents: int, n_skills: int, n_waiting: int, ready_agents: int | None, seed: int) -> Scenario:
    """One queue per skill (requiring it), agents with 1-5 skills, callers in random queues, a
    fifth of them needing a second skill, a tenth returning customers (sticky queues)."""
    rnd = random.Random(seed)
    skills = [f"skill{k}" for k in range(n_skills)]
    agent_ids = [f"agent{k:04d}" for k in range(n_agents)]
    queues: dict[str, QueueConfig] = {}
    for k, skill in enumerate(skills):
        strategy = STRATEGIES[k % len(STRATEGIES)]
        members: tuple[str, ...] = ()
        if strategy in (Strategy.ROUND_ROBIN, Strategy.LINEAR):
            members = tuple(rnd.sample(agent_ids, min(len(agent_ids), 20)))
        name = f"q{k}"
        queues[name] = QueueConfig(
            name,
            strategy,
            members=members,
            required_skills=(SkillRequirement(skill, rnd.randint(1, 3)),),
            sticky_s=20 if k % 3 == 0 else 0,
            relaxations=(Relaxation(60, lower_min_level_by=2),),
        )
    agents = []
    for k, agent_id in enumerate(agent_ids):
        own = rnd.sample(skills, rnd.randint(1, min(5, n_skills)))
        ready = ready_agents is None or k < ready_agents
        agents.append(
            Agent(
                agent_id,
                agent_id,
                skills={s: rnd.randint(1, 10) for s in own},
                state=AgentState.READY if ready else AgentState.ON_CALL,
                device_registered=True,
                ready_since=NOW - timedelta(seconds=rnd.uniform(0, 600)) if ready else None,
                calls_answered=rnd.randint(0, 40),
                logged_in_at=NOW - timedelta(hours=4),
                busy_s=rnd.uniform(0, 4 * 3600),
            )
        )
    names = list(queues)
    waiting = []
    for k in range(n_waiting):
        extra = (SkillRequirement(rnd.choice(skills)),) if rnd.random() < 0.2 else ()
        waiting.append(
            WaitingInteraction(
                f"int{k:05d}",
                rnd.choice(names),
                NOW - timedelta(seconds=rnd.uniform(0, 300)),
                rnd.choice(TIERS),
                customer_value=rnd.choice((0, 0, 0, 50, 500)),
                required_skills=extra,
                last_agent_id=rnd.choice(agent_ids) if rnd.random() < 0.1 else None,
            )
        )
    return Scenario(queues, agents, waiting)


def floor(s: Scenario) -> None:
    sorted(s.waiting, key=lambda w: (w.queued_at, w.id))
    _ = [a for a in s.agents if a.routable]


def measure(fn: Callable[[], object], budget_s: float, min_reps: int, max_reps: int) -> list[float]:
    """Seconds per call, repeated until the budget is spent (within min..max repetitions)."""
    times: list[float] = []
    gc.collect()
    spent = 0.0
    while len(times) < max_reps and (len(times) < min_reps or spent < budget_s):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


def pct(xs: Sequence[float], p: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(grid: list[tuple[int, int, int]], ready_agents: int | None, budget_s: float, seed: int) -> int:
    """Print one row per grid cell; returns the offers decided over all of them."""
    head = (
        f"{'agents':>6} {'skills':>6} {'waiting':>7} {'decided':>7} {'reps':>5} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'decisions/s':>12} {'floor ms':>9} {'p50/floor':>9}"
    )
    print(head)
    print("-" * len(head))
    total = 0
    for n_agents, n_skills, n_waiting in grid:
        s = build(n_agents, n_skills, n_waiting, ready_agents, seed)
        router = Router(s.queues)
        decided = len(router.decide(s.waiting, s.agents, NOW))  # warm up, and the pass's size
        total += decided
        times = measure(functools.partial(router.decide, s.waiting, s.agents, NOW), budget_s, 5, 400)
        base = measure(functools.partial(floor, s), budget_s / 4, 5, 400)
        p50, p99, b50 = pct(times, 50), pct(times, 99), statistics.median(base)
        rate = decided / p50 if p50 > 0 else float("inf")
        print(
            f"{n_agents:>6} {n_skills:>6} {n_waiting:>7} {decided:>7} {len(times):>5} "
            f"{p50 * 1e3:>8.2f} {p99 * 1e3:>8.2f} {rate:>12,.0f} {b50 * 1e3:>9.3f} {p50 / b50:>9.1f}"
        )
    return total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small grid, a few seconds")
    parser.add_argument("--budget", type=float, default=0.8, help="seconds of timing per row (default 0.8)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    agents = (10, 100) if args.quick else (10, 100, 1000)
    skills = (1, 10) if args.quick else (1, 10, 50)
    waiting = (10, 1000) if args.quick else (10, 1000, 5000)
    budget = 0.1 if args.quick else args.budget
    grid = [(a, s, w) for a in agents for s in skills for w in waiting]
    started = time.perf_counter()
    print(f"Router.decide, Python {sys.version.split()[0]}")
    print("floor: sort the waiting list by arrival and filter the ready agents, same inputs, same run\n")
    print("burst: every agent ready (one pass decides min(agents, waiting) offers)")
    burst = run(grid, None, budget, args.seed)
    print("\none ready: a single agent just became ready, the rest on calls")
    one_ready = run([(a, s, max(waiting)) for a in agents for s in skills], 1, budget, args.seed)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if not burst or not one_ready:
        print("BROKEN: a situation in which no pass decided anything", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
