"""Which waiting interaction goes to which agent. Pure: the flows gather the facts, this decides.

`Router.decide(waiting, agents, now)` makes one pass over everything waiting, in every queue:

1. order the interactions by risk (`risk_order`);
2. give each, in that order, the best eligible routable agent according to its queue's strategy;
3. an agent taken in this pass is gone for the rest of it, so no agent holds two offers; an
   interaction without an eligible agent is skipped and stays waiting, in its place.

The caller reserves the agents of each returned `Decision` (`Agent.reserve`) before the next
pass, which is what keeps offers unique across passes too. Decisions depend only on the inputs
and on the router's round-robin memory; never on the order of the input lists, hash seeds or the
clock (`now` is an argument).

The rules we had to choose, one paragraph each:

Risk order ("dynamic queue position"). Each interaction has a deadline, `queued_at` plus its
tier's target seconds in its queue (top 10 s, high 20 s, medium 30 s, low 60 s by default); its
slack is `target.seconds - wait`, which is `deadline - now`. We serve the smallest slack first,
ties by `queued_at` (earlier first), then higher `customer_value`, then `id`. Because slack is the
deadline minus the same `now` for everyone, the order of two waiting interactions never changes
as time passes (it is earliest-deadline-first). Within one tier of one queue this is exactly FIFO.
A higher tier jumps ahead only as far as its tighter target warrants: a top caller (10 s) who has
just arrived goes ahead of a medium caller (30 s) who has waited less than 20 s, and behind one
who has waited more. An interaction past its target keeps a fixed deadline in the past while
newcomers' deadlines lie at least the smallest target in the future, so a newcomer can overtake
it only for a bounded time after its arrival: nothing starves while agents keep freeing up. The
target's percent does not change the order; it is what `QueueStats.service_level_percent` is
measured against.

Multi-queue fairness. An agent who serves several queues gets, among the interactions they are
eligible for, the one earliest in the global risk order; queue strategies only choose among
agents for one interaction. The order is therefore the same whatever the queues' configuration
order or the input order (Wazo documents its multi-queue order as non-deterministic; ours is a
total order). The pass is greedy, not a global matching: an earlier interaction may take an agent
that a later one also needed although another agent could have served the earlier one. We accept
that, because it keeps each strategy's definition exact and each decision explainable in one line.

Eligibility (`eligible`). An agent may take an interaction when routable (ready and device
registered), not in its `excluded_agents`, a member of the queue (in `members` or in one of
`groups`; when both are empty every agent is a member), and holding every required skill at or
above its minimum level. The required skills are the queue's plus the interaction's; when both
name the same skill the higher minimum wins.

Relaxation. A queue's relaxation steps are listed in increasing `after_s` and are cumulative:
after `after_s` seconds of wait (from `queued_at`) every step reached applies, their
`lower_min_level_by` add up (a minimum never goes below 1, so a required skill is never dropped;
overflow to another queue is the tool for that), and their `add_groups` add to the membership.
Relaxation never touches `queued_at`, so the caller keeps their place in line. An agent who
qualifies without relaxation is preferred over one who qualifies only through it (the strategy
orders each of the two sets); `Decision.relaxed` is True exactly when the offer needed relaxation.

Sticky routing. With `sticky_s > 0` and a known `last_agent_id`, while the wait is below
`sticky_s` only that agent may take the interaction: routed to them (`sticky=True`) if eligible
now, otherwise it waits. Two cases widen at once instead of waiting for nothing: the last agent
is not logged in (or unknown), or is in `excluded_agents` (they already let it ring out). After
`sticky_s` the normal rules apply and the last agent may still win on them. Sticky offers do not
move the round-robin memory.

Strategies, each applied within the eligible set (strict matches first, see Relaxation); every
tie ends on the agent id so the choice is total:
- ring_all: every eligible agent (full matches, then relaxed ones), each set longest idle first;
- linear: the first in `members` order; eligible agents outside `members` (via groups) follow,
  by id;
- round_robin: the first in that same order after the last agent this queue's rotation chose,
  wrapping; the memory is per queue, survives `update_queues`, and moves only for decisions
  returned;
- longest_idle: earliest `ready_since`; a ready agent without one counts as idle since forever;
- fewest_calls: fewest `calls_answered`, then longest idle;
- skills_best: highest sum of the agent's levels on the required skills (with a fixed set of
  required skills this is the best average: a strong all-rounder beats a one-skill specialist),
  then longest idle;
- skills_least_occupied: lowest measured occupancy (`Agent.occupancy`: busy time since login
  over time logged in), then longest idle.

Overflow (`overflow_for`). A queue's overflow rules are tried in order and the first that matches
names the target queue. A rule matches on any of its conditions: waited at least `max_wait_s`;
position in its queue (risk order among that queue's waiting) beyond `max_length`, so the
interactions at the back overflow and the first `max_length` stay; `when_no_agents` and no agent
who could take it without anyone's action (logged in, device registered, not "not ready", a
member with the skills under the current relaxation, not excluded). Busy agents count: they free
up on their own. Two more conditions read the queue's live state: `expected_wait_over_s` (this
caller's expected wait at their position, see Statistics; unknown counts as not long) and
`asa_over_s` (the queue's average speed of answer in the window). The caller moves the
interaction and chooses whether to keep `queued_at`.

Speed. A pass costs about one ordering of the waiting list plus, per class of interactions
(queue, required skills, relaxation step), one scan of the smallest matching skill bucket and
one sort by the strategy, shared by every interaction of the class. Only routable agents enter
the pass and it stops as soon as none is left; with few free agents and a long queue the risk
order is drawn lazily from a heap. Figures: benchmarks/README.md.

Statistics (`stats`). Agents counted for a queue are its members holding the queue's own required
skills. Average speed of answer, average handle time and service level use the answers and handle
times recorded in the last `window_s` (30 minutes by default). Expected wait is
`Router.expected_wait`: the live-queue model of app/domain/ewt.py (position, agents ready and
serving, time-weighted handle times and abandonment; not past waits), fed by `record_handle_time`,
`record_answer` and `record_abandon`. None when nobody serves the queue or no handle time is
known yet. It ignores that a higher tier may still jump ahead.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType

from app.domain.agent_state import (
    BUSY_STATES,
    MAX_SKILL_LEVEL,
    MIN_SKILL_LEVEL,
    Agent,
    AgentState,
)
from app.domain.ewt import WaitEstimator


class Tier(StrEnum):
    TOP = "top"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class ServiceTarget:
    """`percent` of interactions answered within `seconds` (e.g. 90 % in 10 s)."""

    percent: float
    seconds: float

    def __post_init__(self) -> None:
        if not 0 < self.percent <= 100:
            raise ValueError(f"service target percent must be in (0, 100], got {self.percent}")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"service target seconds must be > 0, got {self.seconds}")


DEFAULT_TARGETS: Mapping[Tier, ServiceTarget] = MappingProxyType(
    {
        Tier.TOP: ServiceTarget(90, 10),
        Tier.HIGH: ServiceTarget(85, 20),
        Tier.MEDIUM: ServiceTarget(80, 30),
        Tier.LOW: ServiceTarget(80, 60),
    }
)


class Strategy(StrEnum):
    RING_ALL = "ring_all"
    LINEAR = "linear"
    ROUND_ROBIN = "round_robin"
    LONGEST_IDLE = "longest_idle"
    FEWEST_CALLS = "fewest_calls"
    SKILLS_BEST = "skills_best"
    SKILLS_LEAST_OCCUPIED = "skills_least_occupied"


@dataclass(frozen=True)
class SkillRequirement:
    skill: str
    min_level: int = 1

    def __post_init__(self) -> None:
        if not self.skill:
            raise ValueError("skill requirement needs a skill name")
        if isinstance(self.min_level, bool) or not isinstance(self.min_level, int):
            raise ValueError(f"skill {self.skill!r}: min_level must be an integer, got {self.min_level!r}")
        if not MIN_SKILL_LEVEL <= self.min_level <= MAX_SKILL_LEVEL:
            raise ValueError(
                f"skill {self.skill!r}: min_level must be {MIN_SKILL_LEVEL}..{MAX_SKILL_LEVEL}, "
                f"got {self.min_level}"
            )


@dataclass(frozen=True)
class Relaxation:
    after_s: float
    lower_min_level_by: int = 0
    add_groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not (self.after_s >= 0 and math.isfinite(self.after_s)):
            raise ValueError(f"relaxation after_s must be >= 0, got {self.after_s}")
        if self.lower_min_level_by < 0:
            raise ValueError(f"relaxation lower_min_level_by must be >= 0, got {self.lower_min_level_by}")
        object.__setattr__(self, "add_groups", frozenset(self.add_groups))


@dataclass(frozen=True)
class Overflow:
    to_queue: str
    max_wait_s: float | None = None
    max_length: int | None = None
    when_no_agents: bool = False
    # Conditions on the queue's live state: this caller's expected wait, and the queue's
    # average speed of answer over the statistics window.
    expected_wait_over_s: float | None = None
    asa_over_s: float | None = None

    def __post_init__(self) -> None:
        if (
            self.max_wait_s is None
            and self.max_length is None
            and not self.when_no_agents
            and self.expected_wait_over_s is None
            and self.asa_over_s is None
        ):
            raise ValueError(
                f"overflow to {self.to_queue!r} needs max_wait_s, max_length, when_no_agents,"
                " expected_wait_over_s or asa_over_s"
            )
        if self.max_wait_s is not None and self.max_wait_s < 0:
            raise ValueError(f"overflow to {self.to_queue!r}: max_wait_s must be >= 0")
        if self.max_length is not None and self.max_length < 0:
            raise ValueError(f"overflow to {self.to_queue!r}: max_length must be >= 0")


@dataclass(frozen=True)
class QueueConfig:
    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    groups: frozenset[str] = frozenset()  # agent groups serving this queue
    members: tuple[str, ...] = ()  # agent ids, in hunt order for linear and round robin
    required_skills: tuple[SkillRequirement, ...] = ()  # merged with the interaction's own
    targets: Mapping[Tier, ServiceTarget] = field(default_factory=lambda: DEFAULT_TARGETS)
    sticky_s: float = 0  # hold for the customer's last agent this long (of queue wait)
    relaxations: tuple[Relaxation, ...] = ()  # increasing after_s, cumulative
    overflow: tuple[Overflow, ...] = ()  # first match wins

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("queue needs a name")
        object.__setattr__(self, "groups", frozenset(self.groups))
        object.__setattr__(self, "members", tuple(self.members))
        object.__setattr__(self, "required_skills", tuple(self.required_skills))
        object.__setattr__(self, "relaxations", tuple(self.relaxations))
        object.__setattr__(self, "overflow", tuple(self.overflow))
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"queue {self.name}: members lists an agent twice")
        if self.sticky_s < 0:
            raise ValueError(f"queue {self.name}: sticky_s must be >= 0")
        after = [r.after_s for r in self.relaxations]
        if after != sorted(after):
            raise ValueError(f"queue {self.name}: relaxations must be listed in increasing after_s")
        for o in self.overflow:
            if o.to_queue == self.name:
                raise ValueError(f"queue {self.name}: overflow to itself")

    def target(self, tier: Tier) -> ServiceTarget:
        return self.targets.get(tier) or DEFAULT_TARGETS[tier]

    @cached_property
    def member_rank(self) -> Mapping[str, int]:
        """Position of each member in `members` (hunt order), 0-based."""
        return MappingProxyType({m: k for k, m in enumerate(self.members)})

    def groups_at(self, step: int | None) -> frozenset[str]:
        """The groups serving this queue once `step` relaxation steps apply (None: every step)."""
        groups = self.groups
        for r in self.relaxations if step is None else self.relaxations[:step]:
            groups = groups | r.add_groups
        return groups

    def relaxation_step(self, wait_s: float) -> int:
        """How many relaxation steps apply after `wait_s` seconds of wait."""
        step = 0
        for r in self.relaxations:
            if wait_s < r.after_s:
                break
            step += 1
        return step


@dataclass
class WaitingInteraction:
    id: str
    queue: str
    queued_at: datetime  # place in line: never changes on relaxation or ring-no-answer
    tier: Tier = Tier.MEDIUM
    customer_value: float = 0
    required_skills: tuple[SkillRequirement, ...] = ()
    last_agent_id: str | None = None  # sticky routing, from history
    excluded_agents: frozenset[str] = frozenset()  # e.g. agents who let it ring out
    data: Mapping[str, str] = field(default_factory=dict)
    # Agents who declined this caller from their panel: they stay in `excluded_agents` even when
    # everyone has had a turn (a refusal is not a missed ring, and must not come straight back).
    declined_by: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not math.isfinite(self.customer_value):
            raise ValueError(f"interaction {self.id}: customer_value must be finite")
        self.required_skills = tuple(self.required_skills)
        self.excluded_agents = frozenset(self.excluded_agents)


@dataclass(frozen=True)
class Decision:
    interaction_id: str
    queue: str
    agent_ids: tuple[str, ...]  # ring_all gives several; the other strategies exactly one
    reason: str  # for the agent panel: why routed here
    relaxed: bool = False
    sticky: bool = False


@dataclass(frozen=True)
class QueueStats:
    queue: str
    agents_logged_in: int
    agents_ready: int
    waiting: int
    oldest_wait_s: float
    expected_wait_s: float | None
    average_speed_of_answer_s: float | None
    answered: int = 0  # in the statistics window
    service_level_percent: float | None = None  # answered within their tier's target
    average_handle_s: float | None = None
    agents_serving: int = 0  # ready or busy: the agents whose calls end and free a place


# -- risk order ------------------------------------------------------------------------------------


def _deadline(w: WaitingInteraction, queues: Mapping[str, QueueConfig]) -> datetime:
    queue = queues.get(w.queue)
    target = queue.target(w.tier) if queue is not None else DEFAULT_TARGETS[w.tier]
    return w.queued_at + timedelta(seconds=target.seconds)


_RiskKey = tuple[datetime, datetime, float, str, int]  # deadline, queued_at, -value, id, index


def _risk_keys(waiting: Sequence[WaitingInteraction], queues: Mapping[str, QueueConfig]) -> list[_RiskKey]:
    offsets: dict[str, dict[Tier, timedelta]] = {}  # per queue and tier, computed once per call
    keys: list[_RiskKey] = []
    for i, w in enumerate(waiting):
        per_tier = offsets.get(w.queue)
        if per_tier is None:
            q = queues.get(w.queue)
            per_tier = offsets[w.queue] = {
                t: timedelta(seconds=(q.target(t) if q is not None else DEFAULT_TARGETS[t]).seconds)
                for t in Tier
            }
        keys.append((w.queued_at + per_tier[w.tier], w.queued_at, -w.customer_value, w.id, i))
    return keys


def slack_s(w: WaitingInteraction, queues: Mapping[str, QueueConfig], now: datetime) -> float:
    """Seconds left before `w` misses its tier's target (negative once past it)."""
    return (_deadline(w, queues) - now).total_seconds()


