"""The screen pop and after-call work without I/O: the rules in app/domain/screen_pop.py, the
pop service with an in-memory store and the real routing desk, the page and the settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.adapters.pop_store import (
    CallbackFacts,
    CustomerProfile,
    PastInteraction,
    PopContext,
    VoicemailFacts,
)
from app.bus import AgentsChanged
from app.config import AgentSettings, QueueSettings, Settings, WebSettings, WrapUpCode, load_settings
from app.domain.access import Principal, Role
from app.domain.agent_state import Agent, AgentState
from app.domain.routing import WaitingInteraction
from app.domain.screen_pop import (
    MAX_COLLECTED_ITEMS,
    MAX_NOTES,
    EventRecord,
    InvalidInput,
    PopTracker,
    check_disposition,
    check_new_customer,
    journey,
    may_go_idle,
    may_work_on,
    may_write_notes,
    wrap_up_left_s,
)
from app.errors import ConfigError
from app.panel import pages, pop_pages
from app.panel.live import LiveHub
from app.panel.pop import PopService
from app.routing.desk import RoutingService
from app.routing.http import agent_view

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# -- the caller's journey -----------------------------------------------------------------------


def test_journey_reads_keys_menu_collected_data_and_the_last_offer() -> None:
    events = [
        EventRecord(at(0), "arrived", {"customer_id": None}),
        EventRecord(at(1), "dtmf", {"digit": "2"}),
        EventRecord(at(2), "collected", {"account": "A-17", "birth_year": 1980}),
        EventRecord(at(3), "dtmf", {"digit": "4"}),
        EventRecord(
            at(4), "collected", {"collected": {"intent": "refund", "order": {"id": 9, "paid": True}}}
        ),
        EventRecord(at(5), "speech_result", {"collected": {"intent": "refund status"}, "confidence": 0.9}),
        EventRecord(at(6), "queued", {"queue": "billing", "tier": "high", "reason": "menu:2"}),
        EventRecord(at(7), "offered", {"agent_id": "1002", "reason": "first try"}),
        EventRecord(at(8), "offer_failed", {"agent_id": "1002", "reason": "no answer"}),
        EventRecord(at(9), "overflowed", {"queue": "general", "tier": "high", "reason": "overflow"}),
        EventRecord(at(10), "offered", {"agent_id": "1001", "reason": "longest idle, idle 30 s"}),
    ]
    j = journey(events)
    assert j.digits == "24"
    assert j.menu == ("2",)
    assert j.collected == {
        "account": "A-17",
        "birth_year": "1980",
        "intent": "refund status",  # later values win
        "order.id": "9",
        "order.paid": "yes",
    }
    assert (j.queue, j.tier) == ("general", "high")
    assert j.route_reason == "longest idle, idle 30 s" and j.offered_at == at(10)


def test_journey_of_a_caller_who_did_nothing_is_empty() -> None:
    j = journey([EventRecord(at(0), "arrived", {}), EventRecord(at(1), "queued", {"queue": "general"})])
    assert (j.digits, j.menu, j.collected, j.route_reason, j.offered_at) == ("", (), {}, None, None)


def test_collected_data_is_cut_to_what_a_panel_can_show() -> None:
    many = {f"k{i}": "x" * 1000 for i in range(MAX_COLLECTED_ITEMS + 10)}
    j = journey([EventRecord(at(0), "collected", many), EventRecord(at(1), "collected", {"k0": [1, None]})])
    assert len(j.collected) == MAX_COLLECTED_ITEMS
    assert j.collected["k0"] == "1, " and all(len(v) <= 300 for v in j.collected.values())


# -- once per offer -----------------------------------------------------------------------------


def test_a_pop_goes_out_once_per_agent_and_offer() -> None:
    tracker = PopTracker()
    assert tracker.should_pop("1001", AgentState.RESERVED, "i1")
    assert not tracker.should_pop("1001", AgentState.RINGING, "i1")
    assert not tracker.should_pop("1001", AgentState.ON_CALL, "i1")
    assert not tracker.should_pop("1001", AgentState.WRAP_UP, "i1")
    assert tracker.should_pop("1002", AgentState.RINGING, "i1")  # ring-all: every agent sees it
    assert not tracker.should_pop("1001", AgentState.READY, None)
    assert tracker.should_pop("1001", AgentState.RESERVED, "i1")  # offered again later: pops again
    assert tracker.should_pop("1003", AgentState.ON_CALL, "i9")  # found on a call after a restart
    assert not tracker.should_pop("1004", AgentState.WRAP_UP, "i8")


# -- what agents may do -------------------------------------------------------------------------


def test_disposition_input_is_checked() -> None:
    codes = ["resolved", "follow_up"]
    assert check_disposition("resolved", "  Refund sent.\r\nCall back Friday \x07 ", codes) == (
        "resolved",
        "Refund sent.\nCall back Friday",
    )
    assert check_disposition("follow_up", None, codes) == ("follow_up", "")
    for code, notes in [("nope", ""), (None, ""), ("resolved", 5), ("resolved", "x" * (MAX_NOTES + 1))]:
        with pytest.raises(InvalidInput):
            check_disposition(code, notes, codes)


def test_new_customer_input_is_checked() -> None:
    c = check_new_customer(
        {"name": " Li Wei ", "phone": "+8613800000001", "account_number": "", "notes": None}
    )
    assert (c.name, c.phone, c.account_number, c.email, c.notes) == (
        "Li Wei",
        "+8613800000001",
        None,
        None,
        "",
    )
    bad: list[dict[str, Any]] = [
        {"name": "", "phone": "13800000001"},
        {"name": "x" * 201, "phone": "13800000001"},
        {"name": "Li", "phone": "anonymous"},
        {"name": "Li", "phone": "13800000001", "email": "not-mail"},
        {"name": "Li", "phone": "13800000001", "account_number": "A" * 65},
        {"name": ["Li"], "phone": "13800000001"},
    ]
    for fields in bad:
        with pytest.raises(InvalidInput):
            check_new_customer(fields)


def test_only_a_ready_agent_goes_not_ready_for_idleness() -> None:
    assert [s for s in AgentState if may_go_idle(s)] == [AgentState.READY]


def test_who_may_write_notes_and_work_on_a_call() -> None:
    alice = Principal("1001", Role.AGENT, "1001")
    expert = Principal("1003", Role.EXPERT, "1003")
    lead = Principal("lead", Role.SUPERVISOR, None)
    assert may_write_notes(alice, "1001") and may_write_notes(expert, "1003")
    assert not may_write_notes(alice, "1002") and not may_write_notes(alice, None)
    assert not may_write_notes(lead, None) and not may_write_notes(lead, "1001")
    # A transferred call: each agent who talked with the caller, and nobody else.
    handled = frozenset({"1001", "1002"})
    assert may_write_notes(alice, handled) and not may_write_notes(expert, handled)
    assert not may_write_notes(lead, frozenset({"lead"}))
    assert may_work_on(alice, True, None) and may_work_on(alice, False, "1001")
    assert not may_work_on(alice, False, "1002") and not may_work_on(alice, False, None)
    assert may_work_on(lead, False, None)


def test_wrap_up_time_left() -> None:
    assert wrap_up_left_s(AgentState.WRAP_UP, at(30), at(12)) == 18
    assert wrap_up_left_s(AgentState.WRAP_UP, at(30), at(40)) == 0
    assert wrap_up_left_s(AgentState.READY, at(30), at(12)) is None


# -- the live hub: pops go to the agent's own panels only ---------------------------------------


def test_a_pop_goes_to_the_agents_own_panels_not_to_supervisors() -> None:
    hub = LiveHub(agent_view, max_backlog=2)
    alice = hub.subscribe(frozenset({"1001"}), b"a")
    alice_tab2 = hub.subscribe(frozenset({"1001"}), b"a")
    bob = hub.subscribe(frozenset({"1002"}), b"b")
    lead = hub.subscribe(None, b"l")
    assert hub.push("1001", {"type": "pop"}) == 2
    assert alice.queue.qsize() == alice_tab2.queue.qsize() == 1
    assert bob.queue.empty() and lead.queue.empty()
    hub.push("1001", {"type": "pop"})
    hub.push("1001", {"type": "pop"})  # a panel that does not read is cut off
    assert alice.ended == "too-slow"


# -- the pop service with the real routing desk and an in-memory store --------------------------


class FakeRoutingStore:
    async def skill_overrides(self) -> dict[str, dict[str, int | None]]:
        return {}

    async def save_agent_events(self, events: Any, now: Any) -> None:
        pass

    async def agent_snapshots(self) -> dict[str, Any]:
        return {}

    async def routing_history(self, since: Any) -> list[Any]:
        return []


class FakePopStore:
    def __init__(self, contexts: dict[str, PopContext]) -> None:
        self.contexts = contexts
        self.asked: list[str] = []

    async def context(self, interaction_id: str) -> PopContext | None:
        self.asked.append(interaction_id)
        return self.contexts.get(interaction_id)


def context(interaction_id: str, events: list[EventRecord]) -> PopContext:
    vm = VoicemailFacts("8d1b3c1e-0000-4000-8000-000000000001", at(-600), 12.4)
    return PopContext(
        id=interaction_id,
        direction="outbound",
        ani="13800000001",
        dnis="7000",
        arrived_at=at(0),
        queue="general",
        tier="top",
        ivr_digits="1",
        agent_id=None,
        disposition=None,
        notes="",
        disposition_at=None,
        customer=CustomerProfile(
            7, "Wang Fang", "13800000001", "ACC-7", None, "top", True, "Prefers Mandarin"
        ),
        callback=CallbackFacts("cb-1", "voicemail", at(-600), 0, "origin-1", vm),
        events=events,
        history=[
            PastInteraction(
                "old-1", at(-86400), "inbound", "billing", "completed", "1002", "Bob", "resolved", "ok"
            )
        ],
    )


async def test_reserving_an_agent_pushes_one_pop_to_their_panel() -> None:
    settings = Settings(
        agents=(AgentSettings("1001", "Alice"), AgentSettings("1002", "Bob")),
        queues=(QueueSettings("general"),),
    )
    routing = RoutingService(settings, FakeRoutingStore(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
    hub = LiveHub(agent_view)
    store = FakePopStore({"it-1": context("it-1", [EventRecord(at(1), "dtmf", {"digit": "1"})])})
    pops = PopService(store, routing, hub, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    routing.bus.subscribe(AgentsChanged, hub.agents_changed)
    routing.bus.subscribe(AgentsChanged, pops.agents_changed)
    alice = hub.subscribe(frozenset({"1001"}), b"a")
    lead = hub.subscribe(None, b"l")
    for agent_id in ("1001", "1002"):
        routing.device_changed(agent_id, True)
    routing.set_state("1002", "not_ready", "lunch")
    await routing.start()
    try:
        routing.enqueue(WaitingInteraction("it-1", "general", at(0), data={"ani": "13800000001"}))
        message = await asyncio.wait_for(_next_of_type(alice.queue, "pop"), 2)
        pop = message["pop"]
        assert pop["interaction_id"] == "it-1" and pop["agent_id"] == "1001"
        assert pop["customer"]["name"] == "Wang Fang" and pop["customer"]["vip"] is True
        assert pop["ivr"]["digits"] == "1"
        # The desk's decision is there before its `offered` event is written.
        assert pop["route"]["queue"] == "general" and "longest idle" in pop["route"]["reason"]
        assert pop["reserved_at"] is not None and pop["offered_at"] is None
        assert pop["callback"]["voicemail"]["audio_url"].endswith("/audio")
        assert pop["history"][0]["disposition"] == "resolved"
        assert all(m["type"] != "pop" for m in _drain(lead.queue))  # supervisors get states only
        routing.ringing("1001")
        await asyncio.sleep(0.05)
        assert store.asked == ["it-1"]  # ringing after reserved: no second pop
        assert (await pops.current("1001") or {}).get("interaction_id") == "it-1"
        assert await pops.current("1002") is None
    finally:
        await routing.stop()
        await pops.stop()


async def test_an_agent_with_no_panel_open_costs_no_pop_query() -> None:
    settings = Settings(agents=(AgentSettings("1001", "Alice"),), queues=(QueueSettings("general"),))
    routing = RoutingService(settings, FakeRoutingStore(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
    hub = LiveHub(agent_view)
    store = FakePopStore({"it-1": context("it-1", [])})
    pops = PopService(store, routing, hub, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    routing.bus.subscribe(AgentsChanged, pops.agents_changed)
    lead = hub.subscribe(None, b"l")  # a supervisor follows every agent, but sees no pops
    routing.device_changed("1001", True)
    await routing.start()
    try:
        routing.enqueue(WaitingInteraction("it-1", "general", at(0)))
        await asyncio.sleep(0.05)
        assert routing.agents["1001"].interaction_id == "it-1"
        assert store.asked == []
        # A panel opened later asks for the pop of the call in hand.
        alice = hub.subscribe(frozenset({"1001"}), b"a")
        assert (await pops.current("1001") or {}).get("interaction_id") == "it-1"
        assert store.asked == ["it-1"]
        assert hub.watching("1001") and not hub.watching("1002")
        hub.unsubscribe(alice)
        hub.unsubscribe(lead)
    finally:
        await routing.stop()
        await pops.stop()


async def _next_of_type(queue: asyncio.Queue[dict[str, Any]], kind: str) -> dict[str, Any]:
    while True:
        message = await queue.get()
        if message["type"] == kind:
            return message


def _drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_agent_view_tells_the_countdown_relative_to_now() -> None:
    a = Agent("1001", "Alice")
    now = datetime.now(UTC)
    a.login(now)
    a.ready(now)
    a.reserve(now, "it-1")
    a.ring(now)
    a.answer(now)
    a.hang_up(now, 30)
    view = agent_view(a)
    assert view["interaction_id"] == "it-1" and view["state"] == "wrap_up"
    assert 28 < view["wrap_up_left_s"] <= 30


# -- the page and the settings ------------------------------------------------------------------


def test_the_pop_section_escapes_and_carries_the_codes() -> None:
    web = WebSettings(wrap_up_codes=(WrapUpCode("sold", "Sold <b>", "已售"),), idle_not_ready_s=90)
    agent = agent_view(Agent("1001", "Alice"))
    html = pop_pages.pop_section("en", 'tok"en', web, agent)
    assert "Sold &lt;b&gt;" in html and 'value="tok&quot;en"' in html
    assert 'id="acw" hidden' in html  # not working on a call: the form waits
    data = pop_pages.pop_client_data("zh", web)
    assert data["codes"] == {"sold": "已售"} and data["idle_s"] == 90
    assert data["text"]["acw.title"] == "话后处理"
    page = pages.panel_page("en", "t", "who", agent, Settings().web.not_ready_reasons, html)
    assert page.count('id="pop-data"') == 1 and "/static/pop.js" in page


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "center.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_wrap_up_codes_and_idle_time_come_from_yaml(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "web:\n  idle_not_ready_s: 300\n"
            "  wrap_up_codes: [{code: sale, en: Sale, zh: 成交}, {code: no_sale}]\n",
        )
    )
    assert [(c.code, c.zh) for c in s.web.wrap_up_codes] == [("sale", "成交"), ("no_sale", "")]
    assert s.web.idle_not_ready_s == 300
    defaults = Settings().web
    assert defaults.idle_not_ready_s == 600 and defaults.wrap_up_codes[0].code == "resolved"
    assert load_settings(write(tmp_path, "web:\n  idle_not_ready_s: 0\n")).web.idle_not_ready_s == 0


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("web:\n  wrap_up_codes: []\n", "web.wrap_up_codes", "at least one"),
        ("web:\n  wrap_up_codes: [{code: Sold Out}]\n", "web.wrap_up_codes[0].code", "a-z"),
        ("web:\n  wrap_up_codes: [{code: a}, {code: a}]\n", "web.wrap_up_codes[1].code", "twice"),
        ("web:\n  idle_not_ready_s: 1\n", "web.idle_not_ready_s", "at least 2"),
    ],
)
def test_bad_panel_settings_are_refused(tmp_path: Path, text: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    assert err.value.details["field"] == field and words in str(err.value)


def test_journey_keeps_the_flow_and_where_each_choice_led() -> None:
    path = journey(
        [
            EventRecord(at(0), "flow", {"name": "main"}),
            EventRecord(at(1), "menu_choice", {"menu": "main_menu", "key": "2", "to": "billing_menu"}),
            EventRecord(
                at(2), "menu_choice", {"menu": "billing_menu", "word": "balance", "to": "ask_account"}
            ),
            EventRecord(at(3), "queued", {"queue": "billing", "reason": "menu:9"}),
        ]
    )
    assert path.flow == "main"
    assert path.menu == ("2", "balance", "9")
    assert path.menu_to == ("billing_menu", "ask_account", None)


async def test_the_pop_names_choices_and_fields_by_the_flows_labels() -> None:
    from app.domain.ivr_flow import Flow, FlowSet, Node
    from app.domain.prompt import PromptText

    say = (PromptText("Hello."),)
    flow = Flow(
        name="main",
        start="menu",
        default=True,
        nodes={
            "menu": Node(type="menu", prompt=say, options={"2": "ask_account", "1": "general"}),
            "ask_account": Node(
                type="collect",
                prompt=say,
                into="account",
                next="general",
                label={"en": "Account number", "zh": "账号"},
            ),
            "general": Node(type="queue", queue="general"),
        },
    )
    events = [
        EventRecord(at(0), "flow", {"name": "main"}),
        EventRecord(at(1), "menu_choice", {"menu": "menu", "key": "2", "to": "ask_account"}),
        EventRecord(at(2), "collected", {"field": "account", "value": "79927398713"}),
        EventRecord(at(3), "collected", {"field": "birth_year", "value": "1980"}),
    ]
    settings = Settings(agents=(AgentSettings("1001", "Alice"),), queues=(QueueSettings("general"),))
    routing = RoutingService(settings, FakeRoutingStore(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
    store = FakePopStore({"it-1": context("it-1", events)})
    flows = FlowSet({"main": flow})
    pops = PopService(store, routing, LiveHub(agent_view), lambda: datetime.now(UTC), lambda: flows)  # type: ignore[arg-type]
    ivr = (await pops.build("1001", "it-1"))["ivr"]
    assert ivr["menu"] == ["2"] and ivr["menu_labels"] == [{"en": "Account number", "zh": "账号"}]
    assert ivr["field_labels"] == {"account": {"en": "Account number", "zh": "账号"}}  # birth_year: no label
    unlabelled = PopService(store, routing, LiveHub(agent_view), lambda: datetime.now(UTC))  # type: ignore[arg-type]
    assert (await unlabelled.build("1001", "it-1"))["ivr"]["menu_labels"] == [{}]
