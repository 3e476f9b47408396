"""The wallboard's figures, folded from the interaction events (the same records the reports
read), so that the live board and tomorrow's report never disagree.

Per queue and tier, for today (from the center's midnight) and for the last 30 minutes:
offered (callers who joined the queue), answered, answered within the tier's target, abandoned
(hung up waiting), short abandons (gave up sooner than `short_abandon_s`: counted apart and left
out of the service level, as most centers do), the service level (answered within target over
answered plus abandoned, short abandons excluded) and the ASA (mean wait of the answered).

A call counts where it first joined a line (a transfer to another queue later does not count it
twice). Pure: the caller feeds events and asks for figures at a time; no clock, no I/O.

A queue's tile turns amber, then red (`TileThresholds.colour`): someone has waited too long or
the day's service level has fallen too low, whichever is worse.

Below the queues, the agents by state (`agents_by_state`): each logged-in agent with the state,
since when (the page counts the time in state from it) and, when Not Ready, the reason's code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.domain.agent_state import Agent, AgentState

WINDOW = timedelta(minutes=30)


@dataclass
class Figures:
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    wait_answered_s: float = 0.0

    @property
    def service_level_percent(self) -> float | None:
        counted = self.answered + self.abandoned - self.short_abandoned
        return round(100 * self.answered_in_target / counted, 1) if counted else None

    @property
    def asa_s(self) -> float | None:
        return round(self.wait_answered_s / self.answered, 1) if self.answered else None

    def add(self, outcome: _Outcome, sign: int = 1) -> None:
        if outcome.kind == "offered":
            self.offered += sign
        elif outcome.kind == "answered":
            self.answered += sign
            self.answered_in_target += sign * outcome.in_target
            self.wait_answered_s += sign * outcome.wait_s
        elif outcome.kind == "abandoned":
            self.abandoned += sign
            self.short_abandoned += sign * outcome.short

    def view(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "answered": self.answered,
            "answered_in_target": self.answered_in_target,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "service_level_percent": self.service_level_percent,
            "asa_s": self.asa_s,
        }


@dataclass(frozen=True)
class _Outcome:
    at: datetime
    queue: str
    tier: str
    kind: str  # offered, answered, abandoned
    wait_s: float = 0.0
    in_target: int = 0
    short: int = 0


@dataclass
class _Line:
    queue: str
    tier: str
    queued_at: datetime
    settled: bool = False  # answered or abandoned: counted once


@dataclass(frozen=True)
class TileThresholds:
    """When a queue's tile turns amber and red (`supervision.tiles`): a caller waiting at least
    this long, or today's service level under this."""

    amber_wait_s: float = 60.0
    red_wait_s: float = 120.0
    amber_below_percent: float = 80.0
    red_below_percent: float = 60.0

    def colour(self, longest_wait_s: float, service_level_percent: float | None) -> str:
        """ "bad" (red), "warn" (amber) or "" (the page's classes). No service level yet (no call
        counted today) colours nothing by itself."""
        level = service_level_percent
        if longest_wait_s >= self.red_wait_s or (level is not None and level < self.red_below_percent):
            return "bad"
        if longest_wait_s >= self.amber_wait_s or (level is not None and level < self.amber_below_percent):
            return "warn"
        return ""


