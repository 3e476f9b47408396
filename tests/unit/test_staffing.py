"""Staffing maths (app/domain/staffing.py) against published Erlang C tables, an exact case,
the textbook example, and a simulation of callers who give up (Erlang A)."""

from __future__ import annotations

import heapq
import math
import random

import pytest

from app.domain.staffing import agents_needed, erlang_a_performance, erlang_c, erlang_c_performance


@pytest.mark.parametrize(
    ("traffic", "agents", "published"),
    # Erlang C tables, probability of delay for 10 Erlangs.
    [(10, 11, 0.6821), (10, 12, 0.4494), (10, 13, 0.2853), (10, 14, 0.1741), (10, 15, 0.1020)],
)
def test_erlang_c_matches_published_tables(traffic: float, agents: int, published: float) -> None:
    assert erlang_c(traffic, agents) == pytest.approx(published, abs=5e-5)


def test_erlang_c_exact_small_case_and_edges() -> None:
    assert erlang_c(2, 3) == pytest.approx(4 / 9)  # (8/6 * 3) / (1 + 2 + 2 + 4)
    assert erlang_c(5, 5) == 1.0 and erlang_c(6, 5) == 1.0  # cannot keep up
    assert erlang_c(0, 3) == 0.0
    assert 0 < erlang_c(4000, 4100) < 1  # no overflow with thousands of agents


def test_the_textbook_example_needs_14_agents_for_80_in_20() -> None:
    # 100 calls in 30 minutes, 180 s handle time: 10 Erlangs; 80% answered within 20 s.
    perf = agents_needed(100 / 1800, 180, 20, 0.80)
    assert perf.agents == 14
    assert perf.service_level == pytest.approx(0.888, abs=0.001)
    assert perf.asa_s == pytest.approx(7.8, abs=0.1)
    assert erlang_c_performance(100 / 1800, 180, 13, 20).service_level < 0.80


def test_erlang_a_approaches_erlang_c_as_callers_become_patient() -> None:
    c = erlang_c_performance(100 / 1800, 180, 12, 20)
    a = erlang_a_performance(100 / 1800, 180, 1e7, 12, 20)
    assert a.p_wait == pytest.approx(c.p_wait, abs=1e-3)
    assert a.service_level == pytest.approx(c.service_level, abs=1e-3)
    assert a.p_abandon < 1e-4


def test_with_impatient_callers_erlang_a_needs_fewer_agents_than_erlang_c() -> None:
    c = agents_needed(100 / 1800, 180, 20, 0.80)
    a = agents_needed(100 / 1800, 180, 20, 0.80, patience_s=120)
    assert a.agents < c.agents and a.p_abandon > 0


def simulate(
    rate: float, aht: float, patience: float, agents: int, target: float, n: int
) -> tuple[float, float]:
    """M/M/N+M by simulation, first come first served: (answered within target, abandoned)."""
    rng = random.Random(7)
    free_at = [0.0] * agents  # when each agent is next free
    heapq.heapify(free_at)
    t, in_time, gave_up = 0.0, 0, 0
    waiting: list[tuple[float, float]] = []  # not needed with FCFS on a heap of agent times
    del waiting
    for _ in range(n):
        t += rng.expovariate(rate)
        give_up_at = t + rng.expovariate(1 / patience)
        start = max(t, free_at[0])
        if start > give_up_at:
            gave_up += 1
            continue
        heapq.heapreplace(free_at, start + rng.expovariate(1 / aht))
        if start - t <= target:
            in_time += 1
    return in_time / n, gave_up / n


def test_erlang_a_agrees_with_a_simulation_of_callers_who_give_up() -> None:
    rate, aht, patience, agents, target = 1 / 20, 180, 60, 9, 20
    model = erlang_a_performance(rate, aht, patience, agents, target)
    sl, abandoned = simulate(rate, aht, patience, agents, target, 200_000)
    assert model.service_level == pytest.approx(sl, abs=0.01)
    assert model.p_abandon == pytest.approx(abandoned, abs=0.01)
    assert math.isfinite(model.asa_s)
