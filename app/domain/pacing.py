"""Outbound pacing: how many numbers to dial now. Pure: the dialer gathers the facts, this decides.

- `CampaignStatistics` learns a campaign from its events (a dial ended ringing, with its outcome
  and ring time; a talk ended; a wrap-up ended) and freezes what it knows into
  `CampaignEstimates` for each decision;
- `ComplianceGauge` counts live answers and abandons over rolling windows (24 h and 30 days)
  and says how much of the abandon allowance is left (`headroom`);
- `decide(snapshot, settings)` (or `calls_to_place`) returns how many new dials to start now,
  from a `PacingSnapshot`: agents free, agents busy (and for how long), dials ringing (and for
  how long), customers answered and waiting for an agent, the estimates and the headroom;
- `may_take_outbound` says whether blended agents may take outbound work.

Time is passed in (seconds on any clock that only moves forward); nothing here reads a clock.

Modes. Preview places nothing (the agent dials). Progressive places one line per free agent that
no ringing or waiting call already has, so every live answer has an agent waiting for it and none
is ever abandoned. Predictive dials ahead, as follows.

The rule. Dial the largest number N of new calls such that, over the calls of the campaign that
are not yet with an agent (the customers waiting, the dials ringing and the N new ones),

    expected abandons <= aim x expected live answers,

with the aim at most the abandon target. Regulators count abandons against live answers (not
against dials, which would hide most of them when few dials are answered), so that is the
denominator; holding every decision's outstanding calls to the ratio holds the campaign to it.
It is the ratio, not the chance that the last dial is abandoned, that is held: the allowance is
spent where it buys the most agent time. Progressive's count is always allowed. N is also
capped so that all the campaign's calls (ringing, waiting and talking) stay within
`max_lines_per_agent` per agent staffed.

Expected abandons. An answer is abandoned when no agent is idle within the connect window
(2 s). The next seconds, up to the time by which 98 % of live answers have come, are cut into a
few equal slots, and a Markov chain on the number of idle agents runs through them: agents free
up in each slot; the live answers that come in the slot take idle agents; those beyond the idle
agents are lost, whatever their order within the slot. Two choices come from measurement, on
states of the simulated campaigns of benchmarks/dialer_sim.py against Monte Carlo runs of each
state's true future:

- time matters. Setting every answer against the agents free by one horizon (a binomial count
  of answers against the free agents plus those freeing up by then) under-predicted abandons
  1.2 to 1.7 times: an answer that comes in 2 s cannot use an agent who frees up in 12 s.
  Taking the largest of the expected shortages at several moments was worse (1.6 to 3 times):
  the shortage strikes at different moments in different futures;
- each call is answered at most once. Counting each slot's answers independently (each call
  split into a chance per slot) let one ringing call produce two answers and over-predicted
  abandons up to five times when answer rates are high and teams small. So each call keeps its
  single chance of a live answer, and sits in one slot: the calls dialed together (same ring
  time so far) are spread over the slots by quantiles of their time of answer, the i-th of n at
  quantile (i + 1/2) / n, which keeps the spread of answer times across the batch.

The model's expected abandons are then 1.0 to 1.8 times the true ones on those states, on the
safe side, the most with the smallest teams.

The facts behind it:

- each ringing call's chance of ending in a live answer, given how long it has rung: the answer
  rate p and the ring times of live answers and of every other outcome (histograms), so that a
  call ringing for 20 s when people answer within 10 s counts for little;
- the answer rate is uncertain when little is known (a fresh campaign): its posterior is taken
  as beta(p n, (1 - p) n), n the dials seen (recent ones weighing more) plus the prior's weight. When the
  dials in question are more than a twentieth of n, their answers move together (if the rate is
  higher than thought, it is higher for all of them), and the decision averages over five rates
  from that posterior instead of trusting p. This is what stops a fresh campaign from dialing
  as if the prior were known;
- a busy agent's chance of being free in time: talk times are lognormal, conditioned on how long
  the call has lasted (a call that has run long tends to run on), then the wrap-up at its mean;
  an agent in wrap-up by the lognormal wrap-up conditioned likewise. Agents free up
  independently; the count per slot keeps the true mean and spread of the count so far;
- the estimates weigh recent events more (half-life 15 minutes of activity for dial outcomes,
  30 for talk and wrap-up times) and start from priors that weigh as a few observations. Only
  active time counts (at most a minute between two events): a night or a paused campaign does
  not make it forget itself.

The aim, and the compliance gauge. The model can still be wrong (AMD false positives, a change
of list, a slow trunk), and the gauge measures what regulators measure: abandons over live
answers over the last 24 h and 30 days, AMD false positives counted as abandoned when they
become known, with at least `min_answers` live answers in the denominator so the first abandons
of a fresh window weigh as they will when it fills. Its headroom (the share of the allowance
left in the tightest window) cuts the aim: full while more than half is left, then linearly
down to 0 when none is left, where predictive is progressive and abandons nothing more (but AMD
false positives). With an accurate model the observed rate settles near two thirds of the
target; whatever the model does, it cannot stay above the target.

The balance (-1 .. 1) trades agent wait against customer wait without ever raising the aim
above the target: below 0 it scales the aim down (-1 is progressive: every answer has an agent
waiting); above 0 it delays the gauge's cut (at +1 until three quarters of the
allowance is used), so the dialer runs closer to the limit and agents wait less.

Blending. Blended agents are counted for outbound only while no inbound caller waits and the
inbound service level over the last minutes meets its target: inbound callers chose to call and
come first; outbound work fills the slack.

Limits. A fresh campaign starts from the priors (`PacingPriors`); set them from the campaign's
history when there is one. The wrap-up after a call is taken at its mean, which makes agents
free up a little later than they do in the seconds just ahead (on the safe side). AMD's own
delay is not modelled: the ring time of a live answer is taken to end when the call is handed
to an agent. Trunk capacity is not known here: the dialer places at most what its free channels
allow. Measured figures: benchmarks/README.md.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

RING_BINS = 120  # ring times are kept per second up to this; longer ones count as this long
# The next seconds are cut into at most this many slots, none shorter than the connect window,
# up to the time by which nearly every live answer has come (this quantile of the ring time).
_MAX_SLOTS = 5
_LAST_ANSWER_QUANTILE = 0.98
_NEGLIGIBLE = 1e-10  # probability mass dropped from the tails of a distribution
_RESCALE_AFTER = 400.0  # half-lives; keeps the growing weights of _DecayingSums finite
# The answer rate counts as known when the dials decided on are at most this share of the dials
# it rests on (the spread of their answer count then grows by under 3 %).
_RATE_SETTLED = 0.05
_NORMAL_FIFTHS = (-1.2815515655446004, -0.5244005127080407, 0.0, 0.5244005127080407, 1.2815515655446004)


class DialMode(StrEnum):
    PREVIEW = "preview"  # the agent sees the record and calls or skips: the dialer places nothing
    PROGRESSIVE = "progressive"  # one line per free agent
    PREDICTIVE = "predictive"  # dial ahead, under the abandon target


class DialOutcome(StrEnum):
    """How a dial ended its ringing."""

    LIVE = "live"  # a person answered (AMD said human, or no AMD)
    MACHINE = "machine"  # AMD heard an answering machine
    BUSY = "busy"
    NO_ANSWER = "no_answer"  # we gave up after the ring time
    FAILED = "failed"  # congestion, invalid number, trunk error


# -- what is assumed before there is data ----------------------------------------------------------


@dataclass(frozen=True)
class PacingPriors:
    """What a campaign is assumed to look like before it has data. Ring times and handle times are
    lognormal with these medians and spreads (sigma of the log); each prior weighs as much as
    `weight` observations (`answer_weight` dials for the answer rate), so a few calls are enough
    to move it and a few hundred make it irrelevant."""

    answer_rate: float = 0.25
    answer_weight: float = 4.0
    time_to_answer_s: float = 10.0  # dial to live answer
    time_to_other_s: float = 15.0  # dial to any other end (busy, machine, no answer, failure)
    ring_spread: float = 0.6
    talk_s: float = 180.0
    talk_spread: float = 0.8
    wrap_up_s: float = 15.0
    wrap_up_spread: float = 0.5
    weight: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.answer_rate < 1:
            raise ValueError(f"prior answer_rate must be in (0, 1), got {self.answer_rate}")
        for name in ("time_to_answer_s", "time_to_other_s", "talk_s", "wrap_up_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"prior {name} must be > 0, got {value}")
        for name in ("ring_spread", "talk_spread", "wrap_up_spread", "weight", "answer_weight"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"prior {name} must be > 0, got {value}")


@dataclass(frozen=True)
class Lognormal:
    """A duration whose logarithm is normal(mu, sigma)."""

    mu: float
    sigma: float

    @classmethod
    def from_median(cls, median_s: float, spread: float) -> Lognormal:
        return cls(math.log(median_s), spread)

    @property
    def median_s(self) -> float:
        return math.exp(self.mu)

    @cached_property
    def mean_s(self) -> float:
        return math.exp(self.mu + self.sigma * self.sigma / 2)

    def survival(self, t: float) -> float:
        if t <= 0:
            return 1.0
        return 0.5 * math.erfc((math.log(t) - self.mu) / (self.sigma * math.sqrt(2)))

    def ends_within(self, elapsed_s: float, more_s: Sequence[float]) -> list[float]:
        """Probability that something which has lasted `elapsed_s` ends within each of `more_s`
        more seconds."""
        out = [0.0] * len(more_s)
        alive: float | None = None
        for k, more in enumerate(more_s):
            if more <= 0:
                continue
            if alive is None:
                alive = self.survival(elapsed_s)
            if alive < _NEGLIGIBLE:
                out[k] = 1.0  # far beyond anything seen: it is about to end
            else:
                out[k] = 1.0 - self.survival(elapsed_s + more) / alive
        return out


# -- live statistics of a campaign -----------------------------------------------------------------


class _DecayingSums:
    """Sums whose terms halve in weight every `half_life_s` of the campaign's active time: the
    clock advances by at most `max_gap_s` between two events, so a pause (a night, a paused
    campaign) does not make it forget itself. A term is stored with the weight
    2 ** (clock / half_life_s), which grows, so recording stays O(1); reading scales by the
    weight of the latest event. Only ratios of these sums are used."""

    def __init__(self, size: int, half_life_s: float, max_gap_s: float = 60.0) -> None:
        if not (half_life_s > 0 and math.isfinite(half_life_s)):
            raise ValueError(f"half_life_s must be > 0, got {half_life_s}")
        self.half_life_s = half_life_s
        self.max_gap_s = max_gap_s
        self.values = [0.0] * size
        self._clock = 0.0  # active seconds since the first event, less what rescaling removed
        self._latest: float | None = None  # time of the latest event

    def weight(self, at: float) -> float:
        """The weight of a term recorded at `at`; rescales everything when it grows too big."""
        if self._latest is None:
            self._latest = at
        if at >= self._latest:
            self._clock += min(at - self._latest, self.max_gap_s)
            self._latest = at
            when = self._clock
        else:
            when = self._clock - (self._latest - at)  # late news weighs by its age
        if self._clock / self.half_life_s > _RESCALE_AFTER:
            f = 2.0 ** -(self._clock / self.half_life_s)
            self.values = [v * f for v in self.values]
            when -= self._clock
            self._clock = 0.0
        return float(2.0 ** (when / self.half_life_s))

    def scale(self) -> float:
        """Turns stored sums into weights as of the latest event (whose terms weigh 1)."""
        return float(2.0 ** -(self._clock / self.half_life_s))


def _ring_bin(ring_s: float) -> int:
    return min(RING_BINS - 1, max(0, int(ring_s)))


def _lognormal_bins(median_s: float, spread: float, weight: float) -> list[float]:
    """`weight` spread over the one-second ring bins like a lognormal."""
    law = Lognormal.from_median(median_s, spread)
    edges = [law.survival(float(k)) for k in range(RING_BINS)] + [0.0]
    return [weight * (edges[k] - edges[k + 1]) for k in range(RING_BINS)]


@dataclass(frozen=True)
class CampaignEstimates:
    """What `CampaignStatistics` has learnt, frozen for one pacing decision."""

    answer_rate: float  # live answers per dial
    live_ring: tuple[float, ...]  # P(ring time >= k s | live answer), k = 0 .. RING_BINS
    other_ring: tuple[float, ...]  # the same for every other outcome
    time_to_answer_s: float  # dial to live answer, median
    time_to_other_s: float  # dial to any other end (busy, machine, no answer, failure), median
    last_answer_s: float  # dial to live answer, 98th percentile
    talk: Lognormal
    wrap_up: Lognormal
    # How many dials answer_rate rests on (time-weighted, the prior's weight included): its
    # uncertainty, beta(rate x evidence, (1 - rate) x evidence).
    answer_evidence: float = 4.0

    @property
    def handle_mean_s(self) -> float:
        return self.talk.mean_s + self.wrap_up.mean_s

    def answered_within(self, elapsed_s: float, more_s: float) -> float:
        """Probability that a dial which will be answered live, and has rung `elapsed_s`, is
        answered within `more_s` more seconds."""
        alive = _survival_at(self.live_ring, elapsed_s)
        if alive <= 0:
            return 1.0
        return 1.0 - _survival_at(self.live_ring, elapsed_s + more_s) / alive

    def slot_ends_s(self, connect_window_s: float) -> tuple[float, ...]:
        """The ends of the slots in which the next seconds are looked at, from now: equal
        slots, no shorter than the connect window, the last one ending when nearly every live
        answer of a dial placed now has come."""
        horizon = max(self.last_answer_s, connect_window_s, 1.0)
        count = max(1, min(_MAX_SLOTS, math.floor(horizon / max(connect_window_s, 1e-9))))
        return tuple(horizon * (k + 1) / count for k in range(count))

    def live_given_ringing(self, elapsed_s: float, answer_rate: float | None = None) -> float:
        """Probability that a dial still ringing after `elapsed_s` ends in a live answer (at the
        estimated answer rate, or at `answer_rate`)."""
        rate = self.answer_rate if answer_rate is None else answer_rate
        live = rate * _survival_at(self.live_ring, elapsed_s)
        other = (1.0 - rate) * _survival_at(self.other_ring, elapsed_s)
        if live + other <= 0:
            return 0.0
        return live / (live + other)

    def answer_rate_nodes(self, dials: int) -> tuple[float, ...]:
        """Answer rates to average over when deciding about `dials` dials at once. While those
        dials are few next to the evidence, the estimate alone: the count of their answers is
        then nearly binomial. Otherwise the rate is uncertain for all of them together, which
        spreads their count far wider than a binomial: five equally likely rates from the
        rate's posterior (beta, taken as normal on the logit scale)."""
        if dials <= _RATE_SETTLED * self.answer_evidence:
            return (self.answer_rate,)
        a = self.answer_rate * self.answer_evidence
        b = self.answer_evidence - a
        centre, spread = math.log(a / b), math.sqrt(1.0 / a + 1.0 / b)
        return tuple(1.0 / (1.0 + math.exp(-(centre + z * spread))) for z in _NORMAL_FIFTHS)

    def free_within(self, agent: BusyAgent, seconds: Sequence[float]) -> list[float]:
        """Probability that a busy agent is free within each of `seconds`. A talking agent
        still has the wrap-up ahead, taken at its mean (which errs towards later at short
        horizons)."""
        if agent.wrapping_up:
            return self.wrap_up.ends_within(agent.elapsed_s, seconds)
        wrap = self.wrap_up.mean_s
        return self.talk.ends_within(agent.elapsed_s, [s - wrap for s in seconds])


