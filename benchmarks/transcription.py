"""Transcription speed: how fast the transcript engine works on this machine, and whether the
transcript queue keeps up with a load of calls (issue 14: 20 calls/s of 3-minute calls).

    .venv/bin/python benchmarks/transcription.py            # a 3-minute call, 4 in the pool run, ~6 min
    .venv/bin/python benchmarks/transcription.py --quick    # a 12 s call, 1 in the pool run, ~15 s
    .venv/bin/python benchmarks/transcription.py --workers 2 --rate 20 --call-s 180
    .venv/bin/python benchmarks/transcription.py --vosk-model /path/to/vosk-model-small-en-us-0.15

1. A call is made the way the e2e test makes one: sentences spoken by flite's voices (slt, rms,
   kal16), through the phone line's 8 kHz u-law, the caller's on the left channel and the agent's
   on the right, taking turns with pauses (each side speaks about half of the time), as long as
   --call-s. The same stereo WAV the recorder stores.
2. Speed per engine (pocketsphinx always; vosk with --vosk-model): the whole transcript job
   (both channels, as app/adapters/transcriber.py does it) in this process, timed in CPU seconds.
   The baseline is real time: a speed of 1.00x transcribes one second of a call in one CPU
   second. Printed per call second (both sides) and per channel second; word accuracy beside it.
3. The queue at --rate calls/s of --call-s calls with --workers workers: a job takes
   call_s / speed seconds of one worker; a discrete-event simulation of --sim-s seconds of
   arrivals says whether the backlog drains, and the highest load it keeps up with is
   workers x speed / call_s calls/s (app/domain/transcript.py `capacity_calls_per_s`), simulated
   too at 90% and 110% of it.
4. A short real run checks that figure: the app's own worker pool (PoolTranscriber: spawned,
   niced processes) is handed --jobs recordings at once; the throughput it reaches (call seconds
   transcribed per wall second) is compared with workers x speed. On this machine's two shared
   cores other work takes its share, so the ratio says how much of the CPU the niced workers got.

Writes benchmarks/results/transcription.json ($TMPDIR/lianluo-bench-quick/ with --quick).
Exits 1 when nothing was transcribed.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.adapters.transcriber import PoolTranscriber, transcribe_here, words_here  # noqa: E402
from app.domain.transcript import capacity_calls_per_s, words_found  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "transcription.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "transcription.json"
RATE = 8000

CALLER_LINES = [
    ("slt", "I would like to check the balance of my account please"),
    ("rms", "My card was declined at the store this morning"),
    ("slt", "Can you tell me when my next payment is due"),
    ("rms", "I moved last month and need to change my address"),
]
AGENT_LINES = [
    ("kal16", "Certainly, may I have your account number first"),
    ("kal16", "Thank you, I can see your account in front of me now"),
    ("kal16", "Your payment is due on the fifteenth of next month"),
    ("kal16", "Is there anything else I can help you with today"),
]


def speak(voice: str, text: str, work: Path) -> np.ndarray:
    """flite -> 8 kHz u-law -> 16-bit samples: what a phone line gives the recorder."""
    raw, law, pcm = work / "raw.wav", work / "law.wav", work / "pcm.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-e", "u-law", str(law)], check=True)
    subprocess.run(["sox", str(law), "-e", "signed", "-b", "16", str(pcm)], check=True)
    with wave.open(str(pcm)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


@dataclass
class Call:
    path: Path
    seconds: float
    caller_said: str
    agent_said: str


def make_call(call_s: float, work: Path) -> Call:
    caller = [(speak(v, t, work), t) for v, t in CALLER_LINES]
    agent = [(speak(v, t, work), t) for v, t in AGENT_LINES]
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    said = {"caller": [], "agent": []}  # type: dict[str, list[str]]
    length = 0
    turn = 0
    rng = random.Random(14)
    while length < call_s * RATE:
        samples, text = (caller if turn % 2 == 0 else agent)[(turn // 2) % 4]
        pause = np.zeros(int(RATE * rng.uniform(0.4, 1.2)), dtype=np.int16)
        quiet = np.zeros(samples.size, dtype=np.int16)
        speaking, other = (left, right) if turn % 2 == 0 else (right, left)
        speaking += [samples, pause]
        other += [quiet, pause]
        said["caller" if turn % 2 == 0 else "agent"].append(text)
        length += samples.size + pause.size
        turn += 1
    stereo = np.stack([np.concatenate(left), np.concatenate(right)], axis=1).astype("<i2")
    path = work / f"call-{round(call_s)}s.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(stereo.tobytes())
    return Call(path, stereo.shape[0] / RATE, " ".join(said["caller"]), " ".join(said["agent"]))


@dataclass
class Speed:
    engine: str
    call_s: float
    cpu_s: float
    wall_s: float
    per_call_second: float  # call seconds (both sides) per CPU second: x real time
    per_channel_second: float  # one channel's seconds per CPU second
    caller_accuracy: float
    agent_accuracy: float


def measure(engine: str, model: str | None, call: Call) -> Speed:
    words_here(engine, model, np.zeros(RATE, dtype=np.int16), RATE)  # loads the model; not timed
    wall = time.perf_counter()
    sides = transcribe_here(engine, model, call.path)
    wall_s = time.perf_counter() - wall
    cpu = max(sides.cpu_s, 1e-6)
    return Speed(
        engine,
        round(call.seconds, 1),
        round(cpu, 2),
        round(wall_s, 2),
        round(call.seconds / cpu, 2),
        round(2 * call.seconds / cpu, 2),
        round(words_found(call.caller_said, " ".join(w.text for w in sides.caller)), 3),
        round(words_found(call.agent_said, " ".join(w.text for w in sides.center)), 3),
    )


@dataclass
class Simulated:
    rate: float  # calls/s
    arrivals: int
    done: int
    waiting_at_end: int
    oldest_wait_s: float
    drains: bool


def simulate(rate: float, job_s: float, workers: int, sim_s: float, seed: int = 14) -> Simulated:
    """Poisson arrivals for sim_s seconds, FIFO to `workers` servers of job_s each; then the
    backlog at the end of the arrivals. It drains when the backlog is no more than the work the
    workers finish in one job's time plus a sampling margin."""
    rng = random.Random(seed)
    free = [0.0] * workers
    heapq.heapify(free)
    t, arrivals, done, oldest = 0.0, 0, 0, 0.0
    waiting = 0
    while True:
        t += rng.expovariate(rate)
        if t > sim_s:
            break
        arrivals += 1
        start = max(t, heapq.heappop(free))
        heapq.heappush(free, start + job_s)
        if start + job_s <= sim_s:
            done += 1
        elif start > sim_s:  # (a job running at the end is neither done nor waiting)
            waiting += 1
            oldest = max(oldest, sim_s - t)
    drains = waiting <= max(2 * workers, 0.05 * arrivals)
    return Simulated(round(rate, 4), arrivals, done, waiting, round(oldest, 1), drains)


