"""IVR flows: what a caller hears, what they may answer, and where each answer leads.

Pure: no I/O, no asyncio. A flow is a graph of named nodes written by an admin in YAML
(one file per flow, see config/flows/). The call flow walks it: it plays, listens and
looks things up; the rules here decide which node comes next, whether typed input is
valid, and which branch a caller takes (by number, customer, opening hours, holidays or
what they entered). Flows are immutable once loaded: a reload builds new ones, and calls
already in a flow finish the version they started with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain.prompt import LANGUAGES, PromptText, Spoken, missing_languages

NodeType = Literal["menu", "collect", "lookup", "branch", "play", "queue", "voicemail", "hangup", "fax"]
HangupOutcome = Literal["self_service", "closed", "blocked", "no_input"]
Lookup = Literal["account_balance", "order_status"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The key that reaches a person from every menu, unless the menu uses it for something else.
OPERATOR_KEY = "0"


@dataclass(frozen=True)
class Rule:
    """One branch: every condition given must hold (and), then the call goes to `goto`."""

    goto: str
    ani_in: str | None = None  # name of a number list in the flow's `lists`
    customer: Literal["known", "unknown", "vip"] | None = None
    open: str | None = None  # name of an entry in the flow's `hours`: within them, not a holiday
    closed: str | None = None  # the opposite
    collected: dict[str, str] = field(default_factory=dict)  # entered value equals


@dataclass(frozen=True)
class Node:
    type: NodeType
    prompt: tuple[PromptText, ...] = ()
    next: str | None = None
    # menu: a key or a spoken phrase leads to a node
    options: dict[str, str] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 6.0
    attempts: int = 3
    invalid: tuple[PromptText, ...] = ()  # empty: the flow's
    no_input: tuple[PromptText, ...] = ()  # empty: the flow's
    on_fail: str | None = None  # after the last attempt; default: the operator
    # collect: digits into a named field, validated
    into: str | None = None
    min_digits: int = 1
    max_digits: int = 20
    pattern: str | None = None
    checksum: Literal["none", "luhn"] = "none"
    # lookup: a self-service answer; the prompt may use the result's fields
    lookup: Lookup | None = None
    key: str | None = None  # the collected field looked up
    not_found: str | None = None
    # A result field holding a code, read by its label in the caller's language:
    # {status: {shipped: {en: shipped, zh: 已发货}}}. A code with no label is read as written.
    value_labels: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    # branch
    rules: tuple[Rule, ...] = ()
    otherwise: str | None = None
    # queue / voicemail
    queue: str | None = None
    skills: dict[str, int] = field(default_factory=dict)  # skill -> minimum level
    # hangup
    outcome: HangupOutcome = "self_service"
    # The caller says or keys secrets here (a card number): the IVR's recording pauses.
    sensitive: bool = False
    # A key stops this node's prompt at once (and answers the next menu or entry: typed ahead).
    # `false` for what must be heard whole (consent, legal notices): a key pressed during it
    # waits for its end, then counts the same way.
    interruptible: bool = True
    # What the agent's panel calls this node when a menu leads here, or the field a collect
    # node fills, by language ({en: Billing, zh: 账务}); without one the panel shows the key
    # pressed or the field's name.
    label: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hours:
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: str = "09:00"
    end: str = "18:00"
    timezone: str = "UTC"
    holidays: tuple[str, ...] = ()  # ISO dates, e.g. 2026-10-01


@dataclass(frozen=True)
class LanguageStep:
    """How a flow learns the caller's language, when the customer's stored preference does not
    say: the dialled number (`by_dnis`, e.g. {"7001": zh}), else one key at the start
    (`prompt`, the only prompt heard in every language, and `keys`, e.g. {"1": en, "2": zh});
    no key within `timeout_s` is the center's default language. No `prompt`: no step, and a
    caller whose language is not known hears every prompt as written."""

    by_dnis: dict[str, str] = field(default_factory=dict)
    prompt: tuple[PromptText, ...] = ()
    keys: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0


@dataclass(frozen=True)
class Flow:
    name: str
    start: str
    nodes: dict[str, Node]
    dnis: tuple[str, ...] = ()  # the numbers it answers
    default: bool = False  # answers every number no other flow claims
    operator: str | None = None  # the queue node key 0 reaches from every menu
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    hours: dict[str, Hours] = field(default_factory=dict)
    invalid: tuple[PromptText, ...] = (PromptText("Sorry, that is not a valid choice."),)
    # Heard when a menu or an entry got no answer at all.
    no_input: tuple[PromptText, ...] = (PromptText("Sorry, I didn't hear you."),)
    # A caller who answers nothing goes on (a node's `on_fail`, else the operator) before this
    # many seconds of silence in one node, even with tries left (see `ask_again`).
    no_input_limit_s: float = 30.0
    # The caller's language (README, "Languages"); from then on every prompt is in it alone.
    language: LanguageStep = LanguageStep()
    # Where this flow came from, for messages; not read from YAML.
    source: str = field(default="", metadata={"internal": True})


@dataclass(frozen=True)
class CallFacts:
    """What a branch may look at."""

    ani: str
    customer_known: bool
    customer_vip: bool
    now: datetime  # timezone-aware
    collected: Mapping[str, str]


class FlowError(Exception):
    """A flow that cannot run: (field path, message) for the loader to place in its file."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# -- running ----------------------------------------------------------------------


