"""Speech-synthesised IVR prompts, cached as 8 kHz 16-bit mono WAV files for Asterisk.

Synthesis uses pyttsx3 with libespeak-ng (the design card) in a subprocess
(:mod:`app.adapters.tts_worker`), because the espeak driver blocks and is not thread-safe. The
``espeak-ng`` command line is available as an alternative engine (``engine="espeak-ng"``).
Every result is checked (long enough, not silent), retried, and converted with sox. These
subprocesses die with the app, even a killed one (:mod:`app.adapters.parent_death`).

Mandarin prompts are written in Chinese characters; espeak-ng reads Mandarin correctly only from
tone-numbered pinyin with its ``cmn-latn-pinyin`` voice, so :func:`mandarin_to_pinyin` converts
the text first (and the cache key uses the original text).

Debian 12 packages needed: ``espeak-ng`` (brings ``libespeak-ng1``, which pyttsx3 loads as
``libespeak-ng.so.1``, and ``espeak-ng-data``) and ``sox``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
import wave
import weakref
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from app.adapters.parent_death import dies_with_us

log = logging.getLogger(__name__)

Lang = Literal["en", "zh"]
Engine = Literal["pyttsx3", "espeak-ng"]

DEFAULT_VOICES: Final[dict[str, str]] = {"en": "en-us", "zh": "cmn-latn-pinyin"}
MIN_RATE: Final = 80  # espeak-ng's limits, words per minute
MAX_RATE: Final = 450

SAMPLE_RATE: Final = 8000
ATTEMPTS: Final = 3
MIN_VOICED_SECONDS: Final = 0.2
VOICED_WINDOW_SECONDS: Final = 0.01
VOICED_RMS: Final = 300.0  # about -40 dBFS over a 10 ms window


class PromptError(Exception):
    """A prompt could not be synthesised (after retries) or its tools are missing."""


@dataclass(frozen=True)
class Prompt:
    text: str
    lang: Lang = "en"
    voice: str | None = None  # espeak-ng voice; None means DEFAULT_VOICES[lang]
    rate: int = 160  # words per minute

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("prompt text is empty")
        if self.lang not in DEFAULT_VOICES:
            raise ValueError(
                f"unsupported prompt language {self.lang!r}; expected one of {sorted(DEFAULT_VOICES)}"
            )
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise ValueError(f"speech rate {self.rate} outside {MIN_RATE}..{MAX_RATE} words per minute")

    @property
    def resolved_voice(self) -> str:
        return self.voice or DEFAULT_VOICES[self.lang]


# --- text preparation (pure) -------------------------------------------------------------------

# Applied before NFKC (which would turn "，" into a bare ","): Chinese punctuation separates clauses,
# so it becomes ASCII punctuation plus a space, which espeak-ng reads as a pause.
_PUNCTUATION = str.maketrans(
    {
        "，": ", ",
        "、": ", ",
        "､": ", ",
        "；": "; ",
        "：": ": ",
        "。": ". ",
        "｡": ". ",
        "．": ". ",
        "！": "! ",
        "？": "? ",
        "—": ", ",
        "–": ", ",
        "…": "... ",
    }
)
# Applied after NFKC (which maps full-width letters, digits and brackets to ASCII).
_SYMBOLS = str.maketrans(
    {
        **dict.fromkeys("·・~\"'“”‘’「」『』《》〈〉【】〔〕()[]", " "),
        # Phone keys: "请按#号键" is read "qing3 an4 jing3 hao4 jian4"; espeak would say "hash".
        "#": " jing3 ",
        "*": " xing1 ",
    }
)
_DECIMAL = re.compile(r"(\d)\.(\d+)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:])")
_NO_SPACE_AFTER_PUNCT = re.compile(r"([,.!?;:])(?=[^\s\d,.!?;:])")
_SPACES = re.compile(r"\s+")


def _spoken_decimal(match: re.Match[str]) -> str:
    # 3.15 -> "3 dian3 1 5": Chinese reads the digits after the point one by one.
    return f"{match[1]} dian3 {' '.join(match[2])} "


def mandarin_to_pinyin(text: str) -> str:
    """Chinese text -> tone-numbered pinyin for espeak-ng's ``cmn-latn-pinyin`` voice.

    Tones are digits 1-4, the neutral tone is 5 (espeak-ng reads an unnumbered syllable as tone
    1), ü is written ``v`` (``nv3``), which espeak-ng accepts. espeak-ng applies third-tone sandhi
    itself, so syllables keep their dictionary tones (``ni3 hao3``). Latin letters and digits are
    kept; Chinese punctuation becomes ASCII punctuation (a pause); quotes and brackets are dropped.
    Text that is already tone-numbered pinyin passes through unchanged.
    """
    from pypinyin import Style, lazy_pinyin  # loads its dictionaries on import

    normalised = unicodedata.normalize("NFKC", text.translate(_PUNCTUATION)).translate(_SYMBOLS)
    normalised = _DECIMAL.sub(_spoken_decimal, normalised)
    tokens: list[str] = lazy_pinyin(normalised, style=Style.TONE3, neutral_tone_with_five=True)
    spoken = " ".join(tokens)
    spoken = _SPACE_BEFORE_PUNCT.sub(r"\1", spoken)
    spoken = _NO_SPACE_AFTER_PUNCT.sub(r"\1 ", spoken)
    return _SPACES.sub(" ", spoken).strip()


def spoken_text(prompt: Prompt) -> str:
    """The text handed to the synthesiser for ``prompt``."""
    if prompt.lang == "zh":
        return mandarin_to_pinyin(prompt.text)
    return _SPACES.sub(" ", prompt.text).strip()


def cache_key(prompt: Prompt, engine: Engine) -> str:
    """20 hex digits of SHA-256 over (text, language, voice, rate, engine)."""
    material = json.dumps(
        [prompt.text, prompt.lang, prompt.resolved_voice, prompt.rate, engine], ensure_ascii=False
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:20]


# --- audio checks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int  # bytes
    seconds: float
    voiced_seconds: float  # total length of 10 ms windows louder than VOICED_RMS


def inspect_wav(path: Path) -> WavInfo:
    """Read a 16-bit PCM WAV file and measure how much of it is not silence (blocking)."""
    with wave.open(str(path), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        frames = wav.getnframes()
        data = wav.readframes(frames)
    seconds = frames / rate if rate else 0.0
    voiced = 0.0
    if width == 2 and channels >= 1 and rate > 0:
        samples = array("h")
        samples.frombytes(data[: len(data) - len(data) % 2])
        if sys.byteorder == "big":
            samples.byteswap()
        window = max(1, int(rate * VOICED_WINDOW_SECONDS)) * channels
        threshold = VOICED_RMS * VOICED_RMS * window
        loud = 0
        for start in range(0, len(samples) - window + 1, window):
            chunk = samples[start : start + window]
            if math.fsum(s * s for s in chunk) >= threshold:
                loud += 1
        voiced = loud * window / channels / rate
    return WavInfo(rate, channels, width, seconds, voiced)


def _check_audio(path: Path, *, sample_rate: int | None = None) -> str | None:
    """None if ``path`` holds usable speech, else what is wrong with it (blocking)."""
    try:
        info = inspect_wav(path)
    except (OSError, EOFError, wave.Error) as exc:
        size = path.stat().st_size if path.exists() else None
        return f"unreadable WAV ({size} bytes): {exc}"
    if info.sample_width != 2:
        return f"expected 16-bit samples, got {8 * info.sample_width}-bit"
    if sample_rate is not None and (info.sample_rate, info.channels) != (sample_rate, 1):
        return f"expected {sample_rate} Hz mono, got {info.sample_rate} Hz x {info.channels}"
    if info.voiced_seconds <= MIN_VOICED_SECONDS:
        return f"only {info.voiced_seconds:.2f} s of sound in {info.seconds:.2f} s of audio"
    return None


# --- the cache --------------------------------------------------------------------------------


def _python_path() -> str:
    """PYTHONPATH for the worker: the directory holding the ``app`` package, then the caller's."""
    root = str(Path(__file__).resolve().parents[2])
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([root, inherited]) if inherited else root