async def pool_run(engine: str, model: str | None, call: Call, workers: int, jobs: int) -> dict[str, float]:
    pool = PoolTranscriber(engine, model, workers)
    await pool.start()
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(pool.transcribe_recording(call.path) for _ in range(jobs)))
        wall = time.perf_counter() - started
    finally:
        await pool.close()
    words = sum(len(s.caller) + len(s.center) for s in results)
    return {
        "jobs": jobs,
        "wall_s": round(wall, 2),
        "throughput": round(jobs * call.seconds / wall, 2),
        "words": words,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a 12 s call, 1 job in the pool run")
    p.add_argument("--call-s", type=float, default=180.0, help="the load's call length (default 180)")
    p.add_argument("--rate", type=float, default=20.0, help="the load in calls/s (default 20)")
    p.add_argument(
        "--workers", type=int, default=1, help="transcript workers (config: recording.transcripts)"
    )
    p.add_argument("--jobs", type=int, default=4, help="recordings handed to the pool at once")
    p.add_argument("--sim-s", type=float, default=600.0, help="seconds of arrivals simulated")
    p.add_argument("--vosk-model", help="a vosk model directory: measure vosk too")
    args = p.parse_args()
    for tool in ("flite", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (make setup installs it)", file=sys.stderr)
            return 1
    measured_s = 12.0 if args.quick else args.call_s
    jobs = 1 if args.quick else args.jobs
    with tempfile.TemporaryDirectory(prefix="lianluo-transcription-") as tmp:
        call = make_call(measured_s, Path(tmp))
        print(f"A call of {call.seconds:.1f} s: flite voices through 8 kHz u-law, the sides taking turns.\n")
        engines: list[tuple[str, str | None]] = [("pocketsphinx", None)]
        if args.vosk_model:
            engines.append(("vosk", args.vosk_model))
        speeds = [measure(engine, model, call) for engine, model in engines]
        print("Speed (one process, CPU time; baseline: real time = 1.00x)")
        print(
            "| engine | call s | CPU s | wall s | x real time (call) | x real time (channel)"
            " | caller words | agent words |"
        )
        print("|---|--:|--:|--:|--:|--:|--:|--:|")
        for s in speeds:
            print(
                f"| {s.engine} | {s.call_s:.1f} | {s.cpu_s:.2f} | {s.wall_s:.2f} | {s.per_call_second:.2f}x"
                f" | {s.per_channel_second:.2f}x | {s.caller_accuracy:.0%} | {s.agent_accuracy:.0%} |"
            )
        if args.vosk_model is None:
            print("(vosk: not measured; give --vosk-model DIR)")
        best = speeds[0]
        channel_speed = best.per_channel_second
        capacity = capacity_calls_per_s(args.call_s, channel_speed, args.workers)
        job_s = args.call_s / best.per_call_second
        sim_s = args.sim_s
        print(
            f"\nThe queue ({best.engine}, {args.workers} worker(s), {args.call_s:.0f} s calls: one job takes"
            f" {job_s:.1f} s of a worker)"
        )
        # The load asked over sim_s; around capacity, over the time of about 2,000 arrivals.
        rows = [simulate(args.rate, job_s, args.workers, sim_s)]
        rows += [simulate(r, job_s, args.workers, 2000 / r) for r in (0.9 * capacity, 1.1 * capacity)]
        labels = [f"{args.rate:g} calls/s (the load asked)", "90% of capacity", "110% of capacity"]
        print("| load | calls/s | arrivals | done | waiting at the end | oldest wait s | drains |")
        print("|---|--:|--:|--:|--:|--:|---|")
        for label, r in zip(labels, rows, strict=True):
            print(
                f"| {label} | {r.rate:g} | {r.arrivals} | {r.done} | {r.waiting_at_end}"
                f" | {r.oldest_wait_s:.1f} | {'yes' if r.drains else 'no'} |"
            )
        asked = rows[0]
        workers_needed = args.rate * job_s
        print(
            f"\nAt {args.rate:g} calls/s the queue {'drains' if asked.drains else 'grows without bound'}:"
            f" it keeps up with at most {capacity:.4f} calls/s ({capacity * 3600:.0f} calls an hour) with"
            f" {args.workers} worker(s), {capacity / args.rate:.2e} of the load asked; {args.rate:g} calls/s"
            f" would need about {workers_needed:.0f} cores of transcription."
        )
        real = asyncio.run(pool_run(best.engine, engines[0][1], call, args.workers, jobs))
        predicted = args.workers * best.per_call_second
        ratio = real["throughput"] / predicted if predicted else 0.0
        print(
            f"\nReal run: the app's pool ({args.workers} niced worker process(es)) given {jobs}"
            f" recordings at once: {real['wall_s']:.1f} s, {real['throughput']:.2f} call seconds per second;"
            f" predicted {predicted:.2f}: {ratio:.2f} of the prediction."
        )
        out = {
            "quick": args.quick,
            "call_s_measured": call.seconds,
            "speeds": [asdict(s) for s in speeds],
            "load": {"rate": args.rate, "call_s": args.call_s, "workers": args.workers},
            "capacity_calls_per_s": capacity,
            "simulated": [asdict(r) for r in rows],
            "real_run": {**real, "predicted": predicted, "ratio": round(ratio, 3)},
        }
        path = QUICK_RESULTS if args.quick else RESULTS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"\n(written to {path})")
        if real["words"] == 0 or not speeds or speeds[0].cpu_s <= 0:
            print("nothing was transcribed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
