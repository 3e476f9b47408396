"""The customer's language on the calls the center places (callbacks, dialer and preview calls):
one rule in the domain, the leads list's `language` column, and the admin check that refuses a
campaign or callback prompt missing a language the center offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_settings
from app.dialer.lists import ImportReport, parse_leads
from app.domain.prompt import LanguageChoice, language_on_our_call
from app.errors import ConfigError

BOTH = ("en", "zh")


def test_a_callback_is_in_the_language_of_the_call_that_asked_for_it() -> None:
    # The caller chose Mandarin on the call that asked; their stored preference says English.
    assert language_on_our_call("callback", BOTH, "zh", "en") == LanguageChoice("zh", "interaction")
    # Asked from the web with no language, or from a call that never chose one: the preference.
    assert language_on_our_call("callback", BOTH, None, "zh") == LanguageChoice("zh", "customer")
    # Nothing known: the center's default, the first language it offers.
    assert language_on_our_call("callback", BOTH, None, None) == LanguageChoice("en", "default")
    assert language_on_our_call("callback", ("zh", "en"), None, None) == LanguageChoice("zh", "default")


def test_a_dialer_call_is_in_the_leads_language_then_the_customers_preference() -> None:
    assert language_on_our_call("dialer", BOTH, "zh", "en") == LanguageChoice("zh", "lead")
    assert language_on_our_call("dialer", BOTH, None, "zh") == LanguageChoice("zh", "customer")
    assert language_on_our_call("dialer", BOTH, None, None) == LanguageChoice("en", "default")


def test_a_language_the_center_does_not_offer_counts_as_none() -> None:
    # A center that dropped Mandarin: the old lead's zh and the preference fall through.
    assert language_on_our_call("dialer", ("en",), "zh", "zh") == LanguageChoice("en", "default")
    assert language_on_our_call("callback", BOTH, "fr", "zh") == LanguageChoice("zh", "customer")


def test_the_leads_language_column_is_optional_and_checked_against_the_centers_languages() -> None:
    text = (
        "phone,name,Language,segment\n"
        "13800138001,Zhang Wei,zh,gold\n"
        "13800138002,Li Na,,gold\n"
        "13800138003,Wang Fang,FR,silver\n"
        "13800138004,Liu Yang, EN ,silver\n"
    )
    report = ImportReport()
    rows = parse_leads(text, report, BOTH)
    assert [(r.phone, r.language) for r in rows] == [
        ("13800138001", "zh"),
        ("13800138002", None),
        ("13800138004", "en"),
    ]
    assert report.refused == [(4, "language 'fr' is not one the center offers (en, zh)")]
    assert rows[0].attributes == {"segment": "gold"}, "the language is the lead's, not an attribute"
    # An English-only center refuses a Mandarin lead rather than speak to them in a language
    # nobody wrote its messages in.
    english = ImportReport()
    assert [r.phone for r in parse_leads(text, english, ("en",))] == ["13800138002", "13800138004"]
    assert [line for line, _ in english.refused] == [2, 4]


BILINGUAL_IVR = "".join(
    f"  {name}: []\n"
    for name in (
        "greeting connecting no_agent invalid no_input goodbye position expected_wait"
        " expected_wait_short callback_offer callback_confirmed callback_refused"
        " voicemail_offer no_agent_voicemail voicemail_intro voicemail_saved"
        " voicemail_empty voicemail_saved_no_callback"
    ).split()
)
CARRIER = 'carrier: {outbound_contact: "sip:127.0.0.2:5062"}\nqueues:\n  - {name: general}\n'


def test_a_callback_greeting_missing_a_language_is_refused(tmp_path: Path) -> None:
    center = tmp_path / "center.yaml"
    center.write_text(f"languages: [en, zh]\nivr:\n{BILINGUAL_IVR}", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(center)
    # Left at its English-only default: named with the line that offers zh.
    assert str(err.value).startswith(f"{center}:1: ivr.callback_greeting: no text in zh")
    center.write_text(
        f"languages: [en, zh]\nivr:\n{BILINGUAL_IVR}  callback_greeting:\n"
        "    - {text: 'This is {center} calling back.', lang: en}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(center)
    assert str(err.value).startswith(f"{center}:22: ivr.callback_greeting: no text in zh")
    center.write_text(
        f"languages: [en, zh]\nivr:\n{BILINGUAL_IVR}  callback_greeting:\n"
        "    - {text: 'This is {center} calling back.', lang: en}\n"
        "    - {text: '{center}给您回电。', lang: zh}\n",
        encoding="utf-8",
    )
    assert len(load_settings(center).ivr.callback_greeting) == 2


def test_a_campaign_message_missing_a_language_is_refused(tmp_path: Path) -> None:
    center = tmp_path / "center.yaml"
    head = f"languages: [en, zh]\nivr:\n{BILINGUAL_IVR}  callback_greeting: []\n{CARRIER}"
    center.write_text(head + "campaigns:\n  - {name: renewals, queue: general}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(center)
    assert str(err.value).startswith(f"{center}:1: campaigns[0].message: no text in zh")
    message = (
        "    message:\n"
        "      - {text: 'Sorry we missed you.', lang: en}\n"
        "      - {text: '抱歉未能为您接通。', lang: zh}\n"
    )
    # The machine message is heard only where the campaign leaves one.
    center.write_text(head + "campaigns:\n  - name: renewals\n    queue: general\n" + message)
    assert load_settings(center).campaigns[0].message[1].lang == "zh"
    center.write_text(
        head
        + "campaigns:\n  - name: renewals\n    queue: general\n    on_machine: message\n"
        + message
        + "    machine_message:\n      - {text: 'Please call us back.', lang: en}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(center)
    assert str(err.value).startswith(f"{center}:33: campaigns[0].machine_message: no text in zh")