def menu_target(flow: Flow, node: Node, key: str) -> str | None:
    """Where a key pressed at a menu leads; None if it leads nowhere."""
    if key in node.options:
        return node.options[key]
    if key == OPERATOR_KEY and flow.operator is not None:
        return flow.operator
    return None


def main_menu(flow: Flow) -> Node | None:
    """The first menu a caller meets on the usual path (branches' `otherwise`, plays' `next`):
    what a person trying the center is told to press."""
    seen: set[str] = set()
    at: str | None = flow.start
    while at is not None and at not in seen:
        seen.add(at)
        node = flow.nodes[at]
        if node.type == "menu":
            return node
        at = node.otherwise if node.type == "branch" else node.next if node.type == "play" else None
    return None


def describe_choices(flow: Flow, menu: Node) -> list[tuple[str, str]]:
    """(key, what it does) for each key of `menu`, the operator key last, in plain words."""
    choices = [(key, _what(flow, target, depth=1)) for key, target in sorted(menu.options.items())]
    if OPERATOR_KEY not in menu.options and flow.operator is not None:
        choices.append((OPERATOR_KEY, "an operator"))
    return choices


def _what(flow: Flow, name: str, depth: int) -> str:
    """The node's English label where the flow gives one, else words from its kind."""
    node = flow.nodes[name]
    own = node.label.get("en") or name.replace("_", " ")
    if node.type == "menu" and depth > 0:
        inner = ", ".join(f"{k} {_what(flow, t, depth - 1)}" for k, t in sorted(node.options.items()))
        return f"{own} ({inner})"
    if "en" in node.label:
        return own
    match node.type:
        case "queue":
            return f"the {node.queue} team"
        case "collect":
            return f"enter your {node.into}"
        case "fax":
            return "documents by fax"
        case "voicemail":
            return "leave a message"
        case _:
            return own


def word_target(node: Node, phrase: str | None) -> str | None:
    return node.words.get(phrase) if phrase is not None else None


def after_attempts(flow: Flow, node: Node) -> str | None:
    """Where a caller goes when they never gave a usable answer: a person, by default."""
    return node.on_fail or flow.operator


def ask_again(node: Node, attempt: int, silent_s: float, last_try_s: float, limit_s: float) -> bool:
    """After try `attempt` went unanswered: ask again, or go on (`after_attempts`)?

    Again only while tries are left and one more try as long as the last (`last_try_s`: its
    prompt, the wait for a key and "I didn't hear you") would still end within `limit_s` of
    the start of the silence (`silent_s` ago). So a caller who says nothing reaches a person, or the message,
    in time, whatever the length of the prompt and the number of tries configured."""
    return attempt < node.attempts and silent_s + last_try_s <= limit_s


def input_problem(node: Node, digits: str) -> str | None:
    """Why entered digits are refused (said to the log and the events), or None if valid."""
    if not digits.isdigit():
        return "empty" if not digits else "not digits"
    if len(digits) < node.min_digits:
        return "too short"
    if len(digits) > node.max_digits:
        return "too long"
    if node.pattern is not None and not re.fullmatch(node.pattern, digits):
        return "wrong format"
    if node.checksum == "luhn" and not luhn_ok(digits):
        return "check digit wrong"
    return None


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit (cards and many account numbers): catches one wrong or two swapped digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_open(hours: Hours, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(hours.timezone))
    if local.date().isoformat() in hours.holidays:
        return False
    if DAYS[local.weekday()] not in hours.days:
        return False
    start, end = _clock(hours.start), _clock(hours.end)
    t = local.time()
    if start == end:
        return True  # 00:00-00:00: the whole day
    if start < end:
        return start <= t < end
    return t >= start or t < end  # past midnight, e.g. 20:00-02:00