def _survival_at(table: Sequence[float], t: float) -> float:
    if t <= 0:
        return table[0]
    k = int(t)
    if k >= len(table) - 1:
        return table[-1]
    frac = t - k
    return table[k] + (table[k + 1] - table[k]) * frac


class CampaignStatistics:
    """Live estimates for one campaign: answer rate per dial, ring time to a live answer and to
    any other outcome, talk time and wrap-up time. Fed with events and their times (seconds on a
    clock that only moves forward); recent events weigh more (half-lives `dial_half_life_s` and
    `handle_half_life_s` of active time), and the priors weigh as a fixed number of
    observations."""

    def __init__(
        self,
        priors: PacingPriors | None = None,
        *,
        dial_half_life_s: float = 900.0,
        handle_half_life_s: float = 1800.0,
    ) -> None:
        self.priors = priors or PacingPriors()
        p = self.priors
        # dials: [dials, live answers] then the live and the other ring-time histograms
        self._dials = _DecayingSums(2 + 2 * RING_BINS, dial_half_life_s)
        self._talk = _DecayingSums(3, handle_half_life_s)  # weight, sum ln, sum ln^2
        self._wrap = _DecayingSums(3, handle_half_life_s)
        self._prior_live = _lognormal_bins(p.time_to_answer_s, p.ring_spread, p.weight)
        self._prior_other = _lognormal_bins(p.time_to_other_s, p.ring_spread, p.weight)
        self._cached: CampaignEstimates | None = None

    def record_dial(self, outcome: DialOutcome, ring_s: float, at: float) -> None:
        """A dial placed `ring_s` before `at` ended its ringing with `outcome`."""
        w = self._dials.weight(at)
        v = self._dials.values
        v[0] += w
        if outcome is DialOutcome.LIVE:
            v[1] += w
            v[2 + _ring_bin(ring_s)] += w
        else:
            v[2 + RING_BINS + _ring_bin(ring_s)] += w
        self._cached = None

    def record_talk(self, talk_s: float, at: float) -> None:
        """A connected call ended after `talk_s` of conversation."""
        self._add_log(self._talk, talk_s, at)

    def record_wrap_up(self, wrap_up_s: float, at: float) -> None:
        """An agent finished wrap-up after `wrap_up_s`."""
        self._add_log(self._wrap, wrap_up_s, at)

    def _add_log(self, sums: _DecayingSums, seconds: float, at: float) -> None:
        x = math.log(max(seconds, 1.0))  # a call of a second or less tells as much as one second
        w = sums.weight(at)
        sums.values[0] += w
        sums.values[1] += w * x
        sums.values[2] += w * x * x
        self._cached = None

    def estimates(self) -> CampaignEstimates:
        if self._cached is None:
            self._cached = self._estimate()
        return self._cached

    def _estimate(self) -> CampaignEstimates:
        p = self.priors
        s = self._dials.scale()
        v = self._dials.values
        dials, live = v[0] * s, v[1] * s
        answer_rate = (p.answer_rate * p.answer_weight + live) / (p.answer_weight + dials)
        live_bins = [a + b * s for a, b in zip(self._prior_live, v[2 : 2 + RING_BINS], strict=True)]
        other_bins = [a + b * s for a, b in zip(self._prior_other, v[2 + RING_BINS :], strict=True)]
        median, last = _quantiles(live_bins, (0.5, _LAST_ANSWER_QUANTILE))
        return CampaignEstimates(
            answer_rate=answer_rate,
            live_ring=_survival_table(live_bins),
            other_ring=_survival_table(other_bins),
            time_to_answer_s=median,
            time_to_other_s=_quantiles(other_bins, (0.5,))[0],
            last_answer_s=last,
            talk=_fit_lognormal(self._talk, p.talk_s, p.talk_spread, p.weight),
            wrap_up=_fit_lognormal(self._wrap, p.wrap_up_s, p.wrap_up_spread, p.weight),
            answer_evidence=p.answer_weight + dials,
        )


