"""Why a call came to this agent, in words an agent reads at a glance.

The routing engine (app/domain/routing.py) writes one line of detail per decision, for logs
and supervisors: "queue billing, tier gold, waited 12 s (slack +18 s): longest idle, idle 42 s;
skills billing 8>=5". The panel shows the agent the same facts as short parts ("you know
billing at level 8", "you were free the longest", "the caller waited 12 s in billing") and
keeps the engine's line behind a toggle. `explain` reads that line into parts; the panel
words each part in the agent's language. A line it does not recognise (a direct offer, a
preview) gives no parts, and the panel shows the line itself.

The parts come in the order an agent cares about: what they know, why them rather than a
colleague, then how long the caller has waited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEAD = re.compile(
    r"^queue (?P<queue>\S+), tier (?P<tier>\w+), waited (?P<waited>\d+) s"
    r" \(slack (?P<slack>[+-]?\d+) s\): (?P<rest>.*)$"
)
_SKILL = re.compile(r"(?P<skill>[^\s,]+) (?P<level>\d+)>=(?P<minimum>\d+)")
_NEED = re.compile(r"(?P<skill>[^\s,]+)>=(?P<minimum>\d+)")
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class ReasonPart:
    """One readable fact: `kind` names the sentence, `values` fill it."""

    kind: str
    values: dict[str, str] = field(default_factory=dict)


def explain(reason: str | None) -> tuple[ReasonPart, ...]:
    """The readable parts of an engine reason; () when the line is not a routing decision."""
    if not reason:
        return ()
    head = _HEAD.match(reason.strip())
    if head is None:
        return ()
    strategy, *details = head["rest"].split("; ")
    skills: list[ReasonPart] = []
    rest: list[ReasonPart] = []
    for detail in details:
        if detail.startswith("skills "):
            skills += [
                ReasonPart("skill", {"skill": m["skill"], "level": m["level"]})
                for m in _SKILL.finditer(detail)
            ]
        elif detail.startswith("needs "):
            skills += [
                ReasonPart("needs", {"skill": m["skill"], "level": m["minimum"]})
                for m in _NEED.finditer(detail)
            ]
        elif detail.startswith("relaxed after "):
            seconds = _NUMBER.search(detail)
            rest.append(ReasonPart("relaxed", {"seconds": seconds.group() if seconds else "?"}))
    why = _strategy(strategy)
    waited = ReasonPart("waited", {"queue": head["queue"], "seconds": head["waited"]})
    late = [ReasonPart("over_target", {})] if int(head["slack"]) < 0 else []
    return (*skills, *why, waited, *late, *rest)


def _strategy(text: str) -> list[ReasonPart]:
    def number(after: str) -> str:
        found = _NUMBER.search(text.split(after, 1)[-1]) if after in text else None
        return found.group() if found else "?"

    if text.startswith("sticky"):
        return [ReasonPart("sticky")]
    if text.startswith("ring all"):
        return [ReasonPart("ring_all")]
    if text.startswith("linear hunt"):
        return [ReasonPart("linear")]
    if text.startswith("round robin"):
        return [ReasonPart("round_robin")]
    if text.startswith("fewest calls"):
        return [ReasonPart("fewest_calls", {"calls": number("fewest calls")})]
    if text.startswith("best skill match"):
        return [ReasonPart("best_skill", {"sum": number("level sum")})]
    if text.startswith("least occupied"):
        return [ReasonPart("least_occupied", {"percent": number("least occupied")})]
    if text.startswith("longest idle"):
        idle = "idle, start unknown" not in text
        return [ReasonPart("longest_idle", {"seconds": number("idle ") if idle else "?"})]
    return []
