"""Listen, whisper, barge: the rule (who hears the supervisor) and the session against the fake PBX."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings, WebSettings, WebUserSettings, load_settings, sip_accounts
from app.domain.coaching import (
    Mode,
    Side,
    hears_supervisor,
    modes_on,
    parse_mode,
    refusal,
    side_for,
    snoop_directions,
)
from app.errors import ConfigError
from app.panel import coaching as panel_coaching
from app.panel import softphone
from app.supervision.coaching import Coaching, CoachingError
from tests.support.fake_pbx import FakePbx
from tests.unit.test_call_scripts import Center, center


def test_who_hears_the_supervisor_in_each_mode() -> None:
    assert hears_supervisor(Mode.LISTEN) == (False, False)
    assert hears_supervisor(Mode.WHISPER) == (True, False)
    assert hears_supervisor(Mode.BARGE) == (True, True)
    # The supervisor always hears both sides of the agent's channel.
    assert {snoop_directions(m).spy for m in Mode} == {"both"}


def test_a_caller_nobody_answered_yet_is_listened_to_on_their_own_channel() -> None:
    assert side_for(has_agent=True, caller_reachable=True) is Side.AGENT
    assert side_for(has_agent=False, caller_reachable=True) is Side.CALLER
    assert side_for(has_agent=False, caller_reachable=False) is None  # a callback not yet placed
    # Listen: nobody hears the supervisor, who hears the caller and what is played to them.
    assert snoop_directions(Mode.LISTEN, Side.CALLER) == snoop_directions(Mode.LISTEN)
    assert hears_supervisor(Mode.LISTEN, Side.CALLER) == (False, False)
    # Barge speaks to the caller alone: written to the caller's channel.
    assert snoop_directions(Mode.BARGE, Side.CALLER).whisper == "out"
    assert hears_supervisor(Mode.BARGE, Side.CALLER) == (False, True)
    # Nobody to whisper to.
    assert refusal(Mode.WHISPER, Side.CALLER) is not None and "nobody to whisper to" in str(
        refusal(Mode.WHISPER, Side.CALLER)
    )
    with pytest.raises(ValueError, match="nobody to whisper to"):
        snoop_directions(Mode.WHISPER, Side.CALLER)
    assert modes_on(Side.CALLER) == (Mode.LISTEN, Mode.BARGE)
    assert modes_on(Side.AGENT) == tuple(Mode)
    assert all(refusal(m, Side.AGENT) is None for m in Mode)


def test_an_unknown_mode_names_the_choices() -> None:
    assert parse_mode("barge") is Mode.BARGE
    with pytest.raises(ValueError, match="use one of listen, whisper, barge"):
        parse_mode("shout")


def test_a_supervisor_with_a_phone_gets_a_sip_account_like_an_agent() -> None:
    settings = Settings(
        web=WebSettings(
            users=(WebUserSettings("lead", "Lee", phone=True), WebUserSettings("root", "R", role="admin"))
        )
    )
    assert [a.id for a in sip_accounts(settings)][-1] == "lead"
    assert not softphone.enabled(settings, "lead"), "a desk phone unless webrtc: true"
    browser = Settings(web=WebSettings(users=(WebUserSettings("duty", "D", phone=True, webrtc=True),)))
    assert softphone.enabled(browser, "duty") and softphone.any_enabled(browser)
    assert "root" not in [a.id for a in sip_accounts(settings)]


@pytest.mark.parametrize(
    ("user", "field", "words"),
    [
        ("{username: qa1, name: Q, role: qa, phone: true}", "web.users[0].phone", "supervisors and admins"),
        ("{username: lead, name: L, contact: 'sip:lead@10.0.0.5'}", "web.users[0].contact", "phone: true"),
        (
            "{username: lead, name: L, phone: true, contact: 'lead@10'}",
            "web.users[0].contact",
            "not a SIP URI",
        ),
        ("{username: ld, name: L, webrtc: true}", "web.users[0].webrtc", "add `phone: true`"),
        (
            "{username: ld, name: L, phone: true, webrtc: true, contact: 'sip:ld@h'}",
            "web.users[0].webrtc",
            "drop",
        ),
    ],
)
def test_bad_supervisor_phones_name_the_field(tmp_path: Path, user: str, field: str, words: str) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(f"web:\n  users: [{user}]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"center.yaml:2: {field}: " in str(err.value)
    assert words in str(err.value)


def coaching(c: Center) -> Coaching:
    return Coaching(c.pbx, c.board, {"lead": "PJSIP/lead"})


def snoops(pbx: FakePbx) -> list[tuple[str, str]]:
    """(spy, whisper) of every snoop made so far."""
    return [(r[3], r[4]) for r in pbx.requests if r[0] == "snoop"]


def leftovers(pbx: FakePbx) -> list[str]:
    channels = [c for c in pbx.legs if c.startswith(("coach-", "snoop-"))]
    return channels + [b for b in pbx.bridge_members if b.startswith("coach-")]


async def test_one_supervisor_call_goes_listen_whisper_barge_and_leaves_nothing() -> None:
    async with center() as c:
        _caller, iid, agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.LISTEN)
        phone = await c.rings("lead")
        c.pbx.pick_up(phone)
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening")
        bridge = c.pbx.bridge_of(phone)
        assert bridge is not None and len(c.pbx.bridge_members[bridge]) == 2
        assert c.pbx.snoops == {session.snoop: agent_leg}, "the snoop is on the agent's channel"

        coach.join("lead", iid, Mode.WHISPER)
        await c.until(lambda: session.hearing is Mode.WHISPER, "whispering")
        coach.join("lead", iid, Mode.BARGE)
        await c.until(lambda: session.hearing is Mode.BARGE, "barging")
        assert snoops(c.pbx) == [("both", "none"), ("both", "out"), ("both", "both")]
        assert len(c.pbx.snoops) == 1 and c.pbx.bridge_members[bridge] == [phone, session.snoop]
        assert phone in c.pbx.legs, "the supervisor's call stayed up"

        c.pbx.hang_up(phone)
        await c.until(lambda: coach.session_of("lead") is None, "the session to end")
        assert leftovers(c.pbx) == []
        assert agent_leg in c.pbx.legs, "the call goes on"
        await c.until(lambda: "supervision_ended" in c.store.kinds(iid), "the end recorded")
        events = [(e.kind, e.data) for e in c.store.events[iid] if e.kind.startswith("supervision")]
        assert events == [
            ("supervision_started", {"supervisor": "lead", "mode": "listen"}),
            ("supervision_mode", {"supervisor": "lead", "mode": "whisper", "was": "listen"}),
            ("supervision_mode", {"supervisor": "lead", "mode": "barge", "was": "whisper"}),
            ("supervision_ended", {"supervisor": "lead", "reason": "supervisor_hung_up"}),
        ]


async def test_the_call_ending_ends_the_supervisors_call() -> None:
    async with center() as c:
        caller, iid, _agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.WHISPER)
        phone = await c.rings("lead")
        c.pbx.pick_up(phone)
        await c.until(lambda: session.hearing is Mode.WHISPER, "whispering")
        c.pbx.hang_up(caller)
        await c.until(lambda: coach.session_of("lead") is None, "the session to end")
        assert leftovers(c.pbx) == [] and phone not in c.pbx.legs
        await c.until(lambda: "supervision_ended" in c.store.kinds(iid), "the end recorded")
        assert [e.data["reason"] for e in c.store.events[iid] if e.kind == "supervision_ended"] == [
            "call_over"
        ]


async def test_a_mode_asked_while_the_phone_rings_is_the_one_heard_and_no_answer_leaves_nothing() -> None:
    async with center() as c:
        _caller, iid, _agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.LISTEN)
        phone = await c.rings("lead")
        coach.join("lead", iid, Mode.BARGE)
        c.pbx.pick_up(phone)
        await c.until(lambda: session.hearing is Mode.BARGE, "barging")
        assert snoops(c.pbx) == [("both", "both")]
        coach.leave("lead")
        await c.until(lambda: coach.session_of("lead") is None, "the session to end")
        assert leftovers(c.pbx) == []

        again = coach.join("lead", iid, Mode.LISTEN)
        c.pbx.hang_up(await c.rings("lead"), cause=19)  # rings out
        await c.until(lambda: again.ended, "the session to end")
        assert leftovers(c.pbx) == []
        await c.until(lambda: c.store.kinds(iid).count("supervision_ended") == 2, "the end recorded")
        assert c.store.events[iid][-1].data["reason"] == "not_answered"


async def test_refusals_are_clear_and_change_nothing() -> None:
    async with center() as c:
        _caller, iid, _agent_leg = await c.talking("1001")
        waiting_caller, waiting = await c.caller_in_line("13800000002")
        coach = Coaching(c.pbx, c.board, {"lead": "PJSIP/lead"})
        with pytest.raises(CoachingError, match="no phone"):
            coach.join("root", iid, Mode.LISTEN)
        with pytest.raises(CoachingError, match="nobody to whisper to"):
            coach.join("lead", waiting, Mode.WHISPER)
        with pytest.raises(CoachingError, match="no call nope") as err:
            coach.join("lead", "nope", Mode.LISTEN)
        assert err.value.http_status == 404
        with pytest.raises(CoachingError, match="not listening"):
            coach.leave("lead")
        coach.join("lead", iid, Mode.LISTEN)
        with pytest.raises(CoachingError, match="end that first"):
            coach.join("lead", waiting, Mode.LISTEN)
        await c.rings("lead")
        assert waiting_caller in c.pbx.legs
        await coach.stop()
        assert leftovers(c.pbx) == []


def test_the_live_calls_section_has_every_label_in_both_languages() -> None:
    assert set(panel_coaching.TEXT["en"]) == set(panel_coaching.TEXT["zh"])
    assert 'id="live-calls"' in panel_coaching.live_calls_section("zh")


async def test_a_call_ending_while_the_supervisors_phone_rings_stops_the_ringing() -> None:
    async with center() as c:
        caller, iid, _agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.LISTEN)
        phone = await c.rings("lead")
        c.pbx.hang_up(caller)
        await c.until(lambda: session.ended, "the session to end")
        assert phone not in c.pbx.legs and leftovers(c.pbx) == []


async def test_after_asterisk_restarts_a_session_whose_channels_are_gone_is_closed() -> None:
    async with center() as c:
        _caller, iid, _agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.LISTEN)
        c.pbx.pick_up(await c.rings("lead"))
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening")
        c.pbx.restart()
        await coach.reconcile(True)
        await c.until(lambda: session.ended, "the session to end")
        assert coach.session_of("lead") is None


async def test_a_reconnect_leaves_a_live_supervisors_call_alone() -> None:
    async with center() as c:
        _caller, iid, _agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.LISTEN)
        phone = await c.rings("lead")
        c.pbx.pick_up(phone)
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening")
        await c.recovery.reconcile(True)  # orphans in our Stasis app are hung up; these are not
        await coach.reconcile(True)
        assert phone in c.pbx.legs and session.snoop in c.pbx.legs and not session.ended


async def test_the_supervisor_follows_the_call_to_another_agent_and_leaves_when_it_is_requeued() -> None:
    async with center() as c:
        _caller, iid, alice = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.WHISPER)
        phone = await c.rings("lead")
        c.pbx.pick_up(phone)
        await c.until(lambda: session.hearing is Mode.WHISPER, "whispering")
        await c.control(iid, "consult", "agent:1002")
        c.pbx.pick_up(await c.rings("1002"))
        await c.until(lambda: "consult_answered" in c.store.kinds(iid), "Bob on the line")
        await c.control(iid, "complete")
        bob = c.conversation(iid).agent
        assert bob is not None and bob.agent_id == "1002"
        await c.until(lambda: c.pbx.snoops.get(session.snoop or "") == bob.channel_id, "a snoop on Bob")
        assert alice not in c.pbx.legs and phone in c.pbx.legs
        assert snoops(c.pbx) == [("both", "out"), ("both", "out")]
        await c.until(lambda: "supervision_followed" in c.store.kinds(iid), "the follow recorded")

        await c.control(iid, "transfer", "queue:general")  # back in line: nobody to listen to
        await c.until(lambda: session.ended, "the session to end")
        assert leftovers(c.pbx) == []
        await c.until(lambda: "supervision_ended" in c.store.kinds(iid), "the end recorded")
        ends = [e.data for e in c.store.events[iid] if e.kind == "supervision_ended"]
        assert ends == [{"supervisor": "lead", "reason": "agent_left"}]


async def test_a_caller_in_line_is_listened_to_and_followed_to_the_agent_who_answers() -> None:
    async with center(agents=("1001",), ready=False) as c:
        caller, iid = await c.caller_in_line()
        await c.until(lambda: caller in c.pbx.moh, "the caller to hear music")
        coach = coaching(c)
        [row] = coach.live_calls()
        assert (row["stage"], row["agent_id"], row["modes"]) == ("waiting", None, ["listen", "barge"])
        session = coach.join("lead", iid, Mode.LISTEN)
        phone = await c.rings("lead")
        c.pbx.pick_up(phone)
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening")
        assert c.pbx.snoops == {session.snoop: caller}, "the snoop is on the caller's channel"
        assert session.view()["side"] == "caller"
        with pytest.raises(CoachingError, match="nobody to whisper to") as err:
            coach.join("lead", iid, Mode.WHISPER)
        assert err.value.http_status == 409 and session.mode is Mode.LISTEN

        coach.join("lead", iid, Mode.BARGE)  # speak to the caller
        await c.until(lambda: session.hearing is Mode.BARGE, "barging")
        c.desk.set_state("1001", "ready", None)  # an agent frees up and answers
        leg = await c.rings("1001")
        c.pbx.pick_up(leg)
        await c.until(lambda: c.pbx.snoops.get(session.snoop or "") == leg, "a snoop on the agent")
        await c.until(lambda: session.hearing is Mode.BARGE, "barging, now with the agent")
        assert session.view()["side"] == "agent" and phone in c.pbx.legs
        assert snoops(c.pbx) == [("both", "none"), ("both", "out"), ("both", "both")]
        assert len(c.pbx.snoops) == 1
        assert coach.live_calls()[0]["stage"] == "talking"

        c.pbx.hang_up(caller)
        await c.until(lambda: coach.session_of("lead") is None, "the session to end")
        assert leftovers(c.pbx) == []
        await c.until(lambda: "supervision_ended" in c.store.kinds(iid), "the end recorded")
        events = [(e.kind, e.data) for e in c.store.events[iid] if e.kind.startswith("supervision")]
        assert events == [
            ("supervision_started", {"supervisor": "lead", "mode": "listen", "stage": "waiting"}),
            ("supervision_mode", {"supervisor": "lead", "mode": "barge", "was": "listen"}),
            ("supervision_followed", {"supervisor": "lead", "to": "1001"}),
            ("supervision_ended", {"supervisor": "lead", "reason": "call_over"}),
        ]


async def test_a_listener_stays_on_when_the_caller_is_sent_back_in_line() -> None:
    async with center() as c:
        caller, iid, agent_leg = await c.talking("1001")
        coach = coaching(c)
        session = coach.join("lead", iid, Mode.LISTEN)
        c.pbx.pick_up(await c.rings("lead"))
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening")
        c.desk.set_state("1002", "not_ready", "break")
        await c.control(iid, "transfer", "queue:general")
        await c.until(lambda: c.pbx.snoops.get(session.snoop or "") == caller, "a snoop on the caller")
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening to the caller in line")
        assert agent_leg not in c.pbx.legs and not session.ended
        await c.until(lambda: "supervision_followed" in c.store.kinds(iid), "the follow recorded")
        assert [e.data for e in c.store.events[iid] if e.kind == "supervision_followed"] == [
            {"supervisor": "lead", "to": "caller"}
        ]
        coach.leave("lead")
        await c.until(lambda: coach.session_of("lead") is None, "the session to end")
        assert leftovers(c.pbx) == []


async def test_a_caller_in_the_ivr_can_be_listened_to() -> None:
    async with center() as c:
        caller = c.pbx.caller_arrives("13800000009")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        coach = coaching(c)
        await c.until(lambda: coach.live_calls() != [], "the call among the live calls")
        assert coach.live_calls()[0]["stage"] == "ivr"
        session = coach.join("lead", it.id, Mode.LISTEN)
        c.pbx.pick_up(await c.rings("lead"))
        await c.until(lambda: session.hearing is Mode.LISTEN, "listening")
        assert c.pbx.snoops == {session.snoop: caller}
        c.pbx.hang_up(caller)
        await c.until(lambda: coach.session_of("lead") is None, "the session to end")
        assert leftovers(c.pbx) == []


async def test_a_fax_machine_is_nobody_to_listen_to() -> None:
    async with center() as c:
        caller = c.pbx.caller_arrives("13800000010")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        call = c.board.call(it.id)
        assert call is not None
        call.kind = "fax"  # the same call, as if a fax machine were on it
        coach = coaching(c)
        assert coach.live_calls() == []
        with pytest.raises(CoachingError, match="nobody to listen to"):
            coach.join("lead", it.id, Mode.LISTEN)
        assert leftovers(c.pbx) == []
