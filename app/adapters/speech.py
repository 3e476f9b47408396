"""Offline speech input for IVR menus: one small recognizer port and two real engines.

A menu hands :meth:`Recognizer.recognize` the caller's audio (16-bit signed little-endian mono PCM,
as Asterisk gives it: 8 kHz ``slin`` or 16 kHz ``slin16``) and its small grammar (``["billing",
"technical support", "agent"]``); the answer is a :class:`Recognition` naming the phrase heard, or
``None`` when nothing in the grammar was heard with enough confidence.

Engines:

* :class:`PocketsphinxRecognizer` (PyPI ``pocketsphinx``, bundled US English model, or another
  pocketsphinx language directory). Decoding is restricted to the phrases by a JSGF grammar.
  pocketsphinx keeps the GIL while it decodes, so decoding runs in a small pool of worker
  *processes*, each with its own decoder; a thread would stall the event loop for the whole decode.
  The pool uses the ``spawn`` start method, so the program's main module must be safe to import
  (``python -m app`` is: its work sits under ``if __name__ == "__main__"``). The workers die with
  the app even when it is killed (:mod:`app.adapters.parent_death`); multiprocessing's resource
  tracker then sees its pipe close, removes the pool's semaphores from ``/dev/shm`` and exits.
* :class:`VoskRecognizer` (PyPI ``vosk``; the model directory is configuration). vosk's grammar
  mode limits the words to those of the phrases; the model is loaded once and shared by every call,
  each call decoding with its own ``KaldiRecognizer`` in a worker thread (vosk releases the GIL).

Both engines' models want 16 kHz audio (vosk: whatever the model's ``conf/mfcc.conf`` says); 8 kHz
input is resampled here with numpy (band-limited, by FFT), in the worker.

Confidence is in 0..1 for both engines, but each engine computes it its own way (see
:func:`sphinx_confidence` and :func:`best_phrase`), so ``min_confidence`` is worth tuning per engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self

import numpy as np
from numpy.typing import NDArray

from app.adapters.parent_death import die_with_parent
from app.errors import AppError

log = logging.getLogger(__name__)

EngineName = Literal["pocketsphinx", "vosk"]
ENGINES: Final[tuple[EngineName, ...]] = ("pocketsphinx", "vosk")
DEFAULT_MIN_CONFIDENCE: Final = 0.25  # chosen on synthesized phone-line speech; tune per engine

DECODE_RATE: Final = 16000  # what both engines' models are trained on
SILENCE_DB: Final = 40.0  # frame energy (dB re 1 LSB^2) below this is silence: about -50 dBFS
VOICED_RANGE_DB: Final = 25.0  # frames this far below the loudest frame do not count as speech
MAX_GRAMMARS: Final = 32  # grammars kept ready per decoder or recognizer


class SpeechError(AppError):
    """Speech input is unavailable (engine package or model missing) or cannot take a grammar."""

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        error_id: str = "speech-unavailable",
        http_status: int = 500,
    ) -> None:
        super().__init__(error_id, message, details or {}, http_status)


def grammar_error(message: str, details: dict[str, Any]) -> SpeechError:
    """The menu's phrases cannot be used (an admin's configuration problem)."""
    return SpeechError(message, details, error_id="speech-grammar", http_status=400)


@dataclass(frozen=True)
class Recognition:
    phrase: str | None  # one of the phrases given, exactly as given; None: nothing usable heard
    text: str  # what the engine heard, words of the grammar (and fillers such as "[unk]")
    confidence: float  # 0..1
    engine: EngineName
    decode_ms: float  # time spent resampling and decoding, in the worker


class Recognizer(Protocol):
    async def recognize(self, audio: bytes, sample_rate: int, phrases: Sequence[str]) -> Recognition:
        """Which of ``phrases`` was said in ``audio`` (16-bit signed LE mono PCM at ``sample_rate``)."""
        ...


class ManagedRecognizer(Recognizer, Protocol):
    """A recognizer with a lifecycle, for the composition root (an aiohttp cleanup context)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SpeechSettings:
    """What the configuration says about speech input.

    ``model_path``: for vosk, the model directory (required); for pocketsphinx, a language
    directory laid out like the bundled ``pocketsphinx/model/en-us`` (an acoustic model folder
    holding ``mdef`` and one ``*.dict`` pronunciation dictionary), or None for the bundled en-US.
    """

    engine: EngineName = "pocketsphinx"
    model_path: Path | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown speech engine {self.engine!r}; expected one of {list(ENGINES)}")
        if self.engine == "vosk" and self.model_path is None:
            raise ValueError("the vosk engine needs model_path (the directory of a vosk model)")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence {self.min_confidence} outside 0..1")


