"""How long a caller waits between being answered and hearing the IVR's first prompt.

Two paths on one real Lianluo (`python -m app run`, its own Asterisk, a scratch database, free
ports), measured call by call in the same run, in alternating order:

  ours      DID 7100 -> Stasis: the app answers over ARI, records the interaction, walks the
            IVR flow and asks Asterisk to play the greeting, a cached prompt file;
  baseline  DID 7200 -> `Answer()`, `Playback(<the same cached file>)` in the instance's
            `extensions_local.conf` (appended to the carrier context): no application at all,
            the least any Asterisk set-up does to greet a caller with that file.

Timing reference and end point, both stamped by the kernel on receipt (SO_TIMESTAMPNS, one
clock), so neither this process's scheduling nor Python's speed is in the figure:

- from **the arrival of the 200 OK** at the caller (the moment the caller is answered);
- to **the arrival of the RTP packet that carries the prompt's first sample**. The received
  u-law payloads are written out as a WAV file and `tests.support.audio.find_reference` locates
  the head of the prompt in it; its `offset` is a sample index, mapped back to the packet that
  carried it. A call counts only when the match is near-exact (score >= 0.9: the stream is the
  file itself, u-law coded, and scores 1.00).

The caller is a small SIP user agent in this script (one UDP socket for SIP, one for RTP):

- It sends RTP from the first moment: its first packet leaves right after the ACK, a fraction of
  a millisecond after the 200 OK, then one every 20 ms. Dialplan `Answer()` waits up to 500 ms
  for the caller's first audio frame before the dialplan goes on (a silent caller makes the
  baseline 500 ms); ARI's answer does not wait. So the baseline's figure includes the caller's
  own reaction; the table also shows it, and the time from that first packet to the prompt.
- Why not a pjsua2 phone and its recording: the recorder starts on the media callback and
  pjsua's jitter buffer and 20 ms conference clock sit between the wire and the file. Tried on
  the same stack, it put the prompt 5 or 25 ms into the recording on both paths alike, while
  the wire showed 3.6 and 0.8 ms (p50): it cannot tell these paths apart. Why not SIPp: it can
  send from the first moment (play_pcap_audio) but logs no arrival time for the RTP it
  receives; that would need a packet capture, hence root.

The prompt file's own leading silence (a constant of the file, the same on both paths) is not
in the figure; it is printed. Also printed: INVITE -> 200 OK, the ringing before the answer
(on our path the app hears of the call, writes it down, then answers).

Usage:
  .venv/bin/python benchmarks/answer_to_prompt.py              # 40 calls per path, ~75 s
  .venv/bin/python benchmarks/answer_to_prompt.py --calls 100 --keep
  .venv/bin/python benchmarks/answer_to_prompt.py --quick      # smoke run: 4 calls per path, ~25 s

Needs the cached Asterisk (scripts/install-asterisk) and PostgreSQL (DATABASE_URL or
127.0.0.1:5432). Writes the tables and every call's figures to
benchmarks/results/answer_to_prompt.json (--quick: to the temporary directory, see QUICK_RESULTS).
It exits with 1 when a path has no measured call. Everything it starts (the app, Asterisk, the scratch
database, the temporary var dir) is removed at the end, also on error, Ctrl-C or SIGTERM;
`--keep` keeps the work dir (the app's log, the instance, the audio each call received).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from app.adapters.prompts import Prompt, PromptCache  # noqa: E402
from tests.support.audio import find_reference, read_wav  # noqa: E402
from tests.support.stack import (  # noqa: E402
    Stack,
    asterisk_pids_for,
    eventually,
    installed_asterisk_prefix,
    scratch_database,
    write_config,
)

RESULTS = REPO / "benchmarks" / "results" / "answer_to_prompt.json"
# A quick run's figures say only that the path works: they never replace a full run's file.
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "answer_to_prompt.json"
INSTANCE = "bench"
OURS_DID = "7100"
BASELINE_DID = "7200"
CARRIER_IP = "127.0.0.2"
GREETING = "Welcome to Lianluo. To speak with an agent, press 1."
PATHS = {"ours": OURS_DID, "baseline": BASELINE_DID}
LABELS = {"ours": "ours: Stasis (ARI answer + play)", "baseline": "baseline: Answer() + Playback()"}

FRAME_S = 0.020  # one RTP packet: 20 ms of 8 kHz u-law
ULAW_SILENCE = b"\xff" * 160
HEAD_S = 0.6  # how much of the prompt each call listens to and matches
MIN_SCORE = 0.9  # the stream is the file itself, u-law coded: a real match scores ~0.99

# Linux: the kernel stamps each datagram on receipt (struct timespec, CLOCK_REALTIME).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# A minimal SIP caller on the carrier's address
# ---------------------------------------------------------------------------


def udp_socket(ip: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setblocking(False)
    return s


def receive(sock: socket.socket) -> tuple[bytes, tuple[str, int], int]:
    """One datagram, its source and the kernel's receive time in ns (wall clock)."""
    data, ancillary, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(16))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack("qq", payload[:16])
            return data, addr, sec * 1_000_000_000 + nsec
    return data, addr, time.time_ns()


