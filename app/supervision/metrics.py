"""`GET /metrics` in Prometheus's text format (the standard client library), for the center's
operators: what is happening now, read from the live desk, switchboard and writer at each scrape,
and what has happened since start, counted from the interaction events as they are saved (the
same events the reports use).

Live, at each scrape: callers waiting and the longest wait per queue, the service level per
queue (the desk's statistics window), agents per state, calls in progress, interaction writes
waiting for the database, SIP sources banned.
Counted: calls ended by outcome, the wait from joining a queue to the first offer
(a histogram), and the ARI event lag (a histogram): from an event's own timestamp (Asterisk's
clock) to the moment the app takes it off the websocket, which the ARI adapter reports through
`ari_event_lag` (wired in the composition root). Behind the supervisor API's token, like every
other supervisor endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.bus import Bus, InteractionSaved
from app.domain.access import may_supervise
from app.domain.agent_state import Agent, AgentState
from app.domain.routing import QueueStats
from app.domain.transcript import Backlog
from app.web.auth import Forbidden, principal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class LiveSources:
    """Where the live figures are read from at each scrape (the composition root wires these)."""

    queues: Callable[[], Iterable[QueueStats]]
    agents: Callable[[], Iterable[Agent]]
    calls: Callable[[], int]
    writes_waiting: Callable[[], int]
    sip_bans: Callable[[], int]
    # How far behind transcripts are (app/recording/transcripts.py); None where they are off.
    transcripts_behind: Callable[[], Backlog | None] = lambda: None


class _Live(Collector):
    def __init__(self, sources: LiveSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        by_queue = ["queue"]
        waiting = GaugeMetricFamily("lianluo_queue_waiting", "Callers waiting now", labels=by_queue)
        longest = GaugeMetricFamily(
            "lianluo_queue_longest_wait_seconds", "The longest wait of a caller now", labels=by_queue
        )
        level = GaugeMetricFamily(
            "lianluo_queue_service_level_percent",
            "Calls answered within their tier's target, in the desk's statistics window",
            labels=["queue"],
        )
        ready = GaugeMetricFamily("lianluo_queue_agents_ready", "Agents ready for the queue", labels=by_queue)
        for st in self.sources.queues():
            waiting.add_metric([st.queue], st.waiting)
            longest.add_metric([st.queue], st.oldest_wait_s)
            ready.add_metric([st.queue], st.agents_ready)
            if st.service_level_percent is not None:
                level.add_metric([st.queue], st.service_level_percent)
        yield from (waiting, longest, level, ready)
        states = GaugeMetricFamily("lianluo_agents", "Agents per state", labels=["state"])
        counts = dict.fromkeys((s.value for s in AgentState), 0)
        for agent in self.sources.agents():
            counts[agent.state.value] += 1
        for state, n in counts.items():
            states.add_metric([state], n)
        yield states
        calls = self.sources.calls()
        yield GaugeMetricFamily("lianluo_calls_in_progress", "Calls the app follows now", value=calls)
        yield GaugeMetricFamily(
            "lianluo_interaction_writes_waiting",
            "Interaction writes waiting for PostgreSQL (the write-behind backlog)",
            value=self.sources.writes_waiting(),
        )
        yield GaugeMetricFamily("lianluo_sip_bans", "SIP sources banned now", value=self.sources.sip_bans())
        behind = self.sources.transcripts_behind()
        if behind is not None:
            yield GaugeMetricFamily(
                "lianluo_transcripts_waiting",
                "Recordings waiting for (or in) transcription",
                value=behind.waiting,
            )
            yield GaugeMetricFamily(
                "lianluo_transcripts_oldest_wait_seconds",
                "How long the oldest recording waiting for its transcript has waited",
                value=behind.oldest_wait_s,
            )


class CenterMetrics:
    def __init__(self, bus: Bus, sources: LiveSources) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Live(sources))
        self.calls_ended = Counter(
            "lianluo_calls_ended",
            "Interactions ended since start, by outcome (completed, abandoned, refused ...)",
            ["outcome"],
            registry=self.registry,
        )
        self.wait_to_offer = Histogram(
            "lianluo_wait_to_first_offer_seconds",
            "From joining a queue to the first agent offered the call",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self._ari_lag = Histogram(
            "lianluo_ari_event_lag_seconds",
            "From an ARI event's timestamp (Asterisk's clock) to the app taking it up",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._queued_at: dict[str, datetime] = {}
        self._replays: set[str] = set()  # replays of recorded calls (app/replay/) count nowhere
        self._unsubscribe = bus.subscribe(InteractionSaved, self.saved)

    def saved(self, notice: InteractionSaved) -> None:
        for e in notice.events:
            if e.kind == "replay":
                self._replays.add(notice.interaction_id)
            if notice.interaction_id in self._replays:
                if e.kind == "ended":
                    self._replays.discard(notice.interaction_id)
                continue
            if e.kind == "queued":
                self._queued_at.setdefault(notice.interaction_id, e.at)
            elif e.kind == "offered":
                queued = self._queued_at.pop(notice.interaction_id, None)
                if queued is not None:
                    self.wait_to_offer.observe(max(0.0, (e.at - queued).total_seconds()))
            elif e.kind == "ended":
                self._queued_at.pop(notice.interaction_id, None)
                self.calls_ended.labels(str(e.data.get("outcome", "unknown"))).inc()

    def ari_event_lag(self, seconds: float) -> None:
        """One ARI event taken up `seconds` after Asterisk stamped it (its clock is to the
        millisecond, so a lag just under zero is read as none)."""
        self._ari_lag.observe(max(0.0, seconds))

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self._unsubscribe()


METRICS = web.AppKey("metrics", CenterMetrics)


async def metrics(request: web.Request) -> web.Response:
    who = await principal(request, write=False)
    if not may_supervise(who):
        raise Forbidden("only supervisors and admins may read the metrics")
    return web.Response(body=request.app[METRICS].text(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
