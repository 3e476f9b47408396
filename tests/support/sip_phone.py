"""Real SIP phones for end-to-end tests: a small synchronous wrapper around pjsua2.

Usage::

    with PhoneLab(log_dir=tmp_path) as lab:
        caller = lab.phone(bind_ip="127.0.0.2")            # carrier side, no registration
        agent = lab.phone(bind_ip="127.0.0.1", user="1001", password="secret",
                          registrar="127.0.0.1:5060")
        agent.wait_registered(timeout=10)
        call = caller.call("sip:7000@127.0.0.1:5060", play=Path("in.wav"), record=tmp_path / "c.wav")
        call.wait_confirmed(timeout=10)
        incoming = agent.wait_incoming(timeout=10)
        incoming.answer(play=..., record=...)
        call.send_dtmf("1")
        call.hangup(); call.wait_disconnected(timeout=10)
        wav = call.recording()

Design choices (why it looks like this):

* pjsua2 allows one ``Endpoint`` per process, so ``PhoneLab`` owns it and every phone (one UDP
  transport + one account each) lives inside it. Each phone's transport is bound to its own IP and a
  random port; RTP is bound to the same IP, so a caller bound to 127.0.0.2 really sends SIP and RTP
  from 127.0.0.2 (our Asterisk identifies the carrier trunk by source address).
* Threading: pjsua runs its own SIP worker thread (``threadCnt=1``) plus media threads, so SIP keeps
  flowing (100 Trying, 180 Ringing, re-registration) while a test blocks on something else, such as
  asyncio or ARI. Callbacks therefore arrive on pjsua threads (the SWIG module takes the GIL for
  them); they only update Python state under one ``threading.Condition`` and notify it. Every public
  wait is ``Condition.wait_for`` with a timeout and raises ``PhoneTimeout`` (an ``AssertionError``
  and ``TimeoutError``) naming what it waited for. Rules that keep this deadlock-free: the condition
  lock is never held while calling into pjsua, and media wiring looks up the call's audio port
  (which takes the call's dialog lock) before taking the media lock.
* A Python exception escaping a SWIG director callback aborts the process (it becomes a C++
  exception on a pjsua thread), so every callback is wrapped; errors are logged, shown in timeout
  messages, and raised when the lab closes.
* Python threads other than the one that created the lab are registered with pjlib on first use
  (pjlib asserts, i.e. aborts, when called from an unknown thread).
* Object lifetimes follow pjsua2's C++ destructors, which call into pjsua unconditionally:
  ``Call::~Call`` clears the user data of its call slot (which pjsua reuses for later calls) and
  asserts once ``libDestroy`` has run; a second ``Endpoint`` throws an untranslated C++ exception.
  So the lab keeps every pjsua2 call and account alive while it runs, and at close tears down in
  a fixed order on a registered thread: hang up, destroy players and recorders (this writes the
  WAV headers), unregister and delete accounts, destroy the pjsua2 calls and accounts, then
  ``libDestroy``. The pjsua2 subclasses reach the Python wrappers through weak references, so the
  garbage collector never finds a pjsua object in a cycle and destroys it on some random thread.
  The wrappers stay readable after close (state, DTMF, headers, ``recording()``).
* Codecs: only the listed ones (default PCMU, then PCMA) are enabled; the conference bridge runs at
  8 kHz so nothing is resampled and recordings are 8 kHz 16-bit mono WAV.
* pjsua logs (level 4 includes every SIP message) go to ``<log_dir>/pjsua.log``, not the console.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import traceback
import wave
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pjsua2 as pj

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = 10.0

_COMPACT_HEADERS = {
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "v": "via",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}

# pjsua2's Endpoint constructor throws a C++ exception that SWIG does not translate when an
# Endpoint already exists, which terminates the process, so the one-lab rule is checked here first.
_active_lab: PhoneLab | None = None
_active_lab_lock = threading.Lock()


def _wav_header_complete(path: Path) -> bool:
    try:
        size = path.stat().st_size
        with wave.open(str(path), "rb") as w:
            frames, width, channels = w.getnframes(), w.getsampwidth(), w.getnchannels()
    except (OSError, EOFError, wave.Error):
        return False
    data = frames * width * channels
    return size <= 44 or 0 < data <= size - 44


def _wait_wav_header(path: Path, timeout: float = 5.0) -> None:
    """pjsua 2.15 removes conference ports asynchronously (on the next media clock tick), so the
    recorder's file is closed and its WAV header written a few ms after the recorder is released."""
    deadline = time.monotonic() + timeout
    while not _wav_header_complete(path):
        if time.monotonic() > deadline:
            raise PhoneTimeout(f"WAV header of {path} not written within {timeout:.0f} s")
        time.sleep(0.01)