def _survival_table(bins: Sequence[float]) -> tuple[float, ...]:
    total = sum(bins)
    out = [0.0] * (len(bins) + 1)
    acc = 0.0
    for k in range(len(bins) - 1, -1, -1):
        acc += bins[k]
        out[k] = acc / total
    return tuple(out)


def _quantiles(bins: Sequence[float], levels: Iterable[float]) -> tuple[float, ...]:
    """Quantiles of the ring time, each bin spread evenly over its second."""
    total = sum(bins)
    out: list[float] = []
    for level in levels:
        goal = level * total
        acc = 0.0
        for k, b in enumerate(bins):
            if acc + b >= goal and b > 0:
                out.append(k + (goal - acc) / b)
                break
            acc += b
        else:
            out.append(float(len(bins)))
    return tuple(out)


def _fit_lognormal(sums: _DecayingSums, median_s: float, spread: float, weight: float) -> Lognormal:
    s = sums.scale()
    w, sx, sxx = (x * s for x in sums.values)
    mu0 = math.log(median_s)
    n = weight + w
    mu = (weight * mu0 + sx) / n
    second = (weight * (spread * spread + mu0 * mu0) + sxx) / n
    sigma = math.sqrt(max(second - mu * mu, 1e-4))
    return Lognormal(mu, sigma)


