"""One language per caller on the real stack: a caller who picks Mandarin at the language step
hears every prompt after it in Mandarin alone, on the way through the menu to an agent.
(Each prompt here is short, and the menu plays twice: one cross-correlation each, not
`heard_in_parts`, whose pieces may match in different plays; the account's answer, long and
played once, is heard in parts.)

Which language each prompt was heard in is found in the caller's own recording, by matching the
synthesised audio of each language's segment (the cache the app plays from).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from app.config import IvrSettings, PromptText, Settings, caller_prompts
from app.domain.prompt import digits_aloud, money_aloud
from tests.support.audio import best_match, duration, heard_in_parts, heard_whole
from tests.support.calls import HEARD, ended, prompt_wav, reference, register_agent
from tests.support.sip_phone import Call, PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

CHOOSE_EN = PromptText("For English, press 1.", "en")
CHOOSE_ZH = PromptText("普通话请按2。", "zh")
MENU_EN = PromptText("For general questions, press 1.", "en")
MENU_ZH = PromptText("一般咨询请按1。", "zh")
INVALID_EN = PromptText("Sorry, that is not a valid choice.", "en")
INVALID_ZH = PromptText("对不起，您的选择无效。", "zh")
ASK_EN = PromptText("Please enter your account number, then press the pound key.", "en")
ASK_ZH = PromptText("请输入您的账号，以井号键结束。", "zh")
ACCOUNT = "79927398713"
ASK_ORDER_EN = PromptText("Please enter your order number.", "en")
ASK_ORDER_ZH = PromptText("请输入您的订单号。", "zh")
ORDER = "4711"

FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-language-flows-"))
(FLOWS / "main.yaml").write_text(
    f"""
name: main
default: true
start: main_menu
operator: agent
language:
  prompt:
    - {{text: "{CHOOSE_EN.text}", lang: en}}
    - {{text: "{CHOOSE_ZH.text}", lang: zh}}
  keys: {{"1": en, "2": zh}}
  timeout_s: 5
invalid:
  - {{text: "{INVALID_EN.text}", lang: en}}
  - {{text: "{INVALID_ZH.text}", lang: zh}}
no_input:
  - {{text: "Sorry, I didn't hear you.", lang: en}}
  - {{text: "对不起，我没有听到您的选择。", lang: zh}}
nodes:
  main_menu:
    type: menu
    prompt:
      - {{text: "{MENU_EN.text}", lang: en}}
      - {{text: "{MENU_ZH.text}", lang: zh}}
    options: {{"1": agent, "2": ask_account, "3": ask_order}}
    timeout_s: 4
    attempts: 3
  ask_account:
    type: collect
    into: account
    prompt:
      - {{text: "{ASK_EN.text}", lang: en}}
      - {{text: "{ASK_ZH.text}", lang: zh}}
    min_digits: 8
    max_digits: 16
    next: say_balance
  say_balance:
    type: lookup
    lookup: account_balance
    key: account
    prompt:
      - {{text: "The balance of account {{account_number}} is {{balance:money}}.", lang: en}}
      - {{text: "账户{{account_number}}的余额为{{balance:money}}。", lang: zh}}
    not_found: agent
    next: agent
  ask_order:
    type: collect
    into: order
    prompt:
      - {{text: "{ASK_ORDER_EN.text}", lang: en}}
      - {{text: "{ASK_ORDER_ZH.text}", lang: zh}}
    min_digits: 4
    max_digits: 12
    next: say_order
  say_order:
    type: lookup
    lookup: order_status
    key: order
    # The status in a segment of its own: its audio is what the caller's recording is searched for.
    prompt:
      - {{text: "Your order is", lang: en}}
      - {{text: "{{status}}.", lang: en}}
      - {{text: "您的订单", lang: zh}}
      - {{text: "{{status}}。", lang: zh}}
    value_labels:
      status:
        shipped: {{en: shipped, zh: 已发货}}
    not_found: agent
    next: agent
  agent: {{type: queue, queue: general}}
