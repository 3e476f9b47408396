"""What the QA desk shows beside a recording, read from the call's events: the rules, without I/O.

- **Transfer marks** on the player's time line, each at the moment of its event, in seconds
  from the recording's start (the file's time 0 is its `started_at`): a blind transfer
  (`transferred`, how blind), a consultation started (`control_consult`), a consultation
  completed (`transferred`, how consult: the caller stays with the consulted agent), a
  conference (`control_conference`), and an expert's hand-over (the consultation completed was
  with an expert: `expert_connected` came first, or the call went to an outside expert). An
  event before the recording started or after it ended has no place on its time line.
- **The IVR path**: the choices the caller made in the menus, each by the flow's label of the
  node it led to in the desk's language (English where the label has no such language), else
  the key or word, as the agent's screen pop shows them (`journey`, `panel_labels`); and the
  queue the call reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.ivr_flow import FlowSet, panel_labels
from app.domain.screen_pop import EventRecord, journey

# How a call changed hands, in the order a person would read them; the desk words each.
TRANSFER_HOWS = ("blind", "consult", "consult_completed", "conference", "expert")


@dataclass(frozen=True)
class TransferMark:
    how: str  # one of TRANSFER_HOWS
    at_s: float  # seconds from the recording's start
    to: str  # "agent:1002", "queue:billing", "number:139...", "expert:7"; "" when unknown


def transfer_marks(
    events: Sequence[EventRecord], started_at: datetime, duration_s: float
) -> list[TransferMark]:
    """The transfers of the call inside the recording, in time order (see the module's text)."""
    out: list[TransferMark] = []
    with_expert = False
    for e in events:
        d: Mapping[str, Any] = e.data if isinstance(e.data, Mapping) else {}
        how: str | None = None
        to = ""
        if e.kind == "expert_connected":
            with_expert = True
        elif e.kind == "consult_ended":
            with_expert = False
        elif e.kind == "control_consult":
            how, to = "consult", _text(d.get("to"))
        elif e.kind == "control_conference":
            how, to = "conference", _agent(d.get("with"))
        elif e.kind == "transferred" and d.get("how") == "blind":
            how, to = "blind", _text(d.get("to"))
        elif e.kind == "transferred":
            to = _text(d.get("to"))
            how = "expert" if with_expert or to.startswith("expert:") else "consult_completed"
            with_expert = False
        if how is None:
            continue
        at_s = (e.at - started_at).total_seconds()
        if 0 <= at_s <= duration_s:
            out.append(TransferMark(how, round(at_s, 3), to))
    return out


@dataclass(frozen=True)
class IvrStep:
    choice: str  # the key pressed or the word said
    label: str  # the flow's label of where it led, in the desk's language; else the choice


@dataclass(frozen=True)
class IvrPath:
    flow: str | None
    steps: tuple[IvrStep, ...]
    queue: str | None  # where the IVR sent the caller, if it did


def ivr_path(events: Sequence[EventRecord], flows: FlowSet | None, lang: str) -> IvrPath:
    """The caller's way through the IVR, by the labels of the flow they went through, as it is
    now in `flows` (see the module's text)."""
    path = journey(events)
    flow = flows.flows.get(path.flow) if flows is not None and path.flow else None
    labels = panel_labels(flow) if flow is not None else None
    steps = []
    for choice, to in zip(path.menu, path.menu_to, strict=True):
        named = labels.choices.get(to or "", {}) if labels is not None else {}
        steps.append(IvrStep(choice, named.get(lang) or named.get("en") or choice))
    return IvrPath(path.flow, tuple(steps), path.queue)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _agent(value: object) -> str:
    return f"agent:{value}" if isinstance(value, str) and value else ""
