"""Speech-synthesis worker, run as ``python -m app.adapters.tts_worker`` in a subprocess.

pyttsx3's espeak driver is blocking, keeps process-global state in libespeak-ng and is not
thread-safe, so :mod:`app.adapters.prompts` runs every synthesis in a fresh process of this module.
That process is killed when the app dies, and so is the ``espeak-ng`` it may run.

Usage::

    python -m app.adapters.tts_worker --out OUT.wav --voice en-us --rate 160 [--engine pyttsx3]

The text to speak is read from standard input (UTF-8). The result is a mono 16-bit WAV at the
engine's native rate (22050 Hz for espeak-ng); resampling is the caller's job. Exit status 0 means
the engine reported a complete utterance; anything else is a failure described on standard error.
Standard output carries nothing useful (pyttsx3 prints chatter there).

pyttsx3 2.99 quirk handled here: with the espeak driver, ``runAndWait()`` may return before
libespeak-ng's synthesis thread has written the file (the driver loop polls every 10 ms). When the
process then exits, the file is missing, empty (44-byte header) or cut short. We therefore wait for
the driver's ``finished-utterance`` notification, which is sent after the file has been written.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from app.adapters.parent_death import dies_with_us

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
FINISH_TIMEOUT_S = 60.0


class SynthesisFailed(Exception):
    pass


def synthesize_pyttsx3(text: str, voice: str, rate: int, out: Path, timeout: float) -> None:
    import pyttsx3  # loads libespeak-ng; only ever in the worker process

    finished = threading.Event()
    outcome: dict[str, Any] = {}

    def on_finished(name: str | None = None, completed: bool = False, **_: Any) -> None:
        outcome["completed"] = completed
        finished.set()

    def on_error(name: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
        # pyttsx3 swallows exceptions raised by queued commands (for example an unknown voice)
        # and reports them on this topic instead.
        outcome.setdefault("errors", []).append(repr(exception))

    engine = pyttsx3.init("espeak")
    engine.connect("finished-utterance", on_finished)
    engine.connect("error", on_error)
    engine.setProperty("voice", voice)
    engine.setProperty("rate", rate)
    engine.setProperty("volume", 1.0)
    # Property changes are queued and only applied inside runAndWait(); their failures arrive on
    # the "error" topic and are checked below.
    engine.save_to_file(text, str(out))
    engine.runAndWait()
    if not finished.wait(timeout):
        raise SynthesisFailed(f"pyttsx3 did not finish the utterance within {timeout:.0f} s")
    if outcome.get("errors"):
        raise SynthesisFailed(f"pyttsx3 reported errors: {outcome['errors']}")
    if not outcome.get("completed"):
        raise SynthesisFailed("pyttsx3 reported an incomplete utterance")
    if not out.exists():
        raise SynthesisFailed(f"pyttsx3 finished but wrote no file at {out}")


def synthesize_espeak_cli(text: str, voice: str, rate: int, out: Path, timeout: float) -> None:
    cmd = ["espeak-ng", "-b", "1", "-v", voice, "-s", str(rate), "-w", str(out), "--stdin"]
    try:
        done = subprocess.run(  # fixed argv, no shell
            cmd,
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
            preexec_fn=dies_with_us(),  # this worker dies with the app; espeak-ng with it
        )
    except FileNotFoundError as exc:
        raise SynthesisFailed("espeak-ng executable not found (apt-get install espeak-ng)") from exc
    except subprocess.TimeoutExpired as exc:
        raise SynthesisFailed(f"espeak-ng did not finish within {timeout:.0f} s") from exc
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise SynthesisFailed(f"espeak-ng exited with {done.returncode}: {stderr}")
    if stderr:  # espeak-ng exits 0 on an unknown voice and complains here
        raise SynthesisFailed(f"espeak-ng: {stderr}")


ENGINES = {"pyttsx3": synthesize_pyttsx3, "espeak-ng": synthesize_espeak_cli}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.adapters.tts_worker")
    parser.add_argument("--out", required=True, type=Path, help="WAV file to write")
    parser.add_argument("--voice", required=True, help="espeak-ng voice, e.g. en-us, cmn-latn-pinyin")
    parser.add_argument("--rate", type=int, default=160, help="words per minute")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="pyttsx3")
    parser.add_argument("--timeout", type=float, default=FINISH_TIMEOUT_S)
    args = parser.parse_args(argv)
    text = sys.stdin.buffer.read().decode("utf-8").strip()
    if not text:
        print("tts_worker: no text on standard input", file=sys.stderr)
        return EXIT_USAGE
    try:
        ENGINES[args.engine](text, args.voice, args.rate, args.out, args.timeout)
    except SynthesisFailed as exc:
        print(f"tts_worker: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