def risk_order(
    waiting: Sequence[WaitingInteraction], queues: Mapping[str, QueueConfig], now: datetime
) -> list[WaitingInteraction]:
    """Most at risk first: smallest slack, then earliest queued_at, higher value, id.

    Slack is `deadline - now` for everyone, so the order does not depend on `now`; an interaction
    of an unknown queue is ranked with the default targets."""
    keys = _risk_keys(waiting, queues)
    keys.sort()
    return [waiting[k[4]] for k in keys]


def _iter_risk_order(
    waiting: Sequence[WaitingInteraction], queues: Mapping[str, QueueConfig], lazy: bool
) -> Iterator[WaitingInteraction]:
    """`risk_order`, produced lazily from a heap when the caller expects to stop early (few free
    agents, long queue): the same order without paying for a full sort."""
    keys = _risk_keys(waiting, queues)
    if lazy:
        heapq.heapify(keys)
        while keys:
            yield waiting[heapq.heappop(keys)[4]]
    else:
        keys.sort()
        for k in keys:
            yield waiting[k[4]]


# -- eligibility -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """Who may take an interaction of one queue, with its requirements, at one relaxation step."""

    reqs: tuple[tuple[str, int], ...]  # (skill, min level), sorted by skill
    everyone: bool  # neither members nor groups configured
    members: frozenset[str]
    groups: frozenset[str]
    step: int
    lowered_by: int

    def is_member(self, agent: Agent) -> bool:
        return _member(self.everyone, self.members, self.groups, agent)

    def has_skills(self, agent: Agent) -> bool:
        skills = agent.skills
        for skill, level in self.reqs:
            if skills.get(skill, 0) < level:
                return False
        return True

    def admits(self, agent: Agent) -> bool:
        return self.is_member(agent) and self.has_skills(agent)


