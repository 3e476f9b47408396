"""Call recording rules: whether a call is recorded, the marked spans of a recording, what the
retention job may delete, and who may listen.

Pure: no I/O, no clock of its own (callers pass times).

- **Which rule applies.** A call is decided by the most specific rule that names it: its
  campaign's (a dialer call), else its queue's, else its direction's (`inbound`, `outbound`),
  else the default. A rule says `all`, `none`, or `sample` with a percentage.
- **Sampling is stable.** A sampled call is chosen from its interaction id, not from a random
  draw: the same call gets the same answer after a restart of the app, in a test, or when the
  decision is asked again after a transfer, and over many calls the share is the percentage.
- **Retention.** Each recording keeps the retention days of the rule that decided it, fixed when
  the recording was made: shortening a queue's retention later applies to new recordings, and the
  job never deletes something its rule promised to keep. 0 days means keep for ever.
- **Spans.** Pauses (an agent's button, the API, a flow node marked sensitive) and holds are
  silence in the file; each is a span [start, end) in seconds from the start of the recording.
  Spans of one kind never overlap: a pause asked for while paused is the same pause.
- **Who may listen.** QA staff, supervisors and admins, every recording; an agent, only
  recordings of calls they talked on, and only where the center allows it
  (`recording.agents_hear_own`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Mode(StrEnum):
    ALL = "all"
    SAMPLE = "sample"
    NONE = "none"


@dataclass(frozen=True)
class Rule:
    mode: Mode = Mode.ALL
    percent: float = 100.0  # for `sample`
    retention_days: int = 90  # 0: keep for ever
    # The caller hears "this call may be recorded" before an agent answers (a call we place: the
    # customer hears it as the agent is joined).
    consent: bool = True


@dataclass(frozen=True)
class Decision:
    record: bool
    source: str  # which rule decided: "campaign:renewals", "queue:general", "direction:inbound", "default"
    retention_days: int


def sampled(interaction_id: str, percent: float) -> bool:
    """Whether this interaction falls in a `percent` sample (stable for the id)."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    digest = hashlib.sha256(interaction_id.encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 10_000  # 0.01 % steps
    return bucket < round(percent * 100)


@dataclass(frozen=True)
class RecordingPolicy:
    default: Rule = Rule()
    queues: Mapping[str, Rule] = field(default_factory=dict)
    campaigns: Mapping[str, Rule] = field(default_factory=dict)
    directions: Mapping[str, Rule] = field(default_factory=dict)

    def rule_for(self, *, queue: str | None, campaign: str | None, direction: str) -> tuple[str, Rule]:
        if campaign is not None and campaign in self.campaigns:
            return f"campaign:{campaign}", self.campaigns[campaign]
        if queue is not None and queue in self.queues:
            return f"queue:{queue}", self.queues[queue]
        if direction in self.directions:
            return f"direction:{direction}", self.directions[direction]
        return "default", self.default

    def decide(
        self,
        interaction_id: str,
        *,
        queue: str | None,
        campaign: str | None = None,
        direction: str = "inbound",
    ) -> Decision:
        source, rule = self.rule_for(queue=queue, campaign=campaign, direction=direction)
        if rule.mode is Mode.NONE:
            record = False
        elif rule.mode is Mode.ALL:
            record = True
        else:
            record = sampled(interaction_id, rule.percent)
        return Decision(record, source, rule.retention_days)

    def consent(self, queue: str, direction: str = "inbound") -> bool:
        """Whether a caller waiting in `queue` hears the consent announcement: the queue may
        record (some or all of its calls) and its rule asks for the announcement."""
        _, rule = self.rule_for(queue=queue, campaign=None, direction=direction)
        return rule.mode is not Mode.NONE and rule.consent

    def announced(
        self, interaction_id: str, *, queue: str | None, campaign: str | None, direction: str
    ) -> bool:
        """Whether the customer of a call we place hears the consent announcement once they
        answer: this call will be recorded (its rule, a sample included, decides it already) and
        that rule asks for the announcement."""
        _, rule = self.rule_for(queue=queue, campaign=campaign, direction=direction)
        decision = self.decide(interaction_id, queue=queue, campaign=campaign, direction=direction)
        return decision.record and rule.consent


class SpanKind(StrEnum):
    PAUSE = "pause"  # secrets: card numbers, passwords
    HOLD = "hold"  # the caller on hold (consultations included)