# -- the decision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BusyAgent:
    """An agent of the campaign on a call (`elapsed_s` of talk so far) or in wrap-up
    (`elapsed_s` of wrap-up so far)."""

    elapsed_s: float
    wrapping_up: bool = False


@dataclass(frozen=True)
class PacingSettings:
    """A campaign's pacing. `abandon_target` is abandoned calls over live answers (0.03: 3 %).
    `max_lines_per_agent` bounds every call of the campaign (ringing, answered and waiting, or
    talking) per agent staffed. `balance` in [-1, 1] trades agent wait (positive: dial harder)
    against customer wait (negative: spend less of the abandon allowance; -1 is progressive)."""

    mode: DialMode = DialMode.PROGRESSIVE
    abandon_target: float = 0.03
    max_lines_per_agent: float = 3.0
    balance: float = 0.0
    connect_window_s: float = 2.0
    kill_switch: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.abandon_target < 1:
            raise ValueError(f"abandon_target must be in [0, 1), got {self.abandon_target}")
        if not (self.max_lines_per_agent >= 1 and math.isfinite(self.max_lines_per_agent)):
            raise ValueError(f"max_lines_per_agent must be >= 1, got {self.max_lines_per_agent}")
        if not -1 <= self.balance <= 1:
            raise ValueError(f"balance must be in [-1, 1], got {self.balance}")
        if not (self.connect_window_s >= 0 and math.isfinite(self.connect_window_s)):
            raise ValueError(f"connect_window_s must be >= 0, got {self.connect_window_s}")


