"""The expected-wait estimator (app/domain/ewt.py): the model's answers on hand-fed events."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.ewt import WaitEstimate, WaitEstimator, next_announcement_in


def fed(*handles: float, half_life_s: float = 1800.0, every_s: float = 10.0) -> WaitEstimator:
    est = WaitEstimator(half_life_s=half_life_s)
    for i, h in enumerate(handles):
        est.record_handle(h, i * every_s)
    return est


def seconds(e: WaitEstimate | None) -> float:
    assert e is not None
    return e.seconds


def test_unknown_without_handle_times_or_agents() -> None:
    assert WaitEstimator().estimate(3, agents_serving=4) is None
    assert fed(200).estimate(1, agents_serving=0) is None


def test_a_free_agent_for_you_means_no_wait_even_before_any_handle_time() -> None:
    e = WaitEstimator().estimate(1, agents_serving=3, agents_ready=1)
    assert e == WaitEstimate(0.0, 0.0, 0.0, 0.0)
    assert seconds(fed(200).estimate(2, agents_serving=3, agents_ready=2)) == 0.0


def test_without_abandonment_it_is_the_position_in_handle_times_per_agent() -> None:
    est = fed(300, 300, 300)
    assert seconds(est.estimate(1, agents_serving=5)) == pytest.approx(60)
    assert seconds(est.estimate(4, agents_serving=5)) == pytest.approx(240)
    # two free agents take the first two callers: the fourth waits like the second
    assert seconds(est.estimate(4, agents_serving=5, agents_ready=2)) == pytest.approx(120)


def test_grows_with_position() -> None:
    est = fed(200, 250, 300)
    waits = [seconds(est.estimate(p, agents_serving=4)) for p in range(1, 12)]
    assert waits == sorted(waits)
    assert len(set(waits)) == len(waits)


def test_scales_with_handle_time_and_agent_count() -> None:
    short, long = fed(100, 100), fed(400, 400)
    assert seconds(long.estimate(3, agents_serving=2)) == pytest.approx(
        4 * seconds(short.estimate(3, agents_serving=2))
    )
    assert seconds(short.estimate(3, agents_serving=8)) == pytest.approx(
        seconds(short.estimate(3, agents_serving=2)) / 4
    )


def test_recent_handle_times_weigh_more() -> None:
    # 10 old calls of 100 s, then 10 of 400 s an hour later (two half-lives): weights 1/4 vs 1
    est = WaitEstimator(half_life_s=1800)
    for i in range(10):
        est.record_handle(100, i)
    for i in range(10):
        est.record_handle(400, 3600 + i)
    mean = est.handle_mean_s
    assert mean is not None
    assert 330 < mean < 400
    assert mean > (100 + 400) / 2


def test_handle_mean_does_not_depend_on_when_it_is_asked() -> None:
    est = fed(120, 180, 240)
    before = est.estimate(5, agents_serving=3)
    est.record_answer(30, 10_000)  # only moves the waiting statistics
    assert est.estimate(5, agents_serving=3) is not None
    assert seconds(est.estimate(5, agents_serving=3)) == pytest.approx(seconds(before))


def test_abandonment_shortens_the_wait_of_those_behind() -> None:
    patient = fed(300, 300)
    leaving = fed(300, 300)
    for i in range(20):  # 1 in 4 give up; 10,000 s waited in all
        if i % 4 == 0:
            leaving.record_abandon(500, 100)
        else:
            leaving.record_answer(500, 100)
    assert leaving.abandon_rate == pytest.approx(5 / 10_000)
    theta = 5 / 10_000
    deep = seconds(leaving.estimate(6, agents_serving=3))
    assert deep < seconds(patient.estimate(6, agents_serving=3))
    assert deep == pytest.approx(sum(1 / (3 / 300 + (j + 1) * theta) for j in range(6)))


def test_elapsed_time_of_calls_in_progress() -> None:
    est = fed(60, 120, 180, 240, 600, 900, 30, 200)
    plain = seconds(est.estimate(1, agents_serving=2))
    just_started = seconds(est.estimate(1, agents_serving=2, busy_elapsed_s=[0, 0]))
    long_running = seconds(est.estimate(1, agents_serving=2, busy_elapsed_s=[1500, 1500]))
    assert just_started == pytest.approx(plain)
    assert long_running > plain  # heavy-tailed handle times: a long call tends to go on


def test_band_brackets_the_estimate_and_narrows_with_data() -> None:
    few = fed(200, 200)
    many = fed(*([200.0] * 200), every_s=1)
    for est in (few, many):
        e = est.estimate(5, agents_serving=2)
        assert e is not None
        assert 0 <= e.low_s < e.seconds < e.high_s
    e_few, e_many = few.estimate(5, agents_serving=2), many.estimate(5, agents_serving=2)
    assert e_few is not None and e_many is not None
    assert e_many.handle_samples > e_few.handle_samples
    assert e_many.high_s - e_many.low_s < e_few.high_s - e_few.low_s


def test_rejects_impossible_queries() -> None:
    est = fed(100)
    with pytest.raises(ValueError):
        est.estimate(0, agents_serving=2)
    with pytest.raises(ValueError):
        est.estimate(1, agents_serving=2, agents_ready=3)
    with pytest.raises(ValueError):
        WaitEstimator(half_life_s=0)


events = st.lists(
    st.tuples(
        st.sampled_from(("handle", "answer", "abandon")),
        st.floats(min_value=0, max_value=3600),
        st.floats(min_value=0, max_value=600),
    ),
    min_size=1,
    max_size=40,
)


def replay(evs: list[tuple[str, float, float]]) -> WaitEstimator:
    est = WaitEstimator()
    t = 0.0
    for kind, value, dt in evs:
        t += dt
        if kind == "handle":
            est.record_handle(value, t)
        elif kind == "answer":
            est.record_answer(value, t)
        else:
            est.record_abandon(value, t)
    return est


@settings(deadline=None, max_examples=200)
@given(
    events,
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=1, max_value=10),
    st.data(),
)
def test_monotone_in_position_and_never_negative(
    evs: list[tuple[str, float, float]], serving: int, length: int, data: st.DataObject
) -> None:
    est = replay(evs)
    ready = data.draw(st.integers(min_value=0, max_value=serving))
    elapsed = data.draw(
        st.none() | st.lists(st.floats(min_value=0, max_value=5000), min_size=serving, max_size=serving)
    )
    previous = 0.0
    for position in range(1, length + 1):
        e = est.estimate(position, serving, ready, busy_elapsed_s=elapsed)
        if e is None:
            assert est.handle_mean_s is None and position > ready
            continue
        assert math.isfinite(e.seconds) and math.isfinite(e.high_s)
        assert 0 <= e.low_s <= e.seconds <= e.high_s
        assert e.seconds >= previous
        previous = e.seconds


@settings(deadline=None, max_examples=100)
@given(events, st.integers(min_value=1, max_value=30), st.integers(min_value=1, max_value=20))
def test_more_agents_never_mean_a_longer_wait(
    evs: list[tuple[str, float, float]], serving: int, position: int
) -> None:
    est = replay(evs)
    a, b = est.estimate(position, serving), est.estimate(position, serving + 1)
    if a is not None and b is not None:
        assert b.seconds <= a.seconds


def test_long_calls_in_progress_and_quick_abandons_keep_the_order() -> None:
    # Found by hypothesis: the second in line must not be told less than the first when the
    # only agent is deep in a long call and callers ahead give up quickly.
    est = fed(1.0)
    est.record_abandon(2.0, 0.0)
    first = seconds(est.estimate(1, 1, busy_elapsed_s=[51.0]))
    second = seconds(est.estimate(2, 1, busy_elapsed_s=[51.0]))
    assert 0 < first <= second


def test_a_hang_up_at_once_does_not_make_the_rate_infinite() -> None:
    est = fed(100)
    est.record_abandon(0.0, 5)
    assert est.abandon_rate == 1.0
    assert math.isfinite(seconds(est.estimate(3, 2)))


def test_announcements_keep_the_interval_from_the_callers_entry() -> None:
    # Told on entry; the next at 30 s from entry even though the first took 12 s to say.
    assert next_announcement_in(12.0, 30.0) == 18.0
    assert next_announcement_in(30.5, 30.0) == 29.5, "the one at 30 s just played: the next at 60 s"
    assert next_announcement_in(65.0, 30.0) == 25.0, "one that ran past 60 s: the next at 90 s"
    assert next_announcement_in(5.0, 0.0) == math.inf, "0: never"
