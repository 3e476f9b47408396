"""Call limits at the door: a flooding source is refused with 503 while another is served.

Two SIPp callers on the carrier trunk, each from its own address: 127.0.0.2 floods (40 calls/s
against a per-source limit of 5 calls/s, burst 10, 20 at once), 127.0.0.3 calls as usual. Small
limits here so a short flood crosses them; the demo's are in config/demo.yaml and the flood
benchmark (benchmarks/flood.py) runs those at 100 calls/s.
"""

from __future__ import annotations

import pytest

from tests.support.flood import Caller, run_callers
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

FLOOD, OTHER = "127.0.0.2", "127.0.0.3"
STACK_CONFIG = {
    "carrier": {"name": "carrier", "match": [FLOOD, OTHER], "dids": ["7000"]},
    "security": {
        "call_limits": {
            "per_source": {"calls_per_s": 5, "burst": 10, "concurrent": 20},
            "per_trunk": {"calls_per_s": 50, "burst": 100},
        }
    },
}


def interactions_by_caller(stack: Stack, source: str) -> dict[str, list[tuple[str | None, bool]]]:
    rows = stack.query(
        "SELECT ani, outcome, ended_at IS NOT NULL FROM interactions WHERE legs->>'source' = %s", source
    )
    out: dict[str, list[tuple[str | None, bool]]] = {}
    for ani, outcome, ended in rows:
        out.setdefault(ani, []).append((outcome, ended))
    return out


def channels(stack: Stack) -> int:
    return int(stack.cli("core show channels count").split(" active channel")[0].split()[-1])


def test_a_flooding_source_is_refused_with_503_each_call_closed_once_while_another_source_is_served(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("flood")
    flood = Caller(FLOOD, stack.sip_port, "7000", rate=40, calls=120, run_code=5101, hold_ms=1500, work=work)
    other = Caller(OTHER, stack.sip_port, "7000", rate=2, calls=6, run_code=5102, hold_ms=500, work=work)
    flood_log, other_log = run_callers([flood, other], timeout=90)

    assert len(flood_log.started) == 120
    assert not flood_log.unanswered, f"every flood call is answered or refused: {flood_log.unanswered}"
    assert len(flood_log.refused) >= 60, "most of a 40 calls/s flood is over a 5 calls/s limit"
    assert 10 <= len(flood_log.answered) <= 10 + 5 * 4, "the burst, then the sustained rate"
    assert len(other_log.answered) == 6, "the other source is served all along"

    def all_closed() -> dict[str, list[tuple[str | None, bool]]] | None:
        rows = interactions_by_caller(stack, FLOOD)
        done = len(rows) == 120 and all(ended for calls in rows.values() for _, ended in calls)
        return rows if done else None

    rows = eventually(all_closed, 30, "an interaction, closed, for every flood call")
    assert set(rows) == set(flood_log.started), "one interaction per call, by its caller ID"
    assert all(len(calls) == 1 for calls in rows.values()), "exactly one each"
    refused = {ani for ani, calls in rows.items() if calls[0][0] == "refused"}
    assert refused == set(flood_log.refused), "the refused calls are the ones that got 503"
    # Nothing is left open in Asterisk either.
    eventually(lambda: channels(stack) == 0, 30, "Asterisk to hold no channel")
