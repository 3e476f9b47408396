"""A small typed ARI client on aiohttp: REST calls and the event websocket.

Why not ari-py: it is a 2014 synchronous client built on swagger-py. We need asyncio,
typed events and a websocket that reconnects with backoff and tells the application each
time it has (re)connected, so the application can reconcile calls left in Stasis.

Events are parsed at this edge into frozen dataclasses; the rest of the app never sees
raw JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from app.domain.keypad import Keypad, KeyPress
from app.errors import PbxError

log = logging.getLogger(__name__)


class AriNotFound(PbxError):
    """The channel, bridge or playback is gone (usually: someone hung up)."""


# ---------------------------------------------------------------------------
# Parsed resources and events
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    state: str
    caller_number: str
    caller_name: str
    exten: str
    context: str
    app_name: str
    app_data: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Channel:
        caller = raw.get("caller") or {}
        dialplan = raw.get("dialplan") or {}
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", "")),
            state=str(raw.get("state", "")),
            caller_number=str(caller.get("number", "")),
            caller_name=str(caller.get("name", "")),
            exten=str(dialplan.get("exten", "")),
            context=str(dialplan.get("context", "")),
            app_name=str(dialplan.get("app_name", "")),
            app_data=str(dialplan.get("app_data", "")),
        )


@dataclass(frozen=True)
class Endpoint:
    technology: str
    resource: str
    state: str
    channel_ids: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Endpoint:
        return cls(
            str(raw.get("technology", "")),
            str(raw["resource"]),
            str(raw.get("state", "unknown")),
            tuple(str(c) for c in raw.get("channel_ids", [])),
        )

    @property
    def online(self) -> bool:
        return self.state == "online"


@dataclass(frozen=True)
class Bridge:
    id: str
    channels: tuple[str, ...]


@dataclass(frozen=True)
class LiveRecording:
    """A recording Asterisk is making (or has just finished), by name."""

    name: str
    state: str  # queued, recording, paused, done, failed, canceled
    duration_s: float | None


@dataclass(frozen=True)
class Connected:
    """Not an ARI event: the websocket is (again) connected. Time to reconcile."""

    reconnect: bool


@dataclass(frozen=True)
class StasisStart:
    channel: Channel
    args: tuple[str, ...]


@dataclass(frozen=True)
class StasisEnd:
    channel: Channel


@dataclass(frozen=True)
class ChannelDtmfReceived:
    channel: Channel
    digit: str
    ended_at: float = 0.0  # Asterisk's clock, seconds since the epoch; 0 if not said
    duration_ms: int = 0


@dataclass(frozen=True)
class ChannelHangupRequest:
    channel: Channel
    cause: int


@dataclass(frozen=True)
class ChannelDestroyed:
    channel: Channel
    cause: int
    cause_txt: str


@dataclass(frozen=True)
class ChannelStateChange:
    channel: Channel


@dataclass(frozen=True)
class PlaybackStarted:
    playback_id: str


@dataclass(frozen=True)
class PlaybackFinished:
    playback_id: str
    state: str


@dataclass(frozen=True)
class RecordingFinished:
    name: str
    duration_s: float | None


@dataclass(frozen=True)
class RecordingFailed:
    name: str
    cause: str


@dataclass(frozen=True)
class EndpointStateChange:
    endpoint: Endpoint


@dataclass(frozen=True)
class ChannelUserevent:
    """A dialplan's UserEvent(name,key: value,...) on a channel (e.g. a fax session's result)."""

    channel: Channel
    name: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class OtherEvent:
    type: str
    raw: Mapping[str, Any]


AriEvent = (
    Connected
    | StasisStart
    | StasisEnd
    | ChannelDtmfReceived
    | ChannelHangupRequest
    | ChannelDestroyed
    | ChannelStateChange
    | PlaybackStarted
    | PlaybackFinished
    | EndpointStateChange
    | RecordingFinished
    | RecordingFailed
    | ChannelUserevent
    | OtherEvent
)


# The event types the app acts on. Asterisk sends about 120 events per routed call when
# nothing is filtered (variables set, dialplan steps, bridges, connected lines, device and
# contact states...), each one parsed on the event loop; told to send only these, it sends
# about a quarter of that (`AriClient.filter_events`).
EVENTS_USED = (
    "StasisStart",
    "StasisEnd",
    "ChannelDtmfReceived",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "PlaybackFinished",
    "RecordingFinished",
    "RecordingFailed",
    "EndpointStateChange",
    "ChannelUserevent",
)


def event_time(value: Any) -> float:
    """An event's `timestamp` ("2026-12-04T14:07:40.805+0000") in seconds; 0 if unreadable."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return 0.0


