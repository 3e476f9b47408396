"""What every call of every kind is made with: the PBX, the interaction writer, the switchboard,
the clock and the outbound policy, handed to each call kind as one piece by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.calls.ports import Clock, Pbx
from app.calls.recorder import NoRecorder, Recorder
from app.calls.session import Call
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.domain.interaction import Interaction
from app.domain.outbound import OutboundPolicy

if TYPE_CHECKING:
    from app.adapters.db import Customer


@dataclass(frozen=True)
class Runtime:
    pbx: Pbx
    writer: InteractionWriter
    board: Switchboard
    clock: Clock
    outbound: OutboundPolicy  # asked before any leg goes out through a trunk (legs.dial_out)
    recorder: Recorder = field(default_factory=NoRecorder)  # app/recording/, when recording is on

    def call(
        self, it: Interaction, kind: str, *, customer: Customer | None = None, recorded: bool = False
    ) -> Call:
        """A new call of `kind` for this interaction (`recorded`: its row exists already)."""
        return Call(
            it,
            kind,
            pbx=self.pbx,
            writer=self.writer,
            routes=self.board,
            clock=self.clock,
            outbound=self.outbound,
            customer=customer,
            recorded=recorded,
            recorder=self.recorder,
        )