def recognizer_from_settings(settings: SpeechSettings) -> ManagedRecognizer:
    """The engine ``settings`` names; nothing is loaded until :meth:`start` or the first call."""
    if settings.engine == "vosk":
        assert settings.model_path is not None  # checked by SpeechSettings
        return VoskRecognizer(settings.model_path, min_confidence=settings.min_confidence)
    return PocketsphinxRecognizer(settings.model_path, min_confidence=settings.min_confidence)


# --- grammar (pure) ---------------------------------------------------------------------------

_NOT_A_WORD = re.compile(r"[^\w']+")
_ALTERNATE_PRONUNCIATION = re.compile(r"\(\d+\)$")  # pocketsphinx writes "to(2)" for a variant


def phrase_words(phrase: str) -> tuple[str, ...]:
    """``"Technical-Support!"`` -> ``("technical", "support")``: lower case, letters, digits, apostrophes."""
    text = unicodedata.normalize("NFKC", phrase).casefold().replace("_", " ")
    return tuple(word for word in _NOT_A_WORD.sub(" ", text).split() if word.strip("'"))


@dataclass(frozen=True)
class Grammar:
    """A menu's phrases, each with its normalised words; built by :func:`build_grammar`."""

    phrases: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]  # words[i] belongs to phrases[i]

    @property
    def key(self) -> str:
        """A name for this grammar, usable as a pocketsphinx search name."""
        material = json.dumps(self.words, ensure_ascii=False).encode("utf-8")
        return f"menu_{_digest(material)}"

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(word for words in self.words for word in words))

    def phrase_for(self, words: Sequence[str]) -> str | None:
        target = tuple(words)
        for phrase, phrase_words_ in zip(self.phrases, self.words, strict=True):
            if phrase_words_ == target:
                return phrase
        return None


