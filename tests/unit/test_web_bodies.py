"""Bodies and headers the shared web helpers (app/web/http.py, app/web/auth.py) cannot read get
a 4xx that says why, never a 500. Each case here answered 500 before (found probing the API,
see tests/e2e/test_openapi_fuzz.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient as _TestClient
from aiohttp.test_utils import TestServer

from app.web.auth import origin_host, same_origin
from app.web.http import error_middleware, form_body, json_body


async def echo_json(request: web.Request) -> web.Response:
    return web.json_response(await json_body(request))


async def echo_form(request: web.Request) -> web.Response:
    return web.json_response({k: str(v) for k, v in (await form_body(request)).items()})


async def write(request: web.Request) -> web.Response:
    same_origin(request)
    return web.json_response({"ok": True})


TestClient = _TestClient[web.Request, web.Application]


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/api/json", echo_json)
    app.router.add_post("/form", echo_form)
    app.router.add_post("/api/write", write)
    async with _TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"garbage"),  # no boundary said
        ("multipart/form-data; boundary=x", b"garbage"),  # a boundary that never comes
    ],
)
async def test_a_multipart_form_that_cannot_be_read_is_a_400(
    client: TestClient, content_type: str, body: bytes
) -> None:
    resp = await client.post("/form", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert (await resp.json())["error_id"] == "bad-request"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["/api/json", "/form"])
async def test_a_body_not_encoded_as_its_content_encoding_says_is_a_400(
    client: TestClient, encoding: str, path: str
) -> None:
    content_type = "application/json" if path == "/api/json" else "application/x-www-form-urlencoded"
    resp = await client.post(
        path, data=b"garbage", headers={"Content-Encoding": encoding, "Content-Type": content_type}
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error_id"] == "bad-request" and "cannot be read" in body["message"]


async def test_an_origin_that_is_no_url_is_another_site(client: TestClient) -> None:
    assert origin_host("http://[") is None
    resp = await client.post("/api/write", headers={"Origin": "http://["})
    assert resp.status == 403
    assert (await resp.json())["error_id"] == "forbidden"
    resp = await client.post("/api/write", headers={"Origin": f"http://{client.host}:{client.port}"})
    assert resp.status == 200
