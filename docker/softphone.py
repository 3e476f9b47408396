"""A scriptable SIP phone for the demo containers, on the tests' pjsua2 wrapper.

    softphone.py agent --user 1001 --registrar asterisk:5060 --tone 600
        registers as an agent (password from var/secrets.yaml, the shared volume), answers every
        call after --answer-after seconds, plays a tone of --tone Hz to the caller, records what
        it hears: /phone/call-<n>.wav, with /phone/call-<n>.json once the call has ended.
    softphone.py caller --target sip:7000@asterisk:5060 --tone 1000 --keys 1@5 --hold 20 --every 60
        calls the target as the carrier (no registration: the center knows the carrier by its
        address), plays a tone, presses each key at its time (seconds after the answer), hangs
        up after --hold seconds, records the same way, and calls again every --every seconds
        (0: once).

/phone/ready exists once the phone can work (the container's health check).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.support.audio import write_tone
from tests.support.sip_phone import Phone, PhoneLab, PhoneTimeout

OUT = Path("/phone")
SECRETS = Path("/srv/lianluo/var/secrets.yaml")
log = logging.getLogger("softphone")


def own_address(toward: str) -> str:
    """The address of the interface that reaches `toward` (host[:port]): SIP and RTP are bound
    to it, so the far end sees where this container really is."""
    host = toward.rsplit(":", 1)[0]
    for _ in range(120):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((host, 5060))
                return str(s.getsockname()[0])
        except OSError:  # the name is not resolvable until that container exists
            time.sleep(0.5)
    raise SystemExit(f"cannot reach {host}")


def agent_password(user: str, timeout: float = 120.0) -> str:
    """The agent's generated password; the asterisk container writes it on its first start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = yaml.safe_load(SECRETS.read_text()) or {}
            password = (data.get("agent_passwords") or {}).get(user)
            if isinstance(password, str):
                return password
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no password for agent {user} in {SECRETS} after {timeout:.0f} s")


def wait_healthy(url: str) -> None:
    """Wait until the center answers calls (its health page says 200) before the first call."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)


def calls_so_far() -> int:
    """Calls recorded before (the volume outlives the container): numbering goes on from there."""
    return max((int(p.stem.split("-")[1]) for p in OUT.glob("call-*.json")), default=0)


def finished(n: int, record: Path, call_info: dict[str, object]) -> None:
    info = {"call": n, "recording": str(record), "ended_at": time.time(), **call_info}
    tmp = OUT / f"call-{n}.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.rename(OUT / f"call-{n}.json")
    log.info("call %s ended: %s", n, info)


def run_agent(lab: PhoneLab, args: argparse.Namespace) -> None:
    password = agent_password(args.user)
    phone: Phone = lab.phone(
        own_address(args.registrar), user=args.user, password=password, registrar=args.registrar
    )
    while not phone.registered:
        try:
            phone.wait_registered(timeout=10)
        except PhoneTimeout as exc:  # Asterisk is not up yet: register again
            log.info("not registered yet: %s", exc)
            try:
                phone.register(timeout=10)
            except PhoneTimeout:
                pass
    tone = write_tone(OUT / "tone.wav", args.tone, 30.0, amplitude=0.3)
    (OUT / "ready").touch()
    log.info("agent %s registered at %s", args.user, args.registrar)
    n = calls_so_far()
    while True:
        try:
            call = phone.wait_incoming(timeout=3600)
        except PhoneTimeout:
            continue
        n += 1
        started = time.time()
        time.sleep(args.answer_after)
        record = OUT / f"call-{n}.wav"
        call.answer(play=tone, record=record, loop=True)
        call.wait_disconnected(timeout=24 * 3600)
        call.recording()
        finished(n, record, {"agent": args.user, "rang_at": started})


def run_caller(lab: PhoneLab, args: argparse.Namespace) -> None:
    keys = [(k.split("@")[0], float(k.split("@")[1])) for k in args.keys]
    phone = lab.phone(own_address(args.target.split("@")[-1]))
    tone = write_tone(OUT / "tone.wav", args.tone, 30.0, amplitude=0.3) if args.tone else None
    (OUT / "ready").touch()
    if args.wait_for:
        wait_healthy(args.wait_for)
    time.sleep(args.first_after)
    n = calls_so_far()
    while True:
        n += 1
        record = OUT / f"call-{n}.wav"
        started = time.time()
        call = phone.call(args.target, play=tone, record=record, loop=True, from_user=args.from_user)
        info: dict[str, object] = {"target": args.target, "placed_at": started}
        try:
            call.wait_confirmed(timeout=30)
            answered = time.monotonic()
            info["answered_at"] = time.time()
            for digit, at in keys:
                time.sleep(max(0.0, answered + at - time.monotonic()))
                if call.is_disconnected:
                    break
                call.send_dtmf(digit)
            remaining = answered + args.hold - time.monotonic()
            if remaining > 0 and not call.is_disconnected:
                try:
                    call.wait_disconnected(timeout=remaining)
                    info["far_end_hung_up"] = True
                except PhoneTimeout:
                    call.hangup()
            elif not call.is_disconnected:
                call.hangup()
            call.wait_disconnected(timeout=10)
            call.recording()
        except PhoneTimeout as exc:
            info["error"] = str(exc)
            if not call.is_disconnected:
                call.hangup()
        finished(n, record, info)
        if args.every <= 0:
            break
        time.sleep(max(0.0, started + args.every - time.time()))
    while True:  # keep the container (and its recordings) up after a single call
        time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softphone")
    sub = parser.add_subparsers(dest="mode", required=True)
    agent = sub.add_parser("agent")
    agent.add_argument("--user", required=True)
    agent.add_argument("--registrar", default="asterisk:5060")
    agent.add_argument("--tone", type=float, default=600.0)
    agent.add_argument("--answer-after", type=float, default=0.5)
    caller = sub.add_parser("caller")
    caller.add_argument("--target", default="sip:7000@asterisk:5060")
    caller.add_argument("--from-user", default="13800138000", help="the caller's number (From)")
    caller.add_argument("--tone", type=float, default=0.0, help="play a tone of this many Hz (0: silence)")
    caller.add_argument("--keys", nargs="*", default=["1@5"], help="digit@seconds after the answer")
    caller.add_argument("--hold", type=float, default=20.0, help="hang up this long after the answer")
    caller.add_argument("--wait-for", default="", help="a health URL that must answer 200 first")
    caller.add_argument("--first-after", type=float, default=2.0)
    caller.add_argument("--every", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    OUT.mkdir(exist_ok=True)
    with PhoneLab(log_dir=OUT, log_level=3) as lab:
        if args.mode == "agent":
            run_agent(lab, args)
        else:
            run_caller(lab, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