def window_after_agent_ring(connect_window_s: float, agent_ring_s: float) -> float:
    """What is left of the connect window once a ringing agent's phone has rung: the customer
    hears nobody while it rings, so an agent counts as free for an answer only if they are free
    that much sooner. Agents on a nailed-up line have no ring time (0 s)."""
    return max(0.0, connect_window_s - max(0.0, agent_ring_s))


@dataclass(frozen=True)
class PacingSnapshot:
    """What the dialer sees now. `customers_waiting` answered live and have no agent yet;
    `ringing_s` lists how long each dial in progress has rung; `headroom` comes from the
    campaign's `ComplianceGauge` (1: the whole abandon allowance is left, 0: none)."""

    agents_free: int
    estimates: CampaignEstimates
    busy: tuple[BusyAgent, ...] = ()
    ringing_s: tuple[float, ...] = ()
    customers_waiting: int = 0
    headroom: float = 1.0

    def __post_init__(self) -> None:
        if self.agents_free < 0 or self.customers_waiting < 0:
            raise ValueError("agents_free and customers_waiting must be >= 0")
        object.__setattr__(self, "busy", tuple(self.busy))
        object.__setattr__(self, "ringing_s", tuple(self.ringing_s))

    @property
    def agents_staffed(self) -> int:
        return self.agents_free + len(self.busy)

    @property
    def lines_in_use(self) -> int:
        """Calls of the campaign: ringing, answered and waiting, or talking to an agent."""
        talking = sum(1 for b in self.busy if not b.wrapping_up)
        return len(self.ringing_s) + self.customers_waiting + talking


@dataclass(frozen=True)
class PacingDecision:
    """How many dials to start, for the dialer, and why, for its log. The expected figures are
    those of a predictive decision (0 in the other modes)."""

    calls: int  # new dials to place now
    expected_answers: float  # live answers expected from the waiting, the ringing and the new calls
    expected_abandons: float  # of those, expected to find no agent within the connect window
    aim: float  # the abandon rate this decision was held to
    reason: str


def abandon_aim(settings: PacingSettings, headroom: float) -> float:
    """The abandon rate one predictive decision may expect: the target, cut by a negative
    balance, and cut further, down to 0 (progressive), as the compliance gauge's headroom
    runs out. The cut starts at half the allowance used (balance 0) and at 75 % used
    (balance +1)."""
    share = 1.0 + min(settings.balance, 0.0)
    slow_from = 0.5 - 0.25 * max(settings.balance, 0.0)
    return settings.abandon_target * share * min(1.0, max(0.0, headroom) / slow_from)


def progressive_calls(snapshot: PacingSnapshot) -> int:
    """One line per free agent: a dial for each free agent that no ringing or waiting call
    already has."""
    return max(0, snapshot.agents_free - snapshot.customers_waiting - len(snapshot.ringing_s))


def decide(snapshot: PacingSnapshot, settings: PacingSettings) -> PacingDecision:
    """How many new dials to start now, and why. See the module docstring."""
    if settings.kill_switch:
        return PacingDecision(0, 0.0, 0.0, 0.0, "kill switch")
    if settings.mode is DialMode.PREVIEW:
        return PacingDecision(0, 0.0, 0.0, 0.0, "preview: the agent dials")
    if snapshot.agents_staffed == 0:
        return PacingDecision(0, 0.0, 0.0, 0.0, "no agent staffed")
    room = math.floor(settings.max_lines_per_agent * snapshot.agents_staffed + 1e-9)
    room -= snapshot.lines_in_use
    if settings.mode is DialMode.PROGRESSIVE:
        calls = max(0, min(progressive_calls(snapshot), room))
        return PacingDecision(calls, 0.0, 0.0, 0.0, "progressive")
    return _predictive(snapshot, settings, max(0, room))


def calls_to_place(snapshot: PacingSnapshot, settings: PacingSettings) -> int:
    return decide(snapshot, settings).calls


