"""GET /api/openapi.json: the OpenAPI description of every route (app/web/openapi.yaml).

Public on purpose: it names routes, fields and status codes, which the open source code names
too, and nothing about this center (no agents, queues, addresses or secrets). Tools (code
generators, schemathesis, a browser's API viewer) can read it before they hold the token.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

DOCUMENT_PATH = Path(__file__).resolve().parent / "openapi.yaml"
PATH = "/api/openapi.json"


def load_document(path: Path = DOCUMENT_PATH) -> dict[str, Any]:
    """The document as served: YAML aliases resolved, the anchors' holder (`x-operations`)
    left out."""
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    document.pop("x-operations", None)
    return document


class OpenApiDocument:
    """The document's JSON, read from disk once, at the first request (not at import or start:
    nothing needs it until someone asks)."""

    def __init__(self, path: Path = DOCUMENT_PATH) -> None:
        self.path = path
        self._body: bytes | None = None
        self._lock = asyncio.Lock()

    async def body(self) -> bytes:
        async with self._lock:
            if self._body is None:
                document = await asyncio.to_thread(load_document, self.path)
                self._body = json.dumps(document, ensure_ascii=False).encode("utf-8")
            return self._body


DOCUMENT = web.AppKey("openapi_document", OpenApiDocument)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(
        body=await request.app[DOCUMENT].body(), content_type="application/json", charset="utf-8"
    )


def add_routes(app: web.Application) -> None:
    app[DOCUMENT] = OpenApiDocument()
    app.router.add_get(PATH, openapi_json)
