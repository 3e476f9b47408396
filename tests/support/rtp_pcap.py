"""A caller's media for SIPp's play_pcap_audio: u-law voice with RFC 2833 digits at given times
(benchmarks/bench_stack.py's callers, tests/e2e/test_wallboard_load.py's scripted callers)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

DIGIT_MS = 100  # longer than Asterisk's 80 ms minimum, so no DTMF emulation delays it


def write_caller_media(
    path: Path, digits_at_ms: Sequence[int], length_ms: int, digit: int = 1
) -> list[float]:
    """Voice (every 20 ms), with `digit` sent at each of `digits_at_ms` (multiples of 20) in
    place of the voice. Returns each digit's end packet offset (s): Asterisk delivers a digit
    (to Read() or as ARI ChannelDtmfReceived) when that packet arrives."""
    ssrc, seq, ts = 0x1A2B3C4D, 1000, 8000
    packets: list[tuple[int, bytes]] = []  # (offset ms, RTP packet)

    def rtp(pt: int, marker: bool, payload: bytes, timestamp: int) -> bytes:
        nonlocal seq
        seq += 1
        return (
            struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, timestamp, ssrc) + payload
        )

    pending = sorted(digits_at_ms)
    ends: list[float] = []
    t = 0
    while t < length_ms:
        if pending and t >= pending[0]:
            pending.pop(0)
            event_ts = ts
            for i in range(DIGIT_MS // 20):
                duration = (i + 1) * 160
                packets.append((t, rtp(101, i == 0, struct.pack("!BBH", digit, 10, duration), event_ts)))
                t += 20
            ends.append(t / 1000)
            for _ in range(3):  # the end packet, sent three times as RFC 4733 asks
                end = struct.pack("!BBH", digit, 0x80 | 10, DIGIT_MS * 8)
                packets.append((t, rtp(101, False, end, event_ts)))
            ts = event_ts + DIGIT_MS * 8
            t += 20
            continue
        packets.append((t, rtp(0, t == 0, b"\xff" * 160, ts)))
        t += 20
        ts += 160

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    base = 1_700_000_000
    for offset_ms, packet in packets:
        udp = struct.pack("!HHHH", 40000, 40002, 8 + len(packet), 0) + packet
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x0a\0\0\1", b"\x0a\0\0\2"
        )
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        out.append(
            struct.pack("<IIII", base + offset_ms // 1000, (offset_ms % 1000) * 1000, len(frame), len(frame))
        )
        out.append(frame)
    path.write_bytes(b"".join(out))
    return ends
