"""Transcripts of recorded calls: large-vocabulary speech to text, offline, after the call.

The port is :class:`Transcriber`: ``transcribe(pcm16, rate)`` gives the words heard in one
channel with their start and end in seconds; ``transcribe_recording(path)`` does both sides of a
stereo recording (left: the caller, right: the center) in one job.

Engines (the menu recognizer's, app/adapters/speech.py, but without a grammar):

* pocketsphinx (default): the bundled US English acoustic model, its large language model
  ``en-us.lm.bin`` and dictionary ``cmudict-en-us.dict``; word times from the decoder's segments
  (``seg()``, 100 frames a second).
* vosk, when ``model_path`` names a vosk model directory (other languages, e.g. Mandarin):
  ``SetWords(True)`` gives each word's start and end.

All decoding happens in a pool of ``workers`` *processes* (pocketsphinx keeps the GIL while it
decodes), started with ``spawn`` and lowered in priority (``nice``), so a transcript never takes
the event loop or the CPU from the calls: Asterisk and the app run at normal priority and the
kernel gives the transcribers only what is left. Each channel is cut at its pauses into pieces
of speech (silence is not decoded at all: on a two-sided call each side is silent about half of
the time) and each piece is one utterance for the decoder.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import multiprocessing
import os
import signal
import time
import wave
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from app.adapters.parent_death import die_with_parent
from app.adapters.speech import DECODE_RATE, SpeechError, pcm16, resample, voiced_frames, vosk_model_rate
from app.domain.transcript import Word, words_of

log = logging.getLogger(__name__)

TranscriptEngine = str  # "pocketsphinx" or "vosk"
FRAMES_PER_S: Final = 100  # pocketsphinx's frame rate
GAP_S: Final = 0.3  # silence shorter than this stays inside a piece of speech
PAD_S: Final = 0.15  # silence kept either side of a piece
MAX_PIECE_S: Final = 30.0  # a longer stretch of speech is cut into pieces this long


@dataclass(frozen=True)
class Sides:
    """Both sides of a stereo recording, transcribed."""

    caller: list[Word]
    center: list[Word]
    audio_s: float  # seconds of audio per side
    cpu_s: float  # the worker's CPU time for both sides
    engine: str


class Transcriber(Protocol):
    async def transcribe(self, audio: bytes, sample_rate: int) -> list[Word]:
        """The words in ``audio`` (16-bit signed LE mono PCM at ``sample_rate``), in time order."""
        ...

    async def transcribe_recording(self, path: Path) -> Sides:
        """Both channels of a stereo 16-bit WAV file: left the caller, right the center."""
        ...


# --- pure audio helpers (run in the workers) --------------------------------------------------


def speech_pieces(samples: NDArray[np.int16], rate: int = DECODE_RATE) -> list[tuple[int, int]]:
    """(start, end) sample indexes of the stretches of speech: voiced 10 ms frames, joined across
    gaps shorter than GAP_S, padded by PAD_S, cut at MAX_PIECE_S."""
    voiced = voiced_frames(samples, rate)
    frame = max(1, rate // 100)
    pieces: list[tuple[int, int]] = []
    start: int | None = None
    last = -1
    gap = round(GAP_S * 100)
    for i in np.flatnonzero(voiced):
        if start is None:
            start = int(i)
        elif i - last > gap:
            pieces.append((start, last + 1))
            start = int(i)
        last = int(i)
    if start is not None:
        pieces.append((start, last + 1))
    pad = round(PAD_S * 100)
    longest = round(MAX_PIECE_S * 100)
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        a, b = max(0, a - pad), min(voiced.size, b + pad)
        while b - a > longest:
            out.append((a * frame, (a + longest) * frame))
            a += longest
        out.append((a * frame, b * frame))
    return out


def read_stereo(path: Path) -> tuple[NDArray[np.int16], NDArray[np.int16], int]:
    """A 16-bit WAV's left and right channels (a mono file: the same samples twice) and its rate."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: 16-bit samples expected, found {8 * w.getsampwidth()}-bit")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels == 1:
        return data, data, rate
    frames = data[: data.size - data.size % channels].reshape(-1, channels)
    return np.ascontiguousarray(frames[:, 0]), np.ascontiguousarray(frames[:, 1]), rate


# --- the engines, one per worker process -------------------------------------------------------


class _Engine(Protocol):
    name: str

    def words(self, samples: NDArray[np.int16]) -> list[tuple[str, float, float]]: ...