def _member(
    everyone: bool, members: frozenset[str] | Mapping[str, int], groups: frozenset[str], a: Agent
) -> bool:
    """Queue membership, the one rule: named in `members`, or in one of `groups`, or everyone
    when the queue names neither. Members and groups combine (either admits the agent)."""
    return everyone or a.id in members or not groups.isdisjoint(a.groups)


def is_member(agent: Agent, queue: QueueConfig, step: int | None = 0) -> bool:
    """Is `agent` a member of `queue` once `step` relaxation steps apply (None: at any step)?"""
    everyone = not queue.members and not queue.groups
    return _member(everyone, queue.member_rank, queue.groups_at(step), agent)


def qualifies(agent: Agent, queue: QueueConfig) -> bool:
    """Could `agent` take this queue's calls when free: a member holding the queue's own required
    skills (no relaxation). The dialer counts its agents with this."""
    return is_member(agent, queue) and all(
        agent.skills.get(n.skill, 0) >= n.min_level for n in queue.required_skills
    )


def could_ever_serve(agent: Agent, queue: QueueConfig) -> bool:
    """Could `agent` ever answer this queue without anyone's action: logged in, phone registered,
    a member at some relaxation step. When nobody could, a caller is told instead of waiting."""
    return agent.logged_in and agent.device_registered and is_member(agent, queue, step=None)