@dataclass
class SipMessage:
    first_line: str
    headers: dict[str, list[str]]
    body: str

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(m.group(1)) if m else None

    @property
    def method(self) -> str:
        return self.first_line.split(" ", 1)[0]

    def get(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


def parse_sip(data: bytes) -> SipMessage:
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers.setdefault(COMPACT.get(key, key), []).append(value.strip())
    return SipMessage(lines[0], headers, body)


def rtp_payload(packet: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet, None if it is not one."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    offset = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:  # header extension
        if len(packet) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", packet, offset + 2)[0]
    return packet[1] & 0x7F, packet[offset:]


@dataclass
class Heard:
    """What one call saw on the wire; times are kernel receive stamps (ns) unless noted."""

    invite_sent_ns: int  # user space, right before sendto
    answered_ns: int  # the 200 OK
    first_rtp_sent_ns: int  # user space, right before sendto
    packets: list[tuple[int, bytes]]  # (arrival ns, u-law payload) in arrival order


class CallFailed(BenchError):
    pass


class Caller:
    """Places one call at a time from CARRIER_IP: INVITE, ACK, RTP both ways, BYE."""

    def __init__(self, asterisk: tuple[str, int]) -> None:
        self.asterisk = asterisk
        self.sip = udp_socket(CARRIER_IP)
        self.rtp = udp_socket(CARRIER_IP)
        self.sip_port = self.sip.getsockname()[1]
        self.rtp_port = self.rtp.getsockname()[1]
        self.cseq = 0

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    def _send(self, text: str) -> None:
        self.sip.sendto(text.replace("\n", "\r\n").encode(), self.asterisk)

    def _via(self) -> str:
        return f"SIP/2.0/UDP {CARRIER_IP}:{self.sip_port};rport;branch=z9hG4bK{secrets.token_hex(8)}"

    def _recv_sip(self, deadline: float) -> tuple[SipMessage, int] | None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sip], [], [], left)[0]:
            return None
        data, _, ns = receive(self.sip)
        return parse_sip(data), ns

    def _reply(self, request: SipMessage, code: int = 200, reason: str = "OK") -> None:
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in request.headers.get("via", [])]
        for name in ("From", "To", "Call-ID", "CSeq"):
            lines.append(f"{name}: {request.get(name)}")
        self._send("\n".join([*lines, "Content-Length: 0", "", ""]))

    def call(self, did: str, ani: str, listen_s: float, give_up_s: float = 5.0) -> Heard:
        """Call `did`, send RTP from the moment of the 200 OK, and collect `listen_s` seconds of
        received audio (or what came within `give_up_s`); then hang up."""
        while select.select([self.rtp], [], [], 0)[0]:
            self.rtp.recv(2048)  # stray packets of the previous call
        host, port = self.asterisk
        call_id = f"{secrets.token_hex(10)}@{CARRIER_IP}"
        from_hdr = f"<sip:{ani}@{CARRIER_IP}>;tag={secrets.token_hex(6)}"
        ruri = f"sip:{did}@{host}:{port}"
        sess = secrets.randbelow(10**9)
        sdp = (
            f"v=0\no=- {sess} {sess} IN IP4 {CARRIER_IP}\ns=-\nc=IN IP4 {CARRIER_IP}\nt=0 0\n"
            f"m=audio {self.rtp_port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=ptime:20\na=sendrecv\n"
        )
        sdp_length = len(sdp.replace("\n", "\r\n").encode())  # _send writes CRLF line ends
        self.cseq += 1
        invite_cseq = self.cseq
        invite = (
            f"INVITE {ruri} SIP/2.0\nVia: {self._via()}\nMax-Forwards: 70\nFrom: {from_hdr}\n"
            f"To: <{ruri}>\nCall-ID: {call_id}\nCSeq: {invite_cseq} INVITE\n"
            f"Contact: <sip:{ani}@{CARRIER_IP}:{self.sip_port}>\nContent-Type: application/sdp\n"
            f"Content-Length: {sdp_length}\n\n{sdp}"
        )
        invite_sent_ns = time.time_ns()
        self._send(invite)

        deadline = time.monotonic() + give_up_s
        while True:
            got = self._recv_sip(deadline)
            if got is None:
                raise CallFailed(f"no answer to INVITE {did} within {give_up_s:.0f} s")
            msg, ns = got
            if msg.status is None:
                self._reply(msg)
                continue
            if msg.get("call-id") != call_id or msg.status < 200:
                continue
            if msg.status >= 300:
                raise CallFailed(f"INVITE {did}: {msg.first_line}")
            answered_ns, ok = ns, msg
            break

        media = re.search(r"c=IN IP4 (\S+)", ok.body), re.search(r"m=audio (\d+)", ok.body)
        if not (media[0] and media[1]):
            raise CallFailed(f"no audio in the 200 OK's SDP:\n{ok.body}")
        rtp_to = (media[0].group(1), int(media[1].group(1)))

        # Media both ways: ours on a fixed 20 ms schedule from now, the first packet before the
        # ACK (dialplan Answer() waits for it); theirs collected.
        ssrc, seq, ts = secrets.randbits(32), secrets.randbelow(30000), secrets.randbits(31)
        first_rtp_sent_ns = time.time_ns()  # before sendto: on loopback the receiver may run first
        self.rtp.sendto(struct.pack("!BBHII", 0x80, 0x80, seq, ts, ssrc) + ULAW_SILENCE, rtp_to)
        start, sent = time.monotonic(), 1

        to_hdr = ok.get("to")
        contact = re.search(r"<([^>]+)>", ok.get("contact"))
        target = contact.group(1) if contact else ruri
        ack = (
            f"ACK {target} SIP/2.0\nVia: {self._via()}\nMax-Forwards: 70\nFrom: {from_hdr}\nTo: {to_hdr}\n"
            f"Call-ID: {call_id}\nCSeq: {invite_cseq} ACK\nContent-Length: 0\n\n"
        )
        self._send(ack)

        packets: list[tuple[int, bytes]] = []
        remote_hangup = False
        end = start + give_up_s
        while len(packets) * FRAME_S < listen_s and not remote_hangup:
            now = time.monotonic()
            if now >= end:
                break
            if now >= start + sent * FRAME_S:
                seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
                self.rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + ULAW_SILENCE, rtp_to)
                sent += 1
                continue
            ready = select.select([self.rtp, self.sip], [], [], max(0.0, start + sent * FRAME_S - now))[0]
            if self.rtp in ready:
                data, _, ns = receive(self.rtp)
                parsed = rtp_payload(data)
                if parsed is not None and parsed[0] == 0:
                    packets.append((ns, parsed[1]))
            if self.sip in ready:
                data, _, _ = receive(self.sip)
                msg = parse_sip(data)
                if msg.method == "BYE" and msg.get("call-id") == call_id:
                    self._reply(msg)
                    remote_hangup = True
                elif msg.status == 200 and "INVITE" in msg.get("cseq"):
                    self._send(ack)  # a retransmitted 200 OK: our ACK crossed it
                elif msg.status is None:
                    self._reply(msg)

        if not remote_hangup:
            self.cseq += 1
            self._send(
                f"BYE {target} SIP/2.0\nVia: {self._via()}\nMax-Forwards: 70\nFrom: {from_hdr}\n"
                f"To: {to_hdr}\nCall-ID: {call_id}\nCSeq: {self.cseq} BYE\nContent-Length: 0\n\n"
            )
            deadline = time.monotonic() + 3.0
            while (got := self._recv_sip(deadline)) is not None:
                msg, _ = got
                if msg.status is None:
                    self._reply(msg)
                elif msg.get("call-id") == call_id and "BYE" in msg.get("cseq") and msg.status >= 200:
                    break
        return Heard(invite_sent_ns, answered_ns, first_rtp_sent_ns, packets)