class _Sphinx:
    name = "pocketsphinx"

    def __init__(self, model_path: str | None) -> None:
        from pocketsphinx import Decoder

        options: dict[str, Any] = {"samprate": DECODE_RATE, "logfn": os.devnull}
        if model_path:  # a language directory laid out like the bundled en-us one
            base = Path(model_path)
            options |= {
                "hmm": str(next(p.parent for p in sorted(base.glob("*/mdef")))),
                "lm": str(next(iter(sorted(base.glob("*.lm.bin"))))),
                "dict": str(next(iter(sorted(base.glob("*.dict"))))),
            }
        self.decoder = Decoder(**options)

    def words(self, samples: NDArray[np.int16]) -> list[tuple[str, float, float]]:
        d = self.decoder
        d.start_utt()
        d.process_raw(samples.tobytes(), full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return []
        return [(s.word, s.start_frame / FRAMES_PER_S, (s.end_frame + 1) / FRAMES_PER_S) for s in d.seg()]


class _Vosk:
    name = "vosk"

    def __init__(self, model_path: str) -> None:
        vosk = importlib.import_module("vosk")
        vosk.SetLogLevel(-1)
        self.vosk = vosk
        self.model = vosk.Model(model_path)
        self.rate = vosk_model_rate(Path(model_path))

    def words(self, samples: NDArray[np.int16]) -> list[tuple[str, float, float]]:
        recognizer = self.vosk.KaldiRecognizer(self.model, self.rate)
        recognizer.SetWords(True)
        recognizer.AcceptWaveform(samples.tobytes())
        result = json.loads(recognizer.FinalResult())
        return [(str(w["word"]), float(w["start"]), float(w["end"])) for w in result.get("result", [])]


# Set by the pool's initializer, only inside a pool process.
_engine: _Engine | None = None


def _init(engine: str, model_path: str | None, parent_pid: int, niceness: int) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        os.nice(niceness)
    global _engine
    _engine = _Vosk(str(model_path)) if engine == "vosk" else _Sphinx(model_path)


def _ping() -> int:
    return os.getpid()


def _channel_words(samples: NDArray[np.int16], rate: int) -> list[Word]:
    assert _engine is not None, "transcriber worker not initialised"
    target = getattr(_engine, "rate", DECODE_RATE)
    samples = resample(samples, rate, target)
    out: list[Word] = []
    for start, end in speech_pieces(samples, target):
        out.extend(words_of(_engine.words(samples[start:end]), offset_s=start / target))
    return out


def _transcribe(audio: bytes, sample_rate: int) -> list[Word]:
    return _channel_words(pcm16(audio), sample_rate)


def _transcribe_file(path: str) -> Sides:
    assert _engine is not None, "transcriber worker not initialised"
    started = time.process_time()
    left, right, rate = read_stereo(Path(path))
    caller = _channel_words(left, rate)
    center = _channel_words(right, rate)
    return Sides(caller, center, left.size / rate, time.process_time() - started, _engine.name)


class PoolTranscriber:
    """The engine in ``workers`` niced worker processes; one job per process at a time, more wait."""

    def __init__(
        self,
        engine: str = "pocketsphinx",
        model_path: str | None = None,
        workers: int = 1,
        niceness: int = 10,
    ) -> None:
        if engine not in ("pocketsphinx", "vosk"):
            raise ValueError(f"unknown transcript engine {engine!r}")
        if engine == "vosk" and not model_path:
            raise ValueError("the vosk engine needs model_path")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.engine = engine
        self.model_path = model_path
        self.workers = workers
        self.niceness = niceness
        self._pool: ProcessPoolExecutor | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._pool is not None:
                return
            pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(self.engine, self.model_path, os.getpid(), self.niceness),
            )
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            try:
                await asyncio.gather(*(loop.run_in_executor(pool, _ping) for _ in range(self.workers)))
            except BrokenProcessPool as exc:
                await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
                raise SpeechError(
                    f"the {self.engine} transcriber could not load its model",
                    {"engine": self.engine, "path": self.model_path or "bundled en-us"},
                ) from exc
            self._pool = pool
            log.info(
                "transcriber ready: %s in %d worker processes (nice %d) in %.0f ms",
                self.engine,
                self.workers,
                self.niceness,
                (time.perf_counter() - started) * 1000,
            )

    async def close(self) -> None:
        """Stop the workers at once: a job they were doing stays 'running' in the queue and is
        taken up again after its lease (waiting for a 3-minute call's transcript would hold up
        the app's stop by tens of seconds)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())  # no public way before 3.14
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        await asyncio.to_thread(lambda: [process.join(5) for process in processes])

    async def _run(self, fn: Any, *args: Any) -> Any:
        await self.start()
        pool = self._pool
        assert pool is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool as exc:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise SpeechError("a transcriber worker process died", {"engine": self.engine}) from exc

    async def transcribe(self, audio: bytes, sample_rate: int) -> list[Word]:
        words: list[Word] = await self._run(_transcribe, audio, sample_rate)
        return words

    async def transcribe_recording(self, path: Path) -> Sides:
        sides: Sides = await self._run(_transcribe_file, str(path))
        return sides


def transcribe_here(engine: str, model_path: str | None, path: Path) -> Sides:
    """In this process (benchmarks): load the engine and transcribe one recording."""
    _init_here(engine, model_path)
    return _transcribe_file(str(path))


def _init_here(engine: str, model_path: str | None) -> None:
    global _engine
    if _engine is None or _engine.name != engine:
        _engine = _Vosk(str(model_path)) if engine == "vosk" else _Sphinx(model_path)


def words_here(
    engine: str, model_path: str | None, samples: Sequence[int] | NDArray[np.int16], rate: int
) -> list[Word]:
    """In this process (benchmarks): one channel's words."""
    _init_here(engine, model_path)
    return _channel_words(np.asarray(samples, dtype=np.int16), rate)
