"""Pure tests for prompt text preparation, cache keys and audio checks (no synthesiser needed)."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import pytest

from app.adapters.prompts import (
    Prompt,
    PromptCache,
    _check_audio,
    cache_key,
    inspect_wav,
    mandarin_to_pinyin,
    spoken_text,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("您好", "nin2 hao3"),
        ("您好，欢迎致电联络！", "nin2 hao3, huan1 ying2 zhi4 dian4 lian2 luo4!"),
        # Dictionary tones: espeak-ng applies third-tone sandhi itself.
        ("你好", "ni3 hao3"),
        # Neutral tone is 5 (an unnumbered syllable would be read as tone 1).
        ("好吗？", "hao3 ma5?"),
        ("我们", "wo3 men5"),
        # ü is written v, which espeak-ng's pinyin voice accepts.
        ("女", "nv3"),
        ("绿色", "lv4 se4"),
        # Heteronyms are resolved from the phrase.
        ("银行", "yin2 hang2"),
        ("行走", "xing2 zou3"),
        # Latin letters and digits are kept; Chinese punctuation becomes pauses.
        ("你好ABC123，再见。", "ni3 hao3 ABC123, zai4 jian4."),
        ("请按1号键", "qing3 an4 1 hao4 jian4"),
        ("Hello 世界", "Hello shi4 jie4"),
        ("第一、第二；第三：完", "di4 yi1, di4 er4; di4 san1: wan2"),
        ("等一下…好", "deng3 yi2 xia4... hao3"),  # pypinyin knows 一's sandhi here
        ("9:00—18:00", "9:00, 18:00"),
        # Full-width letters and digits are normalised.
        ("１２３ＡＢＣ", "123ABC"),
        # Quotes and brackets are dropped.
        ("“联络”「中心」《书》（注）", "lian2 luo4 zhong1 xin1 shu1 zhu4"),
        # Phone keys are read as in Chinese, not as English "hash"/"asterisk".
        ("请按#号键", "qing3 an4 jing3 hao4 jian4"),
        ("请按*号键返回", "qing3 an4 xing1 hao4 jian4 fan3 hui2"),
        # Decimals: "dian3", then the digits one by one.
        ("3.15元", "3 dian3 1 5 yuan2"),
        # Already tone-numbered pinyin passes through.
        ("nin2 hao3", "nin2 hao3"),
        ("  你\n好  ", "ni3 hao3"),
        ("", ""),
    ],
)
def test_mandarin_to_pinyin(text: str, expected: str) -> None:
    assert mandarin_to_pinyin(text) == expected


def test_mandarin_to_pinyin_output_is_ascii_for_chinese_input() -> None:
    out = mandarin_to_pinyin("欢迎致电联络客服中心，人工服务请按零。工作时间为周一至周五。")
    assert out.isascii()
    for syllable in out.replace(",", " ").replace(".", " ").split():
        assert syllable[-1] in "12345", syllable


def test_spoken_text_by_language() -> None:
    assert spoken_text(Prompt("您好", lang="zh")) == "nin2 hao3"
    assert spoken_text(Prompt("  Press   one\nfor sales. ")) == "Press one for sales."
    # English text is not run through pinyin conversion.
    assert spoken_text(Prompt("你好", lang="en")) == "你好"


def test_prompt_defaults_and_validation() -> None:
    assert Prompt("hi").resolved_voice == "en-us"
    assert Prompt("你好", lang="zh").resolved_voice == "cmn-latn-pinyin"
    assert Prompt("hi", voice="en-gb").resolved_voice == "en-gb"
    with pytest.raises(ValueError, match="empty"):
        Prompt("   ")
    with pytest.raises(ValueError, match="language"):
        Prompt("hi", lang="fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        Prompt("hi", rate=10)


def test_cache_key_is_stable_and_covers_every_field() -> None:
    base = Prompt("Welcome", lang="en", voice=None, rate=160)
    key = cache_key(base, "pyttsx3")
    assert len(key) == 20
    int(key, 16)
    assert cache_key(Prompt("Welcome"), "pyttsx3") == key
    # The default voice and the same voice spelled out are one cache entry.
    assert cache_key(Prompt("Welcome", voice="en-us"), "pyttsx3") == key
    others = {
        cache_key(Prompt("Welcome!"), "pyttsx3"),
        cache_key(Prompt("Welcome", lang="zh"), "pyttsx3"),
        cache_key(Prompt("Welcome", voice="en-gb"), "pyttsx3"),
        cache_key(Prompt("Welcome", rate=161), "pyttsx3"),
        cache_key(base, "espeak-ng"),
    }
    assert key not in others
    assert len(others) == 5


def test_path_for_and_asterisk_uri(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache")
    prompt = Prompt("Welcome")
    path = cache.path_for(prompt)
    assert path == tmp_path / "cache" / f"{cache_key(prompt, 'pyttsx3')}.wav"
    assert PromptCache.asterisk_uri(path) == f"sound:{tmp_path}/cache/{path.stem}"
    assert PromptCache(tmp_path, engine="espeak-ng").path_for(prompt).name != path.name


def test_asterisk_uri_makes_relative_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert PromptCache.asterisk_uri(Path("sounds/cache/abc.wav")) == f"sound:{tmp_path}/sounds/cache/abc"


def _write_wav(path: Path, samples: list[int], rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(array("h", samples).tobytes())
    return path


def test_audio_check_rejects_empty_and_silent_files(tmp_path: Path) -> None:
    empty = _write_wav(tmp_path / "empty.wav", [])
    assert empty.stat().st_size == 44  # what pyttsx3 sometimes leaves behind
    assert "0.00 s of sound" in (_check_audio(empty) or "")
    silent = _write_wav(tmp_path / "silent.wav", [0] * 8000)
    assert "of sound" in (_check_audio(silent) or "")
    (tmp_path / "garbage.wav").write_bytes(b"not a wav")
    assert "unreadable" in (_check_audio(tmp_path / "garbage.wav") or "")
    assert "unreadable" in (_check_audio(tmp_path / "missing.wav") or "")


def test_audio_check_accepts_a_tone_and_checks_format(tmp_path: Path) -> None:
    tone = [int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(4000)]
    path = _write_wav(tmp_path / "tone.wav", tone)
    info = inspect_wav(path)
    assert (info.sample_rate, info.channels, info.sample_width) == (8000, 1, 2)
    assert info.seconds == pytest.approx(0.5)
    assert info.voiced_seconds == pytest.approx(0.5)
    assert _check_audio(path) is None
    assert _check_audio(path, sample_rate=8000) is None
    assert "expected 16000 Hz" in (_check_audio(path, sample_rate=16000) or "")
    short = _write_wav(tmp_path / "short.wav", tone[:800])  # 0.1 s
    assert _check_audio(short) is not None
