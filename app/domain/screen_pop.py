"""The screen pop and after-call work: the rules, without I/O.

- **When to pop.** An agent is offered a call when the routing desk reserves them for an
  interaction; the pop goes out once per (agent, interaction), whether the listener first sees
  the agent reserved, ringing or (after a restart) already on the call. A new offer of the same
  interaction after the agent went back to idle pops again. The call's own events are written
  behind it, so the `offered` event (or a late `collected` one) may land after the pop went out;
  the pop is then sent again, complete (`REFRESH_KINDS`).
- **What the IVR collected** is read from the interaction's events, whoever recorded them:
  `dtmf` digits, the menu choices (`menu_choice` events of IVR flows, or a `menu:<digit>` queued
  reason), and every `collected` event (one `field`/`value` pair, its data, or its `collected`
  mapping) merged in order, later values winning. Nested
  values are flattened to dotted keys, and everything is cut to sizes a panel can show.
- **Why routed here** is the reason of the latest `offered` event.
- **After-call work** stores one disposition code (from the configured list) and free-text
  notes; both are checked here before anything is written.
- **Who may.** Notes and a disposition are written only by the agent who took the call
  (nobody else, supervisors included: it is that agent's account of it). A customer profile
  for an unknown caller is created by the agent the call is offered to or who took it, or by
  a supervisor. A voicemail plays for the agent whose callback it belongs to, or a supervisor.
- **Idle:** only a Ready agent is set Not Ready for being idle; never one who is working on a
  call (reserved, ringing, on a call, in wrap-up) or already Not Ready.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.access import AGENT_ROLES, SUPERVISING_ROLES, Principal
from app.domain.agent_state import AgentState

# The agent holds an offer or the call itself: a pop belongs on their screen.
POP_STATES = frozenset({AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL})
# Events that complete a pop already shown.
REFRESH_KINDS = frozenset({"offered", "collected"})
IDLE_REASON = "idle"
HISTORY_SIZE = 5
MAX_NOTES = 4000
MAX_COLLECTED_ITEMS = 40
MAX_COLLECTED_KEY = 60
MAX_COLLECTED_VALUE = 300
MAX_NAME = 200
MAX_ACCOUNT = 64
MAX_EMAIL = 200
_PHONE = re.compile(r"^\+?[0-9]{2,32}$")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InvalidInput(ValueError):
    """What an agent typed cannot be stored; the message says why."""


class PopTracker:
    """Remembers which interaction each agent was last shown, so a pop goes out once."""

    def __init__(self) -> None:
        self._shown: dict[str, str] = {}

    def should_pop(self, agent_id: str, state: AgentState, interaction_id: str | None) -> bool:
        if interaction_id is None:
            self._shown.pop(agent_id, None)  # idle again: the next offer pops, even a repeat
            return False
        if state not in POP_STATES or self._shown.get(agent_id) == interaction_id:
            return False
        self._shown[agent_id] = interaction_id
        return True

    def showing(self, interaction_id: str) -> list[str]:
        """The agents whose screens show this interaction."""
        return [agent_id for agent_id, shown in self._shown.items() if shown == interaction_id]


@dataclass(frozen=True)
class EventRecord:
    at: datetime
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Journey:
    """What happened to the caller before the offer, as the panel shows it."""

    digits: str = ""
    menu: tuple[str, ...] = ()
    collected: dict[str, str] = field(default_factory=dict)
    queue: str | None = None
    tier: str | None = None
    route_reason: str | None = None
    offered_at: datetime | None = None
    flow: str | None = None  # the IVR flow the caller went through (its labels name the choices)
    menu_to: tuple[str | None, ...] = ()  # beside `menu`: the flow node each choice led to
    language: str | None = None  # the language the caller is served in (en, zh), once chosen


def journey(events: Sequence[EventRecord]) -> Journey:
    digits = ""
    menu: list[str] = []
    menu_to: list[str | None] = []
    flow: str | None = None
    collected: dict[str, str] = {}
    queue = tier = reason = None
    offered_at = None
    language: str | None = None
    for e in events:
        data = e.data if isinstance(e.data, Mapping) else {}
        if e.kind == "dtmf":
            digit = data.get("digit")
            if isinstance(digit, str):
                digits += digit
        elif e.kind in ("queued", "overflowed"):
            queue = _text(data.get("queue")) or queue
            tier = _text(data.get("tier")) or tier
            why = _text(data.get("reason"))
            if why and why.startswith("menu:"):
                menu.append(why.removeprefix("menu:"))
                menu_to.append(None)
        elif e.kind == "flow":
            flow = _text(data.get("name")) or flow
        elif e.kind == "language":
            language = _text(data.get("lang")) or language
        elif e.kind == "menu_choice":  # IVR flows: one event per menu answered, key or word
            choice = _text(data.get("key")) or _text(data.get("word"))
            if choice:
                menu.append(choice)
                menu_to.append(_text(data.get("to")))
        elif e.kind == "offered":
            reason = _text(data.get("reason")) or reason
            offered_at = e.at
        inner = data.get("collected")
        if e.kind == "collected" and isinstance(data.get("field"), str) and "value" in data:
            _merge(collected, {data["field"]: data["value"]})  # IVR flows: one field per event
        elif e.kind == "collected":
            inner = inner if isinstance(inner, Mapping) else data.get("data")
            _merge(collected, inner if isinstance(inner, Mapping) else data)
        elif isinstance(inner, Mapping):
            _merge(collected, inner)
    return Journey(
        digits[:64], tuple(menu), collected, queue, tier, reason, offered_at, flow, tuple(menu_to), language
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _merge(into: dict[str, str], value: Mapping[Any, Any], prefix: str = "") -> None:
    for key, item in value.items():
        name = f"{prefix}{key}"[:MAX_COLLECTED_KEY]
        if isinstance(item, Mapping):
            _merge(into, item, name + ".")
            continue
        if name not in into and len(into) >= MAX_COLLECTED_ITEMS:
            continue
        into[name] = _shown(item)


def _shown(value: object) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(_shown(v) for v in value)
    else:
        text = str(value)
    return text[:MAX_COLLECTED_VALUE]


def check_disposition(code: object, notes: object, codes: Collection[str]) -> tuple[str, str]:
    """The (code, notes) to store, or InvalidInput."""
    if not isinstance(code, str) or code not in codes:
        raise InvalidInput(f"code must be one of {', '.join(codes)}; got {code!r}")
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        raise InvalidInput("notes must be text")
    return code, _clean_text(notes, MAX_NOTES, "notes")


def _clean_text(value: str, limit: int, what: str) -> str:
    text = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(text) > limit:
        raise InvalidInput(f"{what} are too long: {len(text)} characters, at most {limit}")
    return text


@dataclass(frozen=True)
class NewCustomer:
    name: str
    phone: str
    account_number: str | None
    email: str | None
    notes: str


def check_new_customer(fields: Mapping[str, object]) -> NewCustomer:
    """A customer profile typed in the panel for an unknown caller, or InvalidInput."""

    def text(key: str) -> str:
        value = fields.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidInput(f"{key} must be text")
        return _CONTROL.sub("", value).strip()

    name, phone, account, email = text("name"), text("phone"), text("account_number"), text("email")
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"name is required, at most {MAX_NAME} characters")
    if not _PHONE.fullmatch(phone):
        raise InvalidInput(f"phone must be a number (digits, optionally with a leading +), got {phone!r}")
    if len(account) > MAX_ACCOUNT:
        raise InvalidInput(f"account number is at most {MAX_ACCOUNT} characters")
    if email and (len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email)):
        raise InvalidInput(f"not an e-mail address: {email!r}")
    notes = fields.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise InvalidInput("notes must be text")
    return NewCustomer(
        name, phone, account or None, email or None, _clean_text(notes or "", MAX_NOTES, "notes")
    )


def may_go_idle(state: AgentState) -> bool:
    """Idleness only ever takes a Ready agent out of routing."""
    return state is AgentState.READY


def wrap_up_left_s(state: AgentState, wrap_up_until: datetime | None, now: datetime) -> float | None:
    """Seconds of after-call work left, for the panel's countdown; None outside wrap-up."""
    if state is not AgentState.WRAP_UP or wrap_up_until is None:
        return None
    return max(0.0, (wrap_up_until - now).total_seconds())


# Events naming an agent who touched the interaction: talked with the caller, or answered its
# offer (a callback whose customer was never reached still had the agent's time and wrap-up).
TOUCHED_KINDS = frozenset({"connected", "consult_answered", "agent_answered"})


def may_write_notes(who: Principal, handled_by: str | Collection[str] | None) -> bool:
    """Notes and a disposition: only an agent who touched the interaction (`TOUCHED_KINDS`).
    After a transfer that is each of them (the first agent writes theirs in wrap-up while the
    call goes on)."""
    if who.role not in AGENT_ROLES or who.agent_id is None or handled_by is None:
        return False
    return who.agent_id == handled_by if isinstance(handled_by, str) else who.agent_id in handled_by


def may_work_on(who: Principal, holds_it: bool, handled_by: str | None) -> bool:
    """Create the caller's profile, play their voicemail: the agent holding or having taken the
    interaction, or a supervisor."""
    if who.role in SUPERVISING_ROLES:
        return True
    return who.role in AGENT_ROLES and who.agent_id is not None and (holds_it or who.agent_id == handled_by)