def parse_event(raw: Mapping[str, Any]) -> AriEvent:
    kind = str(raw.get("type", ""))
    try:
        if kind == "StasisStart":
            return StasisStart(Channel.parse(raw["channel"]), tuple(str(a) for a in raw.get("args", [])))
        if kind == "StasisEnd":
            return StasisEnd(Channel.parse(raw["channel"]))
        if kind == "ChannelDtmfReceived":
            return ChannelDtmfReceived(
                Channel.parse(raw["channel"]),
                str(raw["digit"]),
                event_time(raw.get("timestamp")),
                int(raw.get("duration_ms") or 0),
            )
        if kind == "ChannelHangupRequest":
            return ChannelHangupRequest(Channel.parse(raw["channel"]), int(raw.get("cause", 0)))
        if kind == "ChannelDestroyed":
            return ChannelDestroyed(
                Channel.parse(raw["channel"]), int(raw.get("cause", 0)), str(raw.get("cause_txt", ""))
            )
        if kind == "ChannelStateChange":
            return ChannelStateChange(Channel.parse(raw["channel"]))
        if kind == "PlaybackStarted":
            return PlaybackStarted(str(raw["playback"]["id"]))
        if kind == "EndpointStateChange":
            return EndpointStateChange(Endpoint.parse(raw["endpoint"]))
        if kind == "RecordingFinished":
            rec = raw["recording"]
            duration = rec.get("duration")
            return RecordingFinished(str(rec["name"]), float(duration) if duration is not None else None)
        if kind == "RecordingFailed":
            rec = raw["recording"]
            return RecordingFailed(str(rec["name"]), str(rec.get("cause", "")))
        if kind == "ChannelUserevent":
            body = raw.get("userevent") or {}
            return ChannelUserevent(
                Channel.parse(raw["channel"]),
                str(raw["eventname"]),
                {str(k).lower(): str(v) for k, v in body.items()},
            )
        if kind == "PlaybackFinished":
            pb = raw["playback"]
            return PlaybackFinished(str(pb["id"]), str(pb.get("state", "done")))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("malformed ARI %s event (%s): %s", kind, exc, raw)
    return OtherEvent(kind, raw)


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------


_CHANNEL_GONE = re.compile(r"Channel not found|not in Stasis application", re.IGNORECASE)


class AriClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        user: str,
        password: str,
        app: str,
        event_lag: Callable[[float], None] | None = None,
    ) -> None:
        self._session = session
        # Told, for each event taken off the websocket, how long after its own timestamp
        # (Asterisk's clock) that was: the metrics' ARI event lag.
        self._event_lag = event_lag
        self._base = base_url.rstrip("/") + "/ari"
        self._auth = aiohttp.BasicAuth(user, password)
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._keypad = Keypad()
        self.app = app
        self.connected = False

    # -- REST ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int | float] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        url = self._base + path
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                json=body,
                auth=self._auth,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                text = await resp.text()
                if resp.status == 404 or (resp.status in (400, 422) and _CHANNEL_GONE.search(text)):
                    # 400/422 are how a bridge request says one of its channels is gone (or
                    # leaving): a hang-up racing the request, like a 404.
                    details = {"status": resp.status, "body": text}
                    raise AriNotFound(f"{method} {path}: not found", details, 404)
                if resp.status >= 400:
                    raise PbxError(f"{method} {path} failed ({resp.status}): {text}", {"status": resp.status})
                if not text:
                    return None
                return json.loads(text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PbxError(f"{method} {path}: ARI unreachable: {exc}") from exc

    async def asterisk_info(self) -> Mapping[str, Any]:
        data = await self.request("GET", "/asterisk/info")
        return data if isinstance(data, dict) else {}

    async def channels(self) -> list[Channel]:
        return [Channel.parse(c) for c in await self.request("GET", "/channels")]

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        try:
            await self.request("DELETE", f"/channels/{channel_id}", params={"reason": reason})
        except AriNotFound:
            pass  # already gone: that is what we wanted

    async def play(self, channel_id: str, media: str | list[str], playback_id: str, lang: str = "en") -> None:
        uris = media if isinstance(media, list) else [media]
        await self.request(
            "POST",
            f"/channels/{channel_id}/play/{playback_id}",
            params={"media": ",".join(uris), "lang": lang},
        )

    async def playback_alive(self, playback_id: str) -> bool:
        try:
            await self.request("GET", f"/playbacks/{playback_id}")
        except AriNotFound:
            return False
        return True

    async def stop_playback(self, playback_id: str) -> None:
        try:
            await self.request("DELETE", f"/playbacks/{playback_id}")
        except AriNotFound:
            pass

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        await self.request("POST", f"/channels/{channel_id}/moh", params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        try:
            await self.request("DELETE", f"/channels/{channel_id}/moh")
        except AriNotFound:
            pass

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
        """Record what the caller says into Asterisk's stored recordings (WAV)."""
        await self.request(
            "POST",
            f"/channels/{channel_id}/record",
            params={
                "name": name,
                "format": "wav",
                "maxDurationSeconds": max_duration_s,
                "maxSilenceSeconds": max_silence_s,
                "ifExists": "overwrite",
                "beep": "true" if beep else "false",
                "terminateOn": terminate_on,
            },
        )

    async def live_recording(self, name: str) -> LiveRecording | None:
        """A recording still being made (e.g. a voicemail taken over after a restart), if any."""
        try:
            data = await self.request("GET", f"/recordings/live/{name}")
        except AriNotFound:
            return None
        duration = data.get("duration") if isinstance(data, dict) else None
        state = str(data.get("state", "")) if isinstance(data, dict) else ""
        return LiveRecording(name, state, float(duration) if duration is not None else None)

    async def stored_recording(self, name: str) -> bytes:
        """The audio file of a stored recording, fetched over ARI (no shared file system needed)."""
        url = f"{self._base}/recordings/stored/{name}/file"
        try:
            async with self._session.get(
                url, auth=self._auth, timeout=aiohttp.ClientTimeout(total=30)
            ) as resp:
                if resp.status == 404:
                    raise AriNotFound(f"recording {name}: not found", {"status": 404}, 404)
                if resp.status >= 400:
                    raise PbxError(f"recording {name}: download failed ({resp.status})")
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PbxError(f"recording {name}: ARI unreachable: {exc}") from exc

    async def delete_stored_recording(self, name: str) -> None:
        try:
            await self.request("DELETE", f"/recordings/stored/{name}")
        except AriNotFound:
            pass

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request(
            "POST", f"/channels/{channel_id}/variable", params={"variable": name, "value": value}
        )

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, variables: Mapping[str, str]
    ) -> None:
        """Set the channel's variables, then send it out of Stasis to run the dialplan there
        (e.g. SendFAX, which ARI cannot run itself)."""
        for name, value in variables.items():
            await self.set_variable(channel_id, name, value)
        await self.request(
            "POST",
            f"/channels/{channel_id}/continue",
            params={"context": context, "extension": extension, "priority": 1},
        )

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
        data = await self.request(
            "POST",
            f"/channels/{channel_id}",
            params={
                "endpoint": endpoint,
                "app": self.app,
                "appArgs": app_args,
                "callerId": caller_id,
                "timeout": timeout_s,
            },
            body={"variables": dict(variables)},
        )
        return Channel.parse(data)

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
        """Place a call whose answered side runs `context`, extension s (e.g. AMD before Stasis).

        The channel is not in our app until the dialplan sends it there; its events before
        that arrive through the endpoint subscription (all PJSIP endpoints)."""
        data = await self.request(
            "POST",
            f"/channels/{channel_id}",
            params={
                "endpoint": endpoint,
                "context": context,
                "extension": "s",
                "priority": 1,
                "callerId": caller_id,
                "timeout": timeout_s,
            },
            body={"variables": dict(variables)},
        )
        return Channel.parse(data)

    async def snoop(
        self, channel_id: str, snoop_id: str, *, spy: str, whisper: str, app_args: str
    ) -> Channel:
        """A channel that hears (`spy`) and speaks into (`whisper`) another one, entering our
        Stasis app with `app_args`: in = what the channel sends, out = what it is sent."""
        data = await self.request(
            "POST",
            f"/channels/{channel_id}/snoop/{snoop_id}",
            params={"spy": spy, "whisper": whisper, "app": self.app, "appArgs": app_args},
        )
        return Channel.parse(data)

    async def endpoint(self, technology: str, resource: str) -> Endpoint | None:
        try:
            data = await self.request("GET", f"/endpoints/{technology}/{resource}")
        except AriNotFound:
            return None
        return Endpoint.parse(data)

    async def subscribe(self, event_source: str) -> None:
        """Also receive events of e.g. ``endpoint:PJSIP`` (device registrations)."""
        await self.request(
            "POST", f"/applications/{self.app}/subscription", params={"eventSource": event_source}
        )

    async def filter_events(self, types: Sequence[str] = EVENTS_USED) -> None:
        """Receive only these event types (until Asterisk restarts: set again on each connect)."""
        await self.request(
            "PUT", f"/applications/{self.app}/eventFilter", body={"allowed": [{"type": t} for t in types]}
        )

    async def create_bridge(self, bridge_id: str, name: str) -> Bridge:
        data = await self.request("POST", f"/bridges/{bridge_id}", params={"type": "mixing", "name": name})
        return Bridge(str(data["id"]), tuple(data.get("channels", [])))

    async def bridges(self) -> list[Bridge]:
        return [
            Bridge(str(b["id"]), tuple(b.get("channels", []))) for b in await self.request("GET", "/bridges")
        ]

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self.request(
            "POST", f"/bridges/{bridge_id}/addChannel", params={"channel": ",".join(channel_ids)}
        )

    async def remove_from_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self.request(
            "POST", f"/bridges/{bridge_id}/removeChannel", params={"channel": ",".join(channel_ids)}
        )

    async def mute(self, channel_id: str, direction: str = "in") -> None:
        """`in`: what the channel says is not passed on (the agent's microphone is off)."""
        await self.request("POST", f"/channels/{channel_id}/mute", params={"direction": direction})

    async def unmute(self, channel_id: str, direction: str = "in") -> None:
        await self.request("DELETE", f"/channels/{channel_id}/mute", params={"direction": direction})

    async def send_dtmf(self, channel_id: str, digits: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/dtmf", params={"dtmf": digits})

    async def destroy_bridge(self, bridge_id: str) -> None:
        try:
            await self.request("DELETE", f"/bridges/{bridge_id}")
        except AriNotFound:
            pass

    # -- events -------------------------------------------------------------

    def _seen_before(self, text: str) -> bool:
        """The same event can arrive twice: once for the channel in our Stasis app, and once
        more through the endpoint subscription (device states) that also covers the channel.
        A key pressed once must be acted on once."""
        if text in self._recent:
            log.debug("dropped a duplicate ARI event: %.120s", text)
            return True
        self._recent[text] = None
        if len(self._recent) > 512:
            self._recent.popitem(last=False)
        return False

    def _heard_before(self, event: AriEvent) -> bool:
        """A key press the line reported twice (app/domain/keypad.py) is one press."""
        if isinstance(event, ChannelDtmfReceived):
            press = KeyPress(event.digit, event.ended_at, event.duration_ms)
            if not self._keypad.heard(event.channel.id, press):
                log.info("channel %s: key %s reported twice, taken once", event.channel.id, event.digit)
                return True
        elif isinstance(event, ChannelDestroyed):
            self._keypad.forget(event.channel.id)
        return False

    async def events(self, max_backoff: float = 10.0) -> AsyncIterator[AriEvent]:
        """Yield events forever, reconnecting with jittered exponential backoff.

        Each successful connection first yields ``Connected``; events that happened while
        disconnected are lost, so the consumer must reconcile from live state then.
        """
        url = self._base.replace("http", "ws", 1) + "/events"
        backoff = 0.2
        first = True
        while True:
            try:
                async with self._session.ws_connect(
                    url, params={"app": self.app, "subscribeAll": "false"}, auth=self._auth, heartbeat=15
                ) as ws:
                    self.connected = True
                    backoff = 0.2
                    log.info("ARI websocket connected (app %s)%s", self.app, "" if first else " again")
                    yield Connected(reconnect=not first)
                    first = False
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            if self._seen_before(msg.data):
                                continue
                            try:
                                raw = json.loads(msg.data)
                            except json.JSONDecodeError:
                                log.warning("ARI sent non-JSON text: %.200s", msg.data)
                                continue
                            if self._event_lag is not None and (stamped := event_time(raw.get("timestamp"))):
                                self._event_lag(time.time() - stamped)
                            event = parse_event(raw)
                            if self._heard_before(event):
                                continue
                            yield event
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("ARI websocket unavailable (%s); retrying in %.1f s", exc, backoff)
            finally:
                self.connected = False
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, max_backoff)
