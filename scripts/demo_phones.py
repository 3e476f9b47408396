"""Phones for trying the demo's outbound campaign by hand (README, "Try an outbound campaign").

Two roles, one per terminal, both with the pjsua2 SIP library that `make setup` puts in .venv:

    .venv/bin/python scripts/demo_phones.py customers
        The customers' network: listens on 127.0.0.2:5062 (the demo's carrier.outbound_contact)
        and answers every number the center dials, as a person would: it rings a moment, answers,
        says "Hello?", listens, and hangs up after a while. Each call is recorded (what the
        customer heard) under var/customers/.

    .venv/bin/python scripts/demo_phones.py agent 1001
        Agent 1001's desk phone: registers to 127.0.0.1:5060 with the password from
        var/secrets.yaml and picks up each call 2 s after it starts ringing, as a person would,
        then speaks a short sentence in a loop (so the customer's recording shows the agent).

Each prints one timestamped line per thing a person would notice (ringing, answered, hung up).
Ctrl-C hangs up and exits. Not part of the center: the app never imports this file.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def say(who: str, text: str) -> None:
    print(f"{datetime.now():%H:%M:%S.%f}"[:-3] + f"  {who}: {text}", flush=True)


def dialled_number(invite: str) -> str:
    """The user part of the INVITE's Request-URI: the number the center dialled."""
    first = invite.split("\r\n", 1)[0].split("\n", 1)[0]
    m = re.match(r"INVITE\s+sips?:([^@;>\s]+)@", first)
    return m.group(1) if m else "unknown"


def header(invite: str, name: str) -> str | None:
    for line in re.split(r"\r?\n", invite):
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
        if not line:
            break
    return None


def agent_password(secrets: Path, agent: str) -> str:
    """The agent's SIP password from the center's generated secrets file (never printed)."""
    import yaml

    if not secrets.is_file():
        raise SystemExit(f"{secrets} does not exist: start the center first (make run), it writes it")
    data = yaml.safe_load(secrets.read_text()) or {}
    passwords = data.get("agent_passwords") or {}
    if str(agent) not in passwords:
        known = ", ".join(sorted(str(k) for k in passwords)) or "none"
        raise SystemExit(f"no agent {agent} in {secrets} agent_passwords (agents: {known})")
    return str(passwords[str(agent)])


def speak(text: str, voice: str, out: Path) -> Path:
    """Synthesise `text` as an 8 kHz mono WAV (espeak-ng, then sox: both installed by make setup)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run make setup")
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    # A short silence first: the first words are not cut while the call's audio starts.
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.2", "0"], check=True
    )
    raw.unlink()
    return out


def quietly(action: Any) -> None:
    """Run `action` with stdout and stderr closed: pjlib prints its start-up chatter before
    any log setting can apply."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        action()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


