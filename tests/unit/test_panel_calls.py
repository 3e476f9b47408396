"""The call section of the agent's page: its words, its markup and who is told a call changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from app.bus import InteractionSaved
from app.calls.conversation import Consult, Conversation, Dialing
from app.calls.http import call_of_agent, consulted_call
from app.calls.legs import Leg
from app.calls.switchboard import Switchboard
from app.domain.agent_state import Agent
from app.domain.interaction import InteractionEvent, Phase
from app.panel.calls import CallWatch, call_section, calls_client_data, changes_call
from app.panel.i18n import TEXT
from app.panel.live import LiveHub
from app.routing.desk import RoutingService
from app.routing.http import agent_view


def test_every_button_has_both_languages_and_reaches_the_script() -> None:
    keys = {k for k in TEXT["en"] if k.startswith("call.")}
    assert keys and keys == {k for k in TEXT["zh"] if k.startswith("call.")}
    assert set(calls_client_data("zh")["text"]) == keys
    html = call_section("zh")
    for action in ("hold", "resume", "mute", "unmute", "hangup", "transfer", "consult", "complete", "cancel"):
        assert f'data-action="{action}"' in html, action
    assert 'data-action="conference"' in html and html.count('data-digit="') == 12
    assert ">保持<" in html and ">完成转接<" in html
    # No inline script: only JSON data and the static file (the page's CSP forbids the rest).
    assert html.count("<script") == 2 and '<script src="/static/calls.js' in html
    data = html.split('id="call-data">')[1].split("</script>")[0]
    assert "<" not in data


def test_which_saved_events_change_a_call() -> None:
    assert all(
        changes_call(k) for k in ("control_hold", "consult_answered", "transferred", "connected", "ended")
    )
    assert not any(changes_call(k) for k in ("dtmf", "offered", "prompt_played", "disposition"))


def drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_the_agents_holding_the_call_are_told_it_changed() -> None:
    now = datetime.now(UTC)
    alice, bob, chen = Agent("1001", "Alice"), Agent("1002", "Bob"), Agent("1003", "Chen")
    for a in (alice, bob, chen):
        a.login(now)
        a.ready(now)
    alice.reserve(now, "it-1")  # on the call
    bob.reserve(now, "it-1")  # being consulted about it
    chen.reserve(now, "it-2")  # another call
    hub = LiveHub(agent_view)
    subs = {a: hub.subscribe(frozenset({a}), a.encode()) for a in ("1001", "1002", "1003")}
    lead = hub.subscribe(None, b"lead")
    routing = cast(RoutingService, SimpleNamespace(agents={a.id: a for a in (alice, bob, chen)}))
    watch = CallWatch(routing, hub)

    watch.interaction_saved(InteractionSaved("it-1", (InteractionEvent(now, "dtmf", {"digit": "1"}),)))
    assert all(drain(s.queue) == [] for s in subs.values())
    watch.interaction_saved(
        InteractionSaved("it-1", (InteractionEvent(now, "control_hold", {"by": "1001"}),))
    )
    told = {a: drain(s.queue) for a, s in subs.items()}
    assert told["1001"] == told["1002"] == [{"type": "call", "interaction_id": "it-1"}]
    assert told["1003"] == [] and drain(lead.queue) == []  # supervisors follow states, not calls


def test_an_ended_call_is_nobodys_current_call() -> None:
    """Between the end of a call and its cleanup the call still exists; the agent's panel,
    asking again as their state turns to wrap-up, must already see no call."""
    board = Switchboard(cast(Any, None))

    def call(phase: Phase, agent: str) -> Conversation:
        it = SimpleNamespace(id=f"it-{agent}", phase=phase)
        c = SimpleNamespace(it=it, ended=phase is Phase.ENDED, conversation=None, counted=True)
        c.when_over = lambda step: None
        c.party_changed = lambda: None
        conv = Conversation(cast(Any, c), cast(Any, None), Dialing("carrier", "7000", "test"))
        conv.agent = Leg(f"ch-{agent}", agent_id=agent)
        conv.consult = Consult("1002", "ch-consult")
        board._calls[it.id] = cast(Any, c)
        return conv

    talking, ended = call(Phase.CONNECTED, "1001"), call(Phase.ENDED, "1003")
    assert call_of_agent(board, "1001") is talking
    assert call_of_agent(board, "1003") is None
    assert consulted_call(board, "1002") is talking
    del board._calls[talking.call.it.id]
    assert consulted_call(board, "1002") is None
    assert ended.call.ended