def _is_file(path: Path) -> bool:
    return path.is_file()


def _make_workdir(cache_dir: Path, key: str) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Inside the cache directory so that os.replace() is an atomic rename on one filesystem.
    return Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache_dir))


class PromptCache:
    """Renders prompts to ``<cache_dir>/<key>.wav`` once; later renders are cache hits.

    ``worker_runs`` counts synthesis subprocesses started (retries included) and ``cache_hits``
    renders answered from the cache, for tests and metrics. At most ``max_parallel`` (default: the
    number of CPUs) syntheses run at once; renders of one prompt share one synthesis.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        engine: Engine = "pyttsx3",
        attempts: int = ATTEMPTS,
        timeout: float = 60.0,
        max_parallel: int | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        parallel = max_parallel if max_parallel is not None else (os.cpu_count() or 1)
        if parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.cache_dir = Path(cache_dir).absolute()
        self.engine: Engine = engine
        self.attempts = attempts
        self.timeout = timeout
        self.worker_runs = 0
        self.cache_hits = 0
        # Bounds the synthesis subprocesses (e.g. when the app pre-renders every prompt at start-up).
        self._slots = asyncio.Semaphore(parallel)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def path_for(self, prompt: Prompt) -> Path:
        """Where ``prompt`` is (or will be) cached; does not render."""
        return self.cache_dir / f"{cache_key(prompt, self.engine)}.wav"

    @staticmethod
    def asterisk_uri(path: Path) -> str:
        """``sound:/abs/path/without/extension``: Asterisk picks the format (here .wav) itself."""
        return "sound:" + str(Path(path).absolute().with_suffix(""))

    async def render(self, prompt: Prompt) -> Path:
        """Path of the 8 kHz 16-bit mono WAV for ``prompt``, synthesising it on a cache miss."""
        key = cache_key(prompt, self.engine)
        path = self.cache_dir / f"{key}.wav"
        if _is_file(path):
            self.cache_hits += 1
            return path
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            if _is_file(path):  # rendered by a concurrent caller while we waited
                self.cache_hits += 1
                return path
            started = time.monotonic()
            await self._synthesize(prompt, key, path)
            log.info(
                "rendered prompt %s (%s, %s, %s) in %.2f s: %r",
                key,
                prompt.lang,
                prompt.resolved_voice,
                self.engine,
                time.monotonic() - started,
                prompt.text[:60],
            )
        return path

    async def _synthesize(self, prompt: Prompt, key: str, path: Path) -> None:
        # In a thread: the first Mandarin prompt imports pypinyin's dictionaries (~0.15 s).
        text = await asyncio.to_thread(spoken_text, prompt)
        if not text:
            raise PromptError(f"prompt {prompt.text!r} has nothing to say")
        workdir = _make_workdir(self.cache_dir, key)  # two mkdirs; not in a thread, so no leak on cancel
        try:
            raw, converted = workdir / "raw.wav", workdir / "out.wav"
            problems: list[str] = []
            for attempt in range(1, self.attempts + 1):
                async with self._slots:
                    problem = await self._attempt(text, prompt, raw, converted)
                if problem is None:
                    os.replace(converted, path)
                    return
                problems.append(f"attempt {attempt}: {problem}")
                log.warning("prompt %s attempt %d/%d failed: %s", key, attempt, self.attempts, problem)
            raise PromptError(
                f"could not synthesise {prompt.lang} prompt {prompt.text[:80]!r} with {self.engine} "
                f"voice {prompt.resolved_voice!r} after {self.attempts} attempts: " + "; ".join(problems)
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _attempt(self, text: str, prompt: Prompt, raw: Path, converted: Path) -> str | None:
        """One synthesis and conversion; None on success, else what went wrong."""
        for stale in (raw, converted):
            stale.unlink(missing_ok=True)
        worker = [sys.executable, "-m", "app.adapters.tts_worker", "--engine", self.engine]
        worker += ["--voice", prompt.resolved_voice, "--rate", str(prompt.rate), "--out", str(raw)]
        worker += ["--timeout", str(self.timeout)]
        self.worker_runs += 1
        status, stderr = await self._run(worker, text.encode("utf-8"))
        if status != 0:
            return f"tts worker exited with {status}: {stderr}"
        problem = await asyncio.to_thread(_check_audio, raw)
        if problem is not None:
            return f"synthesiser output: {problem}"
        # -D: no dither, so a prompt always converts to the same bytes.
        sox = ["sox", "-V1", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed"]
        status, stderr = await self._run([*sox, str(converted)], None)
        if status != 0:
            return f"sox exited with {status}: {stderr}"
        problem = await asyncio.to_thread(_check_audio, converted, sample_rate=SAMPLE_RATE)
        if problem is not None:
            return f"converted audio: {problem}"
        return None

    async def _run(self, argv: Sequence[str], stdin: bytes | None) -> tuple[int, str]:
        """Run a command without blocking the loop; (exit status or -1 on timeout, stderr)."""
        env = {**os.environ, "PYTHONPATH": _python_path()}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                preexec_fn=dies_with_us(),  # a killed app leaves no synthesis running
            )
        except FileNotFoundError as exc:
            raise PromptError(f"{argv[0]} not found (Debian: apt-get install espeak-ng sox)") from exc
        try:
            async with asyncio.timeout(self.timeout):
                _, err = await proc.communicate(stdin)
        except TimeoutError:
            return -1, f"{Path(argv[0]).name} timed out after {self.timeout:.0f} s"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return proc.returncode if proc.returncode is not None else -1, err.decode("utf-8", "replace").strip()