def customer_tier(vip: bool, tier: str | None) -> Tier:
    """The tier a customer's calls wait in: a VIP is top, else the customer's own tier (medium
    for unknown callers)."""
    if vip:
        return Tier.TOP
    return Tier(tier) if tier in {t.value for t in Tier} else Tier.MEDIUM


def _make_rule(queue: QueueConfig, required: Sequence[SkillRequirement], step: int) -> _Rule:
    merged: dict[str, int] = {}
    for req in (*queue.required_skills, *required):
        merged[req.skill] = max(merged.get(req.skill, MIN_SKILL_LEVEL), req.min_level)
    lowered = sum(r.lower_min_level_by for r in queue.relaxations[:step])
    reqs = tuple(sorted((s, max(MIN_SKILL_LEVEL, lvl - lowered)) for s, lvl in merged.items()))
    everyone = not queue.members and not queue.groups
    return _Rule(reqs, everyone, frozenset(queue.members), queue.groups_at(step), step, lowered)


def _wait_s(w: WaitingInteraction, now: datetime) -> float:
    return (now - w.queued_at).total_seconds()


def eligible(agent: Agent, w: WaitingInteraction, queue: QueueConfig, now: datetime) -> tuple[bool, bool]:
    """(may `agent` take `w` now, only thanks to relaxation). Sticky holds are not eligibility:
    see `Router.decide`."""
    if not agent.routable or agent.id in w.excluded_agents:
        return False, False
    if _make_rule(queue, w.required_skills, 0).admits(agent):
        return True, False
    step = queue.relaxation_step(_wait_s(w, now))
    if step and _make_rule(queue, w.required_skills, step).admits(agent):
        return True, True
    return False, False


# -- one routing pass ------------------------------------------------------------------------------

_NEVER = datetime.min  # only compared with itself: see _idle_key

_IdleKey = tuple[bool, datetime]


def _idle_key(agent: Agent) -> _IdleKey:
    since = agent.ready_since
    return (since is not None, since if since is not None else _NEVER)


def _rotation_key(queue: QueueConfig, agent_id: str) -> tuple[int, int, str]:
    """Hunt order for linear and round robin: members in their order, then others by id."""
    rank = queue.member_rank.get(agent_id)
    return (0, rank, "") if rank is not None else (1, 0, agent_id)


