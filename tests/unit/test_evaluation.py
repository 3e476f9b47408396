"""QA scoring (app/domain/evaluation.py) and form files (app/recording/forms.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import load_settings
from app.domain.evaluation import (
    AnswerError,
    Form,
    Question,
    Section,
    calibration,
    check_amendment,
    qa_trend,
    qa_trend_columns,
    score,
)
from app.errors import ConfigError
from app.recording.forms import load_form, load_forms

REPO = Path(__file__).resolve().parents[2]

FORM = Form(
    "service",
    "Service call",
    (
        Section(
            "Opening",
            (
                Question("greeting", "Greeted", weight=1),
                Question("verified", "Verified identity", critical=True),
            ),
        ),
        Section(
            "Handling",
            (
                Question("understood", "Understood", type="scale", max=5, weight=3),
                Question("hold", "Asked before hold", weight=2, na=True),
            ),
        ),
    ),
)


def test_the_score_is_the_weighted_mean_of_the_answers() -> None:
    r = score(FORM, {"greeting": "yes", "verified": "yes", "understood": 3, "hold": "no"})
    # (1*1 + 1*1 + 3*0.6 + 2*0) / (1 + 1 + 3 + 2) = 3.8 / 7
    assert r.score == round(100 * 3.8 / 7, 1) == 54.3
    assert r.failed_critical == ()
    assert score(FORM, {"greeting": "yes", "verified": "yes", "understood": 5, "hold": "yes"}).score == 100.0


def test_not_applicable_leaves_a_question_out() -> None:
    r = score(FORM, {"greeting": "no", "verified": "yes", "understood": 5, "hold": "na"})
    assert r.score == round(100 * 4 / 5, 1) == 80.0


def test_a_failed_critical_question_fails_the_whole_evaluation() -> None:
    r = score(FORM, {"greeting": "yes", "verified": "no", "understood": 5, "hold": "yes"})
    assert (r.score, r.failed_critical) == (0.0, ("verified",))


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"greeting": "yes", "verified": "yes", "understood": 3}, "hold is not answered"),
        ({"greeting": "maybe", "verified": "yes", "understood": 3, "hold": "no"}, "greeting: yes, no"),
        ({"greeting": "na", "verified": "yes", "understood": 3, "hold": "no"}, "cannot be answered n/a"),
        ({"greeting": "yes", "verified": "yes", "understood": 6, "hold": "no"}, "0-5"),
        ({"greeting": "yes", "verified": "yes", "understood": True, "hold": "no"}, "0-5"),
        (
            {"greeting": "yes", "verified": "yes", "understood": 3, "hold": "no", "x": "yes"},
            "no such question",
        ),
    ],
)
def test_answers_that_do_not_fit_the_form_are_refused(answers: dict[str, str | int], words: str) -> None:
    with pytest.raises(AnswerError, match=words):
        score(FORM, answers)


def test_an_amendment_says_why() -> None:
    with pytest.raises(AnswerError):
        check_amendment("  ")
    check_amendment("misheard the verification")


def test_calibration_shows_how_far_apart_evaluators_are() -> None:
    c = calibration([80.0, 60.0, 70.0])
    assert (c.count, c.low, c.high, c.mean, c.spread, c.stdev) == (3, 60.0, 80.0, 70.0, 20.0, 8.2)
    assert calibration([]).count == 0


def test_the_demo_form_loads() -> None:
    forms = load_forms(load_settings(REPO / "config" / "demo.yaml"))
    form = forms["service"]
    assert any(q.critical for q in form.questions())
    answers: dict[str, str | int] = {
        q.id: (5 if q.type == "scale" else "yes") for q in form.questions()
    }  # fmt: skip
    assert score(form, answers).score == 100.0


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("name: x\ntitle: X\nsections: []\n", 3, "sections", "at least one section"),
        (
            "name: x\ntitle: X\nsections:\n  - title: A\n    questions:\n"
            "      - {id: a, text: A, weight: 0}\n",
            6,
            "sections[0].questions[0].weight",
            "more than 0",
        ),
        (
            "name: x\ntitle: X\nsections:\n  - title: A\n    questions:\n"
            "      - {id: a, text: A}\n      - {id: b, text: B, type: scale, critical: true}\n",
            7,
            "sections[0].questions[1].critical",
            "only a yes/no",
        ),
        (
            "name: x\ntitle: X\nsections:\n  - title: A\n    questions:\n"
            "      - {id: a, text: A}\n      - {id: a, text: B}\n",
            7,
            "sections[0].questions[1].id",
            "given twice",
        ),
        (
            "name: x\ntitle: X\nsections:\n  - title: A\n    questions:\n"
            "      - {id: a, text: A, type: stars}\n",
            6,
            "sections[0].questions[0].type",
            "expected one of",
        ),
    ],
)
def test_bad_form_files_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    path = tmp_path / "form.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_form(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: {field}: "), msg
    assert words in msg


def test_the_qa_report_weighs_periods_by_their_evaluations() -> None:
    rows = [
        {"key": "1001", "period": "2026-11-30", "count": 1, "total": 100.0, "failed": 0, "disputed": 0},
        {"key": "1001", "period": "2026-11-23", "count": 3, "total": 180.0, "failed": 1, "disputed": 2},
        {"key": "1002", "period": "2026-11-30", "count": 2, "total": 150.0, "failed": 0, "disputed": 0},
    ]
    report = qa_trend(rows, "agent")
    assert [(r["period"], r["agent"], r["mean_score"]) for r in report["rows"]] == [
        ("2026-11-23", "1001", 60.0),
        ("2026-11-30", "1001", 100.0),
        ("2026-11-30", "1002", 75.0),
    ], "in time order, then by agent"
    first, second = report["totals"]
    assert first == {
        "agent": "1001",
        "evaluations": 4,
        "mean_score": 70.0,  # (180 + 100) / 4, not the mean of the weeks' means (80)
        "failed_critical": 1,
        "disputed": 2,
        "change": 40.0,
    }
    assert second["change"] == 0.0 and second["mean_score"] == 75.0
    assert qa_trend_columns("queue")["totals"][0] == "queue"
    assert qa_trend([], "agent") == {"rows": [], "totals": []}


QUESTIONS = FORM.questions()


@st.composite
def answers_of(draw: st.DrawFn) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for q in QUESTIONS:
        choices: list[str | int] = ["yes", "no"] if q.type == "yes_no" else list(range(q.max + 1))
        if q.na:
            choices.append("na")
        out[q.id] = draw(st.sampled_from(choices))
    return out


@given(answers_of())
def test_any_valid_answers_score_between_0_and_100_and_a_better_answer_never_lowers_it(
    answers: dict[str, str | int],
) -> None:
    result = score(FORM, answers)
    assert 0 <= result.score <= 100
    assert (result.score == 0) or not result.failed_critical
    for q in QUESTIONS:
        better = dict(answers)
        if answers[q.id] == "no":
            better[q.id] = "yes"
        elif isinstance(answers[q.id], int) and answers[q.id] < q.max:  # type: ignore[operator]
            better[q.id] = int(answers[q.id]) + 1
        else:
            continue
        assert score(FORM, better).score >= result.score, (q.id, answers)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1001", "1002", "1003"]),
            st.sampled_from(["2026-11-23", "2026-11-30", "2026-12-07"]),
            st.lists(st.integers(0, 100), min_size=1, max_size=6),
        ),
        max_size=9,
        unique_by=lambda r: (r[0], r[1]),
    )
)
def test_the_qa_reports_totals_add_up_its_periods(cells: list[tuple[str, str, list[int]]]) -> None:
    rows = [
        {"key": k, "period": p, "count": len(s), "total": float(sum(s)), "failed": s.count(0), "disputed": 0}
        for k, p, s in cells
    ]
    report = qa_trend(rows, "agent")
    assert sum(int(str(r["evaluations"])) for r in report["totals"]) == sum(len(s) for _, _, s in cells)
    for total in report["totals"]:
        scores = [x for k, _, s in cells if k == total["agent"] for x in s]
        assert total["mean_score"] == round(sum(scores) / len(scores), 1)
        assert total["failed_critical"] == scores.count(0)
        means = [float(str(r["mean_score"])) for r in report["rows"] if r["agent"] == total["agent"]]
        assert min(means) - 0.05 <= float(str(total["mean_score"])) <= max(means) + 0.05
    periods = [str(r["period"]) for r in report["rows"]]
    assert periods == sorted(periods)