def branch_target(flow: Flow, node: Node, facts: CallFacts) -> str | None:
    for rule in node.rules:
        if _holds(flow, rule, facts):
            return rule.goto
    return node.otherwise


def _holds(flow: Flow, rule: Rule, facts: CallFacts) -> bool:
    if rule.ani_in is not None and facts.ani not in flow.lists.get(rule.ani_in, ()):
        return False
    if rule.customer == "known" and not facts.customer_known:
        return False
    if rule.customer == "unknown" and facts.customer_known:
        return False
    if rule.customer == "vip" and not facts.customer_vip:
        return False
    if rule.open is not None and not is_open(flow.hours[rule.open], facts.now):
        return False
    if rule.closed is not None and is_open(flow.hours[rule.closed], facts.now):
        return False
    return all(facts.collected.get(k) == v for k, v in rule.collected.items())


def fill(
    prompt: tuple[PromptText, ...],
    values: Mapping[str, object],
    value_labels: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
) -> tuple[PromptText, ...]:
    """A prompt with {placeholders} filled from a lookup's result or the collected fields, each
    read as data is read to a caller (`Spoken`: identifiers digit by digit, `:money` as money,
    `:date` and `:time` as such, a field in `value_labels` by its label in the prompt's language)."""
    labels = value_labels or {}
    return tuple(PromptText(p.text.format_map(_Values(values, p.lang, labels)), p.lang) for p in prompt)


class _Values(dict[str, object]):
    def __init__(
        self, values: Mapping[str, object], lang: str, labels: Mapping[str, Mapping[str, Mapping[str, str]]]
    ) -> None:
        super().__init__({k: Spoken(v, lang, labels.get(k)) for k, v in values.items()})
        self.lang = lang

    def __missing__(self, key: str) -> object:
        return "unknown" if self.lang == "en" else "未知"


# -- checking ---------------------------------------------------------------------


LABEL_LANGS = ("en", "zh")


@dataclass(frozen=True)
class PanelLabels:
    """A flow's labels as the agent's panel needs them: by node a menu leads to, and by the
    field a collect node fills. Each is {language: text}."""

    choices: dict[str, dict[str, str]]
    fields: dict[str, dict[str, str]]


def panel_labels(flow: Flow) -> PanelLabels:
    return PanelLabels(
        choices={name: dict(node.label) for name, node in flow.nodes.items() if node.label},
        fields={node.into: dict(node.label) for node in flow.nodes.values() if node.into and node.label},
    )


def check_flow(flow: Flow, queues: set[str]) -> None:
    """Refuse a flow that could strand a caller. Raises FlowError naming the field."""
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", flow.name):
        raise FlowError("name", "use 1-40 characters from a-z, 0-9, '_' and '-'")
    if flow.start not in flow.nodes:
        raise FlowError("start", f"no node named {flow.start!r}")
    if flow.operator is not None:
        op = flow.nodes.get(flow.operator)
        if op is None or op.type != "queue":
            raise FlowError("operator", f"{flow.operator!r} must name a queue node")
    if not 5 <= flow.no_input_limit_s <= 300:
        raise FlowError("no_input_limit_s", "between 5 and 300 seconds")
    for name, hours in flow.hours.items():
        _check_hours(f"hours.{name}", hours)
    _check_language_step(flow.language)
    for name, node in flow.nodes.items():
        _check_node(flow, f"nodes.{name}", node, queues)
        for lang, text in node.label.items():
            if lang not in LABEL_LANGS or not text.strip():
                raise FlowError(f"nodes.{name}.label", f"give labels as {' and '.join(LABEL_LANGS)} text")
        _check_value_labels(f"nodes.{name}", node)
    for path, target in _targets(flow):
        if target not in flow.nodes:
            raise FlowError(path, f"no node named {target!r}")
    for name, node in flow.nodes.items():
        if node.type == "menu" and not _reaches_person(flow, node):
            raise FlowError(
                f"nodes.{name}",
                "a menu must lead to a person: give the flow an `operator` or an option to a queue node",
            )


