"""What the QA desk shows beside a recording (app/domain/call_review.py): the transfers as marks
on the player's time line, at their time in the file, and the caller's IVR path by the flow's
labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.call_review import IvrStep, TransferMark, ivr_path, transfer_marks
from app.domain.ivr_flow import Flow, FlowSet, Node
from app.domain.screen_pop import EventRecord

T0 = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)  # the recording starts 10 s after the call
ARRIVED = T0 - timedelta(seconds=10)


def at(s: float, kind: str, **data: Any) -> EventRecord:
    return EventRecord(T0 + timedelta(seconds=s), kind, data)


def test_a_consult_transfer_is_marked_where_it_started_and_where_it_was_completed() -> None:
    events = [
        at(-10, "arrived"),
        at(-1, "connected", agent_id="1001"),
        at(12.4, "control_consult", by="1001", to="agent:1002", state="ringing"),
        at(16.0, "consult_answered", agent_id="1002"),
        at(21.25, "control_complete", by="1001", to="1002", **{"from": "1001"}),
        at(21.25, "transferred", to="agent:1002", from_agent="1001", how="consult"),
        at(40.0, "ended", outcome="completed"),
    ]
    assert transfer_marks(events, T0, 40.0) == [
        TransferMark("consult", 12.4, "agent:1002"),
        TransferMark("consult_completed", 21.25, "agent:1002"),
    ]


def test_blind_transfer_conference_and_expert_hand_over_each_have_their_mark() -> None:
    events = [
        at(5, "control_transfer", by="1001", to="queue:billing"),
        at(5, "transferred", to="queue:billing", from_agent="1001", how="blind"),
        at(30, "control_consult", by="1002", to="agent:1003", state="ringing"),
        at(35, "control_conference", by="1002", **{"with": "1003"}),
        at(50, "expert_asked", by="1002", target="expertise:tax", note="", blind=False),
        at(55, "expert_connected", expert_id="7"),
        at(60, "transferred", to="agent:1009", from_agent="1002", how="consult"),
        at(70, "expert_connected", expert_id="8"),
        at(71, "transferred", to="expert:8", from_agent="1009", how="consult"),
    ]
    assert [(m.how, m.at_s, m.to) for m in transfer_marks(events, T0, 90.0)] == [
        ("blind", 5.0, "queue:billing"),
        ("consult", 30.0, "agent:1003"),
        ("conference", 35.0, "agent:1003"),
        ("expert", 60.0, "agent:1009"),  # an expert who is an agent of the center
        ("expert", 71.0, "expert:8"),  # one on an outside number
    ]


def test_a_consultation_ended_without_hand_over_does_not_make_the_next_completion_an_experts() -> None:
    events = [
        at(3, "expert_connected", expert_id="7"),
        at(8, "consult_ended", agent_id=None, answered=True),  # cancelled
        at(10, "control_consult", by="1001", to="agent:1002"),
        at(14, "transferred", to="agent:1002", from_agent="1001", how="consult"),
    ]
    assert [m.how for m in transfer_marks(events, T0, 20.0)] == ["consult", "consult_completed"]


def test_a_transfer_outside_the_recording_has_no_place_on_its_time_line() -> None:
    events = [
        at(-2, "transferred", to="agent:1002", how="blind"),  # before the file began (its IVR part)
        at(0, "control_consult", to="agent:1003"),
        at(25, "control_consult", to="agent:1004"),  # after it ended
    ]
    assert transfer_marks(events, T0, 20.0) == [TransferMark("consult", 0.0, "agent:1003")]


FLOW = Flow(
    name="main",
    start="greeting",
    nodes={
        "greeting": Node(type="menu", options={"1": "billing", "2": "cards"}),
        "billing": Node(type="queue", queue="billing", label={"en": "Billing", "zh": "账务"}),
        "cards": Node(type="menu", options={"3": "lost"}, label={"en": "Cards"}),
        "lost": Node(type="queue", queue="cards"),
    },
    default=True,
)
JOURNEY = [
    at(-10, "flow", name="main"),
    at(-9, "node", name="greeting", type="menu"),
    at(-8, "menu_choice", menu="greeting", key="2", to="cards"),
    at(-6, "menu_choice", menu="cards", key="3", to="lost"),
    at(-5, "queued", queue="cards", tier="medium", reason="ivr"),
]


def test_the_ivr_path_names_each_choice_by_the_flows_label_in_the_desks_language() -> None:
    flows = FlowSet({"main": FLOW})
    en = ivr_path(JOURNEY, flows, "en")
    assert en.flow == "main" and en.queue == "cards"
    # A node without a label is its key, as on the agent's screen pop.
    assert en.steps == (IvrStep("2", "Cards"), IvrStep("3", "3"))
    zh = ivr_path(JOURNEY, flows, "zh")
    assert zh.steps[0] == IvrStep("2", "Cards"), "no Chinese label: the English one"
    billing = [*JOURNEY[:2], at(-8, "menu_choice", menu="greeting", key="1", to="billing")]
    assert ivr_path(billing, flows, "zh").steps == (IvrStep("1", "账务"),)


def test_without_the_flow_the_path_is_the_keys_and_a_call_that_skipped_the_ivr_has_none() -> None:
    assert [s.label for s in ivr_path(JOURNEY, None, "en").steps] == ["2", "3"]
    assert [s.label for s in ivr_path(JOURNEY, FlowSet({}), "en").steps] == ["2", "3"]
    placed = ivr_path([at(0, "connected", agent_id="1001")], FlowSet({"main": FLOW}), "en")
    assert placed.steps == () and placed.queue is None and placed.flow is None
