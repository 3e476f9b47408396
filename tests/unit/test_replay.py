"""The replay's rules (app/domain/replay.py): the script made from a recorded call's events
(keys timed from when their node was entered), the path and outcome read from events, the
comparison and its output, and the marker that makes a call a replay."""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.adapters.sip_caller import CallerLeg, SipCaller
from app.bus import Bus, InteractionSaved
from app.domain.interaction import InteractionEvent
from app.domain.replay import (
    Event,
    Journey,
    Key,
    Step,
    Verdict,
    due,
    journey_of,
    plan_of,
    render,
    sign,
    summary,
    verify,
)
from app.replay.service import answered, caller_address, caller_audio
from app.supervision.metrics import CenterMetrics, LiveSources

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ev(s: float, kind: str, **data: Any) -> Event:
    return Event(at(s), kind, data)


# A caller who chose English, pressed 2 (billing), typed an account number, heard the balance,
# then pressed 1 for the billing team.
CALL = [
    ev(0.0, "arrived"),
    ev(0.1, "flow", name="main"),
    ev(0.1, "node", name="entry", type="branch"),
    ev(0.1, "branch", node="entry", to="main_menu"),
    ev(0.1, "node", name="main_menu", type="menu"),
    ev(2.4, "language", lang="en", by="key", key="1"),
    ev(6.0, "dtmf", digit="2"),
    ev(6.0, "menu_choice", menu="main_menu", key="2", to="ask_account"),
    ev(6.0, "node", name="ask_account", type="collect"),
    ev(
        12.0,
        "collected",
        field="account",
        value="4111",
        keys="4111#",
        keys_before_s=[3.0, 2.5, 2.0, 1.5, 1.0],
    ),
    ev(12.0, "node", name="say_balance", type="lookup"),
    ev(12.1, "self_service", lookup="account_balance", key="4111", found=True),
    ev(16.0, "node", name="after", type="menu"),
    ev(17.5, "dtmf", digit="1"),
    ev(17.5, "menu_choice", menu="after", key="1", to="billing"),
    ev(17.5, "node", name="billing", type="queue", queue="billing"),
    ev(17.6, "queued", queue="billing", tier="medium", reason="flow:main:billing"),
    ev(30.0, "connected", agent_id="1001"),
    ev(90.0, "ended", outcome="completed"),
]


def test_keys_are_timed_from_when_their_node_was_entered() -> None:
    plan = plan_of(CALL, recording_started=at(0.05))
    assert [v.node for v in plan.visits] == [
        "entry",
        "main_menu",
        "ask_account",
        "say_balance",
        "after",
        "billing",
    ]
    menu, account, after = plan.visits[1], plan.visits[2], plan.visits[4]
    assert menu.keys == (Key("1", 2.3), Key("2", 5.9))  # the language key, then the menu's
    assert [k.key for k in account.keys] == list("4111#")
    assert [k.after_s for k in account.keys] == [3.0, 3.5, 4.0, 4.5, 5.0]
    assert after.keys == (Key("1", 1.5),)
    assert plan.hangup_after_s is None  # it went on to a queue: the center stops the replay
    assert plan.problems == ()
    # The caller's audio of each node: from its entry to the next node's, on the recording's clock.
    assert menu.audio == (0.05, 5.95)
    assert plan.visits[-1].audio == (17.45, float("inf"))


def test_a_longer_prompt_moves_the_keys_with_the_node() -> None:
    """The replayed menu is entered 4 s later (a longer welcome): its keys come 4 s later."""
    menu = plan_of(CALL).visits[1]
    entered = 1000.0
    assert due(entered, menu.keys, now=entered) == [(1002.3, "1"), (1005.9, "2")]
    assert due(entered + 4, menu.keys, now=entered + 4) == [(1006.3, "1"), (1009.9, "2")]
    # Heard of late (the event was read 3 s after the node began): the late key goes at once.
    assert due(entered, menu.keys, now=entered + 3) == [(1003.0, "1"), (1005.9, "2")]
    # A key is noted when it ends: sent its duration early, it is noted when it was.
    assert due(entered, menu.keys, now=entered, lead_s=0.16) == [(1002.14, "1"), (1005.74, "2")]


