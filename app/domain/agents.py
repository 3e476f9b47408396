"""Which agent gets the next call. Pure: the flows gather the facts, this decides.

Until the routing core (skills, tiers, states) lands, the rule is the classic "longest
idle agent": among agents whose phone is registered and who are not on a call or being
offered one, take the one idle longest; ties go to configuration order so the choice is
deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AgentView:
    id: str
    registered: bool
    busy: bool
    idle_since: datetime | None  # None: has not taken a call since start


def choose_agent(agents: Sequence[AgentView], exclude: frozenset[str] = frozenset()) -> str | None:
    candidates = [(i, a) for i, a in enumerate(agents) if a.registered and not a.busy and a.id not in exclude]
    if not candidates:
        return None
    # Never-used agents first (idle the whole shift), then oldest idle_since.
    _, best = min(
        candidates,
        key=lambda ia: (ia[1].idle_since is not None, ia[1].idle_since or datetime.min, ia[0]),
    )
    return best.id
