"""Asterisk as the call runtime sees it, in memory, for unit tests of the call scripts.

`FakePbx` answers the ARI requests the runtime makes (app/calls/ports.py `Pbx`) and keeps the
state a real Asterisk would: live channels, bridges and who is in them, music on hold, playbacks,
mutes. Events go to the switchboard through `events()`. A test plays the world's part with the
helpers: a caller arrives or hangs up, an agent's phone picks up or rings out, a key is pressed.
Prompts finish at once unless `hold_playbacks` is set (then `finish_playbacks` ends them).

`FakeStore` keeps interactions and agent state events in memory for the writer and the desk.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.adapters.ari import (
    AriEvent,
    AriNotFound,
    Bridge,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Connected,
    Endpoint,
    LiveRecording,
    PlaybackFinished,
    RecordingFinished,
    StasisEnd,
    StasisStart,
)
from app.domain.agent_state import AgentSnapshot, AgentStateEvent
from app.domain.interaction import Interaction, InteractionEvent, Phase

APP = "lianluo"
STARTED = "2026-12-01T00:00:00.000+0000"


@dataclasses.dataclass
class Leg:
    channel: Channel
    endpoint: str = ""
    app_args: str = ""  # what it enters Stasis with when answered
    in_stasis: bool = False
    variables: Mapping[str, str] = dataclasses.field(default_factory=dict)


class FakePbx:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[AriEvent] = asyncio.Queue()
        self.legs: dict[str, Leg] = {}
        self.bridge_members: dict[str, list[str]] = {}
        self.moh: set[str] = set()
        self.muted: set[str] = set()
        self.playing: dict[str, str] = {}  # playback id -> channel
        self.played: list[tuple[str, tuple[str, ...]]] = []  # (channel, uris)
        self.requests: list[tuple[Any, ...]] = []
        self.hangup_reasons: dict[str, str] = {}  # channel -> the reason we hung it up with
        self.hold_playbacks = False
        self.started = STARTED
        self.recordings: dict[str, str] = {}  # live recording name -> state
        self.snoops: dict[str, str] = {}  # snoop channel -> the channel it spies on
        self._ids = itertools.count(1)

    # -- the world's part -------------------------------------------------------------

    def _channel(self, channel_id: str, number: str = "", exten: str = "", app_data: str = "") -> Channel:
        return Channel(channel_id, f"PJSIP/{channel_id}", "Up", number, "", exten, "", "Stasis", app_data)

    def caller_arrives(
        self, ani: str = "13800000001", dnis: str = "7000", source: str = "192.0.2.1:5060", replay: str = ""
    ) -> str:
        """A caller from the carrier trunk at `source` (the SIP peer's address) dials `dnis`
        (with `replay`: the X-Lianluo-Replay header's value)."""
        channel_id = f"caller-{next(self._ids)}"
        # As the dialplan does: the DNIS, the peer's address and the replay marker as Stasis arguments.
        channel = self._channel(channel_id, ani, dnis, f"{APP},inbound,{dnis},{source},{replay}")
        channel = dataclasses.replace(channel, name=f"PJSIP/carrier-{channel_id}")
        self.legs[channel_id] = Leg(channel, in_stasis=True)
        self.queue.put_nowait(StasisStart(channel, ("inbound", dnis, source, replay)))
        return channel_id

    def pick_up(self, channel_id: str, *args: str) -> None:
        """An originated leg answers and enters Stasis (with its app args, or `args`)."""
        leg = self.legs[channel_id]
        leg.in_stasis = True
        stasis_args = args or tuple(leg.app_args.split(","))
        leg.channel = dataclasses.replace(
            leg.channel, app_name="Stasis", app_data=",".join((APP, *stasis_args))
        )
        self.queue.put_nowait(StasisStart(leg.channel, stasis_args))

    def hang_up(self, channel_id: str, cause: int = 16) -> None:
        """A party hangs up (or a phone rings out: cause 19)."""
        leg = self.legs.pop(channel_id)
        self.snoops.pop(channel_id, None)
        for snoop_id in [s for s, target in self.snoops.items() if target == channel_id]:
            self.hang_up(snoop_id)  # as Asterisk does: a snoop goes with the channel it spies on
        self._leave_bridges(channel_id)
        self.moh.discard(channel_id)
        if leg.in_stasis:
            self.queue.put_nowait(ChannelHangupRequest(leg.channel, cause))
            self.queue.put_nowait(StasisEnd(leg.channel))
        self.queue.put_nowait(ChannelDestroyed(leg.channel, cause, "Normal Clearing" if cause == 16 else ""))

    def fax_tone_heard(self, channel_id: str) -> None:
        """Asterisk hears a fax machine's calling tone (FAXOPT(faxdetect)): the prompt playing
        fails, the channel leaves Stasis for the dialplan's `fax` extension and comes straight
        back as `faxtone,<DNIS>` (the order seen from a real Asterisk)."""
        leg = self.legs[channel_id]
        for playback_id, channel in list(self.playing.items()):
            if channel == channel_id:
                del self.playing[playback_id]
                self.queue.put_nowait(PlaybackFinished(playback_id, "failed"))
        self.queue.put_nowait(StasisEnd(leg.channel))
        self.queue.put_nowait(StasisStart(leg.channel, ("faxtone", leg.channel.exten)))

    def press(self, channel_id: str, digit: str) -> None:
        self.queue.put_nowait(ChannelDtmfReceived(self.legs[channel_id].channel, digit))

    def finish_playbacks(self) -> None:
        for playback_id in list(self.playing):
            self.playing.pop(playback_id)
            self.queue.put_nowait(PlaybackFinished(playback_id, "done"))

    def restart(self) -> None:
        """Asterisk dies and comes back: every channel and bridge is gone, without events."""
        self.legs.clear()
        self.bridge_members.clear()
        self.moh.clear()
        self.playing.clear()
        self.started = now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    def originated(self, endpoint_prefix: str = "PJSIP/") -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.endpoint.startswith(endpoint_prefix)]

    def ringing(self, endpoint: str) -> str | None:
        """The channel now ringing this endpoint (e.g. "PJSIP/1001"), if any."""
        return next(
            (cid for cid, leg in self.legs.items() if leg.endpoint == endpoint and not leg.in_stasis), None
        )

    def bridge_of(self, channel_id: str) -> str | None:
        return next((b for b, members in self.bridge_members.items() if channel_id in members), None)

    def _leave_bridges(self, channel_id: str) -> None:
        for members in self.bridge_members.values():
            if channel_id in members:
                members.remove(channel_id)

    def _live(self, channel_id: str) -> Leg:
        leg = self.legs.get(channel_id)
        if leg is None:
            raise AriNotFound(f"channel {channel_id}: not found", {"status": 404}, 404)
        return leg

    # -- ARI ---------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[AriEvent]:
        yield Connected(reconnect=False)
        while True:
            yield await self.queue.get()

    async def asterisk_info(self) -> Mapping[str, Any]:
        return {"status": {"startup_time": self.started}}

    async def answer(self, channel_id: str) -> None:
        self._live(channel_id)
        self.requests.append(("answer", channel_id))

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self.requests.append(("hangup", channel_id))
        self.hangup_reasons[channel_id] = reason
        if channel_id in self.legs:
            self.hang_up(channel_id)

    async def play(self, channel_id: str, media: str | list[str], playback_id: str, lang: str = "en") -> None:
        self._live(channel_id)
        uris = tuple(media if isinstance(media, list) else [media])
        self.played.append((channel_id, uris))
        self.requests.append(("play", channel_id, uris))
        self.playing[playback_id] = channel_id
        if not self.hold_playbacks:
            self.finish_playbacks()

    async def playback_alive(self, playback_id: str) -> bool:
        return playback_id in self.playing

    async def stop_playback(self, playback_id: str) -> None:
        if self.playing.pop(playback_id, None) is not None:
            self.queue.put_nowait(PlaybackFinished(playback_id, "done"))

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        self._live(channel_id)
        self.requests.append(("start_moh", channel_id))
        self.moh.add(channel_id)

    async def stop_moh(self, channel_id: str) -> None:
        self.requests.append(("stop_moh", channel_id))
        self.moh.discard(channel_id)

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        max_duration_s: int,
        max_silence_s: int,
        terminate_on: str = "#",
        beep: bool = True,
    ) -> None:
        self._live(channel_id)
        self.requests.append(("record", channel_id, name))
        self.recordings[name] = "recording"

    def finish_recording(self, name: str, duration_s: float = 3.0) -> None:
        self.recordings[name] = "done"
        self.queue.put_nowait(RecordingFinished(name, duration_s))

    async def live_recording(self, name: str) -> LiveRecording | None:
        state = self.recordings.get(name)
        return LiveRecording(name, state, None) if state is not None else None

    async def stored_recording(self, name: str) -> bytes:
        return b"RIFF" + bytes(16040)

    async def delete_stored_recording(self, name: str) -> None:
        self.recordings.pop(name, None)

    async def originate(
        self,
        *,
        endpoint: str,
        channel_id: str,
        app_args: str,
        caller_id: str,
        timeout_s: int,
        variables: Mapping[str, str],
    ) -> Channel:
        channel = self._channel(channel_id, caller_id)
        channel = dataclasses.replace(channel, app_name="", app_data="")
        self.legs[channel_id] = Leg(channel, endpoint, app_args, False, dict(variables))
        self.requests.append(("originate", endpoint, channel_id))
        return channel

    async def originate_to_dialplan(
        self,
        *,
        endpoint: str,
        channel_id: str,
        context: str,
        caller_id: str,
        timeout_s: int,
        variables: Mapping[str, str],
    ) -> Channel:
        return await self.originate(
            endpoint=endpoint,
            channel_id=channel_id,
            app_args=f"{context}",
            caller_id=caller_id,
            timeout_s=timeout_s,
            variables=variables,
        )

    async def create_bridge(self, bridge_id: str, name: str) -> Bridge:
        self.requests.append(("create_bridge", bridge_id))
        self.bridge_members[bridge_id] = []
        return Bridge(bridge_id, ())

    async def destroy_bridge(self, bridge_id: str) -> None:
        self.requests.append(("destroy_bridge", bridge_id))
        self.bridge_members.pop(bridge_id, None)

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        self.requests.append(("add_to_bridge", bridge_id, tuple(channel_ids)))
        members = self.bridge_members[bridge_id]
        for c in channel_ids:
            self._live(c)
            self._leave_bridges(c)
            members.append(c)

    async def remove_from_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        self.requests.append(("remove_from_bridge", bridge_id, tuple(channel_ids)))
        for c in channel_ids:
            if c in self.bridge_members.get(bridge_id, []):
                self.bridge_members[bridge_id].remove(c)

    async def mute(self, channel_id: str, direction: str = "in") -> None:
        self._live(channel_id)
        self.muted.add(channel_id)

    async def unmute(self, channel_id: str, direction: str = "in") -> None:
        self.muted.discard(channel_id)

    async def send_dtmf(self, channel_id: str, digits: str) -> None:
        self._live(channel_id)
        self.requests.append(("dtmf", channel_id, digits))

    async def snoop(
        self, channel_id: str, snoop_id: str, *, spy: str, whisper: str, app_args: str
    ) -> Channel:
        self._live(channel_id)
        self.requests.append(("snoop", channel_id, snoop_id, spy, whisper))
        channel = self._channel(snoop_id, app_data=f"{APP},{app_args}")
        self.legs[snoop_id] = Leg(channel, "", app_args, True)
        self.snoops[snoop_id] = channel_id
        self.queue.put_nowait(StasisStart(channel, tuple(app_args.split(","))))
        return channel

    async def channels(self) -> list[Channel]:
        return [leg.channel for leg in self.legs.values()]

    async def bridges(self) -> list[Bridge]:
        return [Bridge(b, tuple(m)) for b, m in self.bridge_members.items()]

    async def endpoint(self, technology: str, resource: str) -> Endpoint | None:
        return Endpoint(technology, resource, "online", ())

    async def subscribe(self, event_source: str) -> None:
        return None

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, variables: Mapping[str, str]
    ) -> None:
        self.requests.append(("continue", channel_id, context, extension, dict(variables)))


