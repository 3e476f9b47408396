"""QA scoring: forms of sections and questions, and the score of an evaluation.

Pure: no I/O. Forms are read from YAML by app/recording/forms.py (errors name file, line and
field: `check_form` raises FormError with the field's path).

- **Questions** are `yes_no` (yes counts 1, no 0) or `scale` (0..max, counting value/max);
  a question with `na: true` may be answered "na", which leaves it out of the score.
- **The score** is 0-100: the weighted mean of the answered questions' values, times 100,
  rounded to one decimal.
- **Critical questions** (yes/no only) fail the whole evaluation when answered "no": the score
  is 0 whatever the rest says, and the evaluation names the critical questions it failed.
- **Frozen:** an evaluation, once submitted, never changes; an amendment (who, why, the new
  answers and score) is added instead, and the latest amendment's score is the one that counts.
- **Calibration:** several evaluators score the same call; their spread (max - min) and
  standard deviation show how far apart they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class FormError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class AnswerError(Exception):
    """The answers do not fit the form (a 400 for whoever sent them)."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    type: Literal["yes_no", "scale"] = "yes_no"
    weight: float = 1.0
    max: int = 5  # scale: answers 0..max
    na: bool = False  # may be answered "na" (not applicable): left out of the score
    critical: bool = False  # yes_no only: "no" fails the whole evaluation


@dataclass(frozen=True)
class Section:
    title: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Form:
    name: str
    title: str
    sections: tuple[Section, ...]
    source: str = field(default="", metadata={"internal": True})

    def questions(self) -> list[Question]:
        return [q for s in self.sections for q in s.questions]


_ID = re.compile(r"^[a-z0-9_]{1,40}$")


def check_form(form: Form) -> None:
    if not _ID.fullmatch(form.name):
        raise FormError("name", f"use 1-40 characters from a-z, 0-9 and '_', got {form.name!r}")
    if not form.sections:
        raise FormError("sections", "a form has at least one section")
    seen: set[str] = set()
    for i, section in enumerate(form.sections):
        if not section.questions:
            raise FormError(f"sections[{i}].questions", "a section has at least one question")
        for j, q in enumerate(section.questions):
            at = f"sections[{i}].questions[{j}]"
            if not _ID.fullmatch(q.id):
                raise FormError(f"{at}.id", f"use 1-40 characters from a-z, 0-9 and '_', got {q.id!r}")
            if q.id in seen:
                raise FormError(f"{at}.id", f"question {q.id} is given twice")
            seen.add(q.id)
            if not q.weight > 0:
                raise FormError(f"{at}.weight", f"a weight is more than 0, got {q.weight}")
            if q.type == "scale" and not 1 <= q.max <= 10:
                raise FormError(f"{at}.max", f"a scale goes up to 1-10, got {q.max}")
            if q.critical and q.type != "yes_no":
                raise FormError(f"{at}.critical", "only a yes/no question can be critical")
            if q.critical and q.na:
                raise FormError(f"{at}.na", "a critical question must be answered")


Answer = str | int


@dataclass(frozen=True)
class Result:
    score: float  # 0-100
    failed_critical: tuple[str, ...]


def score(form: Form, answers: Mapping[str, Answer]) -> Result:
    """The evaluation's score; AnswerError if an answer is missing, unknown or out of range."""
    questions = form.questions()
    extra = set(answers) - {q.id for q in questions}
    if extra:
        raise AnswerError(f"no such question in form {form.name}: {', '.join(sorted(extra))}")
    total = weights = 0.0
    failed: list[str] = []
    for q in questions:
        if q.id not in answers:
            raise AnswerError(f"question {q.id} is not answered")
        a = answers[q.id]
        if a == "na":
            if not q.na:
                raise AnswerError(f"question {q.id} cannot be answered n/a")
            continue
        if q.type == "yes_no":
            if a not in ("yes", "no"):
                raise AnswerError(f"question {q.id}: yes, no{' or na' if q.na else ''}")
            value = 1.0 if a == "yes" else 0.0
            if q.critical and a == "no":
                failed.append(q.id)
        else:
            if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= q.max:
                raise AnswerError(f"question {q.id}: a whole number 0-{q.max}{' or na' if q.na else ''}")
            value = a / q.max
        total += q.weight * value
        weights += q.weight
    if weights == 0:
        raise AnswerError("every question is n/a: nothing to score")
    if failed:
        return Result(0.0, tuple(failed))
    return Result(round(100 * total / weights, 1), ())


def check_amendment(why: str) -> None:
    if not why.strip():
        raise AnswerError("an amendment says why")


@dataclass(frozen=True)
class Calibration:
    count: int
    low: float | None
    high: float | None
    mean: float | None
    spread: float | None  # high - low
    stdev: float | None  # population standard deviation


def calibration(scores: Sequence[float]) -> Calibration:
    if not scores:
        return Calibration(0, None, None, None, None, None)
    mean = sum(scores) / len(scores)
    stdev = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    return Calibration(
        len(scores),
        min(scores),
        max(scores),
        round(mean, 1),
        round(max(scores) - min(scores), 1),
        round(stdev, 1),
    )


QA_PERIODS = ("week", "day")
QA_BY = ("agent", "queue")


def qa_trend_columns(by: str) -> dict[str, tuple[str, ...]]:
    """The QA report's two tables: `rows`, one per period (a week from Monday, or a day, in the
    center's time zone) and agent or queue; `totals`, one per agent or queue over the whole
    period."""
    return {
        "rows": ("period", by, "evaluations", "mean_score", "failed_critical", "disputed"),
        "totals": (by, "evaluations", "mean_score", "failed_critical", "disputed", "change"),
    }


def qa_trend(rows: Sequence[Mapping[str, Any]], by: str) -> dict[str, list[dict[str, Any]]]:
    """The QA report from one row per key and period (key, period: its first day, as a date or
    its ISO text, count, total: the sum of the scores, failed: how many failed a critical
    question, disputed: how many the agent disputed). A mean is the sum of the scores over
    their number, rounded to one decimal, so a key's mean over the whole period weighs each
    period by its evaluations; `change` is the last period's mean minus the first's (0 with
    one period). Periods come in time order, then by key."""
    out: list[dict[str, Any]] = []
    totals: dict[str, list[float]] = {}  # key -> [count, total, failed, disputed]
    first_last: dict[str, list[float]] = {}  # key -> [first period's mean, last period's mean]
    for r in sorted(rows, key=lambda r: (str(r["period"]), str(r["key"]))):
        count = int(r["count"])
        if count <= 0:
            continue
        key, total = str(r["key"]), float(r["total"])
        failed, disputed = int(r["failed"]), int(r["disputed"])
        mean = round(total / count, 1)
        out.append(
            {
                "period": str(r["period"]),
                by: key,
                "evaluations": count,
                "mean_score": mean,
                "failed_critical": failed,
                "disputed": disputed,
            }
        )
        t = totals.setdefault(key, [0, 0.0, 0, 0])
        t[0] += count
        t[1] += total
        t[2] += failed
        t[3] += disputed
        first_last.setdefault(key, [mean, mean])[1] = mean
    summary: list[dict[str, Any]] = [
        {
            by: key,
            "evaluations": int(t[0]),
            "mean_score": round(t[1] / t[0], 1),
            "failed_critical": int(t[2]),
            "disputed": int(t[3]),
            "change": round(first_last[key][1] - first_last[key][0], 1),
        }
        for key, t in sorted(totals.items())
    ]
    return {"rows": out, "totals": summary}
