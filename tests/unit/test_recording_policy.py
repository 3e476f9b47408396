"""Recording rules (app/domain/recording.py) and their configuration (`recording:`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import load_settings
from app.domain.recording import (
    Kept,
    Mode,
    RecordingPolicy,
    Rule,
    SpanKind,
    Spans,
    activity_marks,
    expired,
    may_listen,
    sampled,
    snap_to_silence,
)
from app.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

POLICY = RecordingPolicy(
    default=Rule(Mode.ALL, retention_days=30),
    queues={"billing": Rule(Mode.SAMPLE, 25.0, retention_days=7), "tech": Rule(Mode.NONE)},
    campaigns={"renewals": Rule(Mode.NONE)},
    directions={"outbound": Rule(Mode.ALL, retention_days=365, consent=False)},
)


def test_the_most_specific_rule_decides() -> None:
    iid = str(uuid.uuid4())
    assert POLICY.decide(iid, queue="general").source == "default"
    assert POLICY.decide(iid, queue="general").record
    assert POLICY.decide(iid, queue="general").retention_days == 30
    assert POLICY.decide(iid, queue="tech").record is False
    assert POLICY.decide(iid, queue="general", direction="outbound").source == "direction:outbound"
    # A campaign's rule beats its queue's and its direction's.
    d = POLICY.decide(iid, queue="general", campaign="renewals", direction="outbound")
    assert (d.record, d.source) == (False, "campaign:renewals")
    # A queue's rule beats the direction's.
    assert POLICY.decide(iid, queue="tech", direction="outbound").source == "queue:tech"


def test_a_sample_takes_its_share_and_the_same_call_always_gets_the_same_answer() -> None:
    ids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(4000)]
    chosen = [POLICY.decide(i, queue="billing").record for i in ids]
    assert 0.22 < sum(chosen) / len(ids) < 0.28
    assert chosen == [POLICY.decide(i, queue="billing").record for i in ids]
    assert sampled(ids[0], 100) and not sampled(ids[0], 0)


def test_consent_is_announced_only_where_calls_may_be_recorded() -> None:
    assert POLICY.consent("general")
    assert POLICY.consent("billing")  # a sample: any caller may be recorded
    assert not POLICY.consent("tech")
    assert not RecordingPolicy(default=Rule(Mode.ALL, consent=False)).consent("general")


def test_a_call_we_place_announces_only_when_it_will_be_recorded_and_its_rule_asks() -> None:
    policy = RecordingPolicy(
        queues={"billing": Rule(Mode.SAMPLE, 50.0), "tech": Rule(Mode.NONE)},
        campaigns={"renewals": Rule(Mode.ALL, consent=False), "winback": Rule(Mode.ALL)},
    )
    iid = str(uuid.uuid4())
    assert policy.announced(iid, queue="general", campaign=None, direction="outbound")
    assert not policy.announced(iid, queue="tech", campaign=None, direction="outbound")
    # The campaign's rule beats its queue's, both ways.
    assert not policy.announced(iid, queue="general", campaign="renewals", direction="outbound")
    assert policy.announced(iid, queue="tech", campaign="winback", direction="outbound")
    # A sample: the customer hears it exactly when this call is the one recorded.
    ids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(200)]
    assert [policy.announced(i, queue="billing", campaign=None, direction="outbound") for i in ids] == [
        policy.decide(i, queue="billing", direction="outbound").record for i in ids
    ]
    assert not POLICY.announced(iid, queue="general", campaign=None, direction="outbound"), "consent: false"


def test_spans_mark_pauses_and_holds_without_overlap() -> None:
    spans = Spans()
    assert spans.start(SpanKind.PAUSE, 5.0)
    assert not spans.start(SpanKind.PAUSE, 6.0), "a pause while paused is the same pause"
    assert spans.silent
    assert spans.start(SpanKind.HOLD, 7.0)
    assert spans.stop(SpanKind.PAUSE, 9.5)
    assert spans.silent, "still on hold"
    assert not spans.stop(SpanKind.PAUSE, 10.0)
    spans.close_all(12.0)  # the call ends on hold
    assert not spans.silent
    assert spans.as_list() == [
        {"kind": "pause", "start_s": 5.0, "end_s": 9.5},
        {"kind": "hold", "start_s": 7.0, "end_s": 12.0},
    ]
    again = Spans.from_list([*spans.as_list(), {"kind": "pause", "start_s": 13.0, "end_s": None}])
    assert again.silent and again.as_list() == spans.as_list()


def test_retention_deletes_only_what_is_past_its_own_days() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    old = Kept("a", now - timedelta(days=31), 30)
    young = Kept("b", now - timedelta(days=29), 30)
    forever = Kept("c", now - timedelta(days=3000), 0)
    assert expired([old, young, forever], now) == [old]


def test_who_may_listen() -> None:
    for role in ("qa", "supervisor", "admin"):
        assert may_listen(role=role, agent_id=None, parties=["1001"], agents_hear_own=False)
    assert not may_listen(role="agent", agent_id="1001", parties=["1001"], agents_hear_own=False)
    assert may_listen(role="agent", agent_id="1001", parties=["1001", "1002"], agents_hear_own=True)
    assert not may_listen(role="agent", agent_id="1003", parties=["1001", "1002"], agents_hear_own=True)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "center.yaml"
    p.write_text(text)
    return p


def test_recording_settings_from_yaml(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "queues: [{name: general}, {name: billing}]\n"
            "recording:\n"
            "  enabled: true\n"
            "  queues:\n"
            "    billing: {mode: sample, percent: 20, retention_days: 14}\n"
            "  directions:\n"
            "    outbound: {mode: none}\n",
        )
    )
    policy = s.recording.policy()
    assert s.recording.enabled
    assert policy.queues["billing"] == Rule(Mode.SAMPLE, 20.0, 14, True)
    assert policy.directions["outbound"].mode is Mode.NONE
    assert [p.lang for p in s.recording.consent_prompt] == ["en", "zh"]


def test_the_demo_records_every_call() -> None:
    s = load_settings(REPO / "config" / "demo.yaml")
    assert s.recording.enabled
    assert s.recording.policy().decide(str(uuid.uuid4()), queue="general").record


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("recording:\n  queues:\n    nosuch: {mode: all}\n", 3, "recording.queues.nosuch", "no queue"),
        ("recording:\n  default: {mode: sometimes}\n", 2, "recording.default.mode", "expected one of"),
        (
            "recording:\n  default:\n    mode: sample\n    percent: 140\n",
            4,
            "recording.default.percent",
            "0-100",
        ),
        ("recording:\n  default: {mode: sample}\n", 2, "recording.default.mode", "between 0 and 100"),
        (
            "recording:\n  directions:\n    sideways: {mode: all}\n",
            3,
            "recording.directions.sideways",
            "inbound",
        ),
        ("recording:\n  campaigns:\n    x: {mode: none}\n", 3, "recording.campaigns.x", "no campaign"),
        (
            "recording:\n  default:\n    retention_days: -1\n",
            3,
            "recording.default.retention_days",
            "0 (kept for ever)",
        ),
        ("recording:\n  keep_days: 3\n", 2, "recording.keep_days", "unknown field"),
    ],
)
def test_bad_recording_config_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'center.yaml'}:{line}: {field}: "), msg
    assert words in msg


def test_long_silences_and_overtalk_are_marked_outside_pauses_and_holds() -> None:
    # 100 ms frames: 2 s both talking, 1 s caller only, 7 s nobody (3 s of it on hold), 1 s agent.
    caller = [0.2] * 20 + [0.2] * 10 + [0.0] * 70 + [0.0] * 10
    center = [0.2] * 20 + [0.0] * 10 + [0.0] * 70 + [0.3] * 10
    marks = activity_marks(caller, center, 0.1, quiet=[(3.0, 6.0)], long_silence_s=2.0, overtalk_s=1.0)
    assert marks == [
        {"kind": "silence", "start_s": 6.0, "end_s": 10.0},
        {"kind": "overtalk", "start_s": 0.0, "end_s": 2.0},
    ]
    assert activity_marks(caller, center, 0.1, quiet=[(3.0, 10.0)], long_silence_s=2.0) == [
        {"kind": "overtalk", "start_s": 0.0, "end_s": 2.0}
    ]


def test_marked_spans_move_to_the_digital_silence_the_file_has() -> None:
    caller = [0.2] * 19 + [0.0] * 15 + [0.2] * 10  # muted from 1.9 s to 3.4 s
    center = [0.05] * 19 + [0.0] * 15 + [0.0] + [0.05] * 9
    marked = [
        {"kind": "pause", "start_s": 1.047, "end_s": 3.362},
        {"kind": "hold", "start_s": 9.0, "end_s": 9.5},
    ]
    assert snap_to_silence(marked, caller, center, 0.1) == [
        {"kind": "pause", "start_s": 1.9, "end_s": 3.4},
        {"kind": "hold", "start_s": 9.0, "end_s": 9.5},  # nothing silent near it: as marked
    ]