def _digest(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()[:16]


def build_grammar(phrases: Sequence[str]) -> Grammar:
    """Check and normalise a menu's phrases; a problem raises a :class:`SpeechError` (400)."""
    if isinstance(phrases, str):
        raise grammar_error("phrases must be a list of phrases, not one string", {"phrases": phrases})
    if not phrases:
        raise grammar_error("a speech menu needs at least one phrase", {"phrases": []})
    seen: dict[tuple[str, ...], str] = {}
    for phrase in phrases:
        words = phrase_words(phrase)
        if not words:
            raise grammar_error(f"phrase {phrase!r} has no words", {"phrase": phrase})
        if words in seen and seen[words] != phrase:
            raise grammar_error(
                f"phrases {seen[words]!r} and {phrase!r} are the same words",
                {"phrases": [seen[words], phrase]},
            )
        seen.setdefault(words, phrase)
    return Grammar(tuple(seen.values()), tuple(seen))


def jsgf(grammar: Grammar) -> str:
    """A JSGF grammar accepting exactly one of the phrases.

    Only normalised words appear (letters, digits, apostrophes), so no phrase can inject JSGF
    syntax; every word is also checked against the pronunciation dictionary before use.
    """
    alternatives = " | ".join(" ".join(words) for words in grammar.words)
    return f"#JSGF V1.0;\ngrammar menu;\npublic <phrase> = {alternatives};\n"


def best_phrase(grammar: Grammar, heard: Sequence[tuple[str, float]]) -> tuple[str | None, float]:
    """The phrase that best explains the words heard (each with the engine's confidence), and a score.

    The score is ``2 * W / (len(phrase) + len(heard))``, where W sums the confidences of the heard
    words that match the phrase's words in order (a confidence-weighted longest common subsequence):
    1.0 for the exact phrase heard with full confidence, lower for partial matches, extra words or
    unknown-word markers. vosk's grammar mode is a loop over the grammar's words, so it may hear
    "account billing balance"; this picks the phrase anyway and lowers the score.
    """
    best: tuple[str | None, float] = (None, 0.0)
    if not heard:
        return best
    for phrase, words in zip(grammar.phrases, grammar.words, strict=True):
        matched = _weighted_lcs(words, heard)
        score = 2.0 * matched / (len(words) + len(heard))
        if score > best[1]:
            best = (phrase, score)
    return best


def _weighted_lcs(words: Sequence[str], heard: Sequence[tuple[str, float]]) -> float:
    previous = [0.0] * (len(heard) + 1)
    for word in words:
        current = [0.0]
        for j, (heard_word, confidence) in enumerate(heard, start=1):
            diagonal = previous[j - 1] + confidence if heard_word == word else 0.0
            current.append(max(previous[j], current[j - 1], diagonal))
        previous = current
    return previous[-1]


# --- audio (pure, CPU: call from a worker) -----------------------------------------------------


def pcm16(audio: bytes) -> NDArray[np.int16]:
    """16-bit signed little-endian PCM bytes -> samples."""
    if len(audio) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(audio)}")
    return np.frombuffer(audio, dtype="<i2").astype(np.int16)