@dataclass
class Talk:
    """One call on this phone and what is still to happen on it."""

    pj_call: Any
    number: str
    rang_at: float
    answer_at: float
    hang_up_at: float | None = None
    answered: bool = False
    ended: bool = False
    media: list[Any] = field(default_factory=list)  # player and recorder, kept alive while in use


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python scripts/demo_phones.py", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="role", required=True)
    cust = sub.add_parser("customers", help="answer every number the center dials, like a person")
    cust.add_argument(
        "--listen", default="127.0.0.2:5062", help="address:port (the config's carrier.outbound_contact)"
    )
    cust.add_argument("--answer-after", type=float, default=1.5, help="seconds of ringing before answering")
    cust.add_argument("--talk", type=float, default=15.0, help="seconds after answering before hanging up")
    cust.add_argument(
        "--greeting", default="Hello?", help="what the customer says on answering (short: AMD hears a person)"
    )
    cust.add_argument(
        "--record-dir", default="var/customers", help="where each call's audio goes ('' for none)"
    )
    agent = sub.add_parser("agent", help="an agent's desk phone, picked up by a person after it rings")
    agent.add_argument("agent_id", help="the agent number, e.g. 1001")
    agent.add_argument("--server", default="127.0.0.1:5060", help="the center's SIP address:port")
    agent.add_argument("--secrets", default="var/secrets.yaml", help="the center's generated secrets file")
    agent.add_argument("--answer-after", type=float, default=2.0, help="seconds of ringing before picking up")
    agent.add_argument(
        "--line",
        default="Hello, this is Alice from the Lianluo demo. How are you today?",
        help="what the agent says, in a loop, on every call",
    )
    agent.add_argument("--record-dir", default="", help="where each call's audio goes ('' for none)")
    args = parser.parse_args(argv)

    import pjsua2 as pj  # in .venv (make setup); imported here so --help works without it

    password = agent_password(Path(args.secrets), args.agent_id) if args.role == "agent" else None
    work = Path(tempfile.mkdtemp(prefix="lianluo-demo-phones-"))
    words = args.greeting if args.role == "customers" else args.line
    voice_file = speak(words, "en-us", work / "voice.wav")
    record_dir = Path(args.record_dir) if args.record_dir else None
    if record_dir is not None:
        record_dir.mkdir(parents=True, exist_ok=True)
    who = "customers" if args.role == "customers" else f"agent {args.agent_id}"

    ep = pj.Endpoint()
    quietly(ep.libCreate)
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0  # events are handled in the loop below, on this thread only
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 32
    cfg.logConfig.level = 0
    cfg.logConfig.consoleLevel = 0
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True  # a steady stream: Asterisk's AMD wants to hear the silence too
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    for info in ep.codecEnum2():
        ep.codecSetPriority(info.codecId, 0)
    ep.codecSetPriority("PCMU/8000", 255)
    ep.codecSetPriority("PCMA/8000", 254)

    if args.role == "customers":
        host, _, port = args.listen.rpartition(":")
        bind = host
    else:
        host, _, port = args.server.rpartition(":")
        bind = "127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0"
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = bind
    if args.role == "customers":
        tcfg.port = int(port)
        tcfg.publicAddress = bind
    try:
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    except pj.Error as exc:
        raise SystemExit(f"cannot listen on {bind}:{tcfg.port}: {exc.reason}") from None
    ep.libStart()

    talks: dict[int, Talk] = {}
    finished: list[Talk] = []  # ended calls, kept until pjsua is torn down (see the end)
    registered: list[bool] = [False]

    class Phone(pj.Account):  # type: ignore[misc]
        def onRegState(self, prm: Any) -> None:
            answered = 200 <= int(prm.code) < 300
            ok = answered and int(prm.expiration) > 0
            if answered and not ok:
                say(who, "unregistered")
            elif ok != registered[0] or not ok:
                say(who, f"registered to {args.server}" if ok else f"registration: {prm.code} {prm.reason}")
            registered[0] = ok

        def onIncomingCall(self, prm: Any) -> None:
            invite = str(prm.rdata.wholeMsg)
            call = Line(self, prm.callId)
            number = (
                dialled_number(invite)
                if args.role == "customers"
                else (header(invite, "X-Lianluo-Campaign") or header(invite, "From") or "a call")
            )
            now = time.monotonic()
            talks[prm.callId] = Talk(call, number, now, now + args.answer_after)
            ring = pj.CallOpParam()
            ring.statusCode = 180
            call.answer(ring)
            if args.role == "customers":
                say(who, f"{number} is ringing")
            else:
                kind = (
                    "the nailed-up outbound line"
                    if header(invite, "X-Lianluo-Line") == "nailed"
                    else "a call"
                )
                say(who, f"ringing: {kind} from {header(invite, 'From')}")

    class Line(pj.Call):  # type: ignore[misc]
        def onCallState(self, prm: Any) -> None:
            info = self.getInfo()
            talk = talks.get(info.id)
            if talk is None:
                return
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not talk.answered:
                talk.answered = True
                if args.role == "customers":
                    talk.hang_up_at = time.monotonic() + args.talk
                    say(who, f"{talk.number} answered, says {args.greeting!r}")
                else:
                    say(who, "picked up")
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not talk.ended:
                talk.ended = True
                party = talk.number if args.role == "customers" else "the call"
                say(
                    who,
                    f"{party} ended ({info.lastStatusCode} {info.lastReason}) after "
                    f"{time.monotonic() - talk.rang_at:.1f} s",
                )

        def onCallMediaState(self, prm: Any) -> None:
            info = self.getInfo()
            talk = talks.get(info.id)
            if talk is None or talk.media:
                return
            for i, m in enumerate(info.media):
                if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    aud = self.getAudioMedia(i)
                    player = pj.AudioMediaPlayer()
                    # The customer says the greeting once; the agent keeps talking.
                    player.createPlayer(
                        str(voice_file), pj.PJMEDIA_FILE_NO_LOOP if args.role == "customers" else 0
                    )
                    player.startTransmit(aud)
                    talk.media.append(player)
                    if record_dir is not None:
                        stamp = datetime.now().strftime("%H%M%S")
                        recorder = pj.AudioMediaRecorder()
                        recorder.createRecorder(str(record_dir / f"{talk.number}-{stamp}.wav"))
                        aud.startTransmit(recorder)
                        talk.media.append(recorder)
                    return

    acc = Phone()
    acfg = pj.AccountConfig()
    acfg.sipConfig.transportId = tid
    acfg.natConfig.sipOutboundUse = 0
    acfg.natConfig.contactRewriteUse = 0
    acfg.mediaConfig.transportConfig.boundAddress = bind
    if args.role == "customers":
        acfg.idUri = f"sip:customers@{args.listen}"
        acfg.mediaConfig.transportConfig.publicAddress = bind
    else:
        acfg.idUri = f"sip:{args.agent_id}@{host}"
        acfg.regConfig.registrarUri = f"sip:{args.server}"
        acfg.regConfig.retryIntervalSec = 5
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.agent_id, 0, password))
    acc.create(acfg, True)
    if args.role == "customers":
        say(
            who,
            f"listening on {args.listen}: every number rings {args.answer_after:g} s, answers with "
            f"{args.greeting!r}, hangs up {args.talk:g} s later"
            + (f"; recordings in {record_dir}/" if record_dir else ""),
        )
    else:
        say(who, f"registering to {args.server}; picks up {args.answer_after:g} s after ringing")

    stopping: list[bool] = [False]

    def stop(*_: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping[0]:
        ep.libHandleEvents(20)
        now = time.monotonic()
        for cid, talk in list(talks.items()):
            if talk.ended:
                talk.media.clear()  # a recorder writes its WAV header when destroyed
                finished.append(talks.pop(cid))
                continue
            try:
                if not talk.answered and now >= talk.answer_at:
                    ok = pj.CallOpParam()
                    ok.statusCode = 200
                    talk.pj_call.answer(ok)
                    talk.answer_at = float("inf")
                elif talk.hang_up_at is not None and now >= talk.hang_up_at:
                    talk.hang_up_at = None
                    say(who, f"{talk.number} hangs up")
                    talk.pj_call.hangup(pj.CallOpParam())
            except pj.Error as exc:  # the far end left first: nothing to answer or hang up
                say(who, f"{talk.number}: {exc.reason}")
                talk.answer_at, talk.hang_up_at = float("inf"), None

    say(who, "stopping")
    ep.hangupAllCalls()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(not t.ended for t in talks.values()):
        ep.libHandleEvents(20)
    for talk in talks.values():
        talk.media.clear()
    if args.role == "agent":
        try:
            acc.setRegistration(False)
            end = time.monotonic() + 2
            while time.monotonic() < end and registered[0]:
                ep.libHandleEvents(20)
        except pj.Error:
            pass
    # pjsua2's C++ destructors call into pjsua, and abort once it is gone: every call and the
    # account are destroyed here, while it still runs, whatever Python name still holds them.
    for talk in [*talks.values(), *finished]:
        talk.pj_call = None
    talks.clear()
    finished.clear()
    acc.shutdown()
    del acc
    gc.collect()
    ep.libDestroy()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