def _reaches_person(flow: Flow, node: Node) -> bool:
    if flow.operator is not None and OPERATOR_KEY not in node.options:
        return True
    targets = [*node.options.values(), *node.words.values()]
    return any(flow.nodes.get(t) is not None and flow.nodes[t].type == "queue" for t in targets)


def _targets(flow: Flow) -> Iterator[tuple[str, str]]:
    for name, node in flow.nodes.items():
        at = f"nodes.{name}"
        for key, target in node.options.items():
            yield f"{at}.options.{key}", target
        for word, target in node.words.items():
            yield f"{at}.words.{word}", target
        for i, rule in enumerate(node.rules):
            yield f"{at}.rules[{i}].goto", rule.goto
        for attr in ("next", "on_fail", "not_found", "otherwise"):
            target = getattr(node, attr)
            if target is not None:
                yield f"{at}.{attr}", target


_NEEDS: dict[str, tuple[str, ...]] = {
    "menu": ("prompt",),
    "collect": ("prompt", "into", "next"),
    "lookup": ("lookup", "key", "prompt", "next"),
    "branch": ("rules", "otherwise"),
    "play": ("prompt", "next"),
    "queue": ("queue",),
    "voicemail": ("queue",),
    "hangup": (),
    # fax: the caller keys document codes and gets them back by fax on the call (app/fax/);
    # `prompt` (optional) asks for the first code.
    "fax": (),
}


def _check_value_labels(at: str, node: Node) -> None:
    if node.value_labels and node.type != "lookup":
        raise FlowError(f"{at}.value_labels", "only a lookup node reads a result's codes by label")
    for name, codes in node.value_labels.items():
        if not codes:
            raise FlowError(
                f"{at}.value_labels.{name}",
                "give each code's labels, e.g. shipped: {en: shipped, zh: 已发货}",
            )
        for code, labels in codes.items():
            for lang, text in labels.items():
                if lang not in LANGUAGES or not text.strip():
                    raise FlowError(
                        f"{at}.value_labels.{name}.{code}.{lang}",
                        f"a label is text in a language: one of {', '.join(LANGUAGES)}",
                    )


def _check_language_step(step: LanguageStep) -> None:
    for number, lang in step.by_dnis.items():
        if lang not in LANGUAGES:
            raise FlowError(f"language.by_dnis.{number}", f"a language: one of {', '.join(LANGUAGES)}")
    for key, lang in step.keys.items():
        if not re.fullmatch(r"[0-9*#]", key):
            raise FlowError(f"language.keys.{key}", "one key 0-9, * or #")
        if lang not in LANGUAGES:
            raise FlowError(f"language.keys.{key}", f"a language: one of {', '.join(LANGUAGES)}")
    if step.prompt and not step.keys:
        raise FlowError("language.keys", 'the language step needs its keys, e.g. {"1": en, "2": zh}')
    if not 1 <= step.timeout_s <= 10:
        raise FlowError("language.timeout_s", "between 1 and 10 seconds: the caller is waiting")


def flow_prompts(flow: Flow) -> Iterator[tuple[str, tuple[PromptText, ...]]]:
    """Every prompt of a flow a caller may hear, with its field path."""
    yield "language.prompt", flow.language.prompt
    yield "invalid", flow.invalid
    yield "no_input", flow.no_input
    for name, node in flow.nodes.items():
        for attr in ("prompt", "invalid", "no_input"):
            yield f"nodes.{name}.{attr}", getattr(node, attr)


def check_flow_languages(flow: Flow, offered: Sequence[str]) -> None:
    """Refuse a flow with a prompt missing a language the center offers: a caller in that
    language would hear it in another. Raises FlowError naming the prompt."""
    for path, prompt in flow_prompts(flow):
        missing = missing_languages(prompt, offered)
        if missing:
            raise FlowError(
                path,
                f"no text in {', '.join(missing)}; the center offers {', '.join(offered)} (`languages`),"
                " so every prompt needs a segment in each, e.g. - {text: ..., lang: " + missing[0] + "}",
            )
    for name, node in flow.nodes.items():
        for field_name, codes in node.value_labels.items():
            for code, labels in codes.items():
                missing = [lang for lang in offered if lang not in labels]
                if missing:
                    raise FlowError(
                        f"nodes.{name}.value_labels.{field_name}.{code}",
                        f"no label in {', '.join(missing)}; the center offers {', '.join(offered)}"
                        " (`languages`), and a caller in each hears this code by its label",
                    )