class _Pool:
    """The agents eligible for one (queue, requirements, relaxation step) class in one pass,
    in strategy order, strict matches before relaxed ones. Agents taken elsewhere in the pass
    are skipped lazily."""

    def __init__(self, strict_rule: _Rule, rule: _Rule, strict: list[Agent], relaxed: list[Agent]) -> None:
        self.strict_rule = strict_rule  # without relaxation
        self.rule = rule  # at this pool's relaxation step
        self.lists = [strict, relaxed]
        self.starts = [0, 0]  # everything before is taken
        self.rot_keys: list[list[tuple[int, int, str]]] = []  # round robin: each list's sort keys

    def first(self, taken: set[str], excluded: frozenset[str]) -> tuple[Agent, bool] | None:
        for i, lst in enumerate(self.lists):
            j = self.starts[i]
            while j < len(lst) and lst[j].id in taken:
                j += 1
            self.starts[i] = j
            while j < len(lst):
                a = lst[j]
                if a.id not in taken and a.id not in excluded:
                    return a, i == 1
                j += 1
        return None

    def after(
        self, last: tuple[int, int, str] | None, taken: set[str], excluded: frozenset[str]
    ) -> tuple[Agent, bool] | None:
        for i, lst in enumerate(self.lists):
            keys = self.rot_keys[i]
            if any(a.id in taken for a in lst):
                kept = [(k, a) for k, a in zip(keys, lst, strict=True) if a.id not in taken]
                keys[:] = [k for k, _ in kept]
                lst[:] = [a for _, a in kept]
            n = len(lst)
            if n == 0:
                continue
            start = bisect_right(keys, last) if last is not None else 0
            for k in range(n):
                a = lst[(start + k) % n]
                if a.id not in excluded:
                    return a, i == 1
        return None

    def all(self, taken: set[str], excluded: frozenset[str]) -> list[tuple[Agent, bool]]:
        return [
            (a, i == 1)
            for i, lst in enumerate(self.lists)
            for a in lst[self.starts[i] :]
            if a.id not in taken and a.id not in excluded
        ]