def _predictive(snapshot: PacingSnapshot, settings: PacingSettings, room: int) -> PacingDecision:
    est = snapshot.estimates
    aim = abandon_aim(settings, snapshot.headroom)
    window = settings.connect_window_s
    ends = est.slot_ends_s(window)
    starts = (0.0, *ends[:-1])
    # Agents freeing up in each slot: one free by the middle of a slot plus the connect window
    # can take an answer of that slot (on average over the slot).
    frees = _Counts(len(ends))
    horizons = [(a + b) / 2 + window for a, b in zip(starts, ends, strict=True)]
    for agent in snapshot.busy:
        frees.add(est.free_within(agent, horizons))
    free_counts = frees.per_slot()
    # Calls dialed together (same ring time so far) are one batch, spread over the slots.
    batches: dict[float, int] = {}
    for r in snapshot.ringing_s:
        key = round(r * 2) / 2
        batches[key] = batches.get(key, 0) + 1
    placed = [(r, _spread(n, [est.answered_within(r, b) for b in ends[:-1]])) for r, n in batches.items()]
    new_dials = [1.0 - _survival_at(est.live_ring, b) for b in ends[:-1]]
    chains: list[_Chain] = []
    for rate in est.answer_rate_nodes(len(snapshot.ringing_s) + snapshot.agents_free):
        # live answers among the ringing calls placed in each slot
        slots: list[tuple[int, list[float]]] = [(0, [1.0]) for _ in ends]
        eventually = 0.0
        for r, counts in placed:
            live = est.live_given_ringing(r, rate)
            for k, count in enumerate(counts):
                if count:
                    slots[k] = _convolve(*slots[k], *_binomial(count, live))
                    eventually += live * count
        chains.append(
            _Chain(snapshot.agents_free, snapshot.customers_waiting, free_counts, slots, rate, eventually)
        )

    results: dict[int, tuple[float, float]] = {}

    def expected(calls: int) -> tuple[float, float]:
        """Expected live answers and abandons, over the answer rates, with `calls` new dials."""
        if calls not in results:
            spread = _spread(calls, new_dials)
            answers = math.fsum(c.answers + calls * c.rate for c in chains)
            abandons = math.fsum(c.losses(spread) for c in chains)
            results[calls] = (answers / len(chains), abandons / len(chains))
        return results[calls]

    def acceptable(calls: int) -> bool:
        answers, abandons = expected(calls)
        return abandons <= aim * answers + 1e-12

    # The largest count that keeps expected abandons within the aim. Abandons over answers grow
    # with the count, so: double the step until it fails, then halve the gap. Progressive's
    # count is always allowed (its dials each have a free agent waiting).
    floor = min(progressive_calls(snapshot), room)
    good, bad = floor, None
    step = 1
    while bad is None and good < room:
        trial = min(room, good + step)
        if acceptable(trial):
            good, step = trial, step * 2
        else:
            bad = trial
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if acceptable(mid):
            good = mid
        else:
            bad = mid
    answers, abandons = expected(good)
    reason = "predictive" if aim > 0 else "predictive held to progressive: no abandon allowance left"
    return PacingDecision(good, answers, abandons, aim, reason)


def _spread(count: int, by_end: Sequence[float]) -> list[int]:
    """How many of `count` calls dialed together are answered in each slot, if answered:
    the i-th at the (i + 1/2) / count quantile of the time of answer (`by_end`: the chance of
    having been answered by the end of each slot but the last, which takes the rest)."""
    out = [0] * (len(by_end) + 1)
    k = 0
    for i in range(count):
        level = (i + 0.5) / count
        while k < len(by_end) and by_end[k] < level:
            k += 1
        out[k] += 1
    return out


class _Counts:
    """Agents freeing up per slot, each agent given as its chance of being free by the end of
    each slot. The count so far has the sum of those chances as mean and the sum of c (1 - c)
    as variance; a slot's count is then drawn with the growth of both, so that the counts so
    far keep their true mean and spread."""

    def __init__(self, slots: int) -> None:
        self._mean = [0.0] * slots  # of the count so far
        self._var = [0.0] * slots

    def add(self, by_end: Sequence[float]) -> None:
        for k, c in enumerate(by_end):
            if c > 0:
                self._mean[k] += c
                self._var[k] += c * (1.0 - c)

    def per_slot(self) -> list[tuple[int, list[float]]]:
        out = []
        mean_before = var_before = 0.0
        for mean, var in zip(self._mean, self._var, strict=True):
            out.append(_count(mean - mean_before, var - var_before))
            mean_before, var_before = mean, var
        return out


class _Chain:
    """Expected live answers that find no agent, at one answer rate: a Markov chain over the
    slots on the number of idle agents, starting at `free`. In each slot agents free up
    (`frees`, a count per slot), the customers already `waiting` need an agent in the first,
    and the live answers of the calls placed in the slot (`ringing`, a count per slot, plus the
    new dials there, each live at `rate`) each take an idle agent; those beyond the idle agents
    are lost. Within a slot the order does not matter: (answers - idle agents)+ are lost. The
    states before each slot are kept, so that trying another count of new dials starts at the
    first slot one of them reaches."""

    def __init__(
        self,
        free: int,
        waiting: int,
        frees: Sequence[tuple[int, list[float]]],
        ringing: Sequence[tuple[int, list[float]]],
        rate: float,
        eventually: float,
    ) -> None:
        self.frees = frees
        self.ringing = ringing
        self.waiting = waiting
        self.rate = rate
        self.answers = waiting + eventually  # live answers expected without new dials
        self._before: list[tuple[int, list[float], float]] = [(free, [1.0], 0.0)]

    def losses(self, new: Sequence[int]) -> float:
        first = next((k for k, n in enumerate(new) if n), len(new))
        while len(self._before) <= first:
            k = len(self._before) - 1
            self._before.append(self._slot(k, *self._before[k], 0))
        lowest, pmf, lost = self._before[first]
        for k in range(first, len(new)):
            lowest, pmf, lost = self._slot(k, lowest, pmf, lost, new[k])
        return lost

    def _slot(
        self, k: int, lowest: int, pmf: list[float], lost: float, new: int
    ) -> tuple[int, list[float], float]:
        if k == len(self.frees):
            return lowest, pmf, lost
        lowest, pmf = _convolve(lowest, pmf, *self.frees[k])
        least, chances = self.ringing[k]
        if k == 0:
            least += self.waiting
        if new:
            least, chances = _convolve(least, chances, *_binomial(new, self.rate))
        lowest, pmf = _convolve(lowest, pmf, -(least + len(chances) - 1), chances[::-1])
        lowest, pmf, gone = _clamp(lowest, pmf)
        return lowest, pmf, lost + gone