""",
    encoding="utf-8",
)
# Built-in prompts a caller may hear, none on this path (an idle agent rings at once): left
# silent, so the bilingual center's check has nothing English-only to refuse.
SILENT: dict[str, list[object]] = {
    path.removeprefix("ivr."): [] for path, _ in caller_prompts(Settings(ivr=IvrSettings(flows="x")))
}
STACK_CONFIG = {
    "languages": ["en", "zh"],
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0}],
    "ivr": {**SILENT, "flows": str(FLOWS)},
    "sample_data": {
        "accounts": [{"account_number": ACCOUNT, "balance": 1234.50}],
        "orders": [{"order_number": ORDER, "status": "shipped"}],
    },
}


def heard_out(call: Call) -> None:
    """Until no audio has come for 0.3 s: a prompt played to its end."""
    seen: list[tuple[float, float]] = []

    def quiet() -> bool:
        now, got = time.monotonic(), call.rx_audio_seconds()
        seen.append((now, got))
        return any(at <= now - 0.3 and was == got for at, was in seen)

    eventually(quiet, 10, "the prompt heard out", interval=0.05)


def test_a_caller_who_picks_mandarin_hears_only_mandarin_to_the_agent(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    agent = register_agent(lab, stack, "1001")
    phone = lab.phone("127.0.0.2", user="13700000091")
    call = phone.call(
        f"sip:7000@127.0.0.1:{stack.sip_port}", play=tones[0], record=tmp_path / "caller.wav", loop=True
    )
    call.wait_confirmed(timeout=10)
    it = eventually(lambda: stack.interaction("ani = %s", "13700000091"), 10, "the caller's interaction")
    # The language question heard out, in both languages (its audio has stopped coming), then
    # the key, within the step's timeout.
    question = duration(prompt_wav(CHOOSE_EN)) + duration(prompt_wav(CHOOSE_ZH))
    call.wait_rx_audio(question - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf("2")
    chosen = stack.wait_event(it["id"], "language", timeout=15)
    assert chosen == {"lang": "zh", "by": "key", "key": "2"}
    eventually(lambda: any(k == "prompt_played" for k, _ in stack.events(it["id"])), 15, "the menu heard out")
    call.send_dtmf("9")  # not an option: told so, in Mandarin
    stack.wait_event(it["id"], "invalid_input", timeout=15)
    # "Not valid" heard out (keys during it are not taken), then 1 over the menu's repeat.
    call.wait_rx_audio(call.rx_audio_seconds() + duration(prompt_wav(INVALID_ZH)) + 0.5, timeout=15)
    call.send_dtmf("1")
    ringing = agent.wait_incoming(timeout=20)
    ringing.answer(play=tones[1], loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    call.hangup()
    row = ended(stack, it["id"])
    assert (row["agent_id"], row["language"]) == ("1001", "zh")

    heard = call.recording()
    for prompt in (CHOOSE_EN, CHOOSE_ZH, MENU_ZH, INVALID_ZH):  # the question is the bilingual one
        assert heard_whole(heard, prompt_wav(prompt)) > HEARD, f"not heard: {prompt.text}"
    for prompt in (MENU_EN, INVALID_EN):
        assert best_match(heard, prompt_wav(prompt)) < HEARD, f"heard in English: {prompt.text}"


def test_a_mandarin_callers_account_number_is_read_digit_by_digit_in_mandarin(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    """The self-service answer reads the account number as Mandarin speakers read one (七九九，
    二七三九，八七幺三), not as a quantity (七百九十九亿...), and the balance as money."""
    agent = register_agent(lab, stack, "1001")
    phone = lab.phone("127.0.0.2", user="13700000092")
    call = phone.call(
        f"sip:7000@127.0.0.1:{stack.sip_port}", play=tones[0], record=tmp_path / "caller.wav", loop=True
    )
    call.wait_confirmed(timeout=10)
    it = eventually(lambda: stack.interaction("ani = %s", "13700000092"), 10, "the caller's interaction")
    question = duration(prompt_wav(CHOOSE_EN)) + duration(prompt_wav(CHOOSE_ZH))
    call.wait_rx_audio(question - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf("2")
    assert stack.wait_event(it["id"], "language", timeout=15) == {"lang": "zh", "by": "key", "key": "2"}
    call.wait_rx_audio(call.rx_audio_seconds() + duration(prompt_wav(MENU_ZH)) - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf("2")
    stack.wait_event(it["id"], "menu_choice", timeout=15)
    call.wait_rx_audio(call.rx_audio_seconds() + duration(prompt_wav(ASK_ZH)) - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf(ACCOUNT + "#")
    assert stack.wait_event(it["id"], "self_service", timeout=15)["found"] is True
    # The answer plays, then the caller goes to the agent (the flow's next step).
    ringing = agent.wait_incoming(timeout=30)
    ringing.answer(play=tones[1], loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    call.hangup()
    ended(stack, it["id"])

    balance = money_aloud("1234.50", "zh")
    as_read = PromptText(f"账户{digits_aloud(ACCOUNT, 'zh')}的余额为{balance}。", "zh")
    as_quantity = PromptText(f"账户{int(ACCOUNT)}的余额为{balance}。", "zh")
    assert digits_aloud(ACCOUNT, "zh") == "七九九，二七三九，八七幺三"
    heard = call.recording()
    # In thirds (heard_in_parts): one late packet mid-answer shifts the rest of a 6 s prompt,
    # which one correlation over the whole of it reads as half heard (0.42 seen under load).
    read, quantity = heard_in_parts(heard, prompt_wav(as_read)), heard_in_parts(heard, reference(as_quantity))
    print(f"\nthe account number heard digit by digit: {read:.2f}; as a quantity: {quantity:.2f}")
    # Under two test modules at once a third of the answer has scored 0.35 (a late packet inside
    # it); the reading as a quantity scores 0.13-0.22. Heard: well above that, and above it twice.
    assert read > 0.3, "the answer, digit by digit, in Mandarin"
    assert read > 2 * quantity, "read as a quantity"
    assert best_match(heard, prompt_wav(ASK_EN)) < HEARD, "the English entry prompt"


def test_a_mandarin_caller_hears_their_orders_status_by_its_mandarin_label(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    """The order's status is a code (`shipped`); a Mandarin caller hears its label, 已发货."""
    agent = register_agent(lab, stack, "1001")
    phone = lab.phone("127.0.0.2", user="13700000093")
    call = phone.call(
        f"sip:7000@127.0.0.1:{stack.sip_port}", play=tones[0], record=tmp_path / "caller.wav", loop=True
    )
    call.wait_confirmed(timeout=10)
    it = eventually(lambda: stack.interaction("ani = %s", "13700000093"), 10, "the caller's interaction")
    question = duration(prompt_wav(CHOOSE_EN)) + duration(prompt_wav(CHOOSE_ZH))
    call.wait_rx_audio(question - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf("2")
    assert stack.wait_event(it["id"], "language", timeout=15) == {"lang": "zh", "by": "key", "key": "2"}
    call.wait_rx_audio(call.rx_audio_seconds() + duration(prompt_wav(MENU_ZH)) - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf("3")
    stack.wait_event(it["id"], "menu_choice", timeout=15)
    call.wait_rx_audio(call.rx_audio_seconds() + duration(prompt_wav(ASK_ORDER_ZH)) - 0.5, timeout=15)
    heard_out(call)
    call.send_dtmf(ORDER + "#")
    assert stack.wait_event(it["id"], "self_service", timeout=15)["found"] is True
    ringing = agent.wait_incoming(timeout=30)
    ringing.answer(play=tones[1], loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    call.hangup()
    ended(stack, it["id"])

    heard = call.recording()
    label = best_match(heard, prompt_wav(PromptText("已发货。", "zh")))
    code_zh = best_match(heard, reference(PromptText("shipped。", "zh")))
    code_en = best_match(heard, reference(PromptText("shipped.", "en")))
    print(
        f"\nthe status heard as 已发货: {label:.2f};"
        f" as 'shipped' (Mandarin voice {code_zh:.2f}, English {code_en:.2f})"
    )
    assert label > HEARD, "the status by its Mandarin label"
    assert code_zh < HEARD and code_en < HEARD, "the status code read as written"
    assert heard_whole(heard, prompt_wav(PromptText("您的订单", "zh"))) > HEARD, "the answer's opening"
