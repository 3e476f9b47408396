"""Self-test of the pjsua2 test phones, without Asterisk: two phones in one lab call each other.

Proves what the real end-to-end tests rely on: calls connect between two bind addresses, audio
flows both ways and is recorded, RFC 2833 DTMF arrives, INVITE headers are visible to the callee,
recordings are finalised, and a lab can be opened again in the same process.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from pathlib import Path
from types import TracebackType

import numpy as np
import pytest

from tests.support import audio
from tests.support.sip_phone import PhoneError, PhoneLab, PhoneTimeout, parse_headers, parse_name_addr

A_TONE = 1000.0
B_TONE = 440.0


@pytest.fixture
def tones(tmp_path: Path) -> tuple[Path, Path]:
    a = audio.write_tone(tmp_path / "a_1000.wav", A_TONE, 2.0)
    b = audio.write_tone(tmp_path / "b_440.wav", B_TONE, 2.0, rate=16000)  # rates may differ
    return a, b


def test_direct_call_audio_both_ways_and_dtmf(tmp_path: Path, tones: tuple[Path, Path]) -> None:
    a_wav, b_wav = tones
    with PhoneLab(log_dir=tmp_path / "logs") as lab:
        phone_a = lab.phone(bind_ip="127.0.0.2", user="alice", display_name="Alice Caller")
        phone_b = lab.phone(bind_ip="127.0.0.1", user="bob", registrar=None)

        call = phone_a.call(
            f"sip:bob@{phone_b.address}",
            play=a_wav,
            loop=True,
            record=tmp_path / "a_heard.wav",
            headers={"X-Lianluo-Test": "selftest-1"},
        )
        incoming = phone_b.wait_incoming(timeout=10)
        call.wait_early(timeout=10)  # auto_ring sent 180

        assert incoming.direction == "incoming"
        assert incoming.source_address.startswith("127.0.0.2:")
        assert incoming.from_user == "alice"
        assert incoming.from_display == "Alice Caller"
        assert incoming.header("X-Lianluo-Test") == "selftest-1"
        assert incoming.header("call-id")
        assert incoming.remote_uri.endswith("<sip:alice@127.0.0.2>")
        assert "127.0.0.2" in incoming.remote_contact

        incoming.answer(play=b_wav, loop=True, record=tmp_path / "b_heard.wav")
        call.wait_confirmed(timeout=10)
        incoming.wait_confirmed(timeout=10)
        call.wait_media(timeout=10)
        incoming.wait_media(timeout=10)
        assert call.codec() == "PCMU"
        assert incoming.codec() == "PCMU"

        call.send_dtmf("1")
        assert incoming.wait_dtmf(count=1, timeout=10) == "1"

        # ~3 s of audio each way, measured from RTP counters, not guessed with a sleep.
        call.wait_rx_audio(3.0, timeout=20)
        incoming.wait_rx_audio(3.0, timeout=20)

        call.hangup()
        call.wait_disconnected(timeout=10)
        incoming.wait_disconnected(timeout=10)
        assert incoming.last_status_code == 200  # BYE answered normally

        a_heard = call.recording()
        b_heard = incoming.recording()

    assert audio.read_wav(a_heard)[1] == 8000
    assert audio.tone_seconds(a_heard, B_TONE) >= 1.5, "A should hear B's 440 Hz"
    assert audio.tone_seconds(a_heard, A_TONE) < 0.2, "A should not hear its own tone"
    assert audio.tone_seconds(b_heard, A_TONE) >= 1.5, "B should hear A's 1000 Hz"
    assert audio.tone_seconds(b_heard, B_TONE) < 0.2, "B should not hear its own tone"
    # DTMF was sent as RFC 2833 events, so it must not show up in-band as a 697/1209 Hz tone.
    assert audio.tone_seconds(b_heard, 1209.0) < 0.2


def test_prompt_recognised_by_cross_correlation(tmp_path: Path) -> None:
    """A played-once chirp-like prompt is found again in the far end's recording."""
    rng = np.random.default_rng(7)
    prompt = rng.standard_normal(8000 * 2) * 0.2  # 2 s of noise: a worst case for a codec
    prompt_wav = audio.write_wav(tmp_path / "prompt.wav", prompt, 8000)
    other_wav = audio.write_wav(tmp_path / "other.wav", rng.standard_normal(8000 * 2) * 0.2, 8000)
    silence = audio.write_wav(tmp_path / "silence.wav", prompt * 0, 8000)
    with PhoneLab(log_dir=tmp_path / "logs") as lab:
        caller = lab.phone(bind_ip="127.0.0.2")
        callee = lab.phone(bind_ip="127.0.0.1", user="ivr")
        call = caller.call(callee.uri, play=silence, loop=True, record=tmp_path / "heard.wav")
        ivr = callee.wait_incoming(timeout=10)
        ivr.answer(play=prompt_wav)  # played once
        ivr.wait_playback_done(timeout=15)
        call.wait_rx_audio(2.5, timeout=15)
        ivr.hangup()
        call.wait_disconnected(timeout=10)
        heard = call.recording()

    score = audio.best_match(heard, prompt_wav)
    unrelated = audio.best_match(heard, other_wav)
    assert score >= 0.6, f"prompt not recognised: {score:.2f}"
    assert unrelated < 0.3, f"unrelated audio matched: {unrelated:.2f}"


