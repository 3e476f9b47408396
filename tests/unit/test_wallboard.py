"""The wallboard's fold of interaction events (app/domain/wallboard.py) and the interval report
that follows the same rules (app/domain/reports.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.reports import CallFacts, interval_report
from app.domain.wallboard import Wallboard

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def board() -> Wallboard:
    return Wallboard(
        target_s=lambda queue, tier: 10.0 if tier == "top" else 30.0,
        day_start=lambda t: t.replace(hour=0, minute=0, second=0, microsecond=0),
        short_abandon_s=5.0,
    )


def call(b: Wallboard, iid: str, queued: float, tier: str = "medium", queue: str = "general") -> None:
    b.event(iid, "queued", at(queued), {"queue": queue, "tier": tier})


def test_answered_abandoned_and_short_abandons_make_the_service_level_and_asa() -> None:
    b = board()
    call(b, "a", 0)
    b.event("a", "connected", at(8), {})  # in target (30 s)
    call(b, "b", 1)
    b.event("b", "connected", at(41), {})  # 40 s: late
    call(b, "c", 2)
    b.event("c", "ended", at(4), {"outcome": "abandoned"})  # 2 s: a short abandon
    call(b, "d", 3)
    b.event("d", "ended", at(63), {"outcome": "abandoned"})
    call(b, "e", 4, tier="top")
    b.event("e", "connected", at(12), {})  # 8 s, top's target is 10 s
    today = b.figures(at(100))["general"]["today"]
    assert (today["offered"], today["answered"], today["abandoned"], today["short_abandoned"]) == (5, 3, 2, 1)
    # In target: a and e, over 3 answered + 1 counted abandon (the short one left out).
    assert today["service_level_percent"] == 50.0
    assert today["asa_s"] == round((8 + 40 + 8) / 3, 1)
    tiers = b.figures(at(100))["general"]["tiers"]
    assert tiers["top"]["today"]["answered_in_target"] == 1


def test_a_call_counts_once_where_it_first_joined_a_line() -> None:
    b = board()
    call(b, "a", 0)
    b.event("a", "connected", at(5), {})
    call(b, "a", 60, queue="billing")  # transferred to another queue: not offered twice
    b.event("a", "connected", at(70), {})
    b.event("a", "ended", at(200), {"outcome": "completed"})
    figures = b.figures(at(300))
    assert set(figures) == {"general"}
    assert figures["general"]["today"]["offered"] == 1 and figures["general"]["today"]["answered"] == 1


def test_the_last_30_minutes_forget_older_calls_and_a_new_day_starts_at_zero() -> None:
    b = board()
    call(b, "a", 0)
    b.event("a", "connected", at(5), {})
    call(b, "b", 1000)
    b.event("b", "connected", at(1010), {})
    f = b.figures(at(1900))["general"]
    assert f["today"]["answered"] == 2 and f["last_30_min"]["answered"] == 1
    tomorrow = T0 + timedelta(days=1)
    f = b.figures(tomorrow)["general"]
    assert f["today"]["offered"] == 0 and f["last_30_min"]["offered"] == 0


def test_a_day_replayed_after_a_restart_gives_the_same_figures() -> None:
    events = [
        ("a", "queued", at(0), {"queue": "general", "tier": "medium"}),
        ("b", "queued", at(1), {"queue": "general", "tier": "high"}),
        ("a", "connected", at(20), {}),
        ("b", "ended", at(50), {"outcome": "abandoned"}),
        ("a", "ended", at(300), {"outcome": "completed"}),
    ]
    live, replayed = board(), board()
    for e in events:
        live.event(*e)
    replayed.replay(events)
    assert live.figures(at(400)) == replayed.figures(at(400))


def test_the_interval_report_counts_by_the_wallboards_rules_per_interval() -> None:
    facts = [
        CallFacts("general", "medium", at(60), at(68), at(200), "completed"),  # in target, 132 s talk
        CallFacts("general", "medium", at(120), None, at(122), "abandoned"),  # short
        CallFacts("general", "top", at(1000), at(1015), at(1075), "completed"),  # late for top (10 s)
        CallFacts("general", "medium", at(2000), None, at(2100), "abandoned"),  # next 30 min
        CallFacts("billing", "medium", at(1500), at(1510), None, None),  # still talking: no AHT yet
    ]
    rows = interval_report(facts, T0, 30, lambda q, t: 10.0 if t == "top" else 30.0, 5.0)
    assert [(r["start"][11:16], r["queue"]) for r in rows] == [
        ("09:00", "billing"),
        ("09:00", "general"),
        ("09:30", "general"),
    ]
    general = rows[1]
    assert (general["offered"], general["answered"], general["answered_in_target"]) == (3, 2, 1)
    assert (general["abandoned"], general["short_abandoned"]) == (1, 1)
    assert general["service_level_percent"] == 50.0  # 1 of 2 answered; the short abandon left out
    assert general["aht_s"] == (132 + 60) / 2 and general["asa_s"] == (8 + 15) / 2
    assert rows[0]["aht_s"] is None and rows[2]["service_level_percent"] == 0.0
    with pytest.raises(ValueError):
        interval_report(facts, T0, 20, lambda q, t: 30.0, 5.0)


async def test_events_saved_while_the_day_is_read_back_count_once() -> None:
    """Start-up does not wait for the day's events: they are read back behind, and a call saved
    meanwhile (also found by the read) is counted once."""
    import asyncio

    from app.bus import Bus, InteractionSaved
    from app.domain.interaction import InteractionEvent
    from app.supervision.wallboard import WallboardService
    from tests.support.fake_center import until

    bus = Bus()
    read_started, release = asyncio.Event(), asyncio.Event()
    day: list[tuple[str, str, datetime, dict[str, object]]] = [
        ("a", "queued", at(0), {"queue": "general", "tier": "medium"}),
        ("a", "ended", at(3), {"outcome": "abandoned"}),
    ]

    async def events_since(since: datetime) -> list[tuple[str, str, datetime, dict[str, object]]]:
        read_started.set()
        await release.wait()
        return list(day)

    service = WallboardService(
        board(), bus, events_since, lambda: [], lambda: [], lambda m: None, lambda: at(100)
    )
    await service.start()  # returns before the day is read
    await read_started.wait()
    # While the read is under way: "a" (already in the read) and "b" (new) are saved.
    bus.publish(InteractionSaved("a", tuple(InteractionEvent(t, k, d) for _, k, t, d in day)))
    bus.publish(InteractionSaved("b", (InteractionEvent(at(50), "queued", {"queue": "general"}),)))
    release.set()

    def today() -> dict[str, object]:
        return dict(service.board.figures(at(100)).get("general", {}).get("today") or {})

    await until(lambda: today().get("offered") == 2, "both calls folded in")
    await service.stop()
    assert (today()["offered"], today()["abandoned"]) == (2, 1)


def test_agents_by_state_list_each_logged_in_agent_with_since_and_the_not_ready_reason() -> None:
    from app.domain.agent_state import Agent, AgentState
    from app.domain.wallboard import agents_by_state

    def agent(
        aid: str, name: str, state: AgentState, since: float | None, reason: str | None = None
    ) -> Agent:
        return Agent(
            aid,
            name,
            state=state,
            state_since=at(since) if since is not None else None,
            not_ready_reason=reason,
        )

    lines = agents_by_state(
        [
            agent("1", "Ann", AgentState.NOT_READY, 50, "break"),
            agent("2", "Bo", AgentState.READY, 10),
            agent("3", "Cy", AgentState.LOGGED_OUT, 0),
            agent("4", "Di", AgentState.ON_CALL, 30),
            agent("5", "Ed", AgentState.NOT_READY, 20, "lunch"),
            agent("6", "Fay", AgentState.WRAP_UP, 40, "stale"),  # a reason kept from before: not shown
            agent("7", "Gus", AgentState.READY, None),  # restored with no time known: longest
        ]
    )
    # Free, then on a call, then away; the longest in a state first; the logged out left out.
    assert [(line.name, line.state.value, line.reason) for line in lines] == [
        ("Gus", "ready", None),
        ("Bo", "ready", None),
        ("Di", "on_call", None),
        ("Fay", "wrap_up", None),
        ("Ed", "not_ready", "lunch"),
        ("Ann", "not_ready", "break"),
    ]
    assert lines[4].view() == {
        "id": "5",
        "name": "Ed",
        "state": "not_ready",
        "since": "2026-12-03T09:00:20+00:00",
        "not_ready_reason": "lunch",
    }
    assert lines[0].view()["since"] is None


async def test_the_board_sent_to_pages_lists_agents_with_since_and_reason_beside_the_counts() -> None:
    """What the websocket pushes and GET /api/wallboard answer: one view."""
    from app.bus import Bus
    from app.domain.agent_state import Agent
    from app.supervision.wallboard import WallboardService

    async def no_events(since: datetime) -> list[tuple[str, str, datetime, dict[str, object]]]:
        return []

    ann, bo = Agent("1001", "Ann"), Agent("1002", "Bo")
    ann.login(at(0))
    ann.not_ready(at(40), "break")
    bo.login(at(0))
    bo.ready(at(10))
    pushed: list[dict[str, object]] = []
    service = WallboardService(
        board(),
        Bus(),
        no_events,
        lambda: [],
        lambda: [ann, bo, Agent("1003", "Cy")],
        pushed.append,
        lambda: at(100),
    )
    view = service.view()
    assert view["at"] == at(100).isoformat()
    assert (
        view["agents"]["not_ready"] == 1
        and view["agents"]["ready"] == 1
        and view["agents"]["logged_out"] == 1
    )
    assert view["not_ready_reasons"] == {"break": 1}
    assert view["agent_list"] == [
        {"id": "1002", "name": "Bo", "state": "ready", "since": at(10).isoformat(), "not_ready_reason": None},
        {
            "id": "1001",
            "name": "Ann",
            "state": "not_ready",
            "since": at(40).isoformat(),
            "not_ready_reason": "break",
        },
    ]
    await service.start()
    from tests.support.fake_center import until

    await until(lambda: bool(pushed), "the board pushed to pages")
    await service.stop()
    assert pushed[0] == {"type": "wallboard", "board": view}


def test_a_tile_turns_amber_then_red_on_a_long_wait_or_a_low_service_level() -> None:
    from app.domain.wallboard import TileThresholds

    default = TileThresholds()
    assert [default.colour(wait, None) for wait in (0, 59.9, 60, 119.9, 120)] == [
        "",
        "",
        "warn",
        "warn",
        "bad",
    ]
    assert [default.colour(0, level) for level in (100, 80, 79.9, 60, 59.9)] == [
        "",
        "",
        "warn",
        "warn",
        "bad",
    ]
    assert default.colour(60, 50) == "bad"  # the worse of the two
    strict = TileThresholds(amber_wait_s=10, red_wait_s=20, amber_below_percent=95, red_below_percent=90)
    assert (strict.colour(15, None), strict.colour(0, 92), strict.colour(25, 99)) == ("warn", "warn", "bad")


def test_the_board_says_each_tiles_colour_by_its_thresholds() -> None:
    from app.bus import Bus
    from app.domain.routing import QueueStats
    from app.domain.wallboard import TileThresholds, Wallboard
    from app.supervision.wallboard import WallboardService

    async def no_events(since: datetime) -> list[tuple[str, str, datetime, dict[str, object]]]:
        return []

    def stats(queue: str, longest: float) -> QueueStats:
        return QueueStats(queue, 1, 0, 1 if longest else 0, longest, None, None)

    b = Wallboard(
        lambda q, t: 30.0, lambda t: t.replace(hour=0, minute=0, second=0), 5.0, TileThresholds(10, 20)
    )
    call(b, "a", 0, queue="sales")
    b.event("a", "connected", at(50), {})  # today's level in sales: 0%
    service = WallboardService(
        b,
        Bus(),
        no_events,
        lambda: [stats("general", 0), stats("billing", 12), stats("support", 25), stats("sales", 0)],
        lambda: [],
        lambda m: None,
        lambda: at(100),
    )
    tiles = {name: q["tile"] for name, q in service.view()["queues"].items()}
    assert tiles == {"general": "", "billing": "warn", "support": "bad", "sales": "bad"}