# ---------------------------------------------------------------------------
# Locating the prompt in what the caller received
# ---------------------------------------------------------------------------


def write_ulaw_wav(path: Path, payload: bytes) -> None:
    """A G.711 u-law WAV file (format tag 7), which tests.support.audio reads."""
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)


@dataclass
class CallResult:
    path: str
    ok: bool
    note: str = ""  # why the call does not count
    invite_to_answer_ms: float | None = None
    answer_to_prompt_ms: float | None = None
    first_rtp_sent_after_answer_ms: float | None = None
    first_rtp_to_prompt_ms: float | None = None  # from the caller's first packet to the prompt
    first_packet_to_prompt_ms: float | None = None  # 0 when the prompt's first sample came first
    score: float = 0.0


def locate_prompt(path: str, heard: Heard, head: tuple[np.ndarray, int], wav: Path) -> CallResult:
    ms = 1e-6
    base = CallResult(
        path,
        False,
        invite_to_answer_ms=(heard.answered_ns - heard.invite_sent_ns) * ms,
        first_rtp_sent_after_answer_ms=(heard.first_rtp_sent_ns - heard.answered_ns) * ms,
    )
    if not heard.packets:
        return replace(base, note="no audio received")
    write_ulaw_wav(wav, b"".join(p for _, p in heard.packets))
    match = find_reference(wav, head)
    sample = round(match.offset * 8000)
    if match.score < MIN_SCORE or sample < 0:
        note = f"prompt not found (score {match.score:.2f}, offset {match.offset * 1000:.1f} ms)"
        return replace(base, note=note, score=match.score)
    position, prompt_ns = 0, heard.packets[-1][0]
    for arrival_ns, payload in heard.packets:
        if position + len(payload) > sample:
            prompt_ns = arrival_ns
            break
        position += len(payload)
    return replace(
        base,
        ok=True,
        answer_to_prompt_ms=(prompt_ns - heard.answered_ns) * ms,
        first_rtp_to_prompt_ms=(prompt_ns - heard.first_rtp_sent_ns) * ms,
        first_packet_to_prompt_ms=(prompt_ns - heard.packets[0][0]) * ms,
        score=match.score,
    )