def _check_node(flow: Flow, at: str, node: Node, queues: set[str]) -> None:
    for attr in _NEEDS[node.type]:
        if not getattr(node, attr):
            raise FlowError(f"{at}.{attr}", f"a {node.type} node needs `{attr}`")
    if node.type == "menu":
        if not node.options and not node.words:
            raise FlowError(f"{at}.options", "a menu needs options (keys) or words (speech)")
        for key in node.options:
            if not re.fullmatch(r"[0-9*#]", key):
                raise FlowError(f"{at}.options.{key}", "one key 0-9, * or #")
        for word in node.words:
            if not re.fullmatch(r"[^\W\d_]+( [^\W\d_]+)*", word):
                raise FlowError(f"{at}.words.{word}", "words and spaces only")
    if node.timeout_s <= 0 or not 1 <= node.attempts <= 10:
        raise FlowError(f"{at}.attempts", "timeout_s must be positive and attempts 1-10")
    if node.type == "collect":
        if not 1 <= node.min_digits <= node.max_digits <= 40:
            raise FlowError(f"{at}.max_digits", "need 1 <= min_digits <= max_digits <= 40")
        if node.pattern is not None:
            try:
                re.compile(node.pattern)
            except re.error as exc:
                raise FlowError(f"{at}.pattern", f"not a regular expression: {exc}") from exc
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", node.into or ""):
            raise FlowError(f"{at}.into", "a field name: a-z, 0-9 and '_', starting with a letter")
    if node.type in ("queue", "voicemail") and node.queue not in queues:
        raise FlowError(f"{at}.queue", f"no queue named {node.queue!r}")
    for skill, level in node.skills.items():
        if not 1 <= level <= 10:
            raise FlowError(f"{at}.skills.{skill}", "skill level must be 1-10")
    for i, rule in enumerate(node.rules):
        if rule.ani_in is not None and rule.ani_in not in flow.lists:
            raise FlowError(f"{at}.rules[{i}].ani_in", f"no list named {rule.ani_in!r} in `lists`")
        for attr in ("open", "closed"):
            name = getattr(rule, attr)
            if name is not None and name not in flow.hours:
                raise FlowError(f"{at}.rules[{i}].{attr}", f"no entry {name!r} in `hours`")


def _check_hours(at: str, hours: Hours) -> None:
    for day in hours.days:
        if day not in DAYS:
            raise FlowError(f"{at}.days", f"unknown day {day!r}; use {', '.join(DAYS)}")
    for attr in ("start", "end"):
        try:
            _clock(getattr(hours, attr))
        except ValueError as exc:
            raise FlowError(f"{at}.{attr}", "a time of day like 09:00") from exc
    try:
        ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FlowError(f"{at}.timezone", f"unknown time zone {hours.timezone!r}") from exc
    for i, day in enumerate(hours.holidays):
        try:
            date.fromisoformat(day)
        except ValueError as exc:
            raise FlowError(f"{at}.holidays[{i}]", f"not a date like 2026-10-01: {day!r}") from exc


def _clock(text: str) -> time:
    if not re.fullmatch(r"\d{2}:\d{2}", text):
        raise ValueError(text)
    return time.fromisoformat(text)


@dataclass(frozen=True)
class FlowSet:
    """Every loaded flow, and which one answers a dialled number."""

    flows: dict[str, Flow]

    def for_dnis(self, dnis: str) -> Flow:
        for flow in self.flows.values():
            if dnis in flow.dnis:
                return flow
        return next(f for f in self.flows.values() if f.default)


def check_flow_set(flows: list[Flow]) -> None:
    """Across files: one flow per number, exactly one default. Raises FlowError."""
    names: set[str] = set()
    claimed: dict[str, str] = {}
    defaults = [f.name for f in flows if f.default]
    for flow in flows:
        if flow.name in names:
            raise FlowError("name", f"flow {flow.name} is defined twice")
        names.add(flow.name)
        for i, number in enumerate(flow.dnis):
            if number in claimed:
                raise FlowError(
                    f"dnis[{i}]", f"number {number} is already answered by flow {claimed[number]}"
                )
            claimed[number] = flow.name
    if len(defaults) != 1:
        raise FlowError("default", f"exactly one flow must be `default: true` (found {len(defaults)})")