def _clamp(lowest: int, pmf: list[float]) -> tuple[int, list[float], float]:
    """Idle agents below 0 are answers lost: returns the distribution at 0 or more and the
    expected loss."""
    if lowest >= 0:
        return lowest, pmf, 0.0
    below = -lowest  # pmf[i] is P(idle = lowest + i)
    if below >= len(pmf):
        return 0, [math.fsum(pmf)], math.fsum((below - i) * m for i, m in enumerate(pmf))
    lost = math.fsum((below - i) * pmf[i] for i in range(below))
    return 0, [math.fsum(pmf[: below + 1]), *pmf[below + 1 :]], lost


def _trim(lowest: int, pmf: list[float]) -> tuple[int, list[float]]:
    start, end = 0, len(pmf)
    while start < end - 1 and pmf[start] < _NEGLIGIBLE:
        start += 1
    while end > start + 1 and pmf[end - 1] < _NEGLIGIBLE:
        end -= 1
    return lowest + start, pmf[start:end]


def _count(mean: float, var: float) -> tuple[int, list[float]]:
    """A count with this mean and about this variance, as (lowest, pmf): binomial, or Poisson
    when the variance is as large as the mean. An integer count of mean m has a variance of
    at least that of a Bernoulli(m) below 1, which the fit then gives."""
    if mean <= _NEGLIGIBLE:
        return 0, [1.0]
    p = 1.0 - min(max(var, 0.0), mean) / mean
    if p < 1e-3:
        return _poisson(mean)
    n = max(1, round(mean / p), math.ceil(mean))
    return _binomial(n, min(1.0, mean / n))


def _binomial(n: int, p: float) -> tuple[int, list[float]]:
    """Binomial(n, p) as (lowest, pmf), negligible tails dropped; built from the mode both ways."""
    if p <= 0.0 or n == 0:
        return 0, [1.0]
    if p >= 1.0:
        return n, [1.0]
    mode = min(n, math.floor((n + 1) * p))
    log_q = math.log1p(-p)
    at_mode = math.exp(
        math.lgamma(n + 1)
        - math.lgamma(mode + 1)
        - math.lgamma(n - mode + 1)
        + mode * math.log(p)
        + (n - mode) * log_q
    )
    ratio = p / (1.0 - p)
    below = [at_mode]
    k = mode
    while k > 0 and below[-1] > _NEGLIGIBLE:
        below.append(below[-1] * k / ((n - k + 1) * ratio))
        k -= 1
    above: list[float] = []
    term, k = at_mode, mode
    while k < n and term > _NEGLIGIBLE:
        term *= (n - k) * ratio / (k + 1)
        k += 1
        above.append(term)
    return mode - len(below) + 1, below[::-1] + above


def _poisson(mean: float) -> tuple[int, list[float]]:
    """Poisson(mean) as (lowest, pmf), negligible tails dropped; built from the mode both ways
    so that a large mean does not underflow."""
    mode = math.floor(mean)
    at_mode = math.exp(mode * math.log(mean) - mean - math.lgamma(mode + 1))
    below = [at_mode]
    n = mode
    while n > 0 and below[-1] > _NEGLIGIBLE:
        below.append(below[-1] * n / mean)
        n -= 1
    above: list[float] = []
    term, n = at_mode, mode
    while term > _NEGLIGIBLE:
        n += 1
        term *= mean / n
        above.append(term)
    return mode - len(below) + 1, below[::-1] + above


def _convolve(lo1: int, p1: Sequence[float], lo2: int, p2: Sequence[float]) -> tuple[int, list[float]]:
    """The distribution of the sum of two independent counts, as (lowest, pmf)."""
    if len(p2) == 1:
        return lo1 + lo2, [x * p2[0] for x in p1]
    if len(p1) == 1:
        return lo1 + lo2, [p1[0] * y for y in p2]
    out = [0.0] * (len(p1) + len(p2) - 1)
    for i, x in enumerate(p1):
        if x < _NEGLIGIBLE:
            continue
        for j, y in enumerate(p2):
            out[i + j] += x * y
    return _trim(lo1 + lo2, out)


# -- compliance ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowReading:
    window_s: float
    live_answers: int
    abandoned: int

    @property
    def rate(self) -> float | None:
        """Abandoned over live answers; None before the first live answer."""
        return self.abandoned / self.live_answers if self.live_answers else None


@dataclass(frozen=True)
class ComplianceReading:
    windows: tuple[WindowReading, ...]
    headroom: float  # share of the abandon allowance left in the tightest window, 0 .. 1

    @property
    def worst_rate(self) -> float | None:
        rates = [r for w in self.windows if (r := w.rate) is not None]
        return max(rates) if rates else None


