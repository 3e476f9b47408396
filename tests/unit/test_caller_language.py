"""One language per caller: which prompt segments a caller hears, how their language is chosen,
and the admin check that refuses a prompt missing a language the center offers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.adapters.db import Customer
from app.config import PromptText, load_settings
from app.domain.ivr_flow import (
    Flow,
    FlowError,
    FlowSet,
    LanguageStep,
    Node,
    check_flow,
    check_flow_languages,
)
from app.domain.prompt import (
    LanguageChoice,
    for_caller,
    known_language,
    language_for_key,
    missing_languages,
)
from app.errors import ConfigError
from app.inbound.flow_files import load_flows
from tests.unit.test_call_scripts import center

EN = PromptText("Press 1.", "en")
ZH = PromptText("请按1。", "zh")
BOTH = (EN, ZH)


def test_a_caller_hears_only_the_segments_in_their_language() -> None:
    assert for_caller(BOTH, "zh") == (ZH,)
    assert for_caller(BOTH, "en") == (EN,)
    # No language chosen (a center that never asks): the prompt as written.
    assert for_caller(BOTH, None) == BOTH
    # A prompt with nothing in the caller's language plays whole rather than not at all.
    assert for_caller((EN,), "zh") == (EN,)
    assert for_caller((), "zh") == ()


def test_the_language_is_the_customers_then_the_numbers_else_asked() -> None:
    offered = ("en", "zh")
    by_dnis = {"7001": "zh"}
    assert known_language(offered, "en", "7001", by_dnis) == LanguageChoice("en", "customer")
    assert known_language(offered, None, "7001", by_dnis) == LanguageChoice("zh", "dnis")
    assert known_language(offered, None, "7000", by_dnis) is None  # ask
    # A preference or number in a language the center no longer offers counts as none.
    assert known_language(("en",), "zh", "7001", by_dnis) is None
    keys = {"1": "en", "2": "zh"}
    assert language_for_key("2", keys, offered, "en") == LanguageChoice("zh", "key")
    assert language_for_key(None, keys, offered, "en") == LanguageChoice("en", "default")
    assert language_for_key("7", keys, offered, "en") == LanguageChoice("en", "default")


def test_missing_languages_of_a_prompt() -> None:
    assert missing_languages(BOTH, ("en", "zh")) == []
    assert missing_languages((EN,), ("en", "zh")) == ["zh"]
    assert missing_languages((EN,), ("en",)) == []
    assert missing_languages((), ("en", "zh")) == []  # a silent prompt misses nothing


def flow(**extra: object) -> Flow:
    nodes = {
        "menu": Node(type="menu", prompt=BOTH, options={"1": "person"}),
        "person": Node(type="queue", queue="general"),
    }
    fields: dict[str, object] = {"nodes": nodes, "invalid": BOTH, "no_input": BOTH, **extra}
    return Flow(name="main", start="menu", **fields)  # type: ignore[arg-type]


def test_a_flow_prompt_missing_an_offered_language_is_refused() -> None:
    check_flow_languages(flow(), ("en", "zh"))
    bad = flow(nodes={"menu": Node(type="menu", prompt=(EN,), options={"1": "person"})})
    check_flow_languages(bad, ("en",))  # an English-only center takes English-only prompts
    with pytest.raises(FlowError) as err:
        check_flow_languages(bad, ("en", "zh"))
    assert err.value.path == "nodes.menu.prompt" and "no text in zh" in err.value.message


def test_a_language_step_needs_keys_in_known_languages() -> None:
    check_flow(flow(language=LanguageStep(prompt=BOTH, keys={"1": "en", "2": "zh"})), {"general"})
    with pytest.raises(FlowError, match="needs its keys"):
        check_flow(flow(language=LanguageStep(prompt=BOTH)), {"general"})
    with pytest.raises(FlowError) as err:
        check_flow(flow(language=LanguageStep(by_dnis={"7001": "fr"})), {"general"})
    assert err.value.path == "language.by_dnis.7001"


FLOW = """name: main
default: true
start: menu
operator: person
invalid:
  - {text: "Sorry.", lang: en}
  - {text: "对不起。", lang: zh}
