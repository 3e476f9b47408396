"""GET /metrics as Prometheus scrapes it, while a real caller waits and then gives up.

The page is parsed with the client library's own parser; the figures must say what the test
did: one caller waiting in `general` (the only agent is Not Ready), then none and one abandoned
call; agents per state; the ARI event lag observed for the caller's events; and a token-less or
agent's request refused.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: Stack, token: str | None = None) -> Samples:
    """Every sample on /metrics: (name, sorted labels) -> value."""
    req = urllib.request.Request(stack.web_url + "/metrics")
    req.add_header("Authorization", f"Bearer {token or stack.secrets['api_token']}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_show_a_waiting_caller_then_an_abandoned_call_and_agents_by_state(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 15, "agent 1001 ready")
    status, body = stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "break"})
    assert status == 200, body
    before = value(scrape(stack), "lianluo_calls_ended_total", outcome="abandoned")

    call, it = call_in(lab, stack, "13800000042", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "queued", timeout=10)
    now = scrape(stack)
    assert value(now, "lianluo_queue_waiting", queue="general") == 1
    assert value(now, "lianluo_queue_longest_wait_seconds", queue="general") >= 0
    assert value(now, "lianluo_agents", state="not_ready") == 1
    assert value(now, "lianluo_agents", state="logged_out") == 1  # 1002 has no phone
    assert value(now, "lianluo_calls_in_progress") == 1
    # The caller's channel came through ARI: its events were observed behind their timestamps.
    lag_count = value(now, "lianluo_ari_event_lag_seconds_count")
    assert lag_count > 0
    assert value(now, "lianluo_ari_event_lag_seconds_bucket", le="+Inf") == lag_count

    call.hangup()
    assert ended(stack, it["id"])["outcome"] == "abandoned"

    def counted() -> Samples | None:
        s = scrape(stack)
        return s if value(s, "lianluo_calls_ended_total", outcome="abandoned") > before else None

    after = eventually(counted, 10, "the abandoned call counted")
    assert value(after, "lianluo_calls_ended_total", outcome="abandoned") == before + 1
    assert value(after, "lianluo_queue_waiting", queue="general") == 0
    assert value(after, "lianluo_interaction_writes_waiting") >= 0


def test_metrics_are_behind_the_supervisor_token(stack: Stack) -> None:
    for token in ("", "not-the-token"):
        req = urllib.request.Request(stack.web_url + "/metrics")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code in (401, 403)
