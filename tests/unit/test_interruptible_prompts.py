"""Every prompt on the inbound path gives way to a key (unless its node says
`interruptible: false`), and the key is used, never lost: it answers the next menu or entry
(typed ahead), or is the queue's business while waiting. In-memory PBX (tests/support/fake_pbx.py):
a prompt plays until a key stops it (`hold_playbacks`)."""

from __future__ import annotations

from app.config import PromptText
from app.domain.interaction import Outcome
from app.domain.ivr_flow import Flow, FlowSet, Node
from tests.unit.test_call_scripts import center

NOTICE = (PromptText("Our opening hours have changed. Listen carefully."),)
LEGAL = (PromptText("Calls are handled under our privacy policy."),)
MENU = (PromptText("For billing, press 1."),)
THANKS = (PromptText("Thank you."),)


def flow(first: Node) -> FlowSet:
    nodes = {
        "notice": first,
        "menu": Node(type="menu", prompt=MENU, options={"1": "thanks"}, timeout_s=2),
        "thanks": Node(type="play", prompt=THANKS, next="person"),
        "person": Node(type="queue", queue="general"),
    }
    return FlowSet({"main": Flow(name="main", start="notice", nodes=nodes, default=True)})


def said(prompt: tuple[PromptText, ...]) -> tuple[str, ...]:
    return tuple(f"said:{p.text}" for p in prompt)


async def test_a_key_stops_a_message_and_answers_the_next_menu() -> None:
    async with center(agents=("1001",), flows=flow(Node(type="play", prompt=NOTICE, next="menu"))) as c:
        c.pbx.hold_playbacks = True
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: (caller, said(NOTICE)) in c.pbx.played, "the message playing")
        c.pbx.press(caller, "1")
        # The message stops at once and the key is the menu's answer: the next prompt heard is
        # the chosen branch's, the menu's own is skipped.
        await c.until(lambda: (caller, said(THANKS)) in c.pbx.played, "the chosen branch")
        heard = [uris for ch, uris in c.pbx.played if ch == caller]
        assert heard == [said(NOTICE), said(THANKS)], heard
        c.pbx.finish_playbacks()
        await c.rings("1001")
        choice = {"menu": "menu", "key": "1", "to": "thanks"}
        await c.until(
            lambda: [e.data for e in c.store.events.get(it.id, []) if e.kind == "menu_choice"] == [choice],
            "the key recorded as the menu's answer",
        )
        c.pbx.hang_up(caller)
        await c.outcome(it.id)


async def test_a_notice_marked_uninterruptible_plays_whole_and_the_key_waits_for_its_end() -> None:
    legal = Node(type="play", prompt=LEGAL, next="menu", interruptible=False)
    async with center(agents=("1001",), flows=flow(legal)) as c:
        c.pbx.hold_playbacks = True
        caller = c.pbx.caller_arrives("13800000002")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: (caller, said(LEGAL)) in c.pbx.played, "the notice playing")
        c.pbx.press(caller, "1")
        await c.until(lambda: c.store.kinds(it.id), "the interaction recorded")
        assert caller in c.pbx.playing.values(), "the notice goes on"
        assert "menu_choice" not in c.store.kinds(it.id)
        c.pbx.finish_playbacks()  # heard whole: now the key counts
        await c.until(lambda: (caller, said(THANKS)) in c.pbx.played, "the key answered the menu")
        heard = [uris for ch, uris in c.pbx.played if ch == caller]
        assert heard == [said(LEGAL), said(THANKS)], "the caller had already answered the menu"
        c.pbx.finish_playbacks()
        await c.rings("1001")
        await c.until(lambda: "menu_choice" in c.store.kinds(it.id), "the choice recorded")
        c.pbx.hang_up(caller)
        await c.outcome(it.id)


async def test_a_key_over_not_valid_is_the_next_answer() -> None:
    async with center(agents=("1001",), flows=flow(Node(type="play", prompt=NOTICE, next="menu"))) as c:
        caller = c.pbx.caller_arrives("13800000003")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu heard")
        c.pbx.hold_playbacks = True
        c.pbx.press(caller, "9")
        await c.until(lambda: caller in c.pbx.playing.values(), "'not valid' playing")
        c.pbx.press(caller, "1")
        await c.until(lambda: (caller, said(THANKS)) in c.pbx.played, "the key over 'not valid' counted")
        assert caller in c.pbx.playing.values() and said(MENU) not in [
            u for ch, u in c.pbx.played[-1:] if ch == caller
        ]
        c.pbx.finish_playbacks()
        await c.rings("1001")
        c.pbx.hang_up(caller)
        await c.outcome(it.id)


async def test_a_key_stops_please_hold_and_the_caller_stays_in_line() -> None:
    async with center(agents=("1001",), ready=False) as c:
        caller = c.pbx.caller_arrives("13800000004")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.hold_playbacks = True
        c.pbx.press(caller, "1")
        await c.until(lambda: any("sound:connecting" in u for ch, u in c.pbx.played if ch == caller), "hold")
        c.pbx.press(caller, "5")
        await c.until(lambda: caller not in c.pbx.playing.values(), "'please hold' stopped by the key")
        assert c.interaction_of(caller) is not None and "ended" not in c.store.kinds(it.id)
        c.desk.set_state("1001", "ready", None)
        c.pbx.pick_up(await c.rings("1001"))
        await c.until(lambda: "connected" in c.store.kinds(it.id), "the conversation")
        c.pbx.hang_up(caller)
        assert await c.outcome(it.id) is Outcome.COMPLETED