no_input:
  - {text: "Sorry, I didn't hear you.", lang: en}
  - {text: "对不起，我没有听到。", lang: zh}
nodes:
  menu:
    type: menu
    prompt:
      - {text: "Press 1.", lang: en}
      - {text: "请按1。", lang: zh}
    options: {"1": person}
  ask:
    type: play
    prompt: {text: "Hello.", lang: en}
    next: person
  person: {type: queue, queue: general}
"""


def test_a_flow_file_missing_a_language_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(FLOW, encoding="utf-8")
    center = tmp_path / "center.yaml"
    center.write_text("ivr:\n  flows: flows\nqueues:\n  - {name: general}\n")
    load_flows(load_settings(center))  # English only: fine
    center.write_text(
        "languages: [en, zh]\nivr:\n  flows: flows\n"
        "  connecting: []\n  no_agent: []\n  goodbye: []\n  callback_refused: []\n  callback_greeting: []\n"
        "  position: []\n  expected_wait: []\n  expected_wait_short: []\n  callback_offer: []\n"
        "  callback_confirmed: []\n  voicemail_offer: []\n  no_agent_voicemail: []\n"
        "  voicemail_intro: []\n  voicemail_saved: []\n  voicemail_empty: []\n"
        "  voicemail_saved_no_callback: []\nqueues:\n  - {name: general}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_flows(load_settings(center))
    assert str(err.value).startswith(
        f"{tmp_path / 'flows' / 'main.yaml'}:20: nodes.ask.prompt: no text in zh"
    )
    # A flow that leaves `invalid` at its English-only default is named by its first line.
    (tmp_path / "flows" / "main.yaml").write_text(
        FLOW.replace('  - {text: "对不起。", lang: zh}\n', "").replace(
            'invalid:\n  - {text: "Sorry.", lang: en}\n', ""
        ),
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"main.yaml:1: invalid: no text in zh.*built-in text is English only"
    ):
        load_flows(load_settings(center))


def test_a_center_file_prompt_missing_a_language_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    center = tmp_path / "center.yaml"
    center.write_text(
        "languages: [en, zh]\nivr:\n  goodbye:\n    - {text: Goodbye., lang: en}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(center)
    # The first prompt missing zh: the greeting, left at its English-only default, is named
    # with the line that offers zh.
    assert str(err.value).startswith(f"{center}:1: ivr.greeting: ")
    assert "built-in text is English only" in str(err.value)
    center.write_text(
        "languages: [en, zh]\nivr:\n"
        + "".join(
            f"  {name}: []\n"
            for name in (
                "greeting connecting no_agent invalid no_input position expected_wait"
                " expected_wait_short callback_offer callback_confirmed callback_refused callback_greeting"
                " voicemail_offer no_agent_voicemail voicemail_intro voicemail_saved"
                " voicemail_empty voicemail_saved_no_callback"
            ).split()
        )
        + "  goodbye:\n    - {text: Goodbye., lang: en}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(center)
    assert str(err.value).startswith(f"{center}:22: ivr.goodbye: no text in zh")
    center.write_text("languages: [en, en]\n")
    with pytest.raises(ConfigError, match="languages: a language is given twice"):
        load_settings(center)
    center.write_text("languages: [en, fr]\n")
    with pytest.raises(ConfigError, match=r"center.yaml:1: languages\[1\]"):
        load_settings(center)


def test_the_demo_offers_both_languages_and_passes_its_own_check() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config" / "demo.yaml")
    assert settings.languages == ("en", "zh")
    main = load_flows(settings).flows["main"]
    assert main.language.by_dnis == {"7001": "zh"} and main.language.keys == {"1": "en", "2": "zh"}
    assert [c.language for c in settings.sample_data.customers if c.vip] == ["zh"]


# -- on a call (in-memory PBX) -----------------------------------------------------------------

ASK = (PromptText("For English, press 1.", "en"), PromptText("普通话请按2。", "zh"))


def chosen(c: Any, iid: str) -> list[object]:
    return [e.data for e in c.store.events.get(iid, []) if e.kind == "language"]


def language_flow() -> FlowSet:
    nodes = {
        "menu": Node(type="menu", prompt=BOTH, options={"1": "person"}),
        "person": Node(type="queue", queue="general"),
    }
    step = LanguageStep(by_dnis={"7001": "zh"}, prompt=ASK, keys={"1": "en", "2": "zh"}, timeout_s=1)
    return FlowSet({"main": Flow(name="main", start="menu", nodes=nodes, default=True, language=step)})


async def test_a_caller_who_presses_2_hears_every_prompt_after_it_in_mandarin_alone() -> None:
    async with center(agents=("1001",), flows=language_flow(), languages=("en", "zh")) as c:
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: (caller, tuple(f"said:{p.text}" for p in ASK)) in c.pbx.played, "asked")
        c.pbx.press(caller, "2")
        await c.until(lambda: (caller, ("said:请按1。",)) in c.pbx.played, "the menu in Mandarin")
        c.pbx.press(caller, "1")
        await c.rings("1001")
        await c.until(lambda: c.store.rows[it.id].language == "zh", "the language stored")
        heard = [uris for ch, uris in c.pbx.played if ch == caller]
        assert ("said:Press 1.",) not in heard and not any("said:Press 1." in u for u in heard[1:])
        want = [{"lang": "zh", "by": "key", "key": "2"}]
        await c.until(lambda: chosen(c, it.id) == want, "the choice recorded")


async def test_the_number_dialled_or_the_customers_preference_skip_the_question() -> None:
    async with center(agents=("1001",), flows=language_flow(), languages=("en", "zh")) as c:
        caller = c.pbx.caller_arrives("13800000002", dnis="7001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: (caller, ("said:请按1。",)) in c.pbx.played, "the menu in Mandarin")
        assert next(uris for ch, uris in c.pbx.played if ch == caller) == ("said:请按1。",), "not asked"
        await c.until(lambda: chosen(c, it.id) == [{"lang": "zh", "by": "dnis"}], "the choice recorded")

    async def english_speaker(phone: str) -> Customer:
        return Customer(7, "Wang Wei", False, "medium", 0.0, language="en")

    async with center(
        agents=("1001",), flows=language_flow(), languages=("en", "zh"), customers=english_speaker
    ) as c:
        caller = c.pbx.caller_arrives("13800000003", dnis="7001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: (caller, ("said:Press 1.",)) in c.pbx.played, "the menu in English")
        await c.until(lambda: chosen(c, it.id) == [{"lang": "en", "by": "customer"}], "the choice recorded")


async def test_no_key_at_the_question_is_the_centers_default_language() -> None:
    async with center(agents=("1001",), flows=language_flow(), languages=("zh", "en")) as c:
        caller = c.pbx.caller_arrives("13800000004")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(
            lambda: (caller, ("said:请按1。",)) in c.pbx.played, "the menu in the default", timeout=5
        )
        await c.until(lambda: chosen(c, it.id) == [{"lang": "zh", "by": "default"}], "the choice recorded")


async def test_a_center_offering_one_language_asks_nothing_and_plays_prompts_as_written() -> None:
    async with center(agents=("1001",), flows=language_flow(), languages=("en",)) as c:
        caller = c.pbx.caller_arrives("13800000005")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        both = ("said:Press 1.", "said:请按1。")
        await c.until(lambda: (caller, both) in c.pbx.played, "the menu as written")
        assert next(uris for ch, uris in c.pbx.played if ch == caller) == both, "not asked"
        assert c.store.rows[it.id].language is None