class _RollingCounts:
    """Live answers and abandons in the last `window_s`, in buckets of `bucket_s`."""

    def __init__(self, window_s: float, bucket_s: float) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._buckets: deque[list[int]] = deque()  # [bucket index, answers, abandons], in order
        self.answers = 0
        self.abandons = 0

    def _index(self, at: float) -> int:
        return math.floor(at / self.bucket_s)

    def add(self, at: float, answers: int, abandons: int, now: float) -> None:
        index = self._index(at)
        if index <= self._index(now - self.window_s):
            return  # already outside the window
        b = self._buckets
        if not b or b[-1][0] < index:
            b.append([index, answers, abandons])
        else:
            # Late news (a machine found to be a person): find its bucket, rarely far back.
            pos = len(b) - 1
            while pos > 0 and b[pos][0] > index:
                pos -= 1
            if b[pos][0] == index:
                b[pos][1] += answers
                b[pos][2] += abandons
            else:
                b.insert(pos + 1 if b[pos][0] < index else pos, [index, answers, abandons])
        self.answers += answers
        self.abandons += abandons

    def expire(self, now: float) -> None:
        oldest = self._index(now - self.window_s)
        b = self._buckets
        while b and b[0][0] <= oldest:
            _, answers, abandons = b.popleft()
            self.answers -= answers
            self.abandons -= abandons


DAY_S = 86_400.0


class ComplianceGauge:
    """A campaign's abandon rate over rolling windows (by default 24 h and 30 days), with live
    answers as the denominator. A live answer is connected or abandoned (no agent within the
    connect window; the customer hears the identifying message). An answering-machine false
    positive, a person whom AMD took for a machine and hung up on or left a message for, is
    both a live answer and an abandon, counted at the time of the call whenever it becomes known.

    `headroom` is the share of the allowance left in the tightest window, with the rate taken
    over at least `min_answers` live answers: at the start of a fresh window the first abandons
    weigh as they will once the window has filled, instead of either counting as 100 % or being
    ignored."""

    def __init__(
        self,
        target: float = 0.03,
        *,
        windows_s: Sequence[float] = (DAY_S, 30 * DAY_S),
        min_answers: int = 100,
        bucket_s: float = 60.0,
    ) -> None:
        if not 0 < target < 1:
            raise ValueError(f"target must be in (0, 1), got {target}")
        if not windows_s or any(w <= 0 for w in windows_s):
            raise ValueError("windows_s must list positive durations")
        if bucket_s <= 0 or min_answers < 0:
            raise ValueError("bucket_s must be > 0 and min_answers >= 0")
        self.target = target
        self.min_answers = min_answers
        self._windows = [_RollingCounts(w, bucket_s) for w in windows_s]
        self._now = -math.inf

    def _add(self, at: float, answers: int, abandons: int) -> None:
        self._now = max(self._now, at)
        for w in self._windows:
            w.expire(self._now)
            w.add(at, answers, abandons, self._now)

    def record_connected(self, at: float) -> None:
        """A live answer reached an agent."""
        self._add(at, 1, 0)

    def record_abandoned(self, at: float) -> None:
        """A live answer found no agent within the connect window."""
        self._add(at, 1, 1)

    def record_counts(self, at: float, answers: int, abandons: int) -> None:
        """Several live answers at once (e.g. read back from the database by minute at start)."""
        if answers < 0 or not 0 <= abandons <= answers:
            raise ValueError("need 0 <= abandons <= answers")
        self._add(at, answers, abandons)

    def record_amd_false_positive(self, call_at: float) -> None:
        """The call at `call_at`, classified as a machine, was a person."""
        self._add(call_at, 1, 1)

    def reading(self, now: float) -> ComplianceReading:
        self._now = max(self._now, now)
        readings = []
        headroom = 1.0
        for w in self._windows:
            w.expire(self._now)
            readings.append(WindowReading(w.window_s, w.answers, w.abandons))
            allowance = self.target * max(w.answers, self.min_answers)
            if allowance > 0:
                headroom = min(headroom, 1.0 - w.abandons / allowance)
            elif w.abandons:
                headroom = 0.0
        return ComplianceReading(tuple(readings), max(0.0, headroom))


# -- blending --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundService:
    """The inbound side of a blended team over the last N minutes: calls offered, calls
    answered within the service-level threshold, and callers waiting now."""

    offered: int
    answered_in_time: int
    waiting: int

    def __post_init__(self) -> None:
        if not 0 <= self.answered_in_time <= self.offered or self.waiting < 0:
            raise ValueError("need 0 <= answered_in_time <= offered and waiting >= 0")

    @property
    def service_level_percent(self) -> float | None:
        return 100.0 * self.answered_in_time / self.offered if self.offered else None


def may_take_outbound(inbound: InboundService, target_percent: float) -> bool:
    """Whether blended agents may take outbound work now: only while no inbound caller waits and
    the inbound service level meets its target (a window without inbound calls meets it)."""
    if inbound.waiting > 0:
        return False
    level = inbound.service_level_percent
    return level is None or level >= target_percent


def agents_for_outbound(
    outbound_free: int, blended_free: int, inbound: InboundService, target_percent: float
) -> int:
    """Free agents the dialer may count: its own, plus the blended ones when inbound allows."""
    return outbound_free + (blended_free if may_take_outbound(inbound, target_percent) else 0)
