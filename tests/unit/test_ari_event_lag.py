"""The ARI event lag on /metrics: the ARI adapter, reading a websocket that speaks like
Asterisk's, reports each event's lag behind its own timestamp to the metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import cast

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from app.adapters.ari import AriClient, Connected
from app.bus import Bus
from app.supervision.metrics import CenterMetrics, LiveSources


def stamp(at: datetime) -> str:
    """Asterisk's way: '2026-12-04T14:07:40.805+0000'."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def samples(metrics: CenterMetrics) -> dict[str, float]:
    return {
        s.name + (f"{{le={s.labels['le']}}}" if "le" in s.labels else ""): s.value
        for family in text_string_to_metric_families(metrics.text().decode())
        for s in family.samples
        if s.name.startswith("lianluo_ari_event_lag_seconds")
    }


def test_no_event_no_observation() -> None:
    metrics = CenterMetrics(Bus(), LiveSources(list, list, lambda: 0, lambda: 0, lambda: 0))
    assert samples(metrics)["lianluo_ari_event_lag_seconds_count"] == 0
    metrics.ari_event_lag(-0.0004)  # Asterisk's clock is to the millisecond: a hair ahead is no lag
    assert samples(metrics)["lianluo_ari_event_lag_seconds_sum"] == 0
    assert samples(metrics)["lianluo_ari_event_lag_seconds_count"] == 1


async def test_each_event_off_the_websocket_is_observed_behind_its_own_timestamp() -> None:
    metrics = CenterMetrics(Bus(), LiveSources(list, list, lambda: 0, lambda: 0, lambda: 0))
    sent = asyncio.Event()

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        old = datetime.now(UTC) - timedelta(seconds=2)
        await ws.send_str(json.dumps({"type": "ChannelVarset", "timestamp": stamp(old), "variable": "A"}))
        await ws.send_str(json.dumps({"type": "ChannelVarset", "timestamp": stamp(old), "variable": "B"}))
        await ws.send_str(json.dumps({"type": "ChannelVarset", "variable": "no timestamp"}))
        sent.set()
        async for _ in ws:  # held open until the client goes
            pass
        return ws

    server_app = web.Application()
    server_app.router.add_get("/ari/events", events)
    async with TestServer(server_app) as server, aiohttp.ClientSession() as session:
        ari = AriClient(
            session, str(server.make_url("")), "u", "p", "lianluo", event_lag=metrics.ari_event_lag
        )
        got = []
        stream = cast(AsyncGenerator[object, None], ari.events())  # closed here, not left to GC
        async for event in stream:
            if not isinstance(event, Connected):
                got.append(event)
            if len(got) == 3:
                break
        await stream.aclose()
    assert sent.is_set()
    seen = samples(metrics)
    # Two events carried a timestamp, both 2 s old when sent; the third is not counted.
    assert seen["lianluo_ari_event_lag_seconds_count"] == 2
    assert seen["lianluo_ari_event_lag_seconds_sum"] >= 4
    assert seen["lianluo_ari_event_lag_seconds_bucket{le=1.0}"] == 0
    assert seen["lianluo_ari_event_lag_seconds_bucket{le=+Inf}"] == 2
