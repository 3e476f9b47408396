"""Expected wait of a caller in queue, computed from the live queue. Pure: no clock, no I/O.

`WaitEstimator` is fed three events of one queue and asked one question:

- `record_handle(handle_s, now)`: a call ended after `handle_s` of talk plus wrap-up;
- `record_answer(waited_s, now)`: a caller was connected to an agent after `waited_s` in queue;
- `record_abandon(waited_s, now)`: a caller hung up (or left for voicemail or a callback) after
  `waited_s` in queue;
- `estimate(position, agents_serving, agents_ready, busy_elapsed_s=...)`: the expected wait,
  in seconds from now, of the caller at `position` (1 = next), with an 80 % band; None when it
  cannot be known (nobody serves the queue, or no handle time has been seen yet).

`now` is seconds on any clock that only moves forward (a `datetime.timestamp()` will do); it is
only used to age the statistics, so the answer to `estimate` does not depend on when it is asked.

The model. A caller at `position` with `agents_ready` free agents needs k = position - ready
agents to free up (0 or less: an agent is waiting for them, the estimate is 0). Agents free up
at rate n / h, n the agents serving the queue (ready or busy, wrap-up counting as busy) and h
the mean handle time; every caller still ahead may give up, at rate theta each, theta the
abandonment rate per second of waiting. With j callers ahead the caller moves up one place at
rate n / h + j * theta, and their own patience competes at rate theta; so the wait of a caller
who is answered is a sum of k exponential stages:

    E[wait | answered] = sum over j = 0 .. k-1 of 1 / (n / h + (j + 1) * theta).

This is the queue-length predictor of the M/M/n+M (Erlang A) model, which Ibrahim and Whitt
found to beat predictors built from past delays in many-server queues. Two refinements:

- When the elapsed times of the calls in progress are given (`busy_elapsed_s`, one per busy
  agent), the first stage (until a busy agent frees up) uses them: handle times are taken as
  lognormal (the shape measured in call centers, Brown et al. 2005) with the recent mean and
  variance, each call's remaining time is its conditional mean given how long it has lasted,
  and their rates add up. A call that has run long tends to run longer, so a small team in long
  calls frees up later than the average says.
- Handle time mean and variance, and theta, are exponentially weighted in time (half-life
  `half_life_s`, 30 minutes by default), so the estimate follows a change of shift or of call
  mix within the hour while a burst of short calls does not swing it. theta is the maximum
  likelihood rate for exponential patience: abandons divided by the seconds waited by everyone
  who left the queue (answered or not).

The band (`low_s`, `high_s`) is the 10th and 90th percentile of a gamma law with the model's
mean and variance (the stages' variances plus the uncertainty of h from the number of handle
times behind it); `handle_samples` is that effective number. Announce `seconds`; the band says
how far the caller should trust it.

Why this beats Asterisk's rule. app_queue keeps one number per queue, `holdtime = (3 * holdtime +
newholdtime) / 4`, updated when a caller is connected with how long that caller waited, and
announces holdtime minus the time this caller has already waited, whatever their position. It
reports the past: the wait of whoever was connected last, who joined under the load of minutes
ago. When the queue grows (a burst) every newcomer is told the short waits of the calm before it,
and after the burst the long ones; the tenth caller in line hears the same figure as the first.
Our estimate is read from what decides the wait now: how many are ahead, how many agents work
through them, and how long their calls take. Past waits are deliberately not an input.

Measured (benchmarks/ewt.py, simulated M/G/c queues with abandonment and bursts): for callers
who had to wait, the mean absolute error of what the routing desk announces is 0.62-0.76 of
Asterisk's on the same callers (0.60-0.74 when the calls' elapsed times are passed in too, which
the desk does not do yet); the best any estimator could do from what is visible (an oracle that
knows the simulator's true laws) is 0.58-0.72 there, so what remains is mostly chance.

Limits. Position is taken as given; in a queue ordered by risk (routing.py) a caller of a higher
tier who arrives later may still overtake, which makes the wait longer than announced. Agents
shared with other queues count fully (n is an upper bound on the service rate). Patience is
taken as exponential.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Before enough handle times are seen, their spread is taken as this squared coefficient of
# variation (1 is the exponential), weighted as this many observations.
_PRIOR_CV2 = 1.0
_PRIOR_CV2_WEIGHT = 2.0
_SHORTEST_S = 1e-3  # a mean handle time below this is taken as none at all
_Z90 = 1.2815515655446004  # standard normal 90th percentile


@dataclass(frozen=True)
class WaitEstimate:
    seconds: float  # expected wait from now
    low_s: float  # 10th percentile
    high_s: float  # 90th percentile
    handle_samples: float  # effective number of handle times behind it (time-weighted)


class _Decayed:
    """Sums that halve every `half_life_s`."""

    def __init__(self, half_life_s: float) -> None:
        self.half_life_s = half_life_s
        self.at: float | None = None

    def factor(self, now: float) -> float:
        if self.at is None or now <= self.at:
            return 1.0
        return float(0.5 ** ((now - self.at) / self.half_life_s))

    def advance(self, now: float) -> float:
        f = self.factor(now)
        if self.at is None or now > self.at:
            self.at = now
        return f


class WaitEstimator:
    """Expected wait for one queue: see the module docstring."""

    def __init__(self, *, half_life_s: float = 1800.0) -> None:
        if not half_life_s > 0:
            raise ValueError("half_life_s must be positive")
        self.half_life_s = half_life_s
        self._handles = _Decayed(half_life_s)
        self._w = 0.0  # sum of weights
        self._ww = 0.0  # sum of squared weights (for the effective sample size)
        self._wh = 0.0  # weighted sum of handle times
        self._whh = 0.0  # weighted sum of squared handle times
        self._waits = _Decayed(half_life_s)
        self._abandons = 0.0
        self._exposure_s = 0.0  # seconds waited by everyone who left the queue

    # -- events ------------------------------------------------------------------------------------

    def record_handle(self, handle_s: float, now: float) -> None:
        """A call of this queue ended after `handle_s` of talk and wrap-up."""
        h = max(0.0, handle_s)
        f = self._handles.advance(now)
        self._w = self._w * f + 1.0
        self._ww = self._ww * f * f + 1.0
        self._wh = self._wh * f + h
        self._whh = self._whh * f + h * h

    def record_answer(self, waited_s: float, now: float) -> None:
        """A caller was connected to an agent after `waited_s` in queue."""
        f = self._waits.advance(now)
        self._abandons *= f
        self._exposure_s = self._exposure_s * f + max(0.0, waited_s)

    def record_abandon(self, waited_s: float, now: float) -> None:
        """A caller left the queue unanswered after `waited_s`."""
        f = self._waits.advance(now)
        self._abandons = self._abandons * f + 1.0
        self._exposure_s = self._exposure_s * f + max(0.0, waited_s)

    # -- what has been learnt ----------------------------------------------------------------------

    @property
    def handle_mean_s(self) -> float | None:
        """Time-weighted mean handle time; None before the first call has ended."""
        return self._wh / self._w if self._w > 0 else None

    @property
    def handle_cv2(self) -> float:
        """Squared coefficient of variation of handle time, shrunk towards 1 while data is scarce."""
        mean = self.handle_mean_s
        if mean is None or mean < _SHORTEST_S:
            return _PRIOR_CV2
        var = max(0.0, self._whh / self._w - mean * mean)
        return (var / (mean * mean) * self._w + _PRIOR_CV2 * _PRIOR_CV2_WEIGHT) / (
            self._w + _PRIOR_CV2_WEIGHT
        )

    @property
    def handle_samples(self) -> float:
        return self._w * self._w / self._ww if self._ww > 0 else 0.0

    @property
    def abandon_rate(self) -> float:
        """Abandons per second of waiting (theta); 0 until someone has given up. Each abandon
        counts as at least a second of waiting, so a hang-up at once cannot make it infinite."""
        if self._abandons <= 0:
            return 0.0
        return self._abandons / max(self._exposure_s, self._abandons)

    # -- the question ------------------------------------------------------------------------------

    def estimate(
        self,
        position: int,
        agents_serving: int,
        agents_ready: int = 0,
        *,
        busy_elapsed_s: Sequence[float] | None = None,
    ) -> WaitEstimate | None:
        """Expected wait from now of the caller at `position` (1 = next) when `agents_serving`
        agents (ready or busy) serve the queue and `agents_ready` of them are free.
        `busy_elapsed_s`, if known, lists how long each call in progress has lasted."""
        if position < 1:
            raise ValueError("position starts at 1")
        if not 0 <= agents_ready <= agents_serving:
            raise ValueError("need 0 <= agents_ready <= agents_serving")
        if agents_serving == 0:
            return None
        samples = self.handle_samples
        needed = position - agents_ready
        if needed <= 0:
            return WaitEstimate(0.0, 0.0, 0.0, samples)
        h = self.handle_mean_s
        if h is None:
            return None
        if h < _SHORTEST_S:
            return WaitEstimate(0.0, 0.0, 0.0, samples)
        cv2 = self.handle_cv2
        service = agents_serving / h
        theta = self.abandon_rate
        first = service
        if busy_elapsed_s and agents_ready == 0:
            first = _first_free_rate(busy_elapsed_s, h, cv2) or service
        mean, second = _stages(needed - 1, first, service, theta)
        var = max(0.0, second - mean * mean)
        # The mean handle time is itself uncertain; the wait scales with it.
        rel = cv2 / samples if samples > 0 else 1.0
        var += mean * mean * rel
        low, high = _gamma_band(mean, var)
        return WaitEstimate(mean, low, high, samples)


def _stages(ahead: int, first: float, service: float, theta: float) -> tuple[float, float]:
    """First and second moments of the wait of an answered caller with `ahead` callers before
    them. Until a call in progress ends agents free up at rate `first`, then at `service`; each
    caller ahead leaves at rate `theta`, and the caller's own patience (also `theta`) shortens
    every stage of the waits that end in an answer. With first == service this is the sum of
    1 / (service + (j + 1) * theta) over j < ahead + 1."""
    # First and second moments of the remaining wait with j ahead, before (`pending`) and after
    # (`normal`) the first call in progress ends; j = -1 is answered.
    normal = pending = (0.0, 0.0)
    for j in range(ahead + 1):
        t = 1.0 / (service + (j + 1) * theta)
        after = (t + normal[0], 2 * t * t + 2 * t * normal[0] + normal[1])
        # Before: that call ends (-> j - 1 ahead, normal) or one ahead leaves (-> j - 1, pending).
        out = first + j * theta
        t = 1.0 / (out + theta)
        p = first / out
        m1 = p * normal[0] + (1 - p) * pending[0]
        m2 = p * normal[1] + (1 - p) * pending[1]
        pending = (t + m1, 2 * t * t + 2 * t * m1 + m2)
        normal = after
    return pending


def _lognormal(mean: float, cv2: float) -> tuple[float, float]:
    sigma2 = math.log1p(cv2)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)


def _phi_upper(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def _remaining_s(elapsed: float, mu: float, sigma: float, mean: float) -> float:
    """E[S - a | S > a] for S lognormal(mu, sigma) with mean `mean`."""
    if elapsed <= 0:
        return mean
    z = (math.log(elapsed) - mu) / sigma
    survive = _phi_upper(z)
    if survive < 1e-12:
        # Far in the tail: the lognormal's mean residual life grows about like a / z.
        return elapsed * sigma / max(z - sigma, 1.0)
    partial = mean * _phi_upper(z - sigma)  # E[S; S > a]
    return max(0.0, partial / survive - elapsed)


def _first_free_rate(busy_elapsed_s: Sequence[float], mean: float, cv2: float) -> float | None:
    """Rate at which the first of the calls in progress ends, each taken as exponential with its
    own conditional remaining mean (the rates add up); None without calls."""
    mu, sigma = _lognormal(mean, cv2)
    rate = 0.0
    for a in busy_elapsed_s:
        r = _remaining_s(max(0.0, a), mu, sigma, mean)
        rate += 1.0 / max(r, 1e-3)
    return rate if rate > 0 else None


def _gamma_band(mean: float, var: float) -> tuple[float, float]:
    """10th and 90th percentiles of the gamma law with this mean and variance
    (Wilson-Hilferty)."""
    if mean <= 0:
        return 0.0, 0.0
    if var <= 0:
        return mean, mean
    shape = mean * mean / var
    scale = var / mean
    c = 1.0 / (9.0 * shape)
    lo = shape * max(0.0, 1.0 - c - _Z90 * math.sqrt(c)) ** 3 * scale
    hi = shape * (1.0 - c + _Z90 * math.sqrt(c)) ** 3 * scale
    return lo, hi


def next_announcement_in(waited_s: float, every_s: float) -> float:
    """Seconds until a waiting caller is next told their place and wait: every `every_s` from
    their entry in line, not from the end of the last announcement (which turned 30 s into
    about 50); a moment passed while one was playing is skipped. 0 `every_s`: never (inf)."""
    if every_s <= 0:
        return math.inf
    return every_s - max(0.0, waited_s) % every_s
