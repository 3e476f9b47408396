"""The recording notice on calls the center places, on the real stack: a Mandarin customer
called back, and a campaign's customer, each hear "this call may be recorded" in their own
language once they answer, before the agent's voice (here a tone the agent's phone plays from
the moment it answers: the agent is on the line, muted, and hears the notice too).

A second Asterisk plays the customers' network and records each customer's line whole (what
they heard); the center's own recording (MixMonitor, stereo) must hold the notice too, on the
center's side, before the agent: the proof that it was given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import IvrSettings, PromptText, RecordingSettings, Settings, caller_prompts
from tests.e2e.test_dialer import app_command, attempts
from tests.e2e.test_recording import stereo
from tests.support.audio import (
    AudioSource,
    duration,
    find_reference,
    heard_in_parts,
    heard_whole,
    tone_intervals,
    write_tone,
)
from tests.support.calls import HEARD, prompt_wav, register_agent
from tests.support.customers import CustomerNetwork
from tests.support.sip_phone import Call, PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

CUSTOMERS = CustomerNetwork(Path(tempfile.mkdtemp(prefix="lianluo-customers-consent-")))
CENTER = "Lianluo test"
AGENT_HZ = 1330  # the agent's "voice": a tone no prompt's speech is mistaken for
GREETING_EN = PromptText("Hello, this is Lianluo returning your call.", "en")
GREETING_ZH = PromptText("您好，这里是联络，给您回电。", "zh")
NOTICE_EN, NOTICE_ZH = RecordingSettings().consent_prompt  # the default notice
# People on the customers' network (1380001xxxx answer after 1-3 s, say "Hello?", listen).
MANDARIN_CUSTOMER = "13800010041"
ENGLISH_LEAD = "13800010042"
NAILED_LEAD = "13800010043"
NOW = datetime.now(UTC)
TODAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][NOW.weekday()]
SILENT: dict[str, list[object]] = {
    path.removeprefix("ivr."): [] for path, _ in caller_prompts(Settings(ivr=IvrSettings(flows="x")))
}
# What a campaign's customer hears when no agent is free, or their machine: both languages.
SORRY = [{"text": "Sorry we missed you.", "lang": "en"}, {"text": "抱歉未能为您接通。", "lang": "zh"}]
CALL_US = [{"text": "Please call us.", "lang": "en"}, {"text": "请回电。", "lang": "zh"}]
STACK_CONFIG = {
    "center_name": CENTER,
    "languages": ["en", "zh"],
    "carrier": {"outbound_contact": CUSTOMERS.contact, "caller_id": "7000"},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
            "announce_every_s": 0,
            "callback": {"offer": True, "retry_after_s": 1, "max_attempts": 2, "customer_ring_s": 15},
        }
    ],
    "ivr": {
        **SILENT,
        "greeting": [],
        "invalid": [],
        "no_input": [],
        "menu": [{"digit": "1", "queue": "general"}],
        "callback_greeting": [
            {"text": GREETING_EN.text, "lang": "en"},
            {"text": GREETING_ZH.text, "lang": "zh"},
        ],
    },
    "recording": {"enabled": True, "default": {"mode": "all", "retention_days": 1}},
    "sample_data": {"customers": [{"name": "Xu Li", "phone": MANDARIN_CUSTOMER, "language": "zh"}]},
    "campaigns": [
        {
            "name": "renewals",
            "queue": "general",
            "mode": "progressive",
            "agent_line": "ringing",
            "active": False,
            "ring_s": 15,
            "amd": False,  # the customers' "Hello?" is short: AMD would take its time over it
            "message": SORRY,
            "machine_message": CALL_US,
            "timezone": "UTC",
            "window": {"days": [TODAY], "start": "00:00", "end": "23:59"},
        },
        {
            "name": "shift",  # predictive: its agents on nailed-up lines
            "queue": "general",
            "mode": "predictive",
            "active": False,
            "ring_s": 15,
            "amd": False,
            "message": SORRY,
            "machine_message": CALL_US,
            "timezone": "UTC",
            "window": {"days": [TODAY], "start": "00:00", "end": "23:59"},
        },
    ],
}


@pytest.fixture(scope="module", autouse=True)
def customers() -> Iterator[CustomerNetwork]:
    with CUSTOMERS:
        yield CUSTOMERS


def customer_recording(number: str) -> Path:
    """The customer's whole line, once their call is over."""
    heard = CUSTOMERS.recording(number)
    eventually(
        lambda: "0 active calls" in CUSTOMERS.cli("core show channels"), 30, "the customer's call over"
    )
    eventually(lambda: heard.exists() and heard.stat().st_size > 44, 10, "the customer's recording")
    return heard