@dataclass
class Spans:
    """The marked spans of one recording, in seconds from its start."""

    done: list[tuple[SpanKind, float, float]] = field(default_factory=list)
    open: dict[SpanKind, float] = field(default_factory=dict)

    def start(self, kind: SpanKind, at_s: float) -> bool:
        """True if this starts a span (False: one of this kind is already open)."""
        if kind in self.open:
            return False
        self.open[kind] = max(0.0, at_s)
        return True

    def stop(self, kind: SpanKind, at_s: float) -> bool:
        """True if this ended an open span."""
        began = self.open.pop(kind, None)
        if began is None:
            return False
        self.done.append((kind, began, max(began, at_s)))
        return True

    @property
    def silent(self) -> bool:
        """Whether the recording must be silent now (some span is open)."""
        return bool(self.open)

    def close_all(self, at_s: float) -> None:
        for kind in list(self.open):
            self.stop(kind, at_s)

    def as_list(self) -> list[dict[str, object]]:
        return [
            {"kind": k.value, "start_s": round(s, 3), "end_s": round(e, 3)}
            for k, s, e in sorted(self.done, key=lambda x: x[1])
        ]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, object]]) -> Spans:
        spans = cls()
        for item in items:
            kind = SpanKind(str(item["kind"]))
            start = float(str(item["start_s"]))
            end = item.get("end_s")
            if end is None:
                spans.open[kind] = start
            else:
                spans.done.append((kind, start, float(str(end))))
        return spans

    def open_list(self) -> list[dict[str, object]]:
        return [{"kind": k.value, "start_s": round(s, 3), "end_s": None} for k, s in self.open.items()]


def activity_marks(
    caller: Sequence[float],
    center: Sequence[float],
    frame_s: float,
    *,
    quiet: Sequence[tuple[float, float]] = (),
    voiced: float = 0.01,
    long_silence_s: float = 5.0,
    overtalk_s: float = 1.0,
) -> list[dict[str, object]]:
    """Marks for the replay's time line from each channel's level per frame: a long silence
    (neither side above `voiced` for `long_silence_s`, outside the `quiet` spans already marked
    as pauses or holds) and overtalk (both sides at once for `overtalk_s`)."""

    def inside_quiet(t: float) -> bool:
        return any(a <= t < b for a, b in quiet)

    def runs(flags: list[bool], minimum_s: float, kind: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        start: int | None = None
        for i, flag in enumerate([*flags, False]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                if (i - start) * frame_s >= minimum_s:
                    out.append(
                        {"kind": kind, "start_s": round(start * frame_s, 3), "end_s": round(i * frame_s, 3)}
                    )
                start = None
        return out

    n = min(len(caller), len(center))
    silent = [
        caller[i] < voiced and center[i] < voiced and not inside_quiet((i + 0.5) * frame_s) for i in range(n)
    ]
    both = [caller[i] >= voiced and center[i] >= voiced for i in range(n)]
    return runs(silent, long_silence_s, "silence") + runs(both, overtalk_s, "overtalk")


def snap_to_silence(
    spans: Sequence[Mapping[str, object]],
    caller: Sequence[float],
    center: Sequence[float],
    frame_s: float,
    reach_s: float = 1.5,
) -> list[dict[str, object]]:
    """Pauses and holds as the file has them: a muted recording is digital silence (both sides
    exactly 0), and the clock's marks can be off by up to a second where the channel's media
    did not flow evenly (the IVR, between prompts). Each span moves to the run of all-zero
    frames that overlaps it most, within `reach_s`; a span without one stays as marked."""
    n = min(len(caller), len(center))
    runs: list[tuple[float, float]] = []
    start: int | None = None
    for i in range(n + 1):
        zero = i < n and caller[i] == 0 and center[i] == 0
        if zero and start is None:
            start = i
        elif not zero and start is not None:
            runs.append((start * frame_s, i * frame_s))
            start = None
    out: list[dict[str, object]] = []
    for span in spans:
        s, e = float(str(span["start_s"])), float(str(span["end_s"]))
        best, overlap = None, 0.0
        for a, b in runs:
            o = min(b, e + reach_s) - max(a, s - reach_s)
            if o > overlap:
                best, overlap = (a, b), o
        if best is None:
            out.append(dict(span))
        else:
            out.append({**span, "start_s": round(best[0], 3), "end_s": round(best[1], 3)})
    return out


@dataclass(frozen=True)
class Kept:
    """A stored recording as the retention rule sees it."""

    id: str
    started_at: datetime
    retention_days: int


def expired(recordings: Sequence[Kept], now: datetime) -> list[Kept]:
    """The recordings past their retention (0 days: kept for ever)."""
    return [
        r
        for r in recordings
        if r.retention_days > 0 and r.started_at + timedelta(days=r.retention_days) <= now
    ]


def may_listen(*, role: str, agent_id: str | None, parties: Iterable[str], agents_hear_own: bool) -> bool:
    """QA, supervisors and admins hear every recording; an agent only those of their own calls,
    where the center allows it."""
    if role in ("qa", "supervisor", "admin"):
        return True
    if role in ("agent", "expert") and agents_hear_own and agent_id is not None:
        return agent_id in set(parties)
    return False