@dataclass
class Wallboard:
    target_s: Callable[[str, str], float]  # the (queue, tier)'s service-level target
    day_start: Callable[[datetime], datetime]  # the center's midnight before a time
    short_abandon_s: float = 5.0
    tiles: TileThresholds = TileThresholds()
    _lines: dict[str, _Line] = field(default_factory=dict)
    _today: dict[tuple[str, str], Figures] = field(default_factory=dict)
    _recent: dict[tuple[str, str], Figures] = field(default_factory=dict)
    _window: deque[_Outcome] = field(default_factory=deque)
    _day: datetime | None = None

    def event(self, interaction_id: str, kind: str, at: datetime, data: Mapping[str, Any]) -> bool:
        """Fold one saved event; True when a figure changed."""
        if kind == "queued":
            if interaction_id in self._lines:
                return False  # back in line after a transfer: still the same call
            joined = _Line(str(data.get("queue", "")), str(data.get("tier", "")), at)
            self._lines[interaction_id] = joined
            self._count(_Outcome(at, joined.queue, joined.tier, "offered"))
            return True
        line = self._lines.get(interaction_id)
        if line is None or line.settled:
            if kind == "ended":
                self._lines.pop(interaction_id, None)
            return False
        if kind == "connected":
            line.settled = True
            wait = max(0.0, (at - line.queued_at).total_seconds())
            in_target = int(wait <= self.target_s(line.queue, line.tier))
            self._count(_Outcome(at, line.queue, line.tier, "answered", wait, in_target))
            return True
        if kind == "ended":
            self._lines.pop(interaction_id, None)
            if data.get("outcome") == "abandoned":
                wait = max(0.0, (at - line.queued_at).total_seconds())
                short = int(wait < self.short_abandon_s)
                self._count(_Outcome(at, line.queue, line.tier, "abandoned", wait, 0, short))
                return True
        return False

    def replay(self, events: Iterable[tuple[str, str, datetime, Mapping[str, Any]]]) -> None:
        for interaction_id, kind, at, data in events:
            self.event(interaction_id, kind, at, data)

    def figures(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Per queue: today's and the last 30 minutes' figures, in total and per tier."""
        self._roll(now)
        out: dict[str, dict[str, Any]] = {}
        for span, table in (("today", self._today), ("last_30_min", self._recent)):
            for (queue, tier), figures in table.items():
                q = out.setdefault(queue, {"today": Figures(), "last_30_min": Figures(), "tiers": {}})
                total: Figures = q[span]
                for name in ("offered", "answered", "answered_in_target", "abandoned", "short_abandoned"):
                    setattr(total, name, getattr(total, name) + getattr(figures, name))
                total.wait_answered_s += figures.wait_answered_s
                q["tiers"].setdefault(tier, {})[span] = figures.view()
        return {
            queue: {"today": q["today"].view(), "last_30_min": q["last_30_min"].view(), "tiers": q["tiers"]}
            for queue, q in out.items()
        }

    # -- inside ---------------------------------------------------------------------------

    def _count(self, outcome: _Outcome) -> None:
        self._roll(outcome.at)
        key = (outcome.queue, outcome.tier)
        if self._day is not None and outcome.at >= self._day:  # an outcome of yesterday is not today's
            self._today.setdefault(key, Figures()).add(outcome)
        self._recent.setdefault(key, Figures()).add(outcome)
        self._window.append(outcome)

    def _roll(self, now: datetime) -> None:
        day = self.day_start(now)
        if self._day is None or day > self._day:
            if self._day is not None:
                self._today.clear()
            self._day = day
        while self._window and self._window[0].at <= now - WINDOW:
            old = self._window.popleft()
            self._recent[(old.queue, old.tier)].add(old, -1)


# -- agents by state ------------------------------------------------------------------------------

# The board lists agents in this order: those free for a call, those on one, those away.
_STATE_ORDER = {
    state: i
    for i, state in enumerate(
        (
            AgentState.READY,
            AgentState.RESERVED,
            AgentState.RINGING,
            AgentState.ON_CALL,
            AgentState.WRAP_UP,
            AgentState.NOT_READY,
        )
    )
}


@dataclass(frozen=True)
class AgentLine:
    """One agent on the board."""

    id: str
    name: str
    state: AgentState
    since: datetime | None  # when the agent entered the state (None: not known, e.g. never moved)
    reason: str | None  # the Not Ready reason's code; None in any other state

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "since": self.since.isoformat() if self.since is not None else None,
            "not_ready_reason": self.reason,
        }


def agents_by_state(agents: Iterable[Agent]) -> list[AgentLine]:
    """The logged-in agents in the board's order of states and, within a state, the longest in
    it first (the break that has gone on too long is the one a supervisor looks for). Logged-out
    agents are left out: they only count in the totals by state."""
    lines = [
        AgentLine(
            a.id,
            a.name,
            a.state,
            a.state_since,
            a.not_ready_reason if a.state is AgentState.NOT_READY else None,
        )
        for a in agents
        if a.state is not AgentState.LOGGED_OUT
    ]
    # Unknown `since` sorts first within its state: in it since before anything we know of.
    return sorted(
        lines,
        key=lambda line: (
            _STATE_ORDER[line.state],
            line.since is not None,
            line.since.timestamp() if line.since is not None else 0.0,
            line.name,
        ),
    )
