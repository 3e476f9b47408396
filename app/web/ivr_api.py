"""IVR flows over HTTP: reload the flow files without a restart.

A reload loads and checks every file first; one mistake refuses the whole reload with the
file, line and field, and the flows in use stay. Calls already in a flow finish it as
they started it.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from app.appkeys import INBOUND, PROMPT_CACHE, SETTINGS
from app.ivr_config import load_flows, prerender_flow_prompts
from app.web.api import authorize

log = logging.getLogger(__name__)


async def reload_flows(request: web.Request) -> web.Response:
    authorize(request)
    app = request.app
    flows = await asyncio.to_thread(load_flows, app[SETTINGS])  # ConfigError: 400, nothing changes
    await prerender_flow_prompts(app[PROMPT_CACHE], flows)
    app[INBOUND].flows = flows
    log.info("IVR flows reloaded: %s", ", ".join(sorted(flows.flows)))
    return web.json_response({"flows": sorted(flows.flows)})


async def list_flows(request: web.Request) -> web.Response:
    authorize(request)
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