class PhoneTimeout(AssertionError, TimeoutError):
    """A wait in this module timed out; the message says what was awaited and the current state."""


class PhoneError(AssertionError):
    """Something the test expected from a phone cannot happen (call failed, no recording, ...)."""


# --------------------------------------------------------------------------------------------
# SIP message helpers
# --------------------------------------------------------------------------------------------


def parse_headers(message: str) -> dict[str, list[str]]:
    """Header fields of a raw SIP message, keyed by lower-case full name, values in order."""
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    lines = re.split(r"\r?\n", head)[1:]  # skip the request/status line
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        elif line:
            unfolded.append(line)
    headers: dict[str, list[str]] = {}
    for line in unfolded:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT_HEADERS.get(key, key)
        headers.setdefault(key, []).append(value.strip())
    return headers


def parse_name_addr(value: str) -> tuple[str, str, str]:
    """Split a From/To/Contact value into (display name, URI, user part)."""
    m = re.match(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>', value)
    if m:
        display = (m.group(1) if m.group(1) is not None else m.group(2) or "").strip()
        display = re.sub(r"\\(.)", r"\1", display)
        uri = m.group(3).strip()
    else:
        display, uri = "", value.split(";", 1)[0].strip()
    um = re.match(r"sips?:([^@;>]+)@", uri)
    return display, uri, um.group(1) if um else ""


def _request_uri_hostport(message: str) -> str | None:
    first = message.split("\n", 1)[0]
    m = re.match(r"\s*[A-Z]+\s+sips?:(?:[^@\s]*@)?([^;>?\s]+)", first)
    if not m:
        return None
    hostport = m.group(1)
    return hostport if ":" in hostport else hostport + ":5060"


# --------------------------------------------------------------------------------------------
# Callback safety
# --------------------------------------------------------------------------------------------


def _guard(method: F) -> F:
    """Never let an exception escape into pjsua (it would abort the process); record it instead."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            text = f"exception in pjsua callback {method.__qualname__}:\n{traceback.format_exc()}"
            log.error("%s", text)
            lab = self._lab_ref() if getattr(self, "_lab_ref", None) else None
            if lab is not None:
                lab._callback_errors.append(text)
            return None

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# pjsua2 director subclasses (thin: they forward to the wrappers through weak references)
# --------------------------------------------------------------------------------------------


class _Endpoint(pj.Endpoint):  # type: ignore[misc]
    def __init__(self, lab: PhoneLab) -> None:
        super().__init__()
        self._lab_ref = weakref.ref(lab)

    @_guard
    def onSelectAccount(self, prm: Any) -> None:
        # pjsua's own choice (user-part match, else the default account) is wrong when several
        # phones share a user or an IP; the Request-URI's host:port names exactly one transport.
        lab = self._lab_ref()
        hostport = _request_uri_hostport(prm.rdata.wholeMsg)
        if lab is None or hostport is None:
            return
        for phone in lab._phones:
            if phone.address == hostport:
                prm.accountIndex = phone._acc.getId()
                return


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self._phone_ref = weakref.ref(phone)
        self._lab_ref = phone._lab_ref

    @_guard
    def onRegState(self, prm: Any) -> None:
        phone = self._phone_ref()
        if phone is not None:
            phone._on_reg_state(int(prm.code), str(prm.reason), int(prm.expiration))

    @_guard
    def onIncomingCall(self, prm: Any) -> None:
        phone = self._phone_ref()
        if phone is not None:
            phone._on_incoming(prm.callId, str(prm.rdata.wholeMsg), str(prm.rdata.srcAddress))


class _PjCall(pj.Call):  # type: ignore[misc]
    def __init__(self, acc: _Account, call_id: int, owner: Call) -> None:
        super().__init__(acc, call_id)
        self._owner_ref = weakref.ref(owner)
        self._lab_ref = owner._lab_ref

    @_guard
    def onCallState(self, prm: Any) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._on_state()

    @_guard
    def onCallMediaState(self, prm: Any) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._on_media_state()

    @_guard
    def onDtmfDigit(self, prm: Any) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._on_dtmf(str(prm.digit))


class _Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, owner: Call) -> None:
        super().__init__()
        self._owner_ref = weakref.ref(owner)
        self._lab_ref = owner._lab_ref

    @_guard
    def onEof2(self) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._on_playback_eof(self)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


class Call:
    """One call leg of a test phone. All methods are synchronous and safe from any Python thread."""

    def __init__(self, phone: Phone, call_id: int, *, incoming: bool) -> None:
        self.phone = phone
        self._lab_ref = phone._lab_ref
        self.direction = "incoming" if incoming else "outgoing"
        self.state: int = pj.PJSIP_INV_STATE_NULL
        self.state_text = "NULL"
        self.last_status_code = 0
        self.last_reason = ""
        self.remote_uri = ""
        self.remote_contact = ""
        self.local_uri = ""
        self.sip_call_id = ""
        self.received_dtmf = ""
        """Digits received so far (RFC 2833 or SIP INFO), in order."""
        self.invite = ""
        """Raw INVITE text for an incoming call ("" for outgoing calls)."""
        self.headers: dict[str, list[str]] = {}
        """INVITE header fields for an incoming call, keyed by lower-case name."""
        self.from_display = ""
        self.from_user = ""
        self.from_uri = ""
        self.source_address = ""
        """host:port the INVITE came from (incoming calls)."""
        self.invited_at: float | None = None
        """time.monotonic() when the INVITE arrived (incoming calls)."""
        self.confirmed_at: float | None = None
        self.disconnected_at: float | None = None
        self.media_active = False
        self._audio_index = -1
        self._media_lock = threading.RLock()
        self._play_path: Path | None = None
        self._play_loop = False
        self._player: _Player | None = None
        self._playback_done = False
        self._record_path: Path | None = None
        self._recorder: Any = None
        self._finished_recordings: list[Path] = []
        self._pj: Any = _PjCall(phone._acc, call_id, self)

    def __repr__(self) -> str:
        return (
            f"<Call {self.direction} {self.phone.address} <-> {self.remote_uri or '?'} "
            f"state={self.state_text} last={self.last_status_code} {self.last_reason}>"
        )

    # -- properties ---------------------------------------------------------------------------

    @property
    def is_confirmed(self) -> bool:
        return bool(self.state == pj.PJSIP_INV_STATE_CONFIRMED)

    @property
    def is_disconnected(self) -> bool:
        return bool(self.state == pj.PJSIP_INV_STATE_DISCONNECTED)

    @property
    def to_user(self) -> str:
        """The user part of an incoming INVITE's request URI ("" for outgoing calls)."""
        first = self.invite.split("\n", 1)[0]
        m = re.match(r"\s*INVITE\s+sips?:([^@;>\s]+)@", first)
        return m.group(1) if m else ""

    def header(self, name: str) -> str | None:
        """First value of an INVITE header (incoming calls), or None."""
        key = name.lower()
        values = self.headers.get(_COMPACT_HEADERS.get(key, key))
        return values[0] if values else None

    # -- actions ------------------------------------------------------------------------------

    def answer(
        self,
        code: int = 200,
        *,
        play: Path | str | None = None,
        record: Path | str | None = None,
        loop: bool = False,
    ) -> None:
        """Answer (or send a provisional ``code`` such as 180/183) an incoming call.

        ``play`` starts once media is active (played once unless ``loop``); ``record`` captures what
        the far end sends, from media start until ``recording()``, ``wait_disconnected()`` or close.
        """
        self._require_live("answer")
        self._request_media(play, record, loop)
        prm = pj.CallOpParam()
        prm.statusCode = code
        try:
            self._pj.answer(prm)
        except pj.Error as e:
            raise PhoneError(f"answer({code}) failed on {self!r}: {e.info()}") from None
        # For an offer in the INVITE, media is already up by now; wire it in case the callback ran
        # before the requests above were visible (harmless if it is already wired).
        self._wire_media()

    def ring(self) -> None:
        self.answer(180)

    def hangup(self, code: int | None = None) -> None:
        """Hang up (or reject with ``code`` if not yet answered). A no-op once disconnected."""
        lab = self._lab()
        lab._ensure_thread()
        if self.is_disconnected:
            return
        prm = pj.CallOpParam()
        if code is not None:
            prm.statusCode = code
        try:
            self._pj.hangup(prm)
        except pj.Error as e:
            # The call may have ended between the check and the hangup.
            if not self.is_disconnected:
                raise PhoneError(f"hangup failed on {self!r}: {e.info()}") from None

    def reject(self, code: int = 486) -> None:
        self.hangup(code)

    def send_dtmf(self, digits: str, duration_ms: int = 160) -> None:
        """Send DTMF as RFC 2833 telephone events (queued by pjsua, sent one after another)."""
        self._require_live("send DTMF")
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.duration = duration_ms
        try:
            self._pj.sendDtmf(prm)
        except pj.Error as e:
            raise PhoneError(f"sending DTMF {digits!r} failed on {self!r}: {e.info()}") from None

    def play(self, path: Path | str, *, loop: bool = False) -> None:
        """Play a WAV file to the far end now (or as soon as media is active), replacing any other."""
        self._lab()._ensure_thread()
        self._drop_player()
        self._request_media(path, None, loop)
        self._wire_media()

    def stop_playing(self) -> None:
        self._lab()._ensure_thread()
        self._drop_player()

    def record(self, path: Path | str) -> None:
        """Record what the far end sends into ``path`` (finalises any earlier recording)."""
        self._lab()._ensure_thread()
        self._finish_recording()
        self._request_media(None, path, False)
        self._wire_media()

    def recording(self) -> Path:
        """Stop recording (if still running), write the WAV header, and return the file path.

        Also works after the lab is closed (closing finalises every recording).
        """
        lab = self._lab_ref()
        if lab is not None and not lab._closed:
            lab._ensure_thread()
            self._finish_recording()
        if not self._finished_recordings:
            raise PhoneError(f"{self!r}: no recording was requested (pass record=...)")
        path = self._finished_recordings[-1]
        if not path.exists():
            raise PhoneError(f"{self!r}: recording {path} was never created (media never started?)")
        _wait_wav_header(path)
        return path

    # -- queries ------------------------------------------------------------------------------

    def rx_audio_seconds(self) -> float:
        """Seconds of audio received over RTP so far (0 if media is not up)."""
        lab = self._lab()
        lab._ensure_thread()
        idx = self._audio_index
        if idx < 0 or self.is_disconnected:
            return 0.0
        try:
            stat = self._pj.getStreamStat(idx)
            rx = stat.rtcp.rxStat
            pkts, nbytes = int(rx.pkt), int(rx.bytes)
            codec = str(self._pj.getStreamInfo(idx).codecName).upper()
        except pj.Error:
            return 0.0
        if codec in ("PCMU", "PCMA"):
            return nbytes / 8000.0  # one byte per sample at 8 kHz, whatever the packet size
        return pkts * 0.02

    def codec(self) -> str:
        """Negotiated audio codec name, e.g. "PCMU"."""
        self._lab()._ensure_thread()
        if self._audio_index < 0:
            raise PhoneError(f"{self!r}: no active audio stream")
        return str(self._pj.getStreamInfo(self._audio_index).codecName)

    # -- waits --------------------------------------------------------------------------------

    def wait_early(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait for a provisional response with a tag (180/183): the far end is ringing."""
        self._lab()._wait(
            lambda: self.state >= pj.PJSIP_INV_STATE_EARLY,
            timeout,
            lambda: f"ringing (180/183) on {self!r}",
        )
        if self.is_disconnected:
            raise PhoneError(
                f"call ended before ringing: {self.last_status_code} {self.last_reason} ({self!r})"
            )

    def wait_confirmed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the call is answered and ACKed; fails at once if it ends first."""
        lab = self._lab()
        lab._wait(
            lambda: self.is_confirmed or self.is_disconnected, timeout, lambda: f"call confirmed on {self!r}"
        )
        if not self.is_confirmed:
            raise PhoneError(
                f"call ended before being answered: {self.last_status_code} {self.last_reason} ({self!r})"
            )

    def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait for the call to end; then release its player and finalise its recording."""
        self._lab()._wait(lambda: self.is_disconnected, timeout, lambda: f"call disconnected on {self!r}")
        self._release_media()

    def wait_media(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until audio media is active (player/recorder are wired at that moment)."""
        self._lab()._wait(
            lambda: self.media_active or self.is_disconnected,
            timeout,
            lambda: f"active audio media on {self!r}",
        )
        if not self.media_active:
            raise PhoneError(f"call ended before media became active: {self!r}")

    def wait_rx_audio(self, seconds: float, timeout: float = DEFAULT_TIMEOUT) -> float:
        """Wait until at least ``seconds`` of audio have arrived over RTP; return the amount."""
        lab = self._lab()
        deadline = time.monotonic() + timeout
        got = 0.0
        while True:
            got = self.rx_audio_seconds()
            if got >= seconds:
                return got
            if self.is_disconnected:
                raise PhoneError(
                    f"call ended after {got:.2f}s of received audio (wanted {seconds}s): {self!r}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PhoneTimeout(
                    f"timed out after {timeout}s waiting for {seconds}s of received audio "
                    f"(got {got:.2f}s) on {self!r}{lab._error_suffix()}"
                )
            # Polling is the only option: pjsua has no "N packets received" callback.
            time.sleep(min(0.05, remaining))

    def wait_dtmf(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait until at least ``count`` DTMF digits arrived; return all digits received so far."""
        self._lab()._wait(
            lambda: len(self.received_dtmf) >= count,
            timeout,
            lambda: f"{count} DTMF digit(s) (have {self.received_dtmf!r}) on {self!r}",
        )
        return self.received_dtmf

    def wait_playback_done(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until a non-looping ``play`` file has been played to its end."""
        self._lab()._wait(lambda: self._playback_done, timeout, lambda: f"end of playback on {self!r}")

    # -- internals ----------------------------------------------------------------------------

    def _lab(self) -> PhoneLab:
        lab = self._lab_ref()
        if lab is None or lab._closed:
            raise PhoneError("the PhoneLab owning this call is closed")
        return lab

    def _require_live(self, action: str) -> None:
        self._lab()._ensure_thread()
        # pjsua reuses call slots: a pjsua2 Call of an ended call would act on whichever new call
        # now holds its old id.
        if self.is_disconnected:
            raise PhoneError(f"cannot {action}: the call has ended ({self!r})")

    def _request_media(self, play: Path | str | None, record: Path | str | None, loop: bool) -> None:
        with self._media_lock:
            if play is not None:
                p = Path(play)
                if not p.is_file():
                    raise PhoneError(f"file to play does not exist: {p}")
                self._play_path, self._play_loop, self._playback_done = p, loop, False
            if record is not None:
                r = Path(record)
                r.parent.mkdir(parents=True, exist_ok=True)
                self._record_path = r

    def _wire_media(self) -> None:
        """Connect the requested player/recorder to the call's audio port, creating them if needed."""
        idx, pjc = self._audio_index, self._pj
        if idx < 0 or pjc is None or self.is_disconnected:
            return
        try:
            # Taken before the media lock: it needs the call's dialog lock (see module docstring).
            aud = pjc.getAudioMedia(idx)
        except pj.Error:
            return
        with self._media_lock:
            if self._play_path is not None and self._player is None:
                player = _Player(self)
                options = 0 if self._play_loop else pj.PJMEDIA_FILE_NO_LOOP
                player.createPlayer(str(self._play_path), options)
                self._player = player
            if self._player is not None:
                self._player.startTransmit(aud)  # connecting twice is a no-op in the bridge
            if self._record_path is not None and self._recorder is None:
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(str(self._record_path))
                self._recorder = recorder
            if self._recorder is not None:
                aud.startTransmit(self._recorder)

    def _drop_player(self) -> None:
        with self._media_lock:
            player, self._player = self._player, None
            self._play_path = None
        del player  # the C++ destructor removes the port from the conference bridge

    def _finish_recording(self) -> None:
        with self._media_lock:
            recorder, self._recorder = self._recorder, None
            path, self._record_path = self._record_path, None
        if recorder is not None:
            del recorder  # destroying the recorder writes the WAV header
        if path is not None:
            self._finished_recordings.append(path)

    def _release_media(self) -> None:
        self._drop_player()
        self._finish_recording()

    # Callbacks (pjsua threads).

    def _on_state(self) -> None:
        pjc = self._pj
        if pjc is None:  # lab closing
            return
        ci = pjc.getInfo()
        lab = self._lab_ref()
        if lab is None:
            return
        with lab._cond:
            self.state = int(ci.state)
            self.state_text = str(ci.stateText)
            self.last_status_code = int(ci.lastStatusCode)
            self.last_reason = str(ci.lastReason)
            self.remote_uri = str(ci.remoteUri)
            self.remote_contact = str(ci.remoteContact)
            self.local_uri = str(ci.localUri)
            self.sip_call_id = str(ci.callIdString)
            now = time.monotonic()
            if self.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
                self.confirmed_at = now
            if self.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.disconnected_at = now
                self.media_active = False
                self._audio_index = -1
            lab._cond.notify_all()

    def _on_media_state(self) -> None:
        pjc = self._pj
        if pjc is None:
            return
        ci = pjc.getInfo()  # keep ci alive while reading ci.media (SWIG vector of structs)
        media = ci.media
        idx = -1
        for mi in media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                idx = int(mi.index)
                break
        self._audio_index = idx
        if idx >= 0:
            self._wire_media()
        lab = self._lab_ref()
        if lab is None:
            return
        with lab._cond:
            self.media_active = idx >= 0
            lab._cond.notify_all()

    def _on_dtmf(self, digit: str) -> None:
        lab = self._lab_ref()
        if lab is None:
            return
        with lab._cond:
            self.received_dtmf += digit
            lab._cond.notify_all()

    def _on_playback_eof(self, player: _Player) -> None:
        lab = self._lab_ref()
        if lab is None or player is not self._player:
            return
        with lab._cond:
            self._playback_done = True
            lab._cond.notify_all()


class Phone:
    """A SIP user agent: one UDP transport bound to ``bind_ip`` and one account on it."""

    def __init__(
        self,
        lab: PhoneLab,
        *,
        bind_ip: str,
        port: int,
        user: str | None,
        password: str | None,
        registrar: str | None,
        display_name: str | None,
        auto_ring: bool,
        realm: str,
        reg_timeout_s: int,
    ) -> None:
        self._lab_ref = weakref.ref(lab)
        self.bind_ip = bind_ip
        self.user = user or "phone"
        self.registrar = registrar
        self.auto_ring = auto_ring
        self.reg_code = 0
        self.reg_reason = ""
        self.reg_expiration = 0
        self.registered = False
        self._reg_events = 0
        self.calls: list[Call] = []
        self._unclaimed: list[Call] = []

        ep = lab._ep
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = bind_ip
        tcfg.publicAddress = bind_ip
        tcfg.port = port
        self._transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.address = str(ep.transportGetInfo(self._transport_id).localName)
        """host:port of this phone's SIP transport, e.g. "127.0.0.2:40123"."""
        self.port = int(self.address.rsplit(":", 1)[1])

        domain = registrar.rsplit(":", 1)[0] if registrar else bind_ip
        aor = f"sip:{self.user}@{domain}"
        acfg = pj.AccountConfig()
        acfg.idUri = f'"{display_name}" <{aor}>' if display_name else aor
        acfg.sipConfig.transportId = self._transport_id
        if password is not None:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", realm, self.user, 0, password))
        if registrar:
            acfg.regConfig.registrarUri = f"sip:{registrar}"
            acfg.regConfig.registerOnAdd = True
            acfg.regConfig.timeoutSec = reg_timeout_s
            # Short retries: a phone created before Asterisk is ready should register soon after.
            acfg.regConfig.retryIntervalSec = 2
            acfg.regConfig.firstRetryIntervalSec = 1
        # Keep Contact exactly "sip:user@bind_ip:port": no outbound/instance params, no rewriting.
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = bind_ip
        acfg.mediaConfig.transportConfig.publicAddress = bind_ip
        self._acc: Any = _Account(self)
        self._acc.create(acfg, False)

    def __repr__(self) -> str:
        return f"<Phone {self.user}@{self.address} registered={self.registered} last_reg={self.reg_code}>"

    @property
    def uri(self) -> str:
        """SIP URI that reaches this phone directly (no registrar involved)."""
        return f"sip:{self.user}@{self.address}"

    def call(
        self,
        uri: str,
        *,
        play: Path | str | None = None,
        record: Path | str | None = None,
        loop: bool = False,
        headers: Mapping[str, str] | None = None,
        from_user: str | None = None,
    ) -> Call:
        """Place a call. ``play``/``record`` start when media becomes active (see ``Call.answer``).

        ``from_user`` replaces the user part of From for this call only: one phone on the
        carrier's address can then be many callers (pjsua allows only 8 phones per process)."""
        lab = self._lab()
        lab._ensure_thread()
        lab._reap()
        call = Call(self, pj.PJSUA_INVALID_ID, incoming=False)
        call._request_media(play, record, loop)
        with lab._cond:
            self.calls.append(call)
        prm = pj.CallOpParam(True)
        for name, value in (headers or {}).items():
            h = pj.SipHeader()
            h.hName, h.hValue = name, value
            prm.txOption.headers.append(h)
        if from_user is not None:
            prm.txOption.localUri = f"sip:{from_user}@{self.bind_ip}"
        try:
            call._pj.makeCall(uri, prm)
        except pj.Error as e:
            raise PhoneError(f"makeCall({uri}) from {self!r} failed: {e.info()}") from None
        return call

    def wait_incoming(self, timeout: float = DEFAULT_TIMEOUT, to_user: str | None = None) -> Call:
        """Return the oldest incoming call not yet returned by this method; with ``to_user``, the
        oldest whose request URI names that user (one phone answering for several agents' static
        contacts, each ``sip:<agent>@<this phone>``)."""
        lab = self._lab()

        def match() -> Call | None:
            return next((c for c in self._unclaimed if to_user is None or c.to_user == to_user), None)

        lab._wait(
            lambda: match() is not None,
            timeout,
            lambda: f"an incoming call{f' for {to_user}' if to_user else ''} on {self!r}",
        )
        with lab._cond:
            call = match()
            assert call is not None
            self._unclaimed.remove(call)
            return call

    def wait_registered(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        lab = self._lab()
        lab._wait(
            lambda: self.registered,
            timeout,
            lambda: f"registration of {self!r} (last response: {self.reg_code} {self.reg_reason})",
        )

    def register(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._set_registration(True)
        self.wait_registered(timeout)

    def unregister(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send REGISTER with Expires: 0 and wait for the registrar's answer."""
        lab = self._lab()
        with lab._cond:
            seen = self._reg_events
        self._set_registration(False)
        lab._wait(
            lambda: self._reg_events > seen and not self.registered,
            timeout,
            lambda: f"unregistration of {self!r}",
        )

    # -- internals ----------------------------------------------------------------------------

    def _lab(self) -> PhoneLab:
        lab = self._lab_ref()
        if lab is None or lab._closed:
            raise PhoneError("the PhoneLab owning this phone is closed")
        return lab

    def _set_registration(self, renew: bool) -> None:
        if not self.registrar:
            raise PhoneError(f"{self!r} has no registrar")
        self._lab()._ensure_thread()
        self._acc.setRegistration(renew)

    def _on_reg_state(self, code: int, reason: str, expiration: int) -> None:
        lab = self._lab_ref()
        if lab is None:
            return
        with lab._cond:
            self.reg_code, self.reg_reason, self.reg_expiration = code, reason, expiration
            self.registered = 200 <= code < 300 and expiration > 0
            self._reg_events += 1
            lab._cond.notify_all()

    def _on_incoming(self, call_id: int, invite: str, source: str) -> None:
        lab = self._lab_ref()
        if lab is None:
            return
        call = Call(self, call_id, incoming=True)
        call.invited_at = time.monotonic()
        call.invite = invite
        call.headers = parse_headers(invite)
        call.source_address = source
        from_value = call.header("from") or ""
        call.from_display, call.from_uri, call.from_user = parse_name_addr(from_value)
        call._on_state()
        if self.auto_ring:
            prm = pj.CallOpParam()
            prm.statusCode = 180
            try:
                call._pj.answer(prm)
            except pj.Error as e:  # e.g. the caller cancelled already
                log.warning("180 Ringing failed for %r: %s", call, e.info())
        with lab._cond:
            self.calls.append(call)
            self._unclaimed.append(call)
            lab._cond.notify_all()


class PhoneLab:
    """Owns the process-wide pjsua2 Endpoint and every phone, call, player and recorder in it."""

    def __init__(
        self,
        log_dir: Path | str,
        *,
        log_level: int = 4,
        codecs: Iterable[str] = ("PCMU/8000", "PCMA/8000"),
        clock_rate: int = 8000,
        max_calls: int = 32,
        user_agent: str = "Lianluo test phone (pjsua2)",
    ) -> None:
        self.log_dir = Path(log_dir)
        self.log_file = self.log_dir / "pjsua.log"
        self._log_level = log_level
        self._codecs = list(codecs)
        self._clock_rate = clock_rate
        self._max_calls = max_calls
        self._user_agent = user_agent
        self._cond = threading.Condition(threading.RLock())
        self._phones: list[Phone] = []
        self._callback_errors: list[str] = []
        self._ep: Any = None
        self._started = False
        self._closed = False

    def __enter__(self) -> PhoneLab:
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(raise_errors=exc_type is None)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        global _active_lab
        with _active_lab_lock:
            if _active_lab is not None:
                raise PhoneError(
                    f"only one PhoneLab may be open per process (pjsua2 has a single Endpoint); "
                    f"{_active_lab.log_dir} is still open"
                )
            _active_lab = self
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._ep = _Endpoint(self)
            self._ep.libCreate()
            self._init_endpoint()
        except BaseException:
            if self._ep is not None:
                self._ep.libDestroy()
                self._ep = None
            with _active_lab_lock:
                _active_lab = None
            raise
        self._started = True
        log.info("PhoneLab started, pjsua log: %s", self.log_file)

    def _init_endpoint(self) -> None:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 1
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = self._max_calls
        cfg.uaConfig.userAgent = self._user_agent
        cfg.logConfig.filename = str(self.log_file)
        cfg.logConfig.fileFlags = pj.PJ_O_APPEND
        cfg.logConfig.level = self._log_level
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.msgLogging = True
        cfg.medConfig.clockRate = self._clock_rate
        cfg.medConfig.sndClockRate = self._clock_rate
        # VAD would stop RTP during silence; Asterisk and the audio checks want a steady stream.
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        self._ep.libInit(cfg)
        self._ep.audDevManager().setNullDev()
        self._set_codecs()
        self._ep.libStart()

    def close(self, raise_errors: bool = True) -> None:
        """Hang up everything, finalise recordings, destroy the Endpoint. Safe to call twice."""
        if not self._started or self._closed:
            return
        self._ensure_thread()
        calls = [c for p in self._phones for c in p.calls]
        for call in calls:
            if not call.is_disconnected:
                try:
                    call.hangup()
                except (PhoneError, pj.Error) as e:
                    log.warning("hangup at close failed for %r: %s", call, e)
        try:
            self._wait(lambda: all(c.is_disconnected for c in calls), 5.0, "all calls to end at close")
        except PhoneTimeout as e:
            log.warning("%s", e)
        for call in calls:
            call._release_media()
        for phone in self._phones:
            if phone.registered:
                try:
                    phone.unregister(timeout=2.0)
                except (PhoneTimeout, PhoneError, pj.Error) as e:
                    log.warning("unregister at close failed for %r: %s", phone, e)
            try:
                phone._acc.shutdown()
            except pj.Error as e:
                log.warning("account shutdown failed for %r: %s", phone, e)
        # pjsua2's C++ destructors of Call and Account call into pjsua without checking that it
        # still exists (Call::~Call asserts after libDestroy), so they must run now, on this
        # registered thread, while pjsua is up. The Python wrappers stay usable for reading results.
        for call in calls:
            call._pj = None
        for phone in self._phones:
            phone._acc = None
        self._closed = True
        try:
            self._ep.libDestroy()
        except pj.Error as e:
            log.warning("libDestroy failed: %s", e.info())
        self._ep = None  # destroys the Endpoint singleton so a later PhoneLab can create a new one
        global _active_lab
        with _active_lab_lock:
            _active_lab = None
        self._phones = []
        errors = list(self._callback_errors)
        if errors and raise_errors:
            raise AssertionError("errors in pjsua callbacks:\n" + "\n".join(errors))

    # -- phones -------------------------------------------------------------------------------

    def phone(
        self,
        bind_ip: str = "127.0.0.1",
        *,
        user: str | None = None,
        password: str | None = None,
        registrar: str | None = None,
        display_name: str | None = None,
        port: int = 0,
        auto_ring: bool = True,
        realm: str = "*",
        reg_timeout_s: int = 300,
    ) -> Phone:
        """Create a phone bound to ``bind_ip`` (random port unless ``port``).

        With ``registrar`` ("host:port") it registers as ``user`` using digest ``password``. Without
        it, ``password`` still answers digest challenges on outgoing calls. ``auto_ring`` sends
        180 Ringing to every incoming INVITE, as a real desk phone does.
        """
        if not self._started or self._closed:
            raise PhoneError("PhoneLab is not running (use it as a context manager)")
        self._ensure_thread()
        phone = Phone(
            self,
            bind_ip=bind_ip,
            port=port,
            user=user,
            password=password,
            registrar=registrar,
            display_name=display_name,
            auto_ring=auto_ring,
            realm=realm,
            reg_timeout_s=reg_timeout_s,
        )
        with self._cond:
            self._phones.append(phone)
        return phone

    @property
    def callback_errors(self) -> list[str]:
        return list(self._callback_errors)

    # -- internals ----------------------------------------------------------------------------

    def _set_codecs(self) -> None:
        for info in self._ep.codecEnum2():
            self._ep.codecSetPriority(info.codecId, 0)
        top = 255
        for i, codec in enumerate(self._codecs):
            self._ep.codecSetPriority(codec, top - i)

    def _ensure_thread(self) -> None:
        if self._ep is not None and not self._ep.libIsThreadRegistered():
            self._ep.libRegisterThread(threading.current_thread().name)

    def _reap(self) -> None:
        """Release players/recorders of ended calls (pjsua has a fixed number of them)."""
        for phone in self._phones:
            for call in phone.calls:
                if call.is_disconnected and (call._player is not None or call._recorder is not None):
                    call._release_media()

    def _error_suffix(self) -> str:
        if not self._callback_errors:
            return ""
        return "\n(errors in pjsua callbacks:\n" + "\n".join(self._callback_errors) + ")"

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
        """Block until ``predicate`` holds; ``what`` (or its result, computed at timeout) names it."""
        with self._cond:
            if self._cond.wait_for(predicate, timeout):
                return
        text = what() if callable(what) else what
        raise PhoneTimeout(f"timed out after {timeout}s waiting for {text}{self._error_suffix()}")
