"""Every benchmark's `--quick` mode runs its whole path, prints its figures and exits 0.

Figures are not judged here (benchmarks/README.md says how to read them); these tests only
say that each benchmark still measures something: a broken path exits non-zero (no call
measured, no estimate given) or prints no table. Each runs as a subprocess from the repository
root, as a person would run it. Quick runs write their JSON under a temporary directory, never
over benchmarks/results/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.long  # about five minutes in all: started first (tests/conftest.py)
NUMBER = r"-?[\d,]+(?:\.\d+)?%?"


def run_quick(script: str, *args: str, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run benchmarks/<script> --quick; its stdout, once it has exited 0."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--quick", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{script} --quick exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def stack_env(asterisk_prefix: Path) -> dict[str, str]:
    """The database and the Asterisk build the benchmark's own stack uses."""
    env = {"LIANLUO_ASTERISK_PREFIX": str(asterisk_prefix)}
    if "DATABASE_URL" in os.environ:
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return env


def table_rows(out: str, first_cell: str) -> list[list[str]]:
    """The cells of the markdown table rows whose first cell starts with `first_cell`."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells[0].startswith(first_cell):
            rows.append(cells)
    return rows


def test_routing_decisions() -> None:
    out = run_quick("routing_decisions.py", timeout=120)
    assert "burst: every agent ready" in out and "one ready: a single agent" in out
    rows = re.findall(rf"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out, re.M)
    assert len(rows) >= 8, out
    assert all(int(decided) > 0 for *_, decided in rows), out


def test_dialer_sim() -> None:
    out = run_quick("dialer_sim.py", timeout=120)
    ours = table_rows(out, "ours")
    assert len(ours) >= 4, out  # ours and ours +1, in each quick scenario
    assert all(re.fullmatch(NUMBER, cell) for row in ours for cell in row[1:]), ours
    summary = out.split("Summary:", 1)[1]
    assert len(table_rows(summary, "answer ")) == 2, out


def test_dialer_sim_model_check() -> None:
    out = run_quick("dialer_sim.py", "--check-model", timeout=120)
    rows = table_rows(out, "answer ")
    assert len(rows) == 2, out
    assert all(int(row[1]) > 0 and re.fullmatch(NUMBER, row[4]) for row in rows), rows


def test_ewt() -> None:
    out = run_quick("ewt.py", timeout=120)
    for label in ("on arrival, had to wait", "every 30 s while waiting", "on arrival, burst, had to wait"):
        assert re.search(rf"{label}\s+{NUMBER}(\s+{NUMBER}){{4}}\s+[+-]{NUMBER}", out), label
    summary = table_rows(out.split("Summary:", 1)[1], "")
    scenarios = [row for row in summary if row[0] != "scenario" and not row[0].startswith("-")]
    assert len(scenarios) == 3, out
    assert all(re.fullmatch(NUMBER, cell) for row in scenarios for cell in row[2:]), scenarios


def test_prompt_lengths() -> None:
    out = run_quick("prompt_lengths.py", timeout=120)
    for lang in ("en", "zh", "en+zh (as before)"):
        for what in ("main menu", "place in line and wait", "the whole announcement"):
            row = [r for r in table_rows(out, what) if r[1] == lang]
            assert len(row) == 1 and all(re.fullmatch(NUMBER, c) for c in row[0][2:]), (what, lang, out)


@pytest.mark.e2e
def test_answer_to_prompt(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "answer_to_prompt.json"
    out = run_quick(
        "answer_to_prompt.py", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix)
    )
    for label in ("ours: Stasis", "baseline: Answer()"):
        (row,) = table_rows(out, label)
        assert int(row[1]) > 0 and all(re.fullmatch(NUMBER, c) for c in row[2:]), row
    (ratio,) = table_rows(out, "ratio ours/baseline")
    assert all(re.fullmatch(NUMBER, c) for c in ratio[2:]), ratio
    doc = json.loads(output.read_text())
    assert all(doc["sides"][path]["measured"] > 0 for path in ("ours", "baseline")), doc["sides"]


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_queue_vs_stasis(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "queue_vs_stasis.json"
    out = run_quick(
        "queue_vs_stasis.py", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix)
    )
    rows = table_rows(out, "10")
    for churn in ("no", "pause", "register"):
        for path in ("A Queue()", "B Stasis"):
            (row,) = [r for r in rows if r[2] == churn and r[3] == path and "/" in r[4]]
            paired, calls = map(int, row[4].split("/"))
            assert 0 < paired <= calls and re.fullmatch(NUMBER, row[5]), row
    churned = [r for r in rows if "/" not in r[4]]
    assert len(churned) == 4 and all(float(r[5]) > 0 for r in churned), churned  # applied/s
    assert len(json.loads(output.read_text())["cells"]) == 3


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_key_to_ring(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "key_to_ring.json"
    out = run_quick("key_to_ring.py", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix))
    for label in ("A Queue()", "B Stasis, demo prompts"):
        (row,) = table_rows(out, label)
        paired, calls = map(int, row[1].split("/"))
        assert 0 < paired <= calls and re.fullmatch(NUMBER, row[3]), row
    assert re.search(rf"B p95 key press -> agent INVITE: {NUMBER} ms; within 300 ms: (yes|no)", out), out
    assert json.loads(output.read_text())["stasis"]["paired"] > 0


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="captures on lo with a raw socket: needs root")
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_offer_trace(asterisk_prefix: Path) -> None:
    out = run_quick("offer_trace.py", timeout=150, env=stack_env(asterisk_prefix))
    assert re.search(r"stasis, 10 members, 2 calls/s: [1-9]\d* calls traced", out), out
    for step in ("ari-dtmf", "originate", "invite"):
        (row,) = [r for r in table_rows(out, step) if r[0] == step]
        assert int(row[1]) > 0 and re.fullmatch(NUMBER, row[2]), row
    assert re.search(rf"loop busy between end packet and INVITE: p50 {NUMBER} ms", out), out


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_capacity_rate(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "capacity.json"
    out = run_quick(
        "capacity.py", "--mode", "rate", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix)
    )
    for path in ("A Queue()", "B Stasis"):
        rows = [r for r in table_rows(out, "step") + table_rows(out, "hold") if r[2] == path]
        assert len(rows) == 3, out  # two rates and the hold
        paired, calls = map(int, rows[0][3].split("/"))
        assert 0 < paired <= calls and re.fullmatch(NUMBER, rows[0][6]), rows
    assert "B's p95 within 2x A's up to:" in out and "p95 passes 100 ms at:" in out, out
    assert len(json.loads(output.read_text())["rate"]["steps"]) == 2


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_capacity_concurrent(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "capacity.json"
    out = run_quick(
        "capacity.py",
        "--mode",
        "concurrent",
        "--output",
        str(output),
        timeout=150,
        env=stack_env(asterisk_prefix),
    )
    for path in ("A Queue()", "B Stasis"):
        rows = table_rows(out, path)
        assert rows and all(re.fullmatch(NUMBER, r[3]) for r in rows), out  # set-up p95 per step
        assert int(rows[0][1]) > 0 and re.fullmatch(NUMBER, rows[0][12]), rows  # RSS KB per call
    assert "most concurrent calls with set-up p95 <= 1 s" in out, out
    steps = json.loads(output.read_text())["concurrent"]["steps"]
    assert all(s[0]["setup_ms"] for s in steps.values()), steps


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_capacity_restart(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "capacity.json"
    out = run_quick(
        "capacity.py",
        "--mode",
        "restart",
        "--output",
        str(output),
        timeout=150,
        env=stack_env(asterisk_prefix),
    )
    (row,) = [r for r in table_rows(out, "") if r[0].isdigit()]
    calls = int(row[0])
    assert re.fullmatch(NUMBER, row[2]) and int(row[4]) == calls, row  # followed; every call recovered
    (result,) = json.loads(output.read_text())["restart"]
    assert result["recovered_events"] == calls, result


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_flood(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "flood.json"
    out = run_quick("flood.py", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix))
    rows = table_rows(out, "alone") + table_rows(out, "under the flood")
    assert len(rows) == 2 and all(re.fullmatch(NUMBER, r[5]) for r in rows), out  # set-up p95
    (flood,) = table_rows(out, "127.0.0.2")
    assert int(flood[3]) > 0, "the quick flood crosses the demo's limits: some calls refused"
    res = json.loads(output.read_text())
    assert res["flood_interactions"]["with_one_closed_interaction"] == res["flood"]["calls"]


def test_reports(tmp_path: Path) -> None:
    output = tmp_path / "reports.json"
    out = run_quick("reports.py", "--output", str(output), timeout=300)
    for label in ("interval, 30 days", "agents, the month"):
        (row,) = table_rows(out, label)
        assert all(re.fullmatch(NUMBER, c) for c in row[1:]), row  # raw, kept, ratio
    doc = json.loads(output.read_text())
    assert doc["interactions"] == 10_000 and doc["events"] == 50_000, doc
    assert doc["interval_rows"] > 0 and doc["agent_rows"] == 20, doc
    assert doc["summarised_days"] == 30, doc


def test_qa_report(tmp_path: Path) -> None:
    output = tmp_path / "qa_report.json"
    out = run_quick("qa_report.py", "--output", str(output), timeout=180)
    labels = ("report: a year per week by agent", "report: a year per day by agent", "desk: 100 recordings")
    for label in labels:
        (row,) = table_rows(out, label)
        assert all(re.fullmatch(NUMBER, c) for c in row[1:]), row  # without, with, ratio
    doc = json.loads(output.read_text())
    assert doc["evaluations"] == 5_000 and doc["report_evaluations"] == 5_000, doc
    assert doc["report_rows"] == 20 * 53, doc  # each agent in each week of 2026 (53 Mondays' weeks)


@pytest.mark.e2e
def test_nailed_line(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "nailed_line.json"
    out = run_quick("nailed_line.py", "--output", str(output), timeout=400, env=stack_env(asterisk_prefix))
    for path in ("nailed", "ringing"):
        (row,) = table_rows(out, path)
        assert int(row[1]) > 0 and all(re.fullmatch(NUMBER, c) for c in row[3:]), row
    (ratio,) = table_rows(out, "ratio nailed/ringing")
    assert all(re.fullmatch(NUMBER, c) or c == "-" for c in ratio[3:]), ratio
    assert {"nailed", "ringing"} <= set(json.loads(output.read_text())["paths"])


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_wallboard_latency(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "wallboard_latency.json"
    out = run_quick(
        "wallboard_latency.py", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix)
    )
    for name in ("baseline", "load"):
        (row,) = table_rows(out, name)
        assert all(re.fullmatch(NUMBER, c) for c in row[1:]), row  # rate, calls, updates, p50 ... within
    runs = json.loads(output.read_text())["runs"]
    # Every call moved two figures (offered, answered), and each was seen on the board.
    assert [(r["updates"], r["missing"]) for r in runs] == [(2 * r["calls"], 0) for r in runs]


@pytest.mark.e2e
def test_fax_capacity(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "fax_capacity.json"
    out = run_quick("fax_capacity.py", "--output", str(output), timeout=300, env=stack_env(asterisk_prefix))
    for mode in ("g711", "t38"):
        (row,) = table_rows(out, mode)
        assert all(re.fullmatch(NUMBER, c) or c in ("nan", "-") for c in row[1:]), row
    doc = json.loads(output.read_text())["results"]
    assert doc["t38"]["t38_sessions"] >= 1, doc["t38"]  # the T.38 mode did switch to T.38
    batches = doc["g711"]["batches"]
    assert [b["faxes"] for b in batches] == [1, 2], batches
    assert all(b["ok"] == b["faxes"] and b["pages"] == 2 * b["faxes"] for b in batches), batches  # cover + 1
    assert all(b["pages_per_minute"] > 0 for b in batches), batches


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (apt-get install sip-tester)")
def test_recording_cost(tmp_path: Path, asterisk_prefix: Path) -> None:
    output = tmp_path / "recording_cost.json"
    out = run_quick("recording_cost.py", "--output", str(output), timeout=150, env=stack_env(asterisk_prefix))
    for run in ("without", "with"):
        held = [r for r in table_rows(out, run) if r[0] == run and len(r) == 14]
        assert [int(r[1]) for r in held] == [2, 4], out  # both steps measured
        assert all(re.fullmatch(NUMBER, c) for r in held for c in r[2:6]), held  # CPU, per call
    ratios = table_rows(out, "ratio with/without")
    assert [r[1] for r in ratios] == ["2", "4"], out
    runs = json.loads(output.read_text())["runs"]
    # The "with" run recorded every call, in stereo, each file as its row says; the other, none.
    made = runs["with"]["recordings"]
    assert [made[k] for k in ("rows", "files", "files_matching_rows", "stereo")] == [4, 4, 4, 4], made
    none = runs["without"]["recordings"]
    assert (none["rows"], none["files"]) == (0, 0), none
    # MixMonitor's stereo 16-bit 8 kHz: 1,875 KB a minute of call, written while held.
    assert runs["with"]["steps"][-1]["recording_bytes_per_call_min"] > 1000 * 1024
    assert runs["without"]["steps"][-1]["recording_bytes_per_call_min"] == 0


def test_transcription() -> None:
    out = run_quick("transcription.py", timeout=120)
    speed = table_rows(out, "pocketsphinx")
    assert len(speed) == 1 and speed[0][4].endswith("x"), out
    assert float(speed[0][4].rstrip("x")) > 0, out
    loads = table_rows(out, "20 calls/s")
    assert len(loads) == 1 and loads[0][-1] in ("yes", "no"), out
    assert re.search(rf"keeps up with at most {NUMBER} calls/s", out), out
    assert re.search(rf"Real run: .* {NUMBER} of the prediction", out), out
