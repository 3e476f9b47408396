"""Experts outside the center: who may be asked, and which one is offered the call next.

Pure: no I/O, no clock of its own (callers pass `now`), no configuration reader.

An agent on a call asks for help in one of three ways: an expertise ("mortgage": every expert
who has that tag), a group ("repairs-north": its members) or one expert by id. The rules, one
paragraph each:

- **Who may be asked.** A group may name the agent groups allowed to ask it (`asked_by`); an
  agent outside them may not ask that group, nor reach its members by expertise or by name. An
  expert in no group is open to every agent.
- **Who can take it now.** Present (the panel expert Ready, an outside number not set Not
  Ready), within their working hours in their own time zone, with fewer calls than their
  `max_calls`, and not already offered this call (`tried`): a rejection or a silent offer moves
  on to someone else and never comes back to them within the same ask.
- **Who goes first.** A VIP customer's own expert, when they can take it; then the best level in
  the asked expertise (for a group, in the group's expertise, if it names one); then the longest
  idle (the one whose last call ended earliest; never called counts as idle since ever); then the
  expert id, so that the choice is the same every time for the same facts.
- **How long an offer waits.** The asked group's `offer_s`; for an expertise or a named expert,
  the shortest `offer_s` of the expert's groups; otherwise the default (15 s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from app.domain.ivr_flow import Hours, is_open

DEFAULT_OFFER_S = 15.0


class Presence(StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"
    BUSY = "busy"
    OFFLINE = "offline"


class AskKind(StrEnum):
    EXPERTISE = "expertise"
    GROUP = "group"
    EXPERT = "expert"


@dataclass(frozen=True)
class ExpertGroup:
    name: str
    offer_s: float = DEFAULT_OFFER_S
    expertise: str | None = None  # the tag whose level ranks the group's members
    asked_by: tuple[str, ...] = ()  # agent groups allowed to ask (empty: every agent)


@dataclass(frozen=True)
class Expert:
    """One entry of the directory. Reached through an agent account of the center (their SIP
    phone or browser softphone, and the panel for the preview) or an outside number."""

    id: str
    name: str
    expertise: Mapping[str, int] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    agent_id: str | None = None
    number: str | None = None
    hours: Hours | None = None  # None: any time
    max_calls: int = 1
    email: str | None = None  # where an outside expert's one-time preview link goes

    @property
    def has_panel(self) -> bool:
        """A panel to preview the offer in (an agent account); an outside number has none."""
        return self.agent_id is not None


@dataclass(frozen=True)
class Status:
    """What is true of an expert right now."""

    presence: Presence
    active_calls: int = 0
    idle_since: datetime | None = None  # end of their last call; None: never called
    reason: str | None = None  # why Not Ready


@dataclass(frozen=True)
class Ask:
    kind: AskKind
    name: str  # the expertise, the group or the expert id
    agent_groups: tuple[str, ...] = ()  # the asking agent's groups
    vip_expert: str | None = None  # the customer's own expert (VIPs)
    tried: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, target: str, agent_groups: Iterable[str] = (), vip_expert: str | None = None) -> Ask:
        kind, _, name = target.partition(":")
        if kind not in {k.value for k in AskKind} or not name:
            raise ValueError(f"ask 'expertise:<tag>', 'group:<name>' or 'expert:<id>', got {target!r}")
        return cls(AskKind(kind), name, tuple(agent_groups), vip_expert)


@dataclass(frozen=True)
class Choice:
    expert: Expert
    reason: str  # why this one, shown in their preview and recorded
    offer_s: float


@dataclass(frozen=True)
class Directory:
    experts: tuple[Expert, ...] = ()
    groups: tuple[ExpertGroup, ...] = ()

    def expert(self, expert_id: str) -> Expert | None:
        return next((e for e in self.experts if e.id == expert_id), None)

    def group(self, name: str) -> ExpertGroup | None:
        return next((g for g in self.groups if g.name == name), None)

    def of_agent(self, agent_id: str) -> Expert | None:
        return next((e for e in self.experts if e.agent_id == agent_id), None)

    def may_ask(self, agent_groups: Iterable[str], expert: Expert) -> bool:
        """May an agent of these groups reach this expert (see the module docstring)?"""
        if not expert.groups:
            return True
        mine = set(agent_groups)
        for name in expert.groups:
            g = self.group(name)
            if g is None or not g.asked_by or mine & set(g.asked_by):
                return True
        return False

    def offer_s(self, ask: Ask, expert: Expert) -> float:
        if ask.kind is AskKind.GROUP and (g := self.group(ask.name)) is not None:
            return g.offer_s
        times = [g.offer_s for name in expert.groups if (g := self.group(name)) is not None]
        return min(times, default=DEFAULT_OFFER_S)

    def candidates(self, ask: Ask) -> list[Expert]:
        """Everyone the ask is about, before presence and hours."""
        if ask.kind is AskKind.EXPERT:
            e = self.expert(ask.name)
            return [e] if e is not None else []
        if ask.kind is AskKind.GROUP:
            return [e for e in self.experts if ask.name in e.groups]
        return [e for e in self.experts if ask.name in e.expertise]

    def refusal(self, ask: Ask) -> str | None:
        """Why this ask can never be served for this agent (unknown name, not allowed), or None."""
        if ask.kind is AskKind.GROUP:
            g = self.group(ask.name)
            if g is None:
                return f"no expert group {ask.name!r}"
            if g.asked_by and not set(ask.agent_groups) & set(g.asked_by):
                return f"expert group {ask.name} may be asked only by {', '.join(g.asked_by)}"
            return None
        found = self.candidates(ask)
        if not found:
            what = "expert" if ask.kind is AskKind.EXPERT else "expert with expertise"
            return f"no {what} {ask.name!r}"
        if not any(self.may_ask(ask.agent_groups, e) for e in found):
            return f"you may not ask {ask.kind.value} {ask.name}"
        return None


def unavailable(expert: Expert, status: Status | None, now: datetime) -> str | None:
    """Why this expert cannot be offered a call now, or None when they can."""
    if status is None or status.presence is Presence.OFFLINE:
        return "offline"
    if status.presence is Presence.NOT_READY:
        return f"not ready ({status.reason})" if status.reason else "not ready"
    if status.presence is Presence.BUSY or status.active_calls >= expert.max_calls:
        return "busy"
    if expert.hours is not None and not is_open(expert.hours, now):
        return "outside working hours"
    return None


def _level(directory: Directory, ask: Ask, expert: Expert) -> int:
    tag = ask.name if ask.kind is AskKind.EXPERTISE else None
    if ask.kind is AskKind.GROUP and (g := directory.group(ask.name)) is not None:
        tag = g.expertise
    return expert.expertise.get(tag, 0) if tag else 0


def choose(directory: Directory, ask: Ask, statuses: Mapping[str, Status], now: datetime) -> Choice | None:
    """The next expert to offer the call to, or None when nobody can take it now."""

    def free(e: Expert) -> bool:
        return (
            e.id not in ask.tried
            and directory.may_ask(ask.agent_groups, e)
            and unavailable(e, statuses.get(e.id), now) is None
        )

    if ask.vip_expert is not None:
        own = directory.expert(ask.vip_expert)
        if own is not None and free(own):
            return Choice(own, "the customer's own expert", directory.offer_s(ask, own))
    pool = [e for e in directory.candidates(ask) if free(e)]
    if not pool:
        return None

    def idle_key(e: Expert) -> float:
        since = statuses[e.id].idle_since
        return since.timestamp() if since is not None else float("-inf")

    best = min(pool, key=lambda e: (-_level(directory, ask, e), idle_key(e), e.id))
    level = _level(directory, ask, best)
    if ask.kind is AskKind.EXPERT:
        reason = f"asked by name: {best.name}"
    elif level:
        tag = (
            ask.name
            if ask.kind is AskKind.EXPERTISE
            else (directory.group(ask.name) or ExpertGroup("")).expertise
        )
        reason = f"{ask.kind.value} {ask.name}: best level ({tag} {level}), then longest idle"
    else:
        reason = f"{ask.kind.value} {ask.name}: longest idle"
    return Choice(best, reason, directory.offer_s(ask, best))


# -- reports ----------------------------------------------------------------------------------

REPORT_KINDS = (
    "expert_offered",
    "expert_accepted",
    "expert_rejected",
    "expert_timeout",
    "expert_failed",
    "expert_connected",
    "consult_ended",
    "ended",
)


@dataclass(frozen=True)
class JourneyEvent:
    """One saved interaction event, as the report reads it."""

    interaction_id: str
    at: datetime
    kind: str
    data: Mapping[str, object]


@dataclass
class ExpertFigures:
    offers: int = 0
    accepts: int = 0
    rejects: int = 0
    timeouts: int = 0
    failed: int = 0  # could not be rung (refused number, phone not answered after accepting)
    connected: int = 0
    accept_s: list[float] = field(default_factory=list)  # offer -> accept, previewed offers
    talk_s: list[float] = field(default_factory=list)  # connected -> their part over

    def view(self) -> dict[str, object]:
        def mean(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 3) if values else None

        return {
            "offers": self.offers,
            "accepts": self.accepts,
            "rejects": self.rejects,
            "timeouts": self.timeouts,
            "failed": self.failed,
            "connected": self.connected,
            "mean_time_to_accept_s": mean(self.accept_s),
            "talk_s": round(sum(self.talk_s), 3),
        }


def report(directory: Directory, events: Iterable[JourneyEvent]) -> dict[str, dict[str, dict[str, object]]]:
    """Offers, accepts, rejects, timeouts, time to accept and talk time per expert and per group,
    from the journey's events (in the order they happened, per interaction). An expert's talk
    ends at the first `consult_ended` or `ended` of that interaction after they connected."""
    per: dict[str, ExpertFigures] = {e.id: ExpertFigures() for e in directory.experts}
    open_offers: dict[tuple[str, str], datetime] = {}  # (interaction, expert) -> offered at
    talking: dict[str, tuple[str, datetime]] = {}  # interaction -> (expert, since)
    for ev in events:
        expert_id = str(ev.data.get("expert_id") or "")
        key = (ev.interaction_id, expert_id)
        if ev.kind in ("consult_ended", "ended"):
            if ev.interaction_id in talking:
                who, since = talking.pop(ev.interaction_id)
                per[who].talk_s.append((ev.at - since).total_seconds())
            continue
        if not expert_id:
            continue
        f = per.setdefault(expert_id, ExpertFigures())
        if ev.kind == "expert_offered":
            f.offers += 1
            open_offers[key] = ev.at
        elif ev.kind == "expert_accepted" or (ev.kind == "expert_connected" and key in open_offers):
            # An outside number has no preview: answering it is the acceptance.
            f.accepts += 1
            offered = open_offers.pop(key, None)
            if offered is not None:
                f.accept_s.append((ev.at - offered).total_seconds())
        elif ev.kind in ("expert_rejected", "expert_timeout", "expert_failed"):
            open_offers.pop(key, None)
            if ev.kind == "expert_rejected":
                f.rejects += 1
            elif ev.kind == "expert_timeout":
                f.timeouts += 1
            else:
                f.failed += 1
        if ev.kind == "expert_connected":
            f.connected += 1
            talking[ev.interaction_id] = (expert_id, ev.at)
    groups: dict[str, ExpertFigures] = {g.name: ExpertFigures() for g in directory.groups}
    for e in directory.experts:
        for name in e.groups:
            g, f = groups.setdefault(name, ExpertFigures()), per[e.id]
            g.offers += f.offers
            g.accepts += f.accepts
            g.rejects += f.rejects
            g.timeouts += f.timeouts
            g.failed += f.failed
            g.connected += f.connected
            g.accept_s.extend(f.accept_s)
            g.talk_s.extend(f.talk_s)
    return {
        "experts": {k: v.view() for k, v in per.items()},
        "groups": {k: v.view() for k, v in groups.items()},
    }


# -- live changes -----------------------------------------------------------------------------

CHANGEABLE = ("expertise", "groups", "languages", "max_calls")


def changed(directory: Directory, expert: Expert, changes: Mapping[str, object]) -> Expert:
    """The expert with these changes (from the API, kept in PostgreSQL) applied over the
    configuration; ValueError names the field that is wrong."""
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise ValueError(f"{unknown[0]}: cannot be changed here (only {', '.join(CHANGEABLE)})")
    out = expert
    if "expertise" in changes:
        levels = changes["expertise"]
        if not isinstance(levels, Mapping) or not all(
            isinstance(k, str)
            and 0 < len(k) <= 40
            and isinstance(v, int)
            and not isinstance(v, bool)
            and 1 <= v <= 10
            for k, v in levels.items()
        ):
            raise ValueError("expertise: a mapping of tag to level 1-10")
        out = replace(out, expertise=dict(levels))
    if "groups" in changes:
        groups = changes["groups"]
        if not isinstance(groups, list | tuple) or not all(isinstance(g, str) for g in groups):
            raise ValueError("groups: a list of group names")
        missing = [g for g in groups if directory.group(g) is None]
        if missing:
            raise ValueError(f"groups: no expert group {missing[0]!r}")
        out = replace(out, groups=tuple(groups))
    if "languages" in changes:
        langs = changes["languages"]
        if not isinstance(langs, list | tuple) or not langs or not all(isinstance(x, str) for x in langs):
            raise ValueError("languages: a non-empty list, e.g. ['zh', 'en']")
        out = replace(out, languages=tuple(langs))
    if "max_calls" in changes:
        n = changes["max_calls"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise ValueError("max_calls: 1-10")
        if expert.agent_id is not None and n != 1:
            raise ValueError("max_calls: an expert on an agent's phone takes one call at a time")
        out = replace(out, max_calls=n)
    return out


# An expert added over the API: an outside number. One reached on an agent's phone and panel is
# an agent account of the center (SIP credentials, a panel password): that stays in the YAML.
EXPERT_ID = re.compile(r"[a-z0-9_-]{1,32}")
PHONE = re.compile(r"\+?[0-9]{3,20}")
EMAIL = re.compile(r"[^@\s,;<>]{1,64}@[^@\s,;<>]{1,190}")


def added(directory: Directory, entry: Mapping[str, object]) -> Expert:
    """A new outside expert from `{"id", "name", "number", "email"?, "expertise"?, "groups"?,
    "languages"?, "max_calls"?}`; ValueError names the field that is wrong."""
    allowed = {"id", "name", "number", "email", *CHANGEABLE}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a field of a new expert ({', '.join(sorted(allowed))})")
    expert_id, name, number, email = (entry.get(k) for k in ("id", "name", "number", "email"))
    if not isinstance(expert_id, str) or not EXPERT_ID.fullmatch(expert_id):
        raise ValueError(f"id: 1-32 characters from a-z, 0-9, '_' and '-', got {expert_id!r}")
    if directory.expert(expert_id) is not None:
        raise ValueError(f"id: expert {expert_id} exists already")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 80:
        raise ValueError("name: 1-80 characters")
    if not isinstance(number, str) or not PHONE.fullmatch(number):
        raise ValueError(f"number: a phone number (digits, + first for abroad), got {number!r}")
    if email is not None and (not isinstance(email, str) or not EMAIL.fullmatch(email)):
        raise ValueError(f"email: an e-mail address, got {email!r}")
    base = Expert(expert_id, name.strip(), number=number, email=email, languages=("en",))  # as in YAML
    return changed(directory, base, {k: v for k, v in entry.items() if k in CHANGEABLE})


def without_expert(directory: Directory, expert_id: str) -> Directory:
    return Directory(tuple(e for e in directory.experts if e.id != expert_id), directory.groups)


def with_expert(directory: Directory, expert: Expert) -> Directory:
    """The directory with `expert` in place of the one of the same id, or added at the end."""
    if directory.expert(expert.id) is None:
        return Directory((*directory.experts, expert), directory.groups)
    return Directory(tuple(expert if e.id == expert.id else e for e in directory.experts), directory.groups)
