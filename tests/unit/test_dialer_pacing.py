"""How many calls the dialer starts, from the live floor (routing desk in memory; no Asterisk)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from app.calls.runtime import Runtime
from app.config import AgentSettings, CampaignSettings, CarrierSettings, QueueSettings, Settings
from app.dialer.nailed import CONNECTED
from app.dialer.service import DialerService
from app.domain.outbound import DialPlan, OutboundPolicy
from app.domain.routing import WaitingInteraction
from app.routing.desk import RoutingService


class NoStore:
    async def skill_overrides(self) -> dict[str, dict[str, int | None]]:
        return {}

    async def save_agent_events(self, events: Any, now: Any) -> None:
        pass

    async def agent_snapshots(self) -> dict[str, Any]:
        return {}

    async def routing_history(self, since: Any) -> list[Any]:
        return []


def floor(blend: bool, agent_line: str | None = "ringing") -> tuple[RoutingService, DialerService]:
    settings = Settings(
        carrier=CarrierSettings(outbound_contact="sip:127.0.0.2:5062"),
        agents=(
            AgentSettings("1001", "Out Only", groups=("outbound",)),
            AgentSettings("1002", "Blended", groups=("outbound", "inbound")),
            AgentSettings("1003", "Inbound Only", groups=("inbound",)),
        ),
        queues=(QueueSettings("sales", groups=("outbound",)), QueueSettings("service", groups=("inbound",))),
        campaigns=(
            CampaignSettings(
                "renewals",
                queue="sales",
                blend_with=("service",) if blend else (),
                agent_line=agent_line,  # type: ignore[arg-type]
            ),
        ),
    )
    routing = RoutingService(settings, NoStore(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
    for agent_id in ("1001", "1002", "1003"):
        routing.device_changed(agent_id, True)  # registered: logged in, ready
    nothing: Any = None  # the pacing reads only the desk and the campaigns
    dialer = DialerService(
        runtime=Runtime(nothing, nothing, nothing, lambda: datetime.now(UTC), OutboundPolicy(DialPlan())),
        desk=routing,
        line=nothing,
        room=nothing,
        voice=nothing,
        store=nothing,
        settings=settings,
    )
    return routing, dialer


async def test_progressive_counts_the_free_agents_of_the_campaigns_queue() -> None:
    routing, dialer = floor(blend=False)
    assert dialer.calls_to_place(dialer.campaigns["renewals"]) == 2  # 1001 and 1002, not 1003
    routing.set_state("1001", "not_ready", "break")
    assert dialer.calls_to_place(dialer.campaigns["renewals"]) == 1


async def test_a_stopped_campaign_places_nothing() -> None:
    _, dialer = floor(blend=False)
    dialer.set_active("renewals", False)
    assert dialer.calls_to_place(dialer.campaigns["renewals"]) == 0


async def test_blended_agents_stay_inbound_while_an_inbound_caller_waits() -> None:
    # The desk's dispatch loop is not running: a caller put in line stays waiting.
    routing, dialer = floor(blend=True)
    state = dialer.campaigns["renewals"]
    assert dialer.calls_to_place(state) == 2, "inbound is quiet: the blended agent may dial"
    routing.enqueue(WaitingInteraction("caller-1", "service", datetime.now(UTC)))
    assert dialer.calls_to_place(state) == 1, "a caller waits inbound: only the outbound-only agent dials"
    routing.withdraw("caller-1")
    assert dialer.calls_to_place(state) == 2
    routing.enqueue(WaitingInteraction("caller-2", "sales", datetime.now(UTC)))
    assert dialer.calls_to_place(state) == 0, "a caller of the campaign's own queue comes first"


async def test_on_nailed_lines_only_agents_whose_line_is_up_count_as_free() -> None:
    _, dialer = floor(blend=False, agent_line=None)  # progressive: nailed by default
    state = dialer.campaigns["renewals"]
    assert dialer.calls_to_place(state) == 0, "nobody's line is up yet: nothing is dialled"
    line: Any = SimpleNamespace(status=CONNECTED)
    dialer.lines.lines["1001"] = line
    assert dialer.calls_to_place(state) == 1
    line.status = "calling"
    assert dialer.calls_to_place(state) == 0, "a line still ringing is not up"


def test_ringing_agents_ring_time_comes_off_the_connect_window() -> None:
    _, dialer = floor(blend=False)
    state = dialer.campaigns["renewals"]
    assert state.pacing(ringing_agents=False).connect_window_s == 2.0
    state.learn_agent_ring(1.5)
    assert state.pacing(ringing_agents=True).connect_window_s == 0.5
