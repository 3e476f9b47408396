"""Replaying a recorded call against a flow, for regression: the rules, without I/O.

A recorded call's events (`interaction_events`) say which flow nodes the caller went through
(`node`), what they pressed or said there (`dtmf`, `language`, `collected`, `invalid_entry`,
`menu_choice`...) and how it ended. From them:

- `plan_of` makes the replay's script: per node, the keys to send, each *relative to when the
  node was entered* (a prompt that became longer or shorter moves the node's start, not the
  caller's reaction to it), the span of the IVR recording's caller channel heard in that node,
  and when the caller hung up, if they did;
- `journey_of` reads the path (nodes and choices) and the outcome, from either call;
- `compare` says whether two journeys match, and `render` writes one line per call, or the
  recorded and the replayed path under each other with the first difference marked.

Replayed calls are marked by a token in a SIP header (`sign` / `verify`): an HMAC with the
center's API token, for one interaction, one caller and number, until a time, so nobody on the
carrier's side can hide a call from the reports by sending the header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

HEADER = "X-Lianluo-Replay"
# What a token may hold (the dialplan filters the header to these characters too).
TOKEN_CHARS = re.compile(r"^[0-9a-f.]{1,200}$")
# Where the flow stops a replayed call: the outcome is known, nobody must be rung.
STOP_TYPES = frozenset({"queue", "voicemail", "fax"})


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


# -- the marker -------------------------------------------------------------------------------


def sign(secret: str, of: str, ani: str, dnis: str, expires: int, nonce: str) -> str:
    """The header value marking a replay of interaction `of` (a uuid's 32 hex digits), placed from `ani` to
    `dnis`, valid until `expires` (Unix seconds)."""
    mac = _mac(secret, of, ani, dnis, expires, nonce)
    return f"{of}.{expires}.{nonce}.{mac}"


@dataclass(frozen=True)
class Marker:
    of: str  # the recorded interaction replayed
    nonce: str  # finds the new interaction


def verify(secret: str, token: str, ani: str, dnis: str, now: float) -> Marker | None:
    """The replay marker in a header value, if it is genuine, for this caller and number, and
    not expired; None otherwise (the call is then an ordinary call)."""
    if not secret or not TOKEN_CHARS.match(token):
        return None
    parts = token.split(".")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    of, expires, nonce, mac = parts[0], int(parts[1]), parts[2], parts[3]
    if expires < now or not nonce:
        return None
    if not hmac.compare_digest(mac, _mac(secret, of, ani, dnis, expires, nonce)):
        return None
    return Marker(of, nonce)


def _mac(secret: str, of: str, ani: str, dnis: str, expires: int, nonce: str) -> str:
    message = f"lianluo-replay|{of}|{ani}|{dnis}|{expires}|{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


# -- the script -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    key: str
    after_s: float  # after the node was entered


@dataclass(frozen=True)
class Visit:
    node: str
    type: str
    keys: tuple[Key, ...] = ()
    # The caller's audio heard in this node: (start, end) in seconds of the IVR recording.
    audio: tuple[float, float] | None = None


@dataclass(frozen=True)
class Plan:
    visits: tuple[Visit, ...]
    # The caller hung up this long after entering the last node (None: the center ended it, or
    # it went on to a queue, voicemail or fax).
    hangup_after_s: float | None
    problems: tuple[str, ...] = ()  # why the call cannot be replayed faithfully


def plan_of(events: Sequence[Event], recording_started: datetime | None = None) -> Plan:
    """The replay's script from a recorded call's events (see the module docstring);
    `recording_started`: when its IVR recording began (None: no caller audio is played)."""
    nodes = [e for e in events if e.kind == "node"]
    problems: list[str] = []
    if not nodes:
        problems.append("no `node` events: the call was recorded before replays were possible")
        return Plan((), None, tuple(problems))
    presses = _presses(events, problems)
    visits: list[Visit] = []
    for i, node in enumerate(nodes):
        until = nodes[i + 1].at if i + 1 < len(nodes) else None
        keys = tuple(
            Key(k, round(max(0.0, (at - node.at).total_seconds()), 3)) for n, at, k in presses if n == i
        )
        audio = None
        if recording_started is not None:
            start = max(0.0, (node.at - recording_started).total_seconds())
            end = (until - recording_started).total_seconds() if until is not None else float("inf")
            audio = (round(start, 3), round(end, 3) if end != float("inf") else end)
        visits.append(Visit(str(node.data.get("name", "")), str(node.data.get("type", "")), keys, audio))
    early = [k for n, _, k in presses if n < 0]
    if early:
        problems.append(f"keys before the first node ({''.join(early)}) are not replayed")
    ended = next((e for e in events if e.kind == "ended"), None)
    hangup = None
    if ended is not None and ended.data.get("outcome") == "hung_up_in_ivr":
        hangup = round(max(0.0, (ended.at - nodes[-1].at).total_seconds()), 3)
    return Plan(tuple(visits), hangup, tuple(problems))


def _presses(events: Sequence[Event], problems: list[str]) -> list[tuple[int, datetime, str]]:
    """Every key the caller pressed in the IVR: in which node (the index of the `node` event
    before the event that tells of it: order, not time, decides, as a key and the node it
    leads to may carry the same instant), when, and which."""
    out: list[tuple[int, datetime, str]] = []
    node = -1
    for e in events:
        if e.kind == "node":
            node += 1
        elif e.kind == "dtmf":
            out.append((node, e.at, str(e.data.get("digit", ""))))
        elif e.kind == "language" and e.data.get("key"):
            out.append((node, e.at, str(e.data["key"])))
        elif e.kind in ("collected", "invalid_entry"):
            before = [float(s) for s in e.data.get("keys_before_s") or []]
            keys = str(e.data.get("keys") or "")
            if not keys and e.kind == "collected" and before:
                value = str(e.data.get("value") or "")
                keys = value + "#" if len(before) == len(value) + 1 else value
            if not keys or len(keys) != len(before):
                problems.append(f"the keys of a `{e.kind}` ({e.data.get('field')}) were not kept")
                continue
            out += [(node, _minus(e.at, s), k) for k, s in zip(keys, before, strict=True)]
    out.sort(key=lambda p: (p[0], p[1]))
    return out


def _minus(at: datetime, seconds: float) -> datetime:
    return at - timedelta(seconds=seconds)


def due(entered: float, keys: Iterable[Key], now: float, lead_s: float = 0.0) -> list[tuple[float, str]]:
    """When to send each key of a node entered at `entered` (any clock in seconds): at the same
    time after the node's start as in the recorded call, and never in the past (a late notice of
    the node sends at once, in order). `lead_s`: how long before the center notes a key it is
    sent (an RFC 4733 key counts when it ends: its duration)."""
    return [(max(now, entered + k.after_s - lead_s), k.key) for k in keys]


# -- what happened ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    node: str
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.node}[{', '.join(self.choices)}]" if self.choices else self.node


@dataclass(frozen=True)
class Journey:
    steps: tuple[Step, ...]
    outcome: str

    def __str__(self) -> str:
        return " > ".join(str(s) for s in self.steps) + f" => {self.outcome}"


def journey_of(events: Sequence[Event]) -> Journey:
    """The IVR path (each node entered, with what the caller chose there) and the outcome: the
    queue, voicemail or fax the flow led to, else how the call ended in the IVR."""
    steps: list[tuple[str, list[str]]] = []
    last_type = ""
    last_data: Mapping[str, Any] = {}
    outcome = "still going"
    for e in events:
        d = e.data
        if e.kind == "node":
            steps.append((str(d.get("name", "")), []))
            last_type, last_data = str(d.get("type", "")), d
            continue
        if e.kind == "ended":
            outcome = str(d.get("outcome", "unknown"))
        if not steps:
            continue
        choices = steps[-1][1]
        if e.kind == "language" and d.get("by") == "key":
            choices.append(f"language {d.get('lang')}")
        elif e.kind == "menu_choice":
            choices.append(f"key {d['key']}" if d.get("key") is not None else f"said {d.get('word')}")
        elif e.kind == "invalid_input":
            choices.append(f"invalid {d.get('digit')}")
        elif e.kind == "no_input":
            choices.append("no input")
        elif e.kind == "collected":
            choices.append(f"entered {d.get('field')}")
        elif e.kind == "invalid_entry":
            choices.append(f"invalid {d.get('field')}")
        elif e.kind == "self_service":
            choices.append("found" if d.get("found") else "not found")
    if last_type in STOP_TYPES:
        where = last_data.get("queue")
        outcome = f"{last_type} {where}" if where else last_type
    return Journey(tuple(Step(n, tuple(c)) for n, c in steps), outcome)


@dataclass(frozen=True)
class Verdict:
    interaction_id: str
    recorded: Journey
    replayed: Journey | None
    error: str | None = None  # could not replay: why
    notes: tuple[str, ...] = ()

    @property
    def match(self) -> bool:
        return self.error is None and self.replayed == self.recorded

    def first_difference(self) -> str | None:
        if self.replayed is None or self.match:
            return None
        a, b = self.recorded.steps, self.replayed.steps
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"step {i + 1}: recorded {x}, replayed {y}"
        if len(a) != len(b):
            i = min(len(a), len(b))
            longer, which = (a, "recorded") if len(a) > len(b) else (b, "replayed")
            return f"step {i + 1}: only the {which} call went on to {longer[i]}"
        return f"outcome: recorded {self.recorded.outcome}, replayed {self.replayed.outcome}"


def render(v: Verdict) -> list[str]:
    """One line for a match; for a difference or an error, the line and the paths under it."""
    if v.error is not None:
        return [f"{v.interaction_id}  error: {v.error}"]
    if v.match:
        return [f"{v.interaction_id}  match  {v.recorded}"]
    return [
        f"{v.interaction_id}  DIFFERS at {v.first_difference()}",
        f"    recorded: {v.recorded}",
        f"    replayed: {v.replayed}",
    ]


def summary(verdicts: Sequence[Verdict]) -> tuple[str, int]:
    """The closing line and the exit code: 0 all match, 1 some differ, 2 some could not run."""
    errors = sum(1 for v in verdicts if v.error is not None)
    matched = sum(1 for v in verdicts if v.match)
    differ = len(verdicts) - errors - matched
    line = f"{len(verdicts)} calls replayed: {matched} match, {differ} differ, {errors} errors"
    return line, 2 if errors else 1 if differ else 0
