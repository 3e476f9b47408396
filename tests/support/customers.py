"""A second Asterisk playing the customers' phone network, for the outbound dialer's tests.

It listens on 127.0.0.2 (the carrier's address) and answers the numbers Lianluo dials,
each number range behaving like a kind of customer:

- 1380001xxxx: a person. Rings 1-3 s (at random), answers, says "Hello?", then listens (recorded).
- 1380002xxxx: busy.
- 1380003xxxx: never answers.
- 1380004xxxx: an answering machine: a long greeting, then listens (recorded).
- 1380005xxxx: a person with little time: as 1380001xxxx, but hangs up 6 s after "Hello?".

Every answered call is recorded whole (both directions mixed) into `recordings/<number>.wav`,
so a test can tell when the customer heard what, measured on the customer's own line. For the
1380005xxxx range, `recording_started_at` gives the wall-clock time of the recording's first
sample (stamped right after MixMonitor starts, to a few ms; same host and clock as the app), to
place what was heard against the app's own times.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.peer_asterisk import PeerAsterisk

HELLO = "Hello?"
MACHINE = (
    "Hi, you have reached Wang Wei. I cannot take your call right now. Please leave a message after the tone."
)


class CustomerNetwork(PeerAsterisk):
    name = "the customers"
    dirs = ("recordings", "sounds")

    def __init__(self, root: Path, lianluo_address: str = "127.0.0.1") -> None:
        super().__init__(root)
        self.lianluo_address = lianluo_address
        self.recordings = root / "recordings"
        self.sounds = root / "sounds"

    def __enter__(self) -> CustomerNetwork:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.prepare()
        _speak(HELLO, self.sounds / "hello.wav")
        _speak(MACHINE, self.sounds / "machine.wav")
        self._write_config()
        self.launch()

    def recording(self, number: str) -> Path:
        return self.recordings / f"{number}.wav"

    def recording_started_at(self, number: str) -> float:
        """Unix time at which the customer's recording began (1380005xxxx only)."""
        return float((self.recordings / f"{number}.start").read_text().strip())

    def _write_config(self) -> None:
        etc, r = self.root / "etc", self.root
        modules = self.prefix / "lib" / "asterisk" / "modules"
        (etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {etc}\nastmoddir => {modules}\nastvarlibdir => {r / 'lib'}\n"
            f"astdbdir => {r / 'lib'}\nastkeydir => {r / 'lib'}\nastdatadir => {r / 'data'}\n"
            f"astagidir => {r / 'data'}\nastspooldir => {r / 'spool'}\nastrundir => {r / 'run'}\n"
            f"astlogdir => {r / 'log'}\nastsbindir => {self.prefix / 'sbin'}\n"
            "[options]\nverbose = 1\ntransmit_silence = yes\nastctl = asterisk.ctl\n"
        )
        # Everything built, but nothing that listens beyond SIP: no http.conf or manager.conf is
        # written, so the web server and AMI stay off; chan_audiosocket is not needed.
        lines = ["[modules]", "autoload = yes", "noload = chan_audiosocket.so", "noload = res_ari.so"]
        (etc / "modules.conf").write_text("\n".join(lines) + "\n")
        (etc / "logger.conf").write_text("[logfiles]\nmessages.log => notice,warning,error,verbose(2)\n")
        (etc / "rtp.conf").write_text("[general]\nrtpstart = 33000\nrtpend = 33999\n")
        (etc / "pjsip.conf").write_text(
            "[udp]\ntype = transport\nprotocol = udp\n"
            f"bind = 127.0.0.2:{self.port}\n\n"
            "[lianluo]\ntype = endpoint\ncontext = customers\ndisallow = all\nallow = ulaw\n"
            "direct_media = no\nrtp_symmetric = yes\n\n"
            f"[lianluo-identify]\ntype = identify\nendpoint = lianluo\nmatch = {self.lianluo_address}\n"
        )
        hello, machine, rec = self.sounds / "hello", self.sounds / "machine", self.recordings
        (etc / "extensions.conf").write_text(
            "[customers]\n"
            "exten => _1380001XXXX,1,Ringing()\n"
            " same => n,Wait(${RAND(1,3)})\n"
            " same => n,Answer()\n"
            f" same => n,MixMonitor({rec}/${{EXTEN}}.wav)\n"
            f" same => n,Playback({hello})\n"
            " same => n,Wait(30)\n"
            " same => n,Hangup()\n"
            "exten => _1380005XXXX,1,Ringing()\n"
            " same => n,Wait(${RAND(1,3)})\n"
            " same => n,Answer()\n"
            f" same => n,MixMonitor({rec}/${{EXTEN}}.wav)\n"
            " same => n,Set(STARTED=${STRFTIME(,,%s.%3q)})\n"  # stamped before the shell starts
            f" same => n,System(echo ${{STARTED}} > {rec}/${{EXTEN}}.start)\n"
            f" same => n,Playback({hello})\n"
            " same => n,Wait(6)\n"
            " same => n,Hangup()\n"
            "exten => _1380002XXXX,1,Busy(10)\n"
            "exten => _1380003XXXX,1,Ringing()\n"
            " same => n,Wait(120)\n"
            "exten => _1380004XXXX,1,Ringing()\n"
            " same => n,Wait(1)\n"
            " same => n,Answer()\n"
            f" same => n,MixMonitor({rec}/${{EXTEN}}.wav)\n"
            f" same => n,Playback({machine})\n"
            " same => n,Wait(20)\n"
            " same => n,Hangup()\n"
        )


def _speak(text: str, path: Path) -> None:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