class _Pass:
    def __init__(self, router: Router, agents: Sequence[Agent], now: datetime) -> None:
        self.router = router
        self.now = now
        self.by_id: dict[str, Agent] = {}
        self.free: list[Agent] = []
        for a in agents:
            if a.id in self.by_id:
                raise ValueError(f"agent {a.id} is listed twice")
            self.by_id[a.id] = a
            if a.routable:
                self.free.append(a)
        self.taken: set[str] = set()
        self.pools: dict[tuple[str, tuple[SkillRequirement, ...], int], _Pool] = {}
        self._by_skill: dict[str, list[Agent]] | None = None
        self._by_group: dict[str, list[Agent]] | None = None
        self._occupancy: dict[str, float] = {}

    @property
    def exhausted(self) -> bool:
        return len(self.taken) >= len(self.free)

    # indexes over the agents free at the start of the pass, built on first use
    def by_skill(self) -> dict[str, list[Agent]]:
        if self._by_skill is None:
            self._by_skill = {}
            for a in self.free:
                for skill in a.skills:
                    self._by_skill.setdefault(skill, []).append(a)
        return self._by_skill

    def by_group(self) -> dict[str, list[Agent]]:
        if self._by_group is None:
            self._by_group = {}
            for a in self.free:
                for g in a.groups:
                    self._by_group.setdefault(g, []).append(a)
        return self._by_group

    def candidates(self, rule: _Rule) -> Iterable[Agent]:
        if rule.reqs:
            index = self.by_skill()
            buckets = [index.get(skill, []) for skill, _ in rule.reqs]
            return min(buckets, key=len)
        if rule.everyone:
            return self.free
        found: dict[str, Agent] = {}
        for g in sorted(rule.groups):
            for a in self.by_group().get(g, []):
                found[a.id] = a
        for m in rule.members:
            a_or_none = self.by_id.get(m)
            if a_or_none is not None and a_or_none.routable:
                found[m] = a_or_none
        return found.values()

    def occupancy(self, a: Agent) -> float:
        occ = self._occupancy.get(a.id)
        if occ is None:
            occ = self._occupancy[a.id] = a.occupancy(self.now)
        return occ

    def pool(self, queue: QueueConfig, w: WaitingInteraction, step: int) -> _Pool:
        key = (queue.name, w.required_skills, step)
        pool = self.pools.get(key)
        if pool is not None:
            return pool
        strict_rule = self.router._rule(queue, w.required_skills, 0)
        rule = self.router._rule(queue, w.required_skills, step)
        strict: list[Agent] = []
        relaxed: list[Agent] = []
        for a in self.candidates(rule):
            if a.id in self.taken or not rule.admits(a):
                continue
            (strict if step == 0 or strict_rule.admits(a) else relaxed).append(a)
        order = self._order(queue, strict_rule)
        strict.sort(key=order)
        relaxed.sort(key=order)
        pool = _Pool(strict_rule, rule, strict, relaxed)
        if queue.strategy is Strategy.ROUND_ROBIN:
            pool.rot_keys = [[_rotation_key(queue, a.id) for a in lst] for lst in pool.lists]
        self.pools[key] = pool
        return pool

    def _order(self, queue: QueueConfig, rule: _Rule) -> Callable[[Agent], tuple[object, ...]]:
        s = queue.strategy
        if s in (Strategy.LINEAR, Strategy.ROUND_ROBIN):
            return lambda a: _rotation_key(queue, a.id)
        if s is Strategy.FEWEST_CALLS:
            return lambda a: (a.calls_answered, _idle_key(a), a.id)
        if s is Strategy.SKILLS_BEST:
            return lambda a: (-sum(a.skills.get(sk, 0) for sk, _ in rule.reqs), _idle_key(a), a.id)
        if s is Strategy.SKILLS_LEAST_OCCUPIED:
            return lambda a: (self.occupancy(a), _idle_key(a), a.id)
        return lambda a: (_idle_key(a), a.id)  # longest idle, ring all

    def route(self, w: WaitingInteraction) -> Decision | None:
        queue = self.router._queues.get(w.queue)
        if queue is None:
            return None  # its queue was removed: the caller overflows or ends it
        wait_s = _wait_s(w, self.now)
        if queue.sticky_s > 0 and w.last_agent_id is not None and wait_s < queue.sticky_s:
            last = self.by_id.get(w.last_agent_id)
            if last is not None and last.logged_in and last.id not in w.excluded_agents:
                if last.id in self.taken:
                    return None
                ok, relaxed = eligible(last, w, queue, self.now)
                if not ok:
                    return None
                self.taken.add(last.id)
                reason = (
                    f"{self._head(w, queue, wait_s)}: sticky, the customer's last agent "
                    f"(held up to {queue.sticky_s:g} s){self._skills_text(last, queue, w)}"
                )
                if relaxed:
                    step = queue.relaxation_step(wait_s)
                    reason += (
                        f"; {self._relax_text(queue, self.router._rule(queue, w.required_skills, step))}"
                    )
                return Decision(w.id, queue.name, (last.id,), reason, relaxed=relaxed, sticky=True)
        step = queue.relaxation_step(wait_s)
        pool = self.pool(queue, w, step)
        strict_rule, rule = pool.strict_rule, pool.rule
        excluded = w.excluded_agents
        if queue.strategy is Strategy.RING_ALL:
            chosen = pool.all(self.taken, excluded)
            if not chosen:
                return None
            for a, _ in chosen:
                self.taken.add(a.id)
            relaxed = any(r for _, r in chosen)
            ids = tuple(a.id for a, _ in chosen)
            reason = f"{self._head(w, queue, wait_s)}: ring all, {len(ids)} eligible agent(s)"
            reason += self._req_text(strict_rule)
            if relaxed:
                reason += f"; {self._relax_text(queue, rule)}"
            return Decision(w.id, queue.name, ids, reason, relaxed=relaxed)
        if queue.strategy is Strategy.ROUND_ROBIN:
            last_id = self.router._rr_last.get(queue.name)
            last_key = _rotation_key(queue, last_id) if last_id is not None else None
            picked = pool.after(last_key, self.taken, excluded)
        else:
            picked = pool.first(self.taken, excluded)
        if picked is None:
            return None
        agent, relaxed = picked
        self.taken.add(agent.id)
        if queue.strategy is Strategy.ROUND_ROBIN:
            self.router._rr_last[queue.name] = agent.id
        reason = f"{self._head(w, queue, wait_s)}: {self._strategy_text(queue, agent, strict_rule)}"
        reason += self._skills_text(agent, queue, w)
        if relaxed:
            reason += f"; {self._relax_text(queue, rule)}"
        return Decision(w.id, queue.name, (agent.id,), reason, relaxed=relaxed)

    # -- reason text (built only for the decisions made) -------------------------------------------

    def _head(self, w: WaitingInteraction, queue: QueueConfig, wait_s: float) -> str:
        slack = queue.target(w.tier).seconds - wait_s
        return f"queue {queue.name}, tier {w.tier.value}, waited {wait_s:.0f} s (slack {slack:+.0f} s)"

    def _strategy_text(self, queue: QueueConfig, a: Agent, rule: _Rule) -> str:
        s = queue.strategy
        if s is Strategy.LINEAR:
            return f"linear hunt, first eligible in order ({self._position(queue, a)})"
        if s is Strategy.ROUND_ROBIN:
            return f"round robin, next eligible in rotation ({self._position(queue, a)})"
        if s is Strategy.FEWEST_CALLS:
            return f"fewest calls ({a.calls_answered} answered), {self._idle_text(a)}"
        if s is Strategy.SKILLS_BEST:
            score = sum(a.skills.get(sk, 0) for sk, _ in rule.reqs)
            return f"best skill match (level sum {score}), {self._idle_text(a)}"
        if s is Strategy.SKILLS_LEAST_OCCUPIED:
            return f"least occupied ({self.occupancy(a):.0%} busy since login), {self._idle_text(a)}"
        return f"longest idle, {self._idle_text(a)}"

    def _position(self, queue: QueueConfig, a: Agent) -> str:
        rank = queue.member_rank.get(a.id)
        if rank is not None:
            return f"member {rank + 1} of {len(queue.members)}"
        return "via group"

    def _idle_text(self, a: Agent) -> str:
        if a.ready_since is None:
            return "idle, start unknown (counts as longest)"
        return f"idle {max(0.0, (self.now - a.ready_since).total_seconds()):.0f} s"

    @staticmethod
    def _req_text(rule: _Rule) -> str:
        if not rule.reqs:
            return ""
        return "; needs " + ", ".join(f"{s}>={lvl}" for s, lvl in rule.reqs)

    def _skills_text(self, a: Agent, queue: QueueConfig, w: WaitingInteraction) -> str:
        rule = self.router._rule(queue, w.required_skills, 0)
        if not rule.reqs:
            return ""
        return "; skills " + ", ".join(f"{s} {a.skills.get(s, 0)}>={lvl}" for s, lvl in rule.reqs)

    @staticmethod
    def _relax_text(queue: QueueConfig, rule: _Rule) -> str:
        r = queue.relaxations[rule.step - 1]
        parts = [f"relaxed after {r.after_s:g} s (step {rule.step})"]
        if rule.lowered_by:
            parts.append("minimum levels -" + str(rule.lowered_by))
        added = rule.groups - queue.groups
        if added:
            parts.append("groups +" + "+".join(sorted(added)))
        return ", ".join(parts)


