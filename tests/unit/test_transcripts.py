"""Transcripts (app/domain/transcript.py, app/recording/transcripts.py): words become lines per
side, the queue's rules, and the worker's job handling against a fake store and transcriber."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.adapters.recording_store import RecordingRow
from app.adapters.transcriber import Sides, speech_pieces
from app.adapters.transcript_store import Job
from app.config import load_settings
from app.domain.transcript import (
    Backlog,
    JobRules,
    Line,
    Word,
    backlog,
    capacity_calls_per_s,
    clean,
    conversation,
    group_lines,
    keeps_up,
    search_terms,
    words_found,
    words_of,
)
from app.errors import ConfigError
from app.recording.transcripts import TranscriptOptions, Transcripts

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def w(text: str, start: float, end: float) -> Word:
    return Word(text, start, end)


# --- lines ------------------------------------------------------------------------------------


def test_a_pause_longer_than_the_limit_starts_a_new_line() -> None:
    words = [w("hello", 0.5, 0.9), w("there", 1.0, 1.4), w("my", 2.3, 2.5), w("account", 2.5, 3.0)]
    assert group_lines("caller", words, pause_s=0.8) == [
        Line("caller", 0.5, 1.4, "hello there"),
        Line("caller", 2.3, 3.0, "my account"),
    ]


def test_a_pause_of_exactly_the_limit_keeps_the_line() -> None:
    lines = group_lines("center", [w("a", 0.0, 1.0), w("b", 1.8, 2.0)], pause_s=0.8)
    assert [ln.text for ln in lines] == ["a b"]


def test_words_are_taken_in_time_order_and_a_monologue_is_cut() -> None:
    words = [w(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(60)]  # 30 s without a pause
    lines = group_lines("caller", list(reversed(words)), max_line_s=10.0)
    assert [ln.text.split()[0] for ln in lines] == ["w0", "w20", "w40"]
    assert all(ln.end_s - ln.start_s <= 10.0 for ln in lines)


def test_no_words_no_lines() -> None:
    assert group_lines("caller", []) == []


def test_engine_tokens_become_words_fillers_dropped_times_shifted() -> None:
    heard = [("<s>", 0.0, 0.2), ("i", 0.21, 0.32), ("to(2)", 0.4, 0.5), ("[NOISE]", 0.5, 0.6)]
    heard += [("++GARBAGE++", 0.6, 0.7), ("[unk]", 0.7, 0.8), ("<sil>", 0.8, 0.9), ("Bill", 1.0, 1.2)]
    assert words_of(heard, offset_s=10.0) == [
        w("i", 10.21, 10.32),
        w("to", 10.4, 10.5),
        w("bill", 11.0, 11.2),
    ]
    assert clean("</s>") is None and clean("account") == "account"


def test_both_sides_interleave_by_time_caller_first_at_a_tie() -> None:
    a = Line("center", 1.0, 2.0, "hello")
    b = Line("caller", 1.0, 1.5, "hi")
    c = Line("caller", 0.2, 0.8, "ring")
    assert conversation([a, b, c]) == [c, b, a]


def test_word_accuracy_counts_each_heard_word_once() -> None:
    sentence = "I would like to check the balance of my account please"
    assert words_found(sentence, "i would like to check the talent of my account leave") == 9 / 11
    assert words_found("the the the", "the") == pytest.approx(1 / 3)
    assert words_found("", "anything") == 1.0


def test_search_terms_are_normalised_deduplicated_and_bounded() -> None:
    assert search_terms("Balance,  balance ACCOUNT!") == ["balance", "account"]
    assert len(search_terms(" ".join(f"w{i}" for i in range(30)))) == 10


# --- the queue's rules ---------------------------------------------------------------------------


def test_retries_back_off_then_give_up() -> None:
    rules = JobRules(max_attempts=3, retry_s=30)
    assert [rules.retry_after_s(n) for n in (1, 2, 3, 4)] == [30, 60, None, None]


def test_backlog_is_the_count_and_the_oldest_wait() -> None:
    assert backlog([], T0) == Backlog(0, 0.0)
    queued = [T0 - timedelta(seconds=5), T0 - timedelta(seconds=42.04)]
    assert backlog(queued, T0) == Backlog(2, 42.0)


def test_capacity_from_the_speed() -> None:
    # 4 workers at 10x real time: 40 s of audio a second; a 3-minute call has 360 s (2 sides).
    assert capacity_calls_per_s(180, 10, 4) == pytest.approx(40 / 360)
    assert keeps_up(0.1, 180, 10, 4) and not keeps_up(20, 180, 10, 4)
    with pytest.raises(ValueError):
        capacity_calls_per_s(0, 10, 1)


def test_speech_pieces_skip_silence_and_keep_times() -> None:
    import numpy as np

    rate = 16000
    t = np.arange(rate) / rate
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    quiet = np.zeros(2 * rate, dtype=np.int16)
    pieces = speech_pieces(np.concatenate([quiet, tone, quiet, tone[: rate // 2]]), rate)
    assert len(pieces) == 2
    (a0, a1), (b0, b1) = pieces
    assert b1 == pytest.approx(5.5 * rate, abs=160)
    assert a0 == pytest.approx(1.85 * rate, abs=160) and a1 == pytest.approx(3.15 * rate, abs=160)
    assert b0 == pytest.approx(4.85 * rate, abs=160)


# --- the workers, with fakes ---------------------------------------------------------------------


class FakeJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, object]] = {}
        self.lines: dict[str, list[Line]] = {}
        self.renewed: list[tuple[str, datetime]] = []

    async def queue(self, recording_id: str, at: datetime) -> bool:
        if recording_id in self.jobs:
            return False
        self.jobs[recording_id] = {"state": "queued", "at": at, "not_before": at, "attempts": 0, "error": ""}
        return True

    def state(self, recording_id: str) -> str:
        return str(self.jobs[recording_id]["state"])

    async def queue_missing(self, since: datetime, at: datetime) -> int:
        return 0

    async def claim(self, now: datetime, lease_s: float) -> Job | None:
        due = [
            (j["at"], k)
            for k, j in self.jobs.items()
            if j["state"] == "queued" and j["not_before"] <= now  # type: ignore[operator]
        ]
        if not due:
            return None
        _, key = min(due)
        job = self.jobs[key]
        job["state"] = "running"
        job["attempts"] = int(str(job["attempts"])) + 1
        return Job(key, f"{key}.wav", int(str(job["attempts"])))

    async def renew(self, recording_id: str, now: datetime) -> None:
        self.renewed.append((recording_id, now))

    async def save(
        self, recording_id: str, lines: list[Line], engine: str, audio_s: float, cpu_s: float, now: datetime
    ) -> None:
        self.lines[recording_id] = list(lines)
        self.jobs[recording_id]["state"] = "done"

    async def failed(self, recording_id: str, error: str, retry_at: datetime | None, now: datetime) -> None:
        job = self.jobs[recording_id]
        job["state"] = "queued" if retry_at else "failed"
        job["error"] = error
        if retry_at:
            job["not_before"] = retry_at

    async def backlog(self, now: datetime) -> Backlog:
        return backlog([j["at"] for j in self.jobs.values() if j["state"] in ("queued", "running")], now)  # type: ignore[misc]


class FakeTranscriber:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.seen: list[Path] = []

    async def transcribe(self, audio: bytes, sample_rate: int) -> list[Word]:
        return []

    async def transcribe_recording(self, path: Path) -> Sides:
        self.seen.append(path)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("worker died")
        caller = [w("my", 0.5, 0.7), w("balance", 0.7, 1.2), w("please", 3.0, 3.4)]
        center = [w("certainly", 1.5, 2.1)]
        return Sides(caller, center, 4.0, 0.4, "fake")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def row(recording_id: str) -> RecordingRow:
    return RecordingRow(
        recording_id, "it-" + recording_id, "inbound", "general", None, "1370", ("1001",), T0,
        4000, 2, 8000, 100, "x", f"{recording_id}.wav", [], "default", 30,
    )  # fmt: skip


def service(transcriber: FakeTranscriber, jobs: FakeJobs, clock: Clock) -> Transcripts:
    options = TranscriptOptions(workers=1, pause_s=0.8, rules=JobRules(max_attempts=2, retry_s=10))
    return Transcripts(jobs, transcriber, lambda rel: Path("/rec") / rel, clock, options)


async def test_a_recorded_call_is_queued_once_and_transcribed_into_lines_per_side() -> None:
    jobs, fake, clock = FakeJobs(), FakeTranscriber(), Clock()
    t = service(fake, jobs, clock)
    await t.recorded(row("r1"))
    await t.recorded(row("r1"))  # the sweep finishing it again: still one job
    assert len(jobs.jobs) == 1
    assert await t.run_one() and not await t.run_one()
    assert fake.seen == [Path("/rec/r1.wav")]
    assert jobs.lines["r1"] == [
        Line("caller", 0.5, 1.2, "my balance"),
        Line("caller", 3.0, 3.4, "please"),
        Line("center", 1.5, 2.1, "certainly"),
    ]
    assert t.done == 1


async def test_a_failed_attempt_waits_its_retry_time_then_gives_up() -> None:
    jobs, fake, clock = FakeJobs(), FakeTranscriber(fail=5), Clock()
    t = service(fake, jobs, clock)
    await t.recorded(row("r2"))
    assert await t.run_one()
    assert jobs.state("r2") == "queued" and "worker died" in str(jobs.jobs["r2"]["error"])
    assert not await t.run_one()  # not yet due
    clock.now += timedelta(seconds=10)
    assert await t.run_one()
    assert jobs.state("r2") == "failed"  # two attempts: given up
    clock.now += timedelta(hours=1)
    assert not await t.run_one()


async def test_the_oldest_job_goes_first_and_the_backlog_is_watched() -> None:
    jobs, fake, clock = FakeJobs(), FakeTranscriber(), Clock()
    t = service(fake, jobs, clock)
    for i in range(3):
        await t.recorded(row(f"r{i}"))
        clock.now += timedelta(seconds=1)
    assert await jobs.backlog(clock()) == Backlog(3, 3.0)
    await t.start()
    try:
        for _ in range(200):
            if t.done == 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await t.stop()
    assert fake.seen == [Path(f"/rec/r{i}.wav") for i in range(3)]
    assert await jobs.backlog(clock()) == Backlog(0, 0.0)


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("recording:\n  transcripts: {engine: vosk}\n", "recording.transcripts.model_path"),
        ("recording:\n  transcripts: {workers: 0}\n", "recording.transcripts.workers"),
        ("recording:\n  transcripts: {nice: 25}\n", "recording.transcripts.nice"),
        ("recording:\n  transcripts: {line_pause_s: 0}\n", "recording.transcripts.line_pause_s"),
    ],
)
def test_bad_transcript_settings_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "center.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.details["field"] == field, str(err.value)
    assert str(err.value).startswith(f"{path}:"), str(err.value)


def test_the_demo_transcribes() -> None:
    from tests.support.stack import REPO

    t = load_settings(REPO / "config" / "demo.yaml").recording.transcripts
    assert t.enabled and t.engine == "pocketsphinx" and t.workers >= 1


# --- what people see -----------------------------------------------------------------------------


def test_metrics_say_how_far_behind_transcripts_are() -> None:
    from app.bus import Bus
    from app.supervision.metrics import CenterMetrics, LiveSources

    def sources(behind: Backlog | None) -> LiveSources:
        return LiveSources(
            queues=list, agents=list, calls=lambda: 0, writes_waiting=lambda: 0, sip_bans=lambda: 0,
            transcripts_behind=lambda: behind,
        )  # fmt: skip

    text = CenterMetrics(Bus(), sources(Backlog(7, 93.5))).text().decode()
    assert "lianluo_transcripts_waiting 7.0" in text
    assert "lianluo_transcripts_oldest_wait_seconds 93.5" in text
    assert "lianluo_transcripts" not in CenterMetrics(Bus(), sources(None)).text().decode()


def test_the_qa_page_shows_who_said_what_and_when_beside_the_player() -> None:
    from app.panel.qa_pages import qa_page

    playing = {
        "id": "r1", "ani": "1370", "agents": ["1001"], "started_at": "2026-12-04T09:00:00+00:00",
        "duration_s": 9.0, "spans": [], "sha256": "x", "part": "conversation", "queue": "general",
        "disposition": None, "score": None,
    }  # fmt: skip
    transcript = {
        "state": "done",
        "lines": [
            {"side": "caller", "start_s": 0.5, "end_s": 3.0, "text": "check my <balance>"},
            {"side": "center", "start_s": 64.25, "end_s": 66.0, "text": "certainly"},
        ],
    }
    behind = {"waiting": 2, "oldest_wait_s": 31.5}
    page = qa_page("en", "csrf", "", {}, [playing], playing, None, transcript=transcript, behind=behind)
    assert '<div class="qa-replay"><section class="qa-player"' in page
    assert 'data-start="0.50"' in page and 'data-start="64.25"' in page
    assert '<span class="who">Caller</span> <span class="at">0:00.5</span>' in page
    assert '<span class="who">Agent</span> <span class="at">1:04.2</span>' in page
    assert "check my &lt;balance&gt;" in page
    assert "Transcripts waiting: 2 (the oldest for 31.5 s)" in page
    ivr = {
        "state": "done",
        "lines": [{"side": "center", "who": "IVR", "start_s": 1.0, "end_s": 2.0, "text": "press one"}],
    }
    assert '<span class="who">IVR</span>' in qa_page(
        "en", "c", "", {}, [playing], playing, None, transcript=ivr
    )
    queued = {"state": "queued", "lines": []}
    waiting = qa_page("zh", "csrf", "", {}, [playing], playing, None, transcript=queued)
    assert "正在生成转写文本" in waiting and "transcripts-behind" not in waiting


async def test_a_long_job_renews_its_lease_while_it_runs() -> None:
    jobs, clock = FakeJobs(), Clock()
    started = asyncio.Event()
    finish = asyncio.Event()

    class Slow(FakeTranscriber):
        async def transcribe_recording(self, path: Path) -> Sides:
            started.set()
            await finish.wait()
            return await super().transcribe_recording(path)

    options = TranscriptOptions(rules=JobRules(heartbeat_s=0.01, lease_s=1))
    t = Transcripts(jobs, Slow(), lambda rel: Path("/rec") / rel, clock, options)
    await t.recorded(row("r9"))
    running = asyncio.create_task(t.run_one())
    await started.wait()
    for _ in range(100):
        if len(jobs.renewed) >= 3:
            break
        await asyncio.sleep(0.01)
    finish.set()
    assert await running
    assert len(jobs.renewed) >= 3 and {r for r, _ in jobs.renewed} == {"r9"}
    count = len(jobs.renewed)
    await asyncio.sleep(0.05)
    assert len(jobs.renewed) == count, "no renewal once the job is done"