def notice_then_agent(heard: AudioSource, notice: PromptText, other: PromptText) -> str:
    """The notice in `notice`'s language heard whole, not the other one, and the agent's voice
    only after its end; a line for the log."""
    wav = prompt_wav(notice)
    assert heard_in_parts(heard, wav, halves=2) > HEARD, f"the {notice.lang} notice not heard whole"
    assert find_reference(heard, prompt_wav(other)).score < HEARD, f"the {other.lang} notice heard too"
    start = find_reference(heard, wav).offset
    end = start + duration(wav)
    agent = [span for span in tone_intervals(heard, AGENT_HZ) if span[1] - span[0] > 0.3]
    assert agent, "the agent's voice never reached the customer"
    assert agent[0][0] > end - 0.1, (agent[0], start, end, "the agent only after the whole notice")
    return f"notice {start:.2f}-{end:.2f} s, agent from {agent[0][0]:.2f} s"


def talk_as_agent(leg: Call, tmp_path: Path) -> None:
    """The agent picks up and "talks" (a tone) from that moment; what they hear is recorded."""
    voice = write_tone(tmp_path / "agent.wav", AGENT_HZ, 60)
    leg.answer(play=voice, loop=True, record=tmp_path / "agent-heard.wav")


def center_recording(stack: Stack, interaction_id: object) -> Path:
    rows = eventually(
        lambda: stack.query("SELECT path FROM recordings WHERE interaction_id = %s", interaction_id),
        20,
        "the call's recording (written once Asterisk closed the file)",
    )
    return stack.var_dir / "recordings" / str(rows[0][0])