def leading_silence_s(samples: np.ndarray, rate: int, threshold: float = 0.01) -> float:
    """Seconds before the first 10 ms window louder than `threshold` RMS (about -40 dBFS)."""
    window = max(1, rate // 100)
    for i in range(0, len(samples) - window + 1, window):
        chunk = samples[i : i + window]
        if float(np.sqrt(np.mean(chunk * chunk))) >= threshold:
            return i / rate
    return len(samples) / rate


# ---------------------------------------------------------------------------
# The contact center under test
# ---------------------------------------------------------------------------


def prompt_file() -> Path:
    """The cached file the app plays for the greeting (the app renders it on start)."""
    return PromptCache(REPO / "sounds" / "cache").path_for(Prompt(GREETING, "en"))


def write_baseline(etc: Path, prompt: Path) -> None:
    """Site-local dialplan for the baseline; Lianluo never overwrites it."""
    # The very string the app hands to ARI, without its "sound:" scheme: same file, same format.
    sound = PromptCache.asterisk_uri(prompt).removeprefix("sound:")
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "extensions_local.conf").write_text(
        "; answer_to_prompt baseline: plain dialplan answer and playback of the app's greeting file.\n"
        "[from-carrier](+)\n"
        f"exten => {BASELINE_DID},1,Answer()\n"
        f" same => n,Playback({sound})\n"
        " same => n,Hangup()\n"
    )


def make_stack(work: Path, db_url: str, prefix: Path) -> Stack:
    var_dir = work / "var"
    config = work / "center.yaml"
    settings = write_config(
        config,
        var_dir,
        instance=INSTANCE,
        center_name="answer_to_prompt",
        asterisk={"rtp_start": 22000, "rtp_end": 22999},
        # Only our DID is Lianluo's: were the baseline's listed too, its generated priority 1
        # (into Stasis) would win over the one extensions_local.conf appends.
        carrier={"name": "carrier", "match": [CARRIER_IP], "dids": [OURS_DID]},
        ivr={"greeting": [{"text": GREETING, "lang": "en"}], "digit_timeout_s": 5, "attempts": 1},
    )
    write_baseline(var_dir / "asterisk" / INSTANCE / "etc", prompt_file())
    # INFO, as in production: DEBUG logging would cost the app time that production does not spend.
    return Stack(config, var_dir, db_url, prefix, work / "app.log", settings, log_level="INFO")


