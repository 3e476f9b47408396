"""A prompt's words: a text and the language it is spoken in. Pure: rendered into sound by
app/adapters/prompts.py, configured in YAML (app/config.py), filled in by the flows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal


@dataclass(frozen=True)
class PromptText:
    text: str
    lang: Literal["en", "zh"] = "en"


# -- one language per caller -----------------------------------------------------------------

LANGUAGES = ("en", "zh")  # those prompts can be synthesised in (app/adapters/prompts.py)


def for_caller(prompt: Sequence[PromptText], lang: str | None) -> tuple[PromptText, ...]:
    """What a caller whose language is `lang` hears of a prompt: only its segments in that
    language. `None` (no language chosen: a center that never asks) plays every segment as
    written. A prompt with no segment in `lang` plays whole rather than not at all: the admin
    check (`missing_languages`) refuses such a prompt in the languages a center offers, so this
    only happens for a language the center does not offer."""
    if lang is None:
        return tuple(prompt)
    mine = tuple(p for p in prompt if p.lang == lang)
    return mine or tuple(prompt)


def missing_languages(prompt: Sequence[PromptText], offered: Sequence[str]) -> list[str]:
    """The offered languages a prompt has no segment in (an empty prompt, one that says
    nothing, misses none)."""
    if not prompt:
        return []
    have = {p.lang for p in prompt}
    return [lang for lang in offered if lang not in have]


@dataclass(frozen=True)
class LanguageChoice:
    """The caller's language and what decided it: "customer" (their stored preference), "dnis"
    (the number they dialled), "key" (they pressed it at the language step), "default" (no key
    in time, or nothing known on a call we place); on a call we place, "interaction" (the
    language of the call that asked for a callback) or "lead" (the campaign list's column)."""

    lang: str
    by: Literal["customer", "dnis", "key", "default", "interaction", "lead"]


def known_language(
    offered: Sequence[str],
    preference: str | None,
    dnis: str,
    by_dnis: Mapping[str, str],
) -> LanguageChoice | None:
    """The caller's language before anyone asks: the customer's stored preference, else the
    dialled number's language; a language the center does not offer counts as none. None: ask
    (or, with no language step, play prompts as written)."""
    if preference in offered:
        assert preference is not None
        return LanguageChoice(preference, "customer")
    by_number = by_dnis.get(dnis)
    if by_number in offered:
        assert by_number is not None
        return LanguageChoice(by_number, "dnis")
    return None


def language_for_key(
    key: str | None, keys: Mapping[str, str], offered: Sequence[str], default: str
) -> LanguageChoice:
    """The language step's answer: the language of the key pressed; no key, or a key that
    chooses nothing the center offers, is the center's default language."""
    lang = keys.get(key) if key is not None else None
    if lang in offered:
        assert lang is not None
        return LanguageChoice(lang, "key")
    return LanguageChoice(default, "default")


def language_on_our_call(
    kind: Literal["callback", "dialer"],
    offered: Sequence[str],
    own: str | None,
    preference: str | None,
) -> LanguageChoice:
    """The customer's language on a call the center places, settled before it rings: `own`
    first (for a callback, the language the call that asked for it was served in, or the one
    a web request gave; for a dialer call, placed or preview, the lead's `language` column),
    then the customer's stored preference, then the center's default (the first offered).
    Nobody is asked: a customer who picks up must hear one language at once. A language the
    center does not offer counts as none."""
    if own in offered:
        assert own is not None
        return LanguageChoice(own, "interaction" if kind == "callback" else "lead")
    if preference in offered:
        assert preference is not None
        return LanguageChoice(preference, "customer")
    return LanguageChoice(offered[0] if offered else "en", "default")


# -- data read out to a caller ---------------------------------------------------------------

_ZH_DIGITS = "零一二三四五六七八九"


def digits_aloud(value: str, lang: str = "en") -> str:
    """A digit string read as people read account and phone numbers: digit by digit, in groups
    of four (three at the start when the length asks), each group its own breath. A speech
    engine given "79900012345" says "seventy-nine billion ..."; given this it says the digits."""
    digits = [c for c in value if c.isdigit()]
    # Fours, with what is left over at the start: 3 (as in 138 0013 8000), 2, or, rather than
    # a lone digit, 3 and 2.
    lead = {0: [], 1: [3, 2] if len(digits) >= 5 else [1], 2: [2], 3: [3]}[len(digits) % 4]
    groups, at = [], 0
    for size in lead:
        groups.append(digits[at : at + size])
        at += size
    groups += [digits[i : i + 4] for i in range(at, len(digits), 4)]
    if lang == "zh":  # 一 is read 幺 in numbers people dial, as Mandarin speakers say them
        return "，".join("".join("幺" if d == "1" else _ZH_DIGITS[int(d)] for d in g) for g in groups if g)
    return ", ".join(" ".join(g) for g in groups if g)


def money_aloud(value: object, lang: str = "en") -> str:
    """An amount as money: "1234.50" -> "1234 yuan 50 fen" / "1234元5角" (the whole part as a
    number, which is how amounts are said)."""
    text = str(value).strip()
    negative = text.startswith("-")
    whole, _, cents = text.lstrip("-+").partition(".")
    cents = (cents + "00")[:2]
    if not whole.isdigit() or not cents.isdigit():
        return text
    if lang == "zh":
        jiao, fen = cents[0], cents[1]
        out = f"{int(whole)}元" + (f"{jiao}角" if jiao != "0" else "") + (f"{fen}分" if fen != "0" else "")
        return ("负" if negative else "") + out
    out = f"{int(whole)} yuan" + (f" {int(cents)} fen" if int(cents) else "")
    return ("minus " if negative else "") + out


_EN_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth"
    " fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth twenty-first"
    " twenty-second twenty-third twenty-fourth twenty-fifth twenty-sixth twenty-seventh"
    " twenty-eighth twenty-ninth thirtieth thirty-first"
).split()
_EN_MONTHS = ("January February March April May June July August September October November December").split()