class FakeStore:
    """Interactions and agents' state changes, in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, Interaction] = {}
        self.events: dict[str, list[InteractionEvent]] = {}
        self.agent_events: list[AgentStateEvent] = []
        self.agents: dict[str, AgentSnapshot] = {}  # what agent_snapshots gives at start
        self.down = False  # the database is unreachable

    async def write_interactions(
        self, batch: Sequence[tuple[Interaction, bool, Sequence[InteractionEvent]]]
    ) -> None:
        if self.down:
            raise ConnectionError("database down")
        for it, _, events in batch:
            self.rows[it.id] = copy.deepcopy(it)
            self.events.setdefault(it.id, []).extend(events)

    async def open_interactions(self) -> list[Interaction]:
        return [copy.deepcopy(it) for it in self.rows.values() if it.phase is not Phase.ENDED]

    def kinds(self, interaction_id: str) -> list[str]:
        return [e.kind for e in self.events.get(interaction_id, [])]

    async def skill_overrides(self) -> dict[str, dict[str, int | None]]:
        return {}

    async def set_skill_override(self, agent_id: str, skill: str, level: int | None, changed_by: str) -> None:
        return None

    async def save_agent_events(self, events: Sequence[AgentStateEvent], now: Mapping[str, Any]) -> None:
        if self.down:
            raise ConnectionError("database down")
        self.agent_events.extend(events)

    async def agent_snapshots(self) -> dict[str, AgentSnapshot]:
        return dict(self.agents)

    async def routing_history(self, since: datetime) -> list[Any]:
        return []

    async def last_agent_for(self, customer_id: int | None, ani: str, since: datetime) -> str | None:
        return None

    async def customer_by_phone(self, phone: str) -> None:
        return None

    async def self_service(self, lookup: str, key: str) -> Mapping[str, str] | None:
        return None


def now() -> datetime:
    return datetime.now(UTC)