def resample(samples: NDArray[np.int16], src_rate: int, dst_rate: int) -> NDArray[np.int16]:
    """Band-limited resampling (FFT): ideal low-pass at the lower of the two Nyquist frequencies."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or samples.size == 0:
        return samples
    n = samples.size
    m = max(1, round(n * dst_rate / src_rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    resized = np.zeros(m // 2 + 1, dtype=np.complex128)
    keep = min(spectrum.size, resized.size)
    resized[:keep] = spectrum[:keep]
    if m > n and n % 2 == 0:
        resized[n // 2] *= 0.5  # the old Nyquist bin stood for two bins; now it is an ordinary one
    out = np.fft.irfft(resized, m) * (m / n)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def voiced_frames(samples: NDArray[np.int16], sample_rate: int = DECODE_RATE) -> NDArray[np.bool_]:
    """One flag per 10 ms frame: loud enough to be speech, and within VOICED_RANGE_DB of the
    loudest frame."""
    size = max(1, sample_rate // 100)
    frames = samples.size // size
    if frames == 0:
        return np.zeros(0, dtype=np.bool_)
    blocks = samples[: frames * size].astype(np.float64).reshape(frames, size)
    energy_db = 10.0 * np.log10(np.mean(blocks * blocks, axis=1) + 1.0)
    voiced: NDArray[np.bool_] = (energy_db > SILENCE_DB) & (energy_db > energy_db.max() - VOICED_RANGE_DB)
    return voiced


def _prepare(audio: bytes, sample_rate: int) -> tuple[NDArray[np.int16], NDArray[np.bool_]]:
    samples = resample(pcm16(audio), sample_rate, DECODE_RATE)
    return samples, voiced_frames(samples)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# --- pocketsphinx ----------------------------------------------------------------------------

# Decoder scores are in the decoder's log units relative to the best state of each frame; an
# average gap of this many units per frame over the phrase's words divides the confidence by e.
SPHINX_SCORE_SCALE: Final = 40.0
SPHINX_DITHER_SEED: Final = 1


def sphinx_confidence(word_score_per_frame: float, coverage: float) -> float:
    """Confidence of a grammar match from pocketsphinx's own numbers (a heuristic).

    ``word_score_per_frame``: the phrase words' acoustic score per frame, which pocketsphinx
    normalises against the best-scoring state of each frame, so it measures how far the phrase's
    path falls behind an unconstrained match (0 at best, more negative for a poorer fit).
    ``coverage``: the share of the speech frames that the phrase's words account for; speech the
    decoder had to explain as silence or noise is speech the phrase did not match.
    """
    fit = math.exp(min(0.0, word_score_per_frame) / SPHINX_SCORE_SCALE)
    return max(0.0, min(1.0, coverage)) * fit


@dataclass(frozen=True)
class SphinxModel:
    """Paths of a pocketsphinx acoustic model and pronunciation dictionary."""

    acoustic_model: Path
    dictionary: Path

    @classmethod
    def bundled(cls) -> SphinxModel:
        try:
            pocketsphinx = importlib.import_module("pocketsphinx")
        except ImportError as exc:
            raise SpeechError(
                "speech engine pocketsphinx is not installed (pip install pocketsphinx)",
                {"engine": "pocketsphinx"},
            ) from exc
        return cls.from_directory(Path(pocketsphinx.get_model_path("en-us")))

    @classmethod
    def from_directory(cls, path: Path) -> SphinxModel:
        """A language directory like the bundled ``en-us``: an acoustic model folder (``mdef``
        inside) and one ``*.dict`` file."""
        details = {"engine": "pocketsphinx", "path": str(path)}
        if not path.is_dir():
            raise SpeechError(f"pocketsphinx model directory {path} does not exist", details)
        acoustic = sorted(p.parent for p in path.glob("*/mdef"))
        if (path / "mdef").is_file():
            acoustic.insert(0, path)
        dictionaries = sorted(path.glob("*.dict"))
        if not acoustic:
            raise SpeechError(f"no pocketsphinx acoustic model (a folder with mdef) in {path}", details)
        if len(dictionaries) != 1:
            found = [p.name for p in dictionaries]
            raise SpeechError(
                f"expected one pronunciation dictionary (*.dict) in {path}, found {found or 'none'}",
                details,
            )
        return cls(acoustic[0], dictionaries[0])


class UnknownWords(ValueError):
    """Raised in a worker: grammar words missing from the engine's vocabulary (picklable)."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(words)
        self.words = words


class _SphinxWorker:
    """One decoder, living in one pool process; grammars are added once and switched by name."""

    def __init__(self, model: SphinxModel) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(
            hmm=str(model.acoustic_model),
            dict=str(model.dictionary),
            lm=None,
            samprate=DECODE_RATE,
            # The lattice pass ("bestpath") often turned a complete grammar match into a partial
            # one ("account" for "account balance"); the Viterbi result alone was right 40/40.
            bestpath=False,
            # Exact digital silence (u-law's zero, a muted line) gives log-energy features the model
            # never saw; a little fixed-seed dither keeps them sane and results repeatable.
            dither=True,
            seed=SPHINX_DITHER_SEED,
            logfn=os.devnull,
        )
        self.grammars: OrderedDict[str, None] = OrderedDict()

    def use(self, key: str, grammar_text: str, vocabulary: Sequence[str]) -> Any:
        if key not in self.grammars:
            unknown = [word for word in vocabulary if self.decoder.lookup_word(word) is None]
            if unknown:
                raise UnknownWords(unknown)
            self.decoder.add_jsgf_string(key, grammar_text)
            self.grammars[key] = None
            while len(self.grammars) > MAX_GRAMMARS:
                oldest, _ = self.grammars.popitem(last=False)
                self.decoder.remove_search(oldest)
        self.grammars.move_to_end(key)
        self.decoder.activate_search(key)
        return self.decoder


# Set by the pool's initializer, and only ever inside a pool process: a ProcessPoolExecutor task
# can reach per-process state only through a module global.
_sphinx_worker: _SphinxWorker | None = None