def test_a_mandarin_customer_called_back_hears_the_notice_in_mandarin_before_the_agent(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    status, cb = stack.api("POST", "/api/callbacks", {"phone": MANDARIN_CUSTOMER, "queue": "general"})
    assert status == 201, cb
    agent = register_agent(lab, stack, "1001")
    leg = agent.wait_incoming(timeout=20)
    assert leg.header("X-Lianluo-Callback") == cb["id"]
    talk_as_agent(leg, tmp_path)
    attempt = eventually(
        lambda: stack.interaction("callback_id = %s AND answered_at IS NOT NULL", cb["id"]),
        30,
        "the customer connected",
    )
    assert stack.wait_event(attempt["id"], "recording_notice", timeout=15) == {"lang": "zh"}
    stack.wait_event(attempt["id"], "recording_notice_over", timeout=15)
    leg.wait_rx_audio(leg.rx_audio_seconds() + 2.0, timeout=10)  # they talk a little
    leg.hangup()
    agent_heard = heard_in_parts(leg.recording(), prompt_wav(NOTICE_ZH), halves=2)
    assert agent_heard > HEARD, "the agent heard the notice too"

    heard = customer_recording(MANDARIN_CUSTOMER)
    assert heard_whole(heard, prompt_wav(GREETING_ZH)) > HEARD, "the greeting first"
    greeting_end = find_reference(heard, prompt_wav(GREETING_ZH)).offset + duration(prompt_wav(GREETING_ZH))
    gap = find_reference(heard, prompt_wav(NOTICE_ZH)).offset - greeting_end
    assert -0.1 < gap < 0.5, (gap, "the notice right after the greeting: no dead air")
    print(f"greeting to notice: {gap:.2f} s")
    print("customer heard:", notice_then_agent(heard, NOTICE_ZH, NOTICE_EN))
    _, center_side, rate = stereo(center_recording(stack, attempt["id"]))
    print("recording:", notice_then_agent((center_side, rate), NOTICE_ZH, NOTICE_EN))


def test_a_campaigns_customer_hears_the_notice_before_the_agent_on_a_recorded_call(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    (tmp_path / "leads.csv").write_text(f"phone,name\n{ENGLISH_LEAD},Ann Lee\n")
    out = app_command(
        stack, "import-leads", "--config", str(stack.config_path), "renewals", str(tmp_path / "leads.csv")
    )
    assert "1 new" in out, out
    agent = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent ready")
    stack.api("POST", "/api/campaigns/renewals/active", {"active": True})
    leg = agent.wait_incoming(timeout=30)  # the customer answered: the agent's phone rings
    talk_as_agent(leg, tmp_path)
    stack.api("POST", "/api/campaigns/renewals/active", {"active": False})
    done = eventually(
        lambda: (a := attempts(stack, ENGLISH_LEAD)) and a[-1]["result"] and a[-1], 20, "connected"
    )
    assert done["result"] == "connected" and not done["abandoned"], done
    it = stack.interaction("ani = %s AND direction = 'outbound'", ENGLISH_LEAD)
    assert it is not None
    assert stack.wait_event(it["id"], "recording_notice", timeout=15) == {"lang": "en"}
    stack.wait_event(it["id"], "recording_notice_over", timeout=15)
    leg.wait_rx_audio(leg.rx_audio_seconds() + 2.0, timeout=10)
    leg.hangup()
    agent_heard = heard_in_parts(leg.recording(), prompt_wav(NOTICE_EN), halves=2)
    assert agent_heard > HEARD, "the agent heard the notice too"

    heard = customer_recording(ENGLISH_LEAD)
    print("customer heard:", notice_then_agent(heard, NOTICE_EN, NOTICE_ZH))
    _, center_side, rate = stereo(center_recording(stack, it["id"]))
    print("recording:", notice_then_agent((center_side, rate), NOTICE_EN, NOTICE_ZH))


def test_on_a_nailed_up_line_the_agent_already_talking_is_heard_only_after_the_notice(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    """The agent's line is up before the customer answers, and their phone "talks" all along:
    put through on it, the customer hears the whole notice first, and only then the agent."""
    (tmp_path / "leads.csv").write_text(f"phone,name\n{NAILED_LEAD},Ben Ho\n")
    out = app_command(
        stack, "import-leads", "--config", str(stack.config_path), "shift", str(tmp_path / "leads.csv")
    )
    assert "1 new" in out, out
    agent = register_agent(lab, stack, "1001")
    if stack.agent_state("1001")["state"] != "ready":
        stack.api("POST", "/api/agents/1001/state", {"state": "ready"})
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent ready")
    stack.api("POST", "/api/campaigns/shift/active", {"active": True})
    line = agent.wait_incoming(timeout=30)  # the campaign starts: the agent's line is called
    assert line.header("X-Lianluo-Line") == "nailed"
    talk_as_agent(line, tmp_path)
    done = eventually(
        lambda: (a := attempts(stack, NAILED_LEAD)) and a[-1]["result"] and a[-1], 40, "put through"
    )
    stack.api("POST", "/api/campaigns/shift/active", {"active": False})
    assert done["result"] == "connected" and not done["abandoned"], done
    assert len(agent.calls) == 1, "put through on the line: nothing rang"
    it = stack.interaction("ani = %s AND direction = 'outbound'", NAILED_LEAD)
    assert it is not None
    assert stack.wait_event(it["id"], "recording_notice", timeout=15) == {"lang": "en"}
    stack.wait_event(it["id"], "recording_notice_over", timeout=15)
    line.wait_rx_audio(line.rx_audio_seconds() + 2.0, timeout=10)
    line.hangup()

    heard = customer_recording(NAILED_LEAD)
    print("customer heard:", notice_then_agent(heard, NOTICE_EN, NOTICE_ZH))
    _, center_side, rate = stereo(center_recording(stack, it["id"]))
    print("recording:", notice_then_agent((center_side, rate), NOTICE_EN, NOTICE_ZH))
