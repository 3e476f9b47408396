"""A SIP caller for replays (app/replay/): calls the center as the carrier would, plays audio
files into the call and sends RFC 4733 keys, with pjsua2.

pjsua2 is a C library with threads of its own: every call into it runs on one worker thread
of ours (registered with pjlib), its callbacks arrive on its own thread and are handed to the
event loop with `call_soon_threadsafe`. Nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from app.errors import AppError

T = TypeVar("T")
log = logging.getLogger(__name__)
KEY_S = 0.16  # how long each key lasts: the center notes it at its end


class CallerError(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("replay-caller", message, {}, 500)


def _pj() -> Any:
    try:
        import pjsua2
    except ImportError as exc:  # a test dependency, in .venv after `make setup`
        raise CallerError("the pjsua2 SIP library is not installed (make setup installs it)") from exc
    return pjsua2


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class SipCaller:
    """One pjsua2 endpoint with one UDP transport bound to `bind_ip` (the carrier's address)."""

    def __init__(self, bind_ip: str, log_file: Path | None = None) -> None:
        self.bind_ip = bind_ip
        self.log_file = log_file
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pjsua")
        self._ep: Any = None
        self._transport = -1
        self._accounts: dict[str, Any] = {}
        self._calls: list[CallerLeg] = []

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._registered(fn))

    def _registered(self, fn: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            ep = self._ep
            if ep is not None and not ep.libIsThreadRegistered():
                ep.libRegisterThread(threading.current_thread().name)
            return fn()

        return run

    async def start(self) -> None:
        pj = _pj()

        def start() -> None:
            ep = pj.Endpoint()
            with _quiet_stdout():  # pjlib says hello on stdout before its log settings apply
                ep.libCreate()
                self._ep = ep
                self._init(pj, ep)

        await self._run(start)

    def _init(self, pj: Any, ep: Any) -> None:
        """Once per process: the endpoint, its codecs, a transport on the carrier's address."""
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 1
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = "Lianluo replay (pjsua2)"
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.level = 4 if self.log_file else 0
        if self.log_file:
            cfg.logConfig.filename = str(self.log_file)
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True  # a steady stream, as a carrier sends
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for info in ep.codecEnum2():
            ep.codecSetPriority(info.codecId, 0)
        for i, codec in enumerate(("PCMU/8000", "PCMA/8000")):
            ep.codecSetPriority(codec, 255 - i)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = self.bind_ip
        tcfg.publicAddress = self.bind_ip
        try:
            self._transport = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        except pj.Error as exc:
            raise CallerError(f"cannot send SIP from {self.bind_ip}: {exc.info()}") from None
        ep.libStart()

    def _account(self, user: str) -> Any:
        pj = _pj()
        acc = self._accounts.get(user)
        if acc is None:
            cfg = pj.AccountConfig()
            cfg.idUri = f"sip:{user}@{self.bind_ip}"
            cfg.sipConfig.transportId = self._transport
            cfg.natConfig.sipOutboundUse = 0
            cfg.natConfig.contactRewriteUse = 0
            cfg.mediaConfig.transportConfig.boundAddress = self.bind_ip
            cfg.mediaConfig.transportConfig.publicAddress = self.bind_ip
            acc = pj.Account()
            acc.create(cfg, False)
            self._accounts[user] = acc
        return acc

    async def call(self, uri: str, caller: str, headers: Mapping[str, str]) -> CallerLeg:
        """Call `uri` with `caller` as the caller number (the From user)."""
        pj = _pj()
        loop = asyncio.get_running_loop()
        leg = CallerLeg(self, loop)

        def place() -> None:
            acc = self._account(caller)
            leg._pj = _Call(pj, acc, leg)
            prm = pj.CallOpParam(True)
            for name, value in headers.items():
                h = pj.SipHeader()
                h.hName, h.hValue = name, value
                prm.txOption.headers.append(h)
            try:
                leg._pj.makeCall(uri, prm)
            except pj.Error as exc:
                raise CallerError(f"calling {uri} failed: {exc.info()}") from None

        await self._run(place)
        self._calls.append(leg)
        return leg

    async def close(self) -> None:
        def stop() -> None:
            pj = _pj()
            for leg in self._calls:
                with contextlib.suppress(pj.Error):
                    if leg._pj is not None and leg._pj.isActive():
                        leg._pj.hangup(pj.CallOpParam(True))
                leg._player = None
                leg._pj = None
            for acc in self._accounts.values():
                with contextlib.suppress(pj.Error):
                    acc.shutdown()
            self._accounts.clear()
            if self._ep is not None:
                with contextlib.suppress(pj.Error):
                    self._ep.libDestroy()
                self._ep = None

        try:
            if self._ep is not None:
                await self._run(stop)
        finally:
            self._pool.shutdown(wait=True)


class CallerLeg:
    """One placed call: `answered` and `ended` are set from pjsua's callbacks."""

    def __init__(self, owner: SipCaller, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.loop = loop
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.status = 0
        self.reason = ""
        self._pj: Any = None
        self._player: Any = None
        self._audio_index = -1

    # pjsua's thread
    def _on_state(self, confirmed: bool, disconnected: bool, status: int, reason: str) -> None:
        def apply() -> None:
            self.status, self.reason = status, reason
            if confirmed:
                self.answered.set()
            if disconnected:
                self.ended.set()

        self.loop.call_soon_threadsafe(apply)

    async def play(self, path: Path) -> None:
        """Play a WAV file into the call from now (replacing what played before); after the
        file's end, silence."""
        pj = _pj()

        def play() -> None:
            self._player = None  # its destructor removes it from the conference bridge
            if self._pj is None or self._audio_index < 0 or not self._pj.isActive():
                log.warning("no audio to play %s into (the call has no media)", path.name)
                return
            media = self._pj.getAudioMedia(self._audio_index)
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(media)
            self._player = player

        await self.owner._run(play)

    async def keys(self, digits: str) -> None:
        """Send keys as RFC 4733 events, as a carrier passes a caller's keys on."""
        pj = _pj()

        def send() -> None:
            if self._pj is None or not self._pj.isActive():
                return
            prm = pj.CallSendDtmfParam()
            prm.digits = digits
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            prm.duration = round(KEY_S * 1000)
            with contextlib.suppress(pj.Error):  # the call ended meanwhile
                self._pj.sendDtmf(prm)

        await self.owner._run(send)

    async def hang_up(self) -> None:
        pj = _pj()

        def hang_up() -> None:
            self._player = None
            if self._pj is not None and self._pj.isActive():
                with contextlib.suppress(pj.Error):
                    self._pj.hangup(pj.CallOpParam(True))

        await self.owner._run(hang_up)


def _Call(pj: Any, acc: Any, leg: CallerLeg) -> Any:
    """pjsua2's Call with our callbacks (a subclass made when pjsua2 is first imported)."""

    class Call(pj.Call):  # type: ignore[misc]
        def onCallState(self, prm: Any) -> None:
            info = self.getInfo()
            leg._on_state(
                info.state == pj.PJSIP_INV_STATE_CONFIRMED,
                info.state == pj.PJSIP_INV_STATE_DISCONNECTED,
                int(info.lastStatusCode),
                str(info.lastReason),
            )

        def onCallMediaState(self, prm: Any) -> None:
            info = self.getInfo()
            for media in info.media:
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    leg._audio_index = int(media.index)
                    return

    return Call(acc)