def _sphinx_init(model: SphinxModel, parent_pid: int) -> None:
    # Before the model loads: a worker of a killed app would otherwise wait forever on the pool's
    # queue (it holds that pipe's write end itself), and keep the resource tracker alive too.
    die_with_parent(parent_pid)
    # A terminal's Ctrl-C reaches the whole process group, workers too; the app stops them itself
    # as it shuts down, so each would only print a KeyboardInterrupt traceback on `make run`'s screen.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _sphinx_worker
    _sphinx_worker = _SphinxWorker(model)


def _sphinx_ping() -> int:
    assert _sphinx_worker is not None
    return os.getpid()


def _sphinx_decode(
    audio: bytes, sample_rate: int, key: str, grammar_text: str, vocabulary: tuple[str, ...]
) -> tuple[str, float, float]:
    """In a pool process: (text heard, confidence, milliseconds)."""
    started = time.perf_counter()
    assert _sphinx_worker is not None, "pocketsphinx worker not initialised"
    samples, voiced = _prepare(audio, sample_rate)
    if not voiced.any():
        return "", 0.0, _elapsed_ms(started)
    decoder = _sphinx_worker.use(key, grammar_text, vocabulary)
    # Feature extraction keeps running statistics from earlier utterances: without this reset a
    # call's result would depend on which calls this process happened to decode before.
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(samples.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    if hypothesis is None:  # no path through the grammar: silence, noise, unrelated sounds
        return "", 0.0, _elapsed_ms(started)
    logmath = decoder.get_logmath()
    words = set(vocabulary)
    in_phrase = np.zeros(max(decoder.n_frames(), voiced.size) + 1, dtype=np.bool_)
    score, frames = 0.0, 0
    for segment in decoder.seg():
        if _ALTERNATE_PRONUNCIATION.sub("", segment.word) not in words:
            continue  # silence and noise fillers
        if segment.ascore <= 0.0:  # underflow: hopeless fit
            return hypothesis.hypstr, 0.0, _elapsed_ms(started)
        in_phrase[segment.start_frame : segment.end_frame + 1] = True
        score += logmath.log(segment.ascore)
        frames += segment.end_frame - segment.start_frame + 1
    if frames == 0:
        return hypothesis.hypstr, 0.0, _elapsed_ms(started)
    coverage = float(np.mean(in_phrase[: voiced.size][voiced]))
    return hypothesis.hypstr, sphinx_confidence(score / frames, coverage), _elapsed_ms(started)


class PocketsphinxRecognizer:
    """pocketsphinx with a JSGF grammar per menu, decoding in ``processes`` worker processes.

    Each process holds one decoder and runs one decode at a time, so concurrent calls never share
    a decoder; calls beyond ``processes`` wait their turn. The pool starts on :meth:`start` (or
    the first call) and stops on :meth:`close`; a crashed worker is reported as a
    :class:`SpeechError` and the pool is rebuilt on the next call.
    """

    engine: Final[EngineName] = "pocketsphinx"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        processes: int | None = None,
    ) -> None:
        count = processes if processes is not None else min(2, os.cpu_count() or 1)
        if count < 1:
            raise ValueError("processes must be at least 1")
        self.model_path = model_path
        self.min_confidence = min_confidence
        self.processes = count
        self._pool: ProcessPoolExecutor | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._pool is not None:
                return
            model = await asyncio.to_thread(self._model)
            # spawn: a forked copy of a running event loop (and its threads) is not safe.
            pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_sphinx_init,
                initargs=(model, os.getpid()),
            )
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            try:
                pids = await asyncio.gather(
                    *(loop.run_in_executor(pool, _sphinx_ping) for _ in range(self.processes))
                )
            except BrokenProcessPool as exc:
                await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
                raise SpeechError(
                    f"pocketsphinx could not load its model from {model.acoustic_model}",
                    {"engine": self.engine, "path": str(model.acoustic_model)},
                ) from exc
            self._pool = pool
            log.info(
                "pocketsphinx ready: %d worker processes %s in %.0f ms (model %s)",
                self.processes,
                sorted(set(pids)),
                _elapsed_ms(started),
                model.acoustic_model,
            )

    def _model(self) -> SphinxModel:
        if self.model_path is None:
            return SphinxModel.bundled()
        try:
            importlib.import_module("pocketsphinx")
        except ImportError as exc:
            raise SpeechError(
                "speech engine pocketsphinx is not installed (pip install pocketsphinx)",
                {"engine": self.engine},
            ) from exc
        return SphinxModel.from_directory(self.model_path)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def recognize(self, audio: bytes, sample_rate: int, phrases: Sequence[str]) -> Recognition:
        grammar = build_grammar(phrases)
        _check_audio(audio, sample_rate)
        await self.start()
        pool = self._pool
        assert pool is not None
        loop = asyncio.get_running_loop()
        args = (audio, sample_rate, grammar.key, jsgf(grammar), grammar.vocabulary)
        try:
            text, confidence, decode_ms = await loop.run_in_executor(pool, _sphinx_decode, *args)
        except UnknownWords as exc:
            raise _unknown_words_error(self.engine, exc.words, self.model_path) from exc
        except BrokenProcessPool as exc:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise SpeechError("a pocketsphinx worker process died", {"engine": self.engine}) from exc
        phrase = grammar.phrase_for(text.split()) if confidence >= self.min_confidence else None
        return _result(phrase, text, confidence, self.engine, decode_ms)


