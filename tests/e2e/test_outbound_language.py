"""The customer's language on the calls the center places, on the real stack: a Mandarin
customer (stored preference) called back hears the callback's greeting in Mandarin alone, and a
lead whose list row says `language: zh` hears the dialer's identifying message in Mandarin
alone. A second Asterisk plays the customers' network and records each customer's line whole.

Which language was heard is found in the customer's recording by matching the synthesised audio
of each language's segment (the cache the app plays from), as tests/e2e/test_languages.py does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import IvrSettings, PromptText, Settings, caller_prompts
from tests.e2e.test_dialer import app_command, attempts
from tests.support.audio import best_match, heard_whole
from tests.support.calls import HEARD, reference, register_agent
from tests.support.customers import CustomerNetwork
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

CUSTOMERS = CustomerNetwork(Path(tempfile.mkdtemp(prefix="lianluo-customers-lang-")))
CENTER = "Lianluo test"
GREETING_EN = PromptText("Hello, this is Lianluo returning your call. One moment, please.", "en")
GREETING_ZH = PromptText("您好，这里是联络，给您回电。请稍候。", "zh")
MESSAGE_EN = PromptText("Hello, this is Lianluo. Sorry we missed you. We will call again.", "en")
MESSAGE_ZH = PromptText("您好，这里是联络。抱歉未能为您接通，我们会再次致电。", "zh")
# People on the customers' network (1380001xxxx answer after 1-3 s and say "Hello?").
MANDARIN_CUSTOMER = "13800010031"
MANDARIN_LEAD = "13800010032"
NOW = datetime.now(UTC)
TODAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][NOW.weekday()]
# Built-in prompts a caller may hear, none on these paths: left silent, so the bilingual
# center's check has nothing English-only to refuse.
SILENT: dict[str, list[object]] = {
    path.removeprefix("ivr."): [] for path, _ in caller_prompts(Settings(ivr=IvrSettings(flows="x")))
}
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
    "sample_data": {"customers": [{"name": "Xu Li", "phone": MANDARIN_CUSTOMER, "language": "zh"}]},
    "campaigns": [
        {
            "name": "renewals",
            "queue": "general",
            "mode": "progressive",
            "agent_line": "ringing",
            "active": False,
            "ring_s": 15,
            "amd": True,
            "on_machine": "hangup",
            "message": [{"text": MESSAGE_EN.text, "lang": "en"}, {"text": MESSAGE_ZH.text, "lang": "zh"}],
            "timezone": "UTC",
            "window": {"days": [TODAY], "start": "00:00", "end": "23:59"},
        }
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


def test_a_mandarin_customer_called_back_hears_only_mandarin(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path]
) -> None:
    # From the web, with no language given: the customer's stored preference decides.
    status, cb = stack.api("POST", "/api/callbacks", {"phone": MANDARIN_CUSTOMER, "queue": "general"})
    assert status == 201, cb
    assert (
        stack.api("POST", "/api/callbacks", {"phone": "13800010039", "queue": "general", "language": "fr"})[0]
        == 400
    ), "a language the center does not offer is refused"
    agent = register_agent(lab, stack, "1001")
    leg = agent.wait_incoming(timeout=20)
    assert leg.header("X-Lianluo-Callback") == cb["id"]
    leg.answer(play=tones[1], loop=True)
    attempt = eventually(
        lambda: stack.interaction("callback_id = %s AND answered_at IS NOT NULL", cb["id"]),
        30,
        "the customer connected",
    )
    assert attempt["language"] == "zh"
    assert stack.wait_event(attempt["id"], "language", timeout=5) == {"lang": "zh", "by": "customer"}
    leg.wait_rx_audio(leg.rx_audio_seconds() + 3.0, timeout=15)  # they talk a little
    leg.hangup()

    heard = customer_recording(MANDARIN_CUSTOMER)
    assert heard_whole(heard, reference(GREETING_ZH)) > HEARD, "the Mandarin greeting not heard"
    assert best_match(heard, reference(GREETING_EN)) < HEARD, "the English greeting heard"


def test_a_lead_whose_list_says_zh_hears_the_dialers_message_in_mandarin_only(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    (tmp_path / "leads.csv").write_text(f"phone,name,language\n{MANDARIN_LEAD},Ma Lin,zh\n13800010033,X,fr\n")
    out = app_command(
        stack, "import-leads", "--config", str(stack.config_path), "renewals", str(tmp_path / "leads.csv")
    )
    assert "1 new" in out and "line 3: language 'fr' is not one the center offers (en, zh)" in out, out
    register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent ready")
    stack.api("POST", "/api/campaigns/renewals/active", {"active": True})
    eventually(lambda: attempts(stack, MANDARIN_LEAD), 30, "the call placed")
    # The agent steps away while the customer's phone rings: nobody is free when they answer,
    # and they hear the identifying message.
    stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "break"})
    done = eventually(
        lambda: (a := attempts(stack, MANDARIN_LEAD)) and a[-1]["result"] and a[-1], 40, "call over"
    )
    stack.api("POST", "/api/campaigns/renewals/active", {"active": False})
    assert done["result"] == "abandoned", done
    it = stack.interaction("ani = %s AND direction = 'outbound'", MANDARIN_LEAD)
    assert it is not None and it["language"] == "zh"
    assert stack.wait_event(it["id"], "language", timeout=5) == {"lang": "zh", "by": "lead"}

    heard = customer_recording(MANDARIN_LEAD)
    assert heard_whole(heard, reference(MESSAGE_ZH)) > HEARD, "the Mandarin message not heard"
    assert best_match(heard, reference(MESSAGE_EN)) < HEARD, "the English message heard"