def test_a_caller_who_hung_up_in_the_ivr_hangs_up_as_long_after_the_node_began() -> None:
    events = [*CALL[:9], ev(9.5, "ended", outcome="hung_up_in_ivr")]
    plan = plan_of(events)
    assert plan.visits[-1].node == "ask_account"
    assert plan.hangup_after_s == 3.5
    assert plan.visits[-1].audio is None  # no recording given: keys only


def test_a_sensitive_entry_replays_its_value_and_an_unkept_entry_is_said() -> None:
    sensitive = [
        ev(0, "node", name="card", type="collect"),
        ev(5, "collected", field="card", value="4111", keys_before_s=[2.0, 1.5, 1.0, 0.5, 0.0]),
        ev(5, "invalid_entry", field="card", reason="too short"),  # an older call: no keys kept
    ]
    plan = plan_of(sensitive)
    assert "".join(k.key for k in plan.visits[0].keys) == "4111#"
    assert plan.problems == ("the keys of a `invalid_entry` (card) were not kept",)


def test_a_call_without_node_events_cannot_be_replayed() -> None:
    plan = plan_of([ev(0, "flow", name="main"), ev(1, "dtmf", digit="1"), ev(2, "ended", outcome="no_input")])
    assert plan.visits == ()
    assert "before replays were possible" in plan.problems[0]


def test_the_journey_is_the_nodes_with_their_choices_and_where_the_flow_led() -> None:
    j = journey_of(CALL)
    assert str(j) == (
        "entry > main_menu[language en, key 2] > ask_account[entered account] > say_balance[found]"
        " > after[key 1] > billing => queue billing"
    )
    # A replay stopped at the same queue has the same journey, whatever ended it.
    replayed = [e for e in CALL if e.kind not in ("queued", "connected", "ended")]
    replayed.append(ev(17.6, "ended", outcome="replayed", stopped_at="queue", queue="billing"))
    assert journey_of(replayed) == j
    spoken = journey_of(
        [ev(0, "node", name="m", type="menu"), ev(3, "menu_choice", menu="m", word="billing")]
    )
    assert spoken.steps == (Step("m", ("said billing",)),)
    served = journey_of([ev(0, "node", name="bye", type="hangup"), ev(2, "ended", outcome="self_service")])
    assert served.outcome == "self_service"


def test_a_match_is_one_line_and_a_difference_shows_both_paths() -> None:
    recorded = journey_of(CALL)
    same = Verdict("abc", recorded, recorded)
    assert same.match
    assert render(same) == [f"abc  match  {recorded}"]
    other = Journey((Step("entry"), Step("main_menu", ("language en", "key 2")), Step("tech")), "queue tech")
    differs = Verdict("abc", recorded, other)
    assert not differs.match
    assert render(differs) == [
        "abc  DIFFERS at step 3: recorded ask_account[entered account], replayed tech",
        f"    recorded: {recorded}",
        "    replayed: entry > main_menu[language en, key 2] > tech => queue tech",
    ]
    shorter = Verdict("abc", Journey(recorded.steps[:2], "hung_up_in_ivr"), Journey(recorded.steps[:3], "x"))
    assert (
        shorter.first_difference() == "step 3: only the replayed call went on to ask_account[entered account]"
    )
    outcome = Verdict(
        "abc", Journey(recorded.steps, "queue billing"), Journey(recorded.steps, "voicemail general")
    )
    assert outcome.first_difference() == "outcome: recorded queue billing, replayed voicemail general"
    failed = Verdict("abc", recorded, None, "the center did not answer")
    assert render(failed) == ["abc  error: the center did not answer"]


def test_the_exit_code_is_0_all_match_1_some_differ_2_some_failed() -> None:
    j = journey_of(CALL)
    ok, bad = Verdict("a", j, j), Verdict("b", j, Journey((), "x"))
    err = Verdict("c", j, None, "no")
    assert summary([ok, ok]) == ("2 calls replayed: 2 match, 0 differ, 0 errors", 0)
    assert summary([ok, bad])[1] == 1
    assert summary([ok, bad, err]) == ("3 calls replayed: 1 match, 1 differ, 1 errors", 2)