# --- vosk ------------------------------------------------------------------------------------

_SAMPLE_FREQUENCY = re.compile(r"^--sample-frequency=(\d+(?:\.\d*)?)\s*$", re.MULTILINE)


def vosk_model_rate(model_path: Path) -> int:
    """The sample rate a vosk model's features expect (``conf/mfcc.conf``; Kaldi's default 16 kHz)."""
    try:
        conf = (model_path / "conf" / "mfcc.conf").read_text(encoding="utf-8")
    except OSError:
        return DECODE_RATE
    found = _SAMPLE_FREQUENCY.search(conf)
    return round(float(found[1])) if found else DECODE_RATE


@dataclass
class _LoadedVoskModel:
    model: Any
    rate: int
    has_unk: bool
    known_grammars: OrderedDict[str, str] = field(default_factory=OrderedDict)  # key -> JSON grammar


class VoskRecognizer:
    """vosk in grammar mode; the model is loaded once (seconds) and shared by concurrent calls,
    each of which decodes with its own ``KaldiRecognizer`` in a worker thread.

    ``model_loads`` counts model loads (1 after the first call), for tests and metrics. At most
    ``max_parallel`` (default: the number of CPUs) decodes run at once.
    """

    engine: Final[EngineName] = "vosk"

    def __init__(
        self,
        model_path: Path,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        max_parallel: int | None = None,
    ) -> None:
        parallel = max_parallel if max_parallel is not None else (os.cpu_count() or 1)
        if parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.model_path = Path(model_path)
        self.min_confidence = min_confidence
        self.model_loads = 0
        self._loaded: _LoadedVoskModel | None = None
        self._loading = asyncio.Lock()
        self._slots = asyncio.Semaphore(parallel)

    async def start(self) -> None:
        await self._model()

    async def close(self) -> None:
        self._loaded = None  # vosk frees the model when the last recognizer using it is gone

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _model(self) -> _LoadedVoskModel:
        if self._loaded is not None:
            return self._loaded
        async with self._loading:
            if self._loaded is None:
                started = time.perf_counter()
                self._loaded = await asyncio.to_thread(self._load)
                self.model_loads += 1
                log.info("vosk model %s loaded in %.0f ms", self.model_path, _elapsed_ms(started))
            return self._loaded

    def _load(self) -> _LoadedVoskModel:
        details = {"engine": self.engine, "path": str(self.model_path)}
        try:
            vosk = importlib.import_module("vosk")
        except ImportError as exc:
            raise SpeechError("speech engine vosk is not installed (pip install vosk)", details) from exc
        if not self.model_path.is_dir():
            raise SpeechError(f"vosk model directory {self.model_path} does not exist", details)
        vosk.SetLogLevel(-1)  # process-wide: keep Kaldi's per-load chatter out of our logs
        try:
            model = vosk.Model(str(self.model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise SpeechError(f"vosk could not load a model from {self.model_path}: {exc}", details) from exc
        has_unk = model.vosk_model_find_word("[unk]") >= 0
        return _LoadedVoskModel(model, vosk_model_rate(self.model_path), has_unk)

    def _grammar_json(self, loaded: _LoadedVoskModel, grammar: Grammar) -> str:
        key = grammar.key
        known = loaded.known_grammars.get(key)
        if known is not None:
            loaded.known_grammars.move_to_end(key)
            return known
        # vosk drops words it does not know with only a log line; refuse them instead.
        unknown = [w for w in grammar.vocabulary if loaded.model.vosk_model_find_word(w) < 0]
        if unknown:
            raise _unknown_words_error(self.engine, unknown, self.model_path)
        entries = [" ".join(words) for words in grammar.words]
        if loaded.has_unk:
            entries.append("[unk]")  # lets out-of-grammar speech come out as [unk]
        text = json.dumps(entries, ensure_ascii=False)
        loaded.known_grammars[key] = text
        while len(loaded.known_grammars) > MAX_GRAMMARS:
            loaded.known_grammars.popitem(last=False)
        return text

    async def recognize(self, audio: bytes, sample_rate: int, phrases: Sequence[str]) -> Recognition:
        grammar = build_grammar(phrases)
        _check_audio(audio, sample_rate)
        loaded = await self._model()
        grammar_json = self._grammar_json(loaded, grammar)
        async with self._slots:
            heard, decode_ms = await asyncio.to_thread(
                _vosk_decode, loaded.model, loaded.rate, audio, sample_rate, grammar_json
            )
        phrase, confidence = best_phrase(grammar, heard)
        if confidence < self.min_confidence:
            phrase = None
        return _result(phrase, " ".join(word for word, _ in heard), confidence, self.engine, decode_ms)


def _vosk_decode(
    model: Any, model_rate: int, audio: bytes, sample_rate: int, grammar_json: str
) -> tuple[list[tuple[str, float]], float]:
    """In a worker thread: the words heard with their confidences, and milliseconds."""
    from vosk import KaldiRecognizer

    started = time.perf_counter()
    samples = resample(pcm16(audio), sample_rate, model_rate)
    if not voiced_frames(samples, model_rate).any():
        return [], _elapsed_ms(started)
    recognizer = KaldiRecognizer(model, model_rate, grammar_json)  # one per call: not thread-safe
    recognizer.SetWords(True)
    recognizer.AcceptWaveform(samples.tobytes())
    result = json.loads(recognizer.FinalResult())
    heard = [(str(w["word"]), float(w.get("conf", 1.0))) for w in result.get("result", [])]
    return heard, _elapsed_ms(started)


# --- shared ------------------------------------------------------------------------------------


def _check_audio(audio: bytes, sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if len(audio) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(audio)}")


def _unknown_words_error(engine: EngineName, words: Iterable[str], model_path: Path | None) -> SpeechError:
    missing = sorted(set(words))
    where = str(model_path) if model_path is not None else "the bundled en-US model"
    return grammar_error(
        f"{engine} does not know the words {missing} ({where}); rephrase the menu's phrases",
        {"engine": engine, "words": missing, "path": where},
    )


def _result(
    phrase: str | None, text: str, confidence: float, engine: EngineName, decode_ms: float
) -> Recognition:
    recognition = Recognition(phrase, text, round(confidence, 3), engine, round(decode_ms, 1))
    log.debug("%s heard %r -> %r (confidence %.2f) in %.0f ms", engine, text, phrase, confidence, decode_ms)
    return recognition