def _iso(value: object) -> datetime | date | time | None:
    if isinstance(value, datetime | date | time):
        return value
    text = str(value).strip()
    for parse in (date.fromisoformat, time.fromisoformat, datetime.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def date_aloud(value: object, lang: str = "en") -> str:
    """A date (ISO, or the date of an ISO timestamp) as people say one: "2026-12-03" -> "the
    third of December, 2026" / "2026年12月3日". A value that is not a date is read as written."""
    parsed = _iso(value)
    if isinstance(parsed, datetime):
        parsed = parsed.date()
    if not isinstance(parsed, date):
        return str(value)
    if lang == "zh":
        return f"{parsed.year}年{parsed.month}月{parsed.day}日"
    return f"the {_EN_ORDINALS[parsed.day - 1]} of {_EN_MONTHS[parsed.month - 1]}, {parsed.year}"


def time_aloud(value: object, lang: str = "en") -> str:
    """A time of day (ISO, or the time of an ISO timestamp) on the twelve-hour clock people
    speak: "14:30" -> "2:30 pm" / "下午2点30分"; on the hour "2 pm" / "下午2点". Seconds are not
    read. A value that is not a time is read as written."""
    parsed = _iso(value)
    if isinstance(parsed, datetime):
        parsed = parsed.time()
    if not isinstance(parsed, time):
        return str(value)
    hour, minute = parsed.hour, parsed.minute
    twelve = hour % 12 or 12
    if lang == "zh":
        # The part of the day says morning or afternoon, as the hour alone does not.
        part = (
            "凌晨"
            if hour < 6
            else "上午"
            if hour < 12
            else "中午"
            if hour < 13
            else "下午"
            if hour < 18
            else "晚上"
        )
        clock = f"{part}{0 if hour == 0 else twelve}点"
        return clock + ("" if minute == 0 else f"零{minute}分" if minute < 10 else f"{minute}分")
    suffix = "am" if hour < 12 else "pm"
    return f"{twelve} {suffix}" if minute == 0 else f"{twelve}:{minute:02d} {suffix}"


def label_aloud(code: object, labels: Mapping[str, Mapping[str, str]], lang: str) -> str:
    """A code (an order's status, `shipped`) read by its label in the caller's language
    (`{shipped: {en: shipped, zh: 已发货}}`); a code without a label, or a label without this
    language, is read as written: better the code than silence."""
    text = str(code)
    return labels.get(text, {}).get(lang, text)


class Spoken:
    """A value to be read out in a prompt, with how to read it as the format spec:
    `{account:digits}`, `{balance:money}`, `{count:number}`, `{due:date}`, `{slot:time}`. A value
    with `labels` (a code: an order's status) is read by its label in the caller's language,
    whatever the spec. Without a spec, a string of five or more digits (or one starting with 0)
    is read digit by digit: that is an identifier, never a quantity a caller needs to hear as one."""

    def __init__(
        self, value: object, lang: str, labels: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self.value = value
        self.lang = lang
        self.labels = labels

    def __format__(self, spec: str) -> str:
        text = str(self.value)
        if self.labels is not None:
            return label_aloud(text, self.labels, self.lang)
        if spec == "date":
            return date_aloud(self.value, self.lang)
        if spec == "time":
            return time_aloud(self.value, self.lang)
        if spec == "digits":
            return digits_aloud(text, self.lang)
        if spec == "money":
            return money_aloud(text, self.lang)
        if spec in ("number", "text"):
            return text
        if spec:
            return format(text, spec)
        plain = text.strip()
        if plain.isdigit() and (len(plain) >= 5 or (len(plain) > 1 and plain.startswith("0"))):
            return digits_aloud(plain, self.lang)
        return text

    def __str__(self) -> str:
        return format(self, "")