def test_only_a_genuine_unexpired_marker_for_this_caller_and_number_makes_a_replay() -> None:
    of = "4969860b7a4840cdbe8aadd29e28c575"
    token = sign("s3cret-token-of-the-center", of, "13700000091", "7000", 2000, "ab12")
    marker = verify("s3cret-token-of-the-center", token, "13700000091", "7000", now=1000)
    assert marker is not None and (marker.of, marker.nonce) == (of, "ab12")
    assert verify("another-center-token", token, "13700000091", "7000", now=1000) is None
    assert verify("s3cret-token-of-the-center", token, "13700000092", "7000", now=1000) is None  # caller
    assert verify("s3cret-token-of-the-center", token, "13700000091", "7001", now=1000) is None  # number
    assert verify("s3cret-token-of-the-center", token, "13700000091", "7000", now=2001) is None  # expired
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert verify("s3cret-token-of-the-center", forged, "13700000091", "7000", now=1000) is None
    assert verify("s3cret-token-of-the-center", "x;rm -rf", "13700000091", "7000", now=1000) is None
    assert verify("", token, "13700000091", "7000", now=1000) is None  # no secret: no replays


def test_the_caller_calls_from_the_first_single_address_of_carrier_match_it_can_use() -> None:
    assert caller_address(["10.0.0.0/8", "192.0.2.7", "127.0.0.2"], lambda a: a == "127.0.0.2") == "127.0.0.2"
    assert caller_address(["10.0.0.0/8"], lambda a: True) is None


def test_the_callers_channel_is_cut_per_node_and_silent_parts_are_left_out(tmp_path: Path) -> None:
    rate = 8000
    left = [0] * rate + [3000] * rate  # silent in the first node, speaking in the second
    right = [5000] * (2 * rate)  # the prompts: never played back
    path = tmp_path / "ivr.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                int(s).to_bytes(2, "little", signed=True) * 1
                for pair in zip(left, right, strict=True)
                for s in pair
            )
        )
    events = [ev(0, "node", name="a", type="menu"), ev(1, "node", name="b", type="menu")]
    parts = caller_audio(path, plan_of(events, recording_started=at(0)), tmp_path)
    assert parts[0] is None
    assert parts[1] is not None
    with wave.open(str(parts[1])) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, rate, rate)
        assert set(w.readframes(w.getnframes())[:200]) == set((3000).to_bytes(2, "little", signed=True))


def test_a_replayed_call_is_not_counted_in_the_metrics() -> None:
    bus = Bus()
    metrics = CenterMetrics(bus, LiveSources(list, list, lambda: 0, lambda: 0, lambda: 0))

    def ended(outcome: str) -> float:
        text = metrics.text().decode()
        line = next(
            (x for x in text.splitlines() if x.startswith(f'lianluo_calls_ended_total{{outcome="{outcome}"')),
            "",
        )
        return float(line.split()[-1]) if line else 0.0

    bus.publish(InteractionSaved("r", (InteractionEvent(at(0), "replay", {"of": "x"}),)))
    bus.publish(InteractionSaved("r", (InteractionEvent(at(9), "ended", {"outcome": "self_service"}),)))
    bus.publish(InteractionSaved("c", (InteractionEvent(at(9), "ended", {"outcome": "self_service"}),)))
    assert ended("self_service") == 1.0


async def test_a_refused_call_is_known_at_once_and_an_answered_one_too() -> None:
    loop = asyncio.get_running_loop()
    caller = SipCaller("127.0.0.1")
    try:
        refused = CallerLeg(caller, loop)
        refused.ended.set()
        started = loop.time()
        assert await answered(refused, timeout=10) is False
        assert loop.time() - started < 1
        taken = CallerLeg(caller, loop)
        loop.call_later(0.05, taken.answered.set)
        assert await answered(taken, timeout=10) is True
        assert await answered(CallerLeg(caller, loop), timeout=0.05) is False
    finally:
        await caller.close()
