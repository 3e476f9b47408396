"""Real synthesis: pyttsx3 + libespeak-ng in a subprocess, sox to 8 kHz (needs espeak-ng and sox)."""

from __future__ import annotations

import asyncio
import math
import shutil
import time
import wave
from array import array
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.adapters.prompts import Prompt, PromptCache, PromptError

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs espeak-ng and sox (apt-get install espeak-ng sox)",
)

ENGLISH = Prompt("Welcome to Lianluo. Press one for sales, or two for support.")
MANDARIN = Prompt("您好，欢迎致电联络。请按一号键。", lang="zh")


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def assert_telephone_speech(path: Path, min_seconds: float = 0.5) -> float:
    """8 kHz mono 16-bit, long enough, and a good share of it is not silence."""
    assert path.is_file()
    assert path.suffix == ".wav"
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 8000
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getcomptype() == "NONE"
        frames = wav.readframes(wav.getnframes())
    samples = array("h", frames)
    seconds = len(samples) / 8000
    assert seconds > min_seconds
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert rms > 500, f"too quiet: RMS {rms:.0f}"
    loud_windows = sum(
        1 for i in range(0, len(samples) - 80, 80) if max(abs(s) for s in samples[i : i + 80]) > 1000
    )
    assert loud_windows * 0.01 > 0.4 * min_seconds
    return seconds


async def test_english_prompt_renders_then_hits_the_cache(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache")
    path = await cache.render(ENGLISH)
    assert path.parent == tmp_path / "cache"
    assert path == cache.path_for(ENGLISH)
    seconds = assert_telephone_speech(path)
    assert 2.0 < seconds < 10.0
    assert cache.worker_runs == 1
    assert cache.cache_hits == 0
    assert PromptCache.asterisk_uri(path) == f"sound:{path.with_suffix('')}"
    assert Path(PromptCache.asterisk_uri(path).removeprefix("sound:") + ".wav") == path

    mtime = path.stat().st_mtime_ns
    again = await cache.render(Prompt(ENGLISH.text, voice="en-us"))  # same key as the default voice
    assert again == path
    assert cache.worker_runs == 1  # no subprocess
    assert cache.cache_hits == 1
    assert path.stat().st_mtime_ns == mtime

    # A new PromptCache over the same directory (an app restart) also hits.
    restarted = PromptCache(tmp_path / "cache")
    assert await restarted.render(ENGLISH) == path
    assert restarted.worker_runs == 0
    assert names(tmp_path / "cache") == [path.name]


async def test_mandarin_prompt_renders(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    path = await cache.render(MANDARIN)
    seconds = assert_telephone_speech(path)
    assert 1.5 < seconds < 10.0
    assert cache.worker_runs == 1
    assert path != cache.path_for(ENGLISH)
    assert await cache.render(MANDARIN) == path
    assert cache.worker_runs == 1


async def test_concurrent_renders_of_one_key_make_one_file(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    prompt = Prompt("Please hold, your call is important to us.")
    paths = await asyncio.gather(*(cache.render(prompt) for _ in range(8)))
    assert set(paths) == {cache.path_for(prompt)}
    assert cache.worker_runs == 1
    assert cache.cache_hits == 7
    assert names(tmp_path) == [paths[0].name]  # no temporary leftovers
    assert_telephone_speech(paths[0])


async def test_concurrent_renders_of_different_keys_run_in_parallel(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    prompts = [Prompt(f"Press {n} now.") for n in ("one", "two", "three")] + [MANDARIN]
    paths = await asyncio.gather(*(cache.render(p) for p in prompts))
    assert len(set(paths)) == 4
    assert cache.worker_runs == 4
    for path in paths:
        assert_telephone_speech(path)


async def test_event_loop_keeps_running_during_synthesis(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    ticks = 0
    rendering = True

    async def ticker() -> None:
        nonlocal ticks
        while rendering:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await cache.render(Prompt("The loop keeps turning while this is synthesised in another process."))
    elapsed = time.monotonic() - started
    rendering = False
    await task
    assert ticks >= 3, f"only {ticks} ticks in {elapsed:.2f} s"


async def test_empty_synthesiser_output_is_retried(tmp_path: Path) -> None:
    class FlakyCache(PromptCache):
        """Makes the first synthesis leave a 44-byte WAV, as pyttsx3 sometimes did."""

        async def _run(self, argv: Sequence[str], stdin: bytes | None) -> tuple[int, str]:
            status, err = await super()._run(argv, stdin)
            if "app.adapters.tts_worker" in argv and self.worker_runs == 1:
                out = Path(argv[list(argv).index("--out") + 1])
                with wave.open(str(out), "wb") as wav:
                    wav.setnchannels(1)
                    wav.setsampwidth(2)
                    wav.setframerate(22050)
                assert names(out.parent) == ["raw.wav"]
            return status, err

    cache = FlakyCache(tmp_path)
    path = await cache.render(Prompt("Retried after an empty file."))
    assert cache.worker_runs == 2
    assert_telephone_speech(path)


async def test_failure_after_three_attempts_raises_a_clear_error(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    with pytest.raises(PromptError, match=r"after 3 attempts.*no-such-voice") as err:
        await cache.render(Prompt("never spoken", voice="no-such-voice"))
    assert "no-such-voice" in str(err.value)
    assert cache.worker_runs == 3
    assert names(tmp_path) == []


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.06])
async def test_cancelled_render_leaves_nothing_behind(tmp_path: Path, delay: float) -> None:
    cache = PromptCache(tmp_path)
    prompt = Prompt("This render is cancelled before it can finish, most of the time.")
    task = asyncio.create_task(cache.render(prompt))
    await asyncio.sleep(delay)
    if task.done():
        pytest.skip("render finished before it could be cancelled")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert names(tmp_path) in ([], [cache.path_for(prompt).name])
    # The key is not left locked: the next render works.
    assert_telephone_speech(await cache.render(prompt))


async def test_espeak_ng_cli_engine(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, engine="espeak-ng")
    english = await cache.render(ENGLISH)
    mandarin = await cache.render(MANDARIN)
    assert_telephone_speech(english)
    assert_telephone_speech(mandarin)
    assert english.name != PromptCache(tmp_path).path_for(ENGLISH).name