def check_ready(stack: Stack) -> None:
    prompt = prompt_file()
    eventually(prompt.is_file, 60, f"the greeting's cached file {prompt}", 0.5)
    plan = stack.cli(f"dialplan show {BASELINE_DID}@from-carrier")
    if "Playback(" not in plan or "lianluo-inbound" in plan:
        raise BenchError(f"extensions_local.conf did not add {BASELINE_DID} to from-carrier:\n{plan}")


def shutdown(stack: Stack) -> None:
    """Stop the app (which stops its Asterisk); then make sure no Asterisk of ours is left."""
    try:
        stack.stop(timeout=45)
    finally:
        for pid in asterisk_pids_for(stack.var_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(values: list[float | None]) -> dict[str, float | None]:
    v = sorted(x for x in values if x is not None)
    return {
        "p50": percentile(v, 0.5),
        "p95": percentile(v, 0.95),
        "max": v[-1] if v else None,
    }


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def report(results: list[CallResult], args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    sides: dict[str, Any] = {}
    for path in PATHS:
        mine = [r for r in results if r.path == path]
        good = [r for r in mine if r.ok]
        sides[path] = {
            "calls": len(mine),
            "measured": len(good),
            "answer_to_prompt_ms": summary([r.answer_to_prompt_ms for r in good]),
            "invite_to_answer_ms": summary([r.invite_to_answer_ms for r in mine]),
            "first_rtp_sent_after_answer_ms": summary([r.first_rtp_sent_after_answer_ms for r in mine]),
            "first_rtp_to_prompt_ms": summary([r.first_rtp_to_prompt_ms for r in good]),
            "first_packet_to_prompt_ms_max": max(
                (r.first_packet_to_prompt_ms or 0.0 for r in good), default=None
            ),
            "min_score": min((r.score for r in good), default=None),
            "failures": [r.note for r in mine if not r.ok],
        }
    ours, base = sides["ours"]["answer_to_prompt_ms"], sides["baseline"]["answer_to_prompt_ms"]
    ratio: dict[str, float | None] = {}
    diff: dict[str, float | None] = {}
    for k in ("p50", "p95", "max"):
        both = ours[k] is not None and base[k] is not None
        ratio[k] = ours[k] / base[k] if both and base[k] > 0 else None
        diff[k] = ours[k] - base[k] if both else None

    print("\n200 OK received -> first RTP packet of the prompt received (ms)\n")
    print("| path | calls | p50 | p95 | max |")
    print("|---|---:|---:|---:|---:|")
    for path in PATHS:
        s = sides[path]
        a = s["answer_to_prompt_ms"]
        print(f"| {LABELS[path]} | {s['measured']} | {fmt(a['p50'])} | {fmt(a['p95'])} | {fmt(a['max'])} |")
    print("| ratio ours/baseline | | " + " | ".join(fmt(ratio[k], 2) for k in ("p50", "p95", "max")) + " |")
    print(
        "| difference ours - baseline | | " + " | ".join(fmt(diff[k]) for k in ("p50", "p95", "max")) + " |"
    )

    print("\nAlso (ms): ringing, INVITE sent -> 200 OK; the caller's first RTP packet, sent after the")
    print("200 OK; from that packet to the prompt (the baseline's Answer() waits for it, ARI's does not).\n")
    print(
        "| path | INVITE->200 p50/p95/max | caller's first RTP p50/max | first RTP->prompt p50/p95 | failed |"
    )
    print("|---|---:|---:|---:|---:|")
    for path in PATHS:
        s = sides[path]
        i, f, g = s["invite_to_answer_ms"], s["first_rtp_sent_after_answer_ms"], s["first_rtp_to_prompt_ms"]
        print(
            f"| {path} | {fmt(i['p50'])} / {fmt(i['p95'])} / {fmt(i['max'])} "
            f"| {fmt(f['p50'], 2)} / {fmt(f['max'], 2)} | {fmt(g['p50'])} / {fmt(g['p95'])} "
            f"| {len(s['failures'])}/{s['calls']} |"
        )
    for path in PATHS:
        for note in sides[path]["failures"][:5]:
            print(f"  {path} failed: {note}")
    scores = [sides[p]["min_score"] for p in PATHS if sides[p]["min_score"] is not None]
    print(
        f"\nlowest match score {fmt(min(scores, default=None), 3)}; the prompt file's own leading silence "
        f"{extra['prompt_leading_silence_ms']:.0f} ms (not counted)"
    )

    doc = {
        "benchmark": "answer_to_prompt",
        "measured": "kernel receive stamps: the 200 OK -> the RTP packet carrying the prompt's first sample",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **extra,
        "ratio_ours_over_baseline": ratio,
        "difference_ours_minus_baseline_ms": diff,
        "sides": sides,
        "calls": [asdict(r) for r in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=40, help="measured calls per path (default 40)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured calls per path first (default 3)")
    p.add_argument("--gap", type=float, default=0.2, help="seconds between calls (default 0.2)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (app log, instance, audio)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: 4 calls per path, 1 warm-up, written to {QUICK_RESULTS} unless --output",
    )
    p.add_argument("--output", type=Path, help=f"the JSON file (default {RESULTS.relative_to(REPO)})")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.warmup, args.gap = min(args.calls, 4), min(args.warmup, 1), min(args.gap, 0.1)
    args.output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    if args.calls < 1 or args.warmup < 0 or args.gap < 0:
        p.error("--calls must be at least 1, --warmup and --gap not negative")
    return args


def interrupted(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` cleans up what it started."""
    raise KeyboardInterrupt


def log_line(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def run_calls(stack: Stack, args: argparse.Namespace, work: Path) -> tuple[list[CallResult], dict[str, Any]]:
    samples, rate = read_wav(prompt_file())
    head = (samples[: round(HEAD_S * rate)], rate)
    extra = {
        "prompt_file": str(prompt_file()),
        "prompt_leading_silence_ms": 1000 * leading_silence_s(samples, rate),
    }
    audio_dir = work / "audio"
    audio_dir.mkdir()
    caller = Caller(("127.0.0.1", stack.sip_port))
    results: list[CallResult] = []
    try:
        # Pairs in alternating order (ours first, then baseline first), so that drift on a shared
        # machine and any after-effect of the previous call favour neither path.
        for n in range(args.warmup + args.calls):
            order = ("ours", "baseline") if n % 2 == 0 else ("baseline", "ours")
            for path in order:
                ani = f"1390{n:07d}"
                try:
                    heard = caller.call(PATHS[path], ani, HEAD_S)
                    result = locate_prompt(path, heard, head, audio_dir / f"{path}-{n:03d}.wav")
                except CallFailed as exc:  # counted and shown; one bad call does not end the run
                    result = CallResult(path, False, str(exc))
                if n >= args.warmup:
                    results.append(result)
                time.sleep(args.gap)
            if n == args.warmup - 1:
                log_line(f"warm-up done; {args.calls} measured calls per path")
    finally:
        caller.close()
    return results, extra


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)
    prefix = installed_asterisk_prefix()
    work = Path(tempfile.mkdtemp(prefix="lianluo-bench-"))
    started = time.monotonic()
    try:
        with scratch_database("lianluo_bench") as db_url:
            stack = make_stack(work, db_url, prefix)
            log_line("starting Lianluo and its Asterisk")
            try:
                stack.start(timeout=180)
                check_ready(stack)
                results, extra = run_calls(stack, args, work)
            finally:
                shutdown(stack)
        extra["seconds"] = round(time.monotonic() - started, 1)
        doc = report(results, args, extra)
        print(f"\nwritten to {args.output} ({extra['seconds']:.0f} s)", file=sys.stderr)
        if any(not r.ok for r in results):
            args.keep = True
        unmeasured = [path for path in PATHS if not doc["sides"][path]["measured"]]
        if unmeasured:
            print(f"benchmark failed: no call measured on {', '.join(unmeasured)}", file=sys.stderr)
            return 1
    except (RuntimeError, AssertionError) as exc:  # BenchError, a timed-out wait, the app exiting
        print(f"benchmark failed: {exc}", file=sys.stderr)
        args.keep = True
        return 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
