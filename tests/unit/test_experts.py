"""Choosing an expert (app/domain/experts.py) and the directory's configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import expert_directory, load_settings
from app.domain.experts import (
    Ask,
    AskKind,
    Directory,
    Expert,
    ExpertGroup,
    JourneyEvent,
    Presence,
    Status,
    added,
    changed,
    choose,
    report,
    unavailable,
    with_expert,
    without_expert,
)
from app.domain.ivr_flow import Hours
from app.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# A Wednesday, 10:00 in Shanghai (02:00 UTC).
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
READY = Status(Presence.READY)


def t(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 2, hour, minute, tzinfo=UTC)


def directory(*experts: Expert, groups: tuple[ExpertGroup, ...] = ()) -> Directory:
    return Directory(experts, groups or (ExpertGroup("mortgage", 15, "mortgage", ("front",)),))


X = Expert("x", "Xu", {"mortgage": 9}, ("mortgage",), agent_id="1101")
Y = Expert("y", "Yang", {"mortgage": 9}, ("mortgage",), agent_id="1102")
Z = Expert("z", "Zhou", {"mortgage": 6}, ("mortgage",), number="13912340001", max_calls=2)


def ask(target: str = "group:mortgage", **kw: object) -> Ask:
    return Ask.parse(target, agent_groups=("front",), **kw)  # type: ignore[arg-type]


def test_best_level_first_then_longest_idle_then_id() -> None:
    d = directory(X, Y, Z)
    statuses = {
        "x": Status(Presence.READY, idle_since=t(1, 50)),
        "y": Status(Presence.READY, idle_since=t(1, 10)),
    }
    statuses["z"] = Status(Presence.READY, idle_since=t(0, 0))  # idle longest, but a lower level
    chosen = choose(d, ask(), statuses, NOW)
    assert chosen is not None and chosen.expert.id == "y"
    assert "best level (mortgage 9), then longest idle" in chosen.reason
    assert chosen.offer_s == 15
    never_called = {**statuses, "x": READY}  # never called counts as idle since ever
    assert (c := choose(d, ask(), never_called, NOW)) is not None and c.expert.id == "x"
    same = {"x": READY, "y": READY, "z": READY}
    assert (c := choose(d, ask(), same, NOW)) is not None and c.expert.id == "x"  # the same every time


def test_tried_busy_not_ready_offline_and_full_experts_are_skipped() -> None:
    d = directory(X, Y, Z)
    statuses = {
        "x": Status(Presence.NOT_READY, reason="no response"),
        "y": Status(Presence.BUSY),
        "z": Status(Presence.READY, active_calls=2),  # at max_calls
    }
    assert choose(d, ask(), statuses, NOW) is None
    assert unavailable(X, statuses["x"], NOW) == "not ready (no response)"
    assert unavailable(Y, None, NOW) == "offline"
    assert unavailable(Z, statuses["z"], NOW) == "busy"
    statuses["z"] = Status(Presence.READY, active_calls=1)
    assert (c := choose(d, ask(), statuses, NOW)) is not None and c.expert.id == "z"
    tried = Ask(AskKind.GROUP, "mortgage", ("front",), tried=frozenset({"z"}))
    assert choose(d, tried, statuses, NOW) is None


def test_working_hours_are_the_experts_own_time_zone() -> None:
    shanghai = Expert(
        "s",
        "Sun",
        {"mortgage": 5},
        ("mortgage",),
        number="13912340003",
        hours=Hours(("mon", "tue", "wed", "thu", "fri"), "09:00", "17:00", "Asia/Shanghai"),
    )
    d = directory(shanghai)
    statuses = {"s": READY}
    assert choose(d, ask(), statuses, t(2)) is not None  # 10:00 in Shanghai
    assert choose(d, ask(), statuses, t(10)) is None  # 18:00 in Shanghai, still morning in London
    assert unavailable(shanghai, READY, t(10)) == "outside working hours"
    saturday = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    assert choose(d, ask(), statuses, saturday) is None


def test_a_vips_own_expert_comes_first_then_the_group() -> None:
    d = directory(X, Y, Z)
    statuses = {"x": READY, "y": READY, "z": READY}
    own = choose(d, ask(vip_expert="z"), statuses, NOW)
    assert own is not None and own.expert.id == "z" and own.reason == "the customer's own expert"
    busy_own = choose(d, ask(vip_expert="z"), {**statuses, "z": Status(Presence.BUSY)}, NOW)
    assert busy_own is not None and busy_own.expert.id == "x"  # then the group


def test_expertise_and_named_asks() -> None:
    other = Expert("r", "Ren", {"repairs": 8, "mortgage": 2}, ("repairs",), number="13912340004")
    groups = (ExpertGroup("mortgage", 15, "mortgage", ("front",)), ExpertGroup("repairs", 20))
    d = directory(X, Z, other, groups=groups)
    statuses = {"x": READY, "z": READY, "r": READY}
    by_tag = choose(d, ask("expertise:repairs"), statuses, NOW)
    assert by_tag is not None and by_tag.expert.id == "r" and by_tag.offer_s == 20
    named = choose(d, ask("expert:z"), statuses, NOW)
    assert named is not None and named.expert.id == "z" and named.reason == "asked by name: Zhou"
    with pytest.raises(ValueError):
        Ask.parse("mortgage")


def test_an_agent_outside_the_allowed_groups_may_not_ask() -> None:
    d = directory(X, Z)
    back = Ask.parse("group:mortgage", agent_groups=("back",))
    assert d.refusal(back) == "expert group mortgage may be asked only by front"
    assert (
        d.refusal(Ask.parse("expertise:mortgage", agent_groups=("back",)))
        == "you may not ask expertise mortgage"
    )
    assert d.refusal(Ask.parse("expert:x", agent_groups=("back",))) == "you may not ask expert x"
    assert choose(d, back, {"x": READY, "z": READY}, NOW) is None
    assert d.refusal(ask()) is None
    assert d.refusal(ask("group:nope")) == "no expert group 'nope'"
    assert d.refusal(ask("expert:nobody")) == "no expert 'nobody'"


def test_the_demo_directory() -> None:
    s = load_settings(REPO / "config" / "demo.yaml")
    d = expert_directory(s)
    gao = d.expert("gao")
    assert gao is not None and gao.agent_id == "1007" and gao.has_panel
    liu = d.expert("liu-branch")
    assert liu is not None and liu.number and not liu.has_panel and liu.hours is not None
    assert liu.hours.timezone == "Asia/Shanghai"
    assert d.of_agent("1007") == gao


BASE = (
    "agents:\n  - {id: '1001', name: A, groups: [front]}\n  - {id: '1002', name: B, role: expert}\n"
    "carrier: {outbound_contact: 'sip:127.0.0.2:5062'}\n"
    "experts:\n  groups:\n    - {name: mortgage, offer_s: 15}\n  directory:\n"
)


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ("    - {id: x, name: X}\n", "experts.directory[0]", "give one way to reach"),
        ("    - {id: x, name: X, agent: '1002', number: '139'}\n", "experts.directory[0]", "one way"),
        ("    - {id: x, name: X, agent: '1009'}\n", "experts.directory[0].agent", "no agent '1009'"),
        ("    - {id: x, name: X, number: 'abc'}\n", "experts.directory[0].number", "not a phone number"),
        ("    - {id: X!, name: X, agent: '1002'}\n", "experts.directory[0].id", "use 1-32"),
        (
            "    - {id: x, name: X, agent: '1002', groups: [nope]}\n",
            "experts.directory[0].groups[0]",
            "no expert group",
        ),
        (
            "    - {id: x, name: X, agent: '1002', expertise: {a: 11}}\n",
            "experts.directory[0].expertise.a",
            "1-10",
        ),
        (
            "    - {id: x, name: X, agent: '1002', timezone: Mars/Base}\n",
            "experts.directory[0].timezone",
            "unknown time zone",
        ),
        (
            "    - {id: x, name: X, agent: '1002', hours: {start: '9am'}}\n",
            "experts.directory[0].hours.start",
            "09:00",
        ),
        (
            "    - {id: x, name: X, agent: '1002', max_calls: 2}\n",
            "experts.directory[0].max_calls",
            "one call",
        ),
        ("    - {id: x, name: X, agent: '1002', rank: 1}\n", "experts.directory[0].rank", "unknown field"),
        (
            "    - {id: x, name: X, agent: '1002'}\n    - {id: x, name: Y, number: '13900000000'}\n",
            "experts.directory[1].id",
            "given twice",
        ),
    ],
)
def test_bad_expert_entries_name_file_line_and_field(
    tmp_path: Path, entry: str, field: str, words: str
) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(BASE + entry)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:"), msg
    assert f": {field}: " in msg and words in msg, msg
    assert err.value.details["field"] == field
    assert err.value.details["line"] is not None


def test_a_group_asked_by_an_unknown_agent_group_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(
        BASE.replace("offer_s: 15}", "offer_s: 15, asked_by: [nobody]}")
        + "    - {id: x, name: X, agent: '1002'}\n"
    )
    with pytest.raises(
        ConfigError, match=r"center.yaml:7: experts.groups\[0\].asked_by\[0\]: no agent is in group"
    ):
        load_settings(path)


def ev(iid: str, second: int, kind: str, **data: object) -> JourneyEvent:
    return JourneyEvent(iid, t(2, 0) + timedelta(seconds=second), kind, data)


def test_the_report_counts_each_experts_offers_and_times() -> None:
    d = directory(X, Y, Z)
    events = [
        # call a: X times out, Y rejects, Z (no panel) answers and talks 60 s
        ev("a", 0, "expert_offered", expert_id="x", preview=True),
        ev("a", 15, "expert_timeout", expert_id="x"),
        ev("a", 15, "expert_offered", expert_id="y", preview=True),
        ev("a", 18, "expert_rejected", expert_id="y"),
        ev("a", 18, "expert_offered", expert_id="z", preview=False),
        ev("a", 18, "expert_ringing", expert_id="z"),
        ev("a", 25, "expert_connected", expert_id="z"),
        ev("a", 85, "ended"),
        # call b: X accepts after 4 s, talks 30 s in a consultation
        ev("b", 0, "expert_offered", expert_id="x", preview=True),
        ev("b", 4, "expert_accepted", expert_id="x"),
        ev("b", 6, "expert_connected", expert_id="x"),
        ev("b", 36, "consult_ended", agent_id="1101", answered=True),
        ev("b", 90, "ended"),
    ]
    r = report(d, events)
    x, y, z = r["experts"]["x"], r["experts"]["y"], r["experts"]["z"]
    assert (x["offers"], x["accepts"], x["timeouts"], x["connected"]) == (2, 1, 1, 1)
    assert x["mean_time_to_accept_s"] == 4.0 and x["talk_s"] == 30.0
    assert (y["offers"], y["rejects"], y["accepts"]) == (1, 1, 0)
    assert (z["accepts"], z["mean_time_to_accept_s"], z["talk_s"]) == (1, 7.0, 60.0)  # answering is accepting
    group = r["groups"]["mortgage"]
    assert (group["offers"], group["accepts"], group["rejects"], group["timeouts"]) == (4, 2, 1, 1)
    assert group["talk_s"] == 90.0


def test_live_changes_are_checked_and_applied() -> None:
    d = directory(X, Z)
    better = changed(d, Z, {"expertise": {"mortgage": 10}, "max_calls": 3, "languages": ["zh"]})
    assert better.expertise == {"mortgage": 10} and better.max_calls == 3 and better.languages == ("zh",)
    d2 = with_expert(d, better)
    assert d2.expert("z") == better and d2.expert("x") == X
    statuses = {"x": READY, "z": READY}
    assert (c := choose(d2, ask(), statuses, NOW)) is not None and c.expert.id == "z"  # now the best level
    cases: list[tuple[dict[str, object], str]] = [
        ({"expertise": {"mortgage": 11}}, "expertise: a mapping of tag to level 1-10"),
        ({"groups": ["nope"]}, "no expert group 'nope'"),
        ({"name": "Zed"}, "name: cannot be changed here"),
        ({"max_calls": 0}, "max_calls: 1-10"),
        ({"languages": []}, "languages: a non-empty list"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=re.escape(words)):
            changed(d, Z, bad)
    with pytest.raises(ValueError, match="one call at a time"):
        changed(d, X, {"max_calls": 2})


def test_an_outside_expert_added_over_the_api_is_checked_and_can_be_chosen() -> None:
    d = directory(X)
    entry = {"id": "wu", "name": " Wu Fei ", "number": "13912340009", "expertise": {"mortgage": 10}}
    new = added(d, {**entry, "groups": ["mortgage"], "email": "wu@example.com"})
    assert (new.name, new.number, new.agent_id, new.languages, new.max_calls) == (
        "Wu Fei",
        "13912340009",
        None,
        ("en",),  # as an expert in the YAML gets by default
        1,
    )
    d2 = with_expert(d, new)
    assert [e.id for e in d2.experts] == ["x", "wu"]
    chosen = choose(d2, ask(), {"x": READY, "wu": READY}, NOW)
    assert chosen is not None and chosen.expert.id == "wu"  # level 10 beats 9
    assert [e.id for e in without_expert(d2, "x").experts] == ["wu"]
    cases: list[tuple[dict[str, object], str]] = [
        ({**entry, "id": "x"}, "id: expert x exists already"),
        ({**entry, "id": "Wu Fei"}, "id: 1-32 characters"),
        ({**entry, "name": "  "}, "name: 1-80 characters"),
        ({**entry, "number": "call me"}, "number: a phone number"),
        ({**entry, "agent": "1001"}, "agent: not a field of a new expert"),
        ({**entry, "email": "nobody"}, "email: an e-mail address"),
        ({**entry, "groups": ["nope"]}, "no expert group 'nope'"),
        ({**entry, "max_calls": 11}, "max_calls: 1-10"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=re.escape(words)):
            added(d, bad)