def test_rejected_call_and_clear_timeouts(tmp_path: Path) -> None:
    with PhoneLab(log_dir=tmp_path / "logs") as lab:
        caller = lab.phone(bind_ip="127.0.0.2")
        callee = lab.phone(bind_ip="127.0.0.1", user="busy")
        call = caller.call(callee.uri)
        callee.wait_incoming(timeout=10).reject(486)
        with pytest.raises(PhoneError, match="486"):
            call.wait_confirmed(timeout=10)
        call.wait_disconnected(timeout=10)
        with pytest.raises(PhoneTimeout, match="incoming call"):
            callee.wait_incoming(timeout=0.2)
        with pytest.raises(PhoneError, match="no registrar"):
            callee.unregister()


def test_lab_can_be_reopened_in_same_process(tmp_path: Path) -> None:
    for round_no in range(2):
        with PhoneLab(log_dir=tmp_path / f"logs{round_no}") as lab:
            a = lab.phone(bind_ip="127.0.0.2")
            b = lab.phone(bind_ip="127.0.0.1", user="b")
            call = a.call(b.uri)
            b.wait_incoming(timeout=10).answer()
            call.wait_confirmed(timeout=10)
            # Left up on purpose: closing the lab must hang up and shut down cleanly.
        assert call.is_disconnected


# ---------------------------------------------------------------------------------------------
# Registration, against a minimal digest-auth registrar (just enough SIP to check the phone side)
# ---------------------------------------------------------------------------------------------


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class FakeRegistrar:
    """UDP registrar: challenges every REGISTER (RFC 2617 digest, no qop), then records contacts."""

    REALM = "lianluo-test"
    NONCE = "c0ffee"

    def __init__(self, users: dict[str, str], host: str = "127.0.0.1") -> None:
        self.users = users
        self.contacts: dict[str, str] = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-registrar", daemon=True)

    def __enter__(self) -> FakeRegistrar:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode(errors="replace")
            if text.startswith("REGISTER "):
                self.sock.sendto(self._handle(text).encode(), addr)

    def _handle(self, msg: str) -> str:
        h = parse_headers(msg)
        _, _, user = parse_name_addr(h["to"][0])
        auth = h.get("authorization", [""])[0]
        if not auth:
            challenge = f'Digest realm="{self.REALM}", nonce="{self.NONCE}", algorithm=MD5'
            return self._reply(h, "401 Unauthorized", [f"WWW-Authenticate: {challenge}"])
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        ha1 = _md5(f"{params.get('username')}:{self.REALM}:{self.users.get(user, '')}")
        expected = _md5(f"{ha1}:{self.NONCE}:{_md5('REGISTER:' + params.get('uri', ''))}")
        if user not in self.users or params.get("response") != expected:
            return self._reply(h, "403 Forbidden", [])
        contact = h["contact"][0]
        _, contact_uri, _ = parse_name_addr(contact)
        m = re.search(r";\s*expires=(\d+)", contact)
        expires = int(m.group(1)) if m else int(h.get("expires", ["3600"])[0])
        with self.lock:
            if expires == 0:
                self.contacts.pop(user, None)
            else:
                self.contacts[user] = contact_uri
        extra = [f"Contact: <{contact_uri}>;expires={expires}"] if expires else []
        return self._reply(h, "200 OK", [*extra, f"Expires: {expires}"])

    def _reply(self, h: dict[str, list[str]], status: str, extra: list[str]) -> str:
        to = h["to"][0] if "tag=" in h["to"][0] else h["to"][0] + ";tag=reg1"
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for v in h["via"]]
        lines += [
            f"From: {h['from'][0]}",
            f"To: {to}",
            f"Call-ID: {h['call-id'][0]}",
            f"CSeq: {h['cseq'][0]}",
        ]
        lines += extra
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines)


def test_registration_digest_auth_and_unregistration(tmp_path: Path) -> None:
    with FakeRegistrar({"1001": "secret", "1002": "secret2"}) as registrar:
        with PhoneLab(log_dir=tmp_path / "logs") as lab:
            agent = lab.phone(
                bind_ip="127.0.0.1", user="1001", password="secret", registrar=registrar.address
            )
            agent.wait_registered(timeout=10)
            assert registrar.contacts["1001"] == f"sip:1001@{agent.address}"

            intruder = lab.phone(
                bind_ip="127.0.0.1", user="1002", password="wrong", registrar=registrar.address
            )
            with pytest.raises(PhoneTimeout, match="403"):
                intruder.wait_registered(timeout=1.5)
            assert "1002" not in registrar.contacts

            agent.unregister(timeout=10)
            assert not agent.registered and "1001" not in registrar.contacts
            agent.register(timeout=10)
            assert "1001" in registrar.contacts
            # Left registered on purpose: closing the lab must unregister it.
        assert registrar.contacts == {}
