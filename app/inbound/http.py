"""IVR flows over HTTP: reload the flow files without a restart.

A reload loads and checks every file first; one mistake refuses the whole reload with the
file, line and field, and the flows in use stay. Calls already in a flow finish it as
they started it.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from app.inbound.calls import InboundCalls
from app.inbound.flow_files import load_flows, prerender_flow_prompts
from app.web.auth import bearer
from app.web.http import SETTINGS

INBOUND = web.AppKey("inbound", InboundCalls)

log = logging.getLogger(__name__)


async def reload_flows(request: web.Request) -> web.Response:
    bearer(request)
    app = request.app
    flows = await asyncio.to_thread(load_flows, app[SETTINGS])  # ConfigError: 400, nothing changes
    await prerender_flow_prompts(app[INBOUND].voice.cache, flows)
    app[INBOUND].flows = flows
    log.info("IVR flows reloaded: %s", ", ".join(sorted(flows.flows)))
    return web.json_response({"flows": sorted(flows.flows)})


async def list_flows(request: web.Request) -> web.Response:
    bearer(request)
    flows = request.app[INBOUND].flows
    return web.json_response(
        [
            {
                "name": f.name,
                "dnis": list(f.dnis),
                "default": f.default,
                "file": f.source,
                "nodes": len(f.nodes),
            }
            for f in flows.flows.values()
        ]
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/ivr/reload", reload_flows)
    app.router.add_get("/api/ivr/flows", list_flows)
