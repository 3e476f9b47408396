"""Transcripts of recorded calls: words heard on one side of a stereo recording become lines,
and the rules of the transcription queue (retries, how far behind it is). Pure: no I/O.

A recording's left channel is the caller, its right channel the center (agents, experts, prompts
and hold music); each side is transcribed on its own, so every line says who spoke. A pause of
more than ``pause_s`` between two words of the same side starts a new line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

Side = Literal["caller", "center"]
SIDES: Final[tuple[Side, ...]] = ("caller", "center")
DEFAULT_PAUSE_S: Final = 0.8
MAX_LINE_S: Final = 20.0  # a monologue is cut into lines of at most this long

# Engine tokens that are not words: pocketsphinx's <s>, </s>, <sil>, [NOISE], ++GARBAGE++; vosk's [unk].
_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
_VARIANT = re.compile(r"\(\d+\)$")  # pocketsphinx: "to(2)" is a second pronunciation of "to"
_NOT_A_WORD = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Line:
    side: Side
    start_s: float
    end_s: float
    text: str


def clean(word: str) -> str | None:
    """The word as a person reads it, or None for an engine's silence/noise token."""
    if _FILLER.match(word):
        return None
    text = _VARIANT.sub("", word).strip().lower()
    return text or None


def words_of(heard: Iterable[tuple[str, float, float]], offset_s: float = 0.0) -> list[Word]:
    """An engine's (token, start, end) triples -> words, fillers left out, shifted by ``offset_s``."""
    out = []
    for token, start, end in heard:
        text = clean(token)
        if text is not None:
            out.append(Word(text, round(start + offset_s, 2), round(max(start, end) + offset_s, 2)))
    return out


def group_lines(
    side: Side, words: Sequence[Word], pause_s: float = DEFAULT_PAUSE_S, max_line_s: float = MAX_LINE_S
) -> list[Line]:
    """Consecutive words of one side form a line until a pause longer than ``pause_s`` (or the line
    would outgrow ``max_line_s``). Words are taken in time order."""
    if pause_s <= 0:
        raise ValueError("pause_s must be positive")
    lines: list[Line] = []
    current: list[Word] = []
    for word in sorted(words, key=lambda w: (w.start_s, w.end_s)):
        if current and (
            word.start_s - current[-1].end_s > pause_s or word.end_s - current[0].start_s > max_line_s
        ):
            lines.append(_line(side, current))
            current = []
        current.append(word)
    if current:
        lines.append(_line(side, current))
    return lines


def _line(side: Side, words: Sequence[Word]) -> Line:
    return Line(side, words[0].start_s, max(w.end_s for w in words), " ".join(w.text for w in words))


def conversation(lines: Iterable[Line]) -> list[Line]:
    """Both sides' lines in the order they were said (the caller first at equal times)."""
    return sorted(lines, key=lambda line: (line.start_s, SIDES.index(line.side), line.end_s))


def normalised_words(text: str) -> list[str]:
    """``"Certainly, may I..."`` -> ``["certainly", "may", "i"]``."""
    return [w for w in _NOT_A_WORD.sub(" ", text.lower()).split() if w.strip("'")]


def words_found(sentence: str, heard: str) -> float:
    """The share of the sentence's words that appear in what was heard (each heard word counts
    once): 1.0 when every word was heard."""
    wanted = normalised_words(sentence)
    if not wanted:
        return 1.0
    pool = normalised_words(heard)
    found = 0
    for word in wanted:
        if word in pool:
            pool.remove(word)
            found += 1
    return found / len(wanted)


def search_terms(query: str, most: int = 10) -> list[str]:
    """The words of a transcript search (every one must be in the call's transcript)."""
    return list(dict.fromkeys(normalised_words(query)))[:most]


# --- the queue's rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class JobRules:
    """A job that fails is tried again after ``retry_s`` x 2^(attempts-1), at most ``max_attempts``
    times in all. A worker renews its job's lease every ``heartbeat_s`` while it works on it; a
    running job not renewed for ``lease_s`` is taken to have died with its worker (an app stopped
    mid-job) and is taken up again."""

    max_attempts: int = 3
    retry_s: float = 30.0
    lease_s: float = 60.0
    heartbeat_s: float = 15.0

    def retry_after_s(self, attempts: int) -> float | None:
        """After the ``attempts``-th failed attempt: seconds until the next, or None: give up."""
        if attempts >= self.max_attempts:
            return None
        return self.retry_s * float(2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Backlog:
    """How far behind transcription is: jobs waiting or running, and the oldest one's wait."""

    waiting: int
    oldest_wait_s: float


def backlog(queued_at: Iterable[datetime], now: datetime) -> Backlog:
    times = list(queued_at)
    if not times:
        return Backlog(0, 0.0)
    return Backlog(len(times), round(max(0.0, (now - min(times)).total_seconds()), 1))


def capacity_calls_per_s(call_s: float, speed: float, workers: int, sides: int = 2) -> float:
    """The most calls per second ``workers`` transcribers keep up with: each worker transcribes
    ``speed`` seconds of one channel's audio per second of its time (x real time: audio seconds
    per CPU second), and a call of ``call_s`` seconds holds ``sides`` channels to transcribe."""
    if call_s <= 0 or sides <= 0:
        raise ValueError("a call has audio")
    return workers * speed / (call_s * sides)


def keeps_up(calls_per_s: float, call_s: float, speed: float, workers: int) -> bool:
    """Whether the queue drains at ``calls_per_s`` (see :func:`capacity_calls_per_s`)."""
    return calls_per_s <= capacity_calls_per_s(call_s, speed, workers)