# -- the router ------------------------------------------------------------------------------------

_RULE_CACHE_MAX = 10_000
_WINDOW_MAX = 10_000  # recorded answers kept per queue at most


@dataclass(frozen=True)
class _Answer:
    at: datetime
    waited_s: float
    within_target: bool


class Router:
    """The routing policy for a set of queues, with the little memory it needs: the last agent of
    each round-robin rotation and recent answers and handle times for statistics."""

    def __init__(self, queues: Mapping[str, QueueConfig], *, window_s: float = 1800) -> None:
        self._queues: dict[str, QueueConfig] = {}
        self._rr_last: dict[str, str] = {}
        self._rules: dict[tuple[str, tuple[SkillRequirement, ...], int], _Rule] = {}
        self._answers: dict[str, deque[_Answer]] = {}
        self._handles: dict[str, deque[tuple[datetime, float]]] = {}
        self._waits: dict[str, WaitEstimator] = {}
        self.window_s = window_s
        self.update_queues(queues)

    @property
    def queues(self) -> Mapping[str, QueueConfig]:
        return MappingProxyType(self._queues)

    def update_queues(self, queues: Mapping[str, QueueConfig]) -> None:
        """Replace the configuration; the next decision uses it. Round-robin memory is kept for
        the queues that remain."""
        for name, q in queues.items():
            if name != q.name:
                raise ValueError(f"queue {name!r} is configured under the name {q.name!r}")
            for o in q.overflow:
                if o.to_queue not in queues:
                    raise ValueError(f"queue {name}: overflow to unknown queue {o.to_queue!r}")
        self._queues = dict(queues)
        self._rr_last = {k: v for k, v in self._rr_last.items() if k in self._queues}
        self._rules.clear()

    def remember_rotation(self, queue: str, agent_id: str) -> None:
        """After a restart: the agent this queue's rotation chose last, read back from history."""
        if queue in self._queues:
            self._rr_last[queue] = agent_id

    def round_robin_last(self, queue: str) -> str | None:
        """The agent the queue's rotation chose last (the next offer goes to the one after)."""
        return self._rr_last.get(queue)

    def _rule(self, queue: QueueConfig, required: tuple[SkillRequirement, ...], step: int) -> _Rule:
        key = (queue.name, required, step)
        rule = self._rules.get(key)
        if rule is None:
            if len(self._rules) >= _RULE_CACHE_MAX:
                self._rules.clear()
            rule = self._rules[key] = _make_rule(queue, required, step)
        return rule

    def decide(
        self, waiting: Sequence[WaitingInteraction], agents: Sequence[Agent], now: datetime
    ) -> list[Decision]:
        """One routing pass: see the module docstring. The caller reserves the agents of each
        decision before the next pass."""
        if len({w.id for w in waiting}) != len(waiting):
            raise ValueError("an interaction is listed twice in waiting")
        p = _Pass(self, agents, now)
        if not p.free or not waiting:
            return []
        decisions: list[Decision] = []
        lazy = len(p.free) * 8 < len(waiting)
        for w in _iter_risk_order(waiting, self._queues, lazy):
            if p.exhausted:
                break
            d = p.route(w)
            if d is not None:
                decisions.append(d)
        return decisions

    # -- statistics --------------------------------------------------------------------------------

    def record_answer(
        self, queue: str, interaction_id: str, waited_s: float, now: datetime, tier: Tier = Tier.MEDIUM
    ) -> None:
        """An interaction of `queue` was answered after `waited_s` in queue (for ASA and service
        level). `tier` picks the target it is measured against."""
        q = self._queues.get(queue)
        target = q.target(tier) if q is not None else DEFAULT_TARGETS[tier]
        answers = self._answers.setdefault(queue, deque(maxlen=_WINDOW_MAX))
        answers.append(_Answer(now, max(0.0, waited_s), waited_s <= target.seconds))
        self._wait_estimator(queue).record_answer(max(0.0, waited_s), now.timestamp())

    def record_handle_time(self, queue: str, handle_s: float, now: datetime) -> None:
        """An interaction of `queue` ended after `handle_s` of talk and wrap-up (for expected wait)."""
        self._handles.setdefault(queue, deque(maxlen=_WINDOW_MAX)).append((now, max(0.0, handle_s)))
        self._wait_estimator(queue).record_handle(max(0.0, handle_s), now.timestamp())

    def record_abandon(self, queue: str, waited_s: float, now: datetime) -> None:
        """A caller left `queue` unanswered after `waited_s` (for the expected-wait model)."""
        self._wait_estimator(queue).record_abandon(max(0.0, waited_s), now.timestamp())

    def _wait_estimator(self, queue: str) -> WaitEstimator:
        if queue not in self._waits:
            self._waits[queue] = WaitEstimator()
        return self._waits[queue]

    def expected_wait(
        self, queue: str, position: int, agents_ready: int, agents_serving: int
    ) -> float | None:
        """Expected wait at `position` from the live queue (app/domain/ewt.py), None if unknown."""
        estimate = self._wait_estimator(queue).estimate(position, agents_serving, agents_ready)
        return estimate.seconds if estimate is not None else None

    def _recent_answers(self, queue: str, now: datetime) -> list[_Answer]:
        since = now - timedelta(seconds=self.window_s)
        return [a for a in self._answers.get(queue, ()) if since <= a.at <= now]

    def _average_handle_s(self, queue: str, now: datetime) -> float | None:
        since = now - timedelta(seconds=self.window_s)
        recent = [h for at, h in self._handles.get(queue, ()) if since <= at <= now]
        return sum(recent) / len(recent) if recent else None

    def stats(
        self, queue: str, waiting: Sequence[WaitingInteraction], agents: Sequence[Agent], now: datetime
    ) -> QueueStats:
        q = self._queues.get(queue)
        if q is None:
            raise KeyError(f"unknown queue {queue!r}")
        rule = self._rule(q, (), 0)
        qualified = [a for a in agents if a.logged_in and rule.admits(a)]
        ready = sum(1 for a in qualified if a.routable)
        serving = ready + sum(1 for a in qualified if a.state in BUSY_STATES and a.device_registered)
        mine = [w for w in waiting if w.queue == queue]
        oldest = max((_wait_s(w, now) for w in mine), default=0.0)
        answers = self._recent_answers(queue, now)
        asa = sum(a.waited_s for a in answers) / len(answers) if answers else None
        sl = 100 * sum(1 for a in answers if a.within_target) / len(answers) if answers else None
        aht = self._average_handle_s(queue, now)
        return QueueStats(
            queue=queue,
            agents_logged_in=len(qualified),
            agents_ready=ready,
            waiting=len(mine),
            oldest_wait_s=max(0.0, oldest),
            expected_wait_s=self.expected_wait(queue, len(mine) + 1, ready, serving),
            average_speed_of_answer_s=asa,
            answered=len(answers),
            service_level_percent=sl,
            average_handle_s=aht,
            agents_serving=serving,
        )

    # -- overflow ----------------------------------------------------------------------------------

    def _could_serve(self, a: Agent, w: WaitingInteraction, queue: QueueConfig, step: int) -> bool:
        if a.state in (AgentState.LOGGED_OUT, AgentState.NOT_READY) or not a.device_registered:
            return False
        if a.id in w.excluded_agents:
            return False
        return self._rule(queue, w.required_skills, step).admits(a)

    def overflow_for(
        self,
        w: WaitingInteraction,
        waiting: Sequence[WaitingInteraction],
        agents: Sequence[Agent],
        now: datetime,
    ) -> str | None:
        """The target queue of the first of `w`'s queue overflow rules that matches, or None."""
        others = [u for u in waiting if u.id != w.id]
        return self.overflows([w, *others], agents, now).get(w.id)

    def overflows(
        self, waiting: Sequence[WaitingInteraction], agents: Sequence[Agent], now: datetime
    ) -> dict[str, str]:
        """`overflow_for` for every waiting interaction at once: {interaction id: target queue}."""
        out: dict[str, str] = {}
        positions: dict[str, int] = {}
        counts: dict[str, int] = {}
        for w in risk_order(waiting, self._queues, now):
            counts[w.queue] = counts.get(w.queue, 0) + 1
            positions[w.id] = counts[w.queue]
        nobody: dict[tuple[str, tuple[SkillRequirement, ...], int, frozenset[str]], bool] = {}
        live: dict[str, QueueStats] = {}

        def stats_of(name: str) -> QueueStats:
            if name not in live:
                live[name] = self.stats(name, waiting, agents, now)
            return live[name]

        for w in waiting:
            queue = self._queues.get(w.queue)
            if queue is None:
                continue
            wait_s = _wait_s(w, now)
            for rule in queue.overflow:
                if rule.max_wait_s is not None and wait_s >= rule.max_wait_s:
                    out[w.id] = rule.to_queue
                    break
                if rule.max_length is not None and positions[w.id] > rule.max_length:
                    out[w.id] = rule.to_queue
                    break
                if rule.when_no_agents:
                    step = queue.relaxation_step(wait_s)
                    key = (queue.name, w.required_skills, step, w.excluded_agents)
                    if key not in nobody:
                        nobody[key] = not any(self._could_serve(a, w, queue, step) for a in agents)
                    if nobody[key]:
                        out[w.id] = rule.to_queue
                        break
                if rule.asa_over_s is not None:
                    asa = stats_of(queue.name).average_speed_of_answer_s
                    if asa is not None and asa > rule.asa_over_s:
                        out[w.id] = rule.to_queue
                        break
                if rule.expected_wait_over_s is not None:
                    st = stats_of(queue.name)
                    ewt = self.expected_wait(queue.name, positions[w.id], st.agents_ready, st.agents_serving)
                    # Nobody serving at all is "no agents", a rule of its own; unknown is not long.
                    if ewt is not None and ewt > rule.expected_wait_over_s:
                        out[w.id] = rule.to_queue
                        break
        return out
