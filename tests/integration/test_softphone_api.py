"""/panel/api/softphone against a real PostgreSQL: the signed-in agent gets their own SIP
account and nobody gets anyone else's. The panel's app runs in-process with the contexts of
app/bootstrap.py (no Asterisk: the agents' SIP passwords come from var/secrets.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.adapters.asterisk_instance import load_or_create_secrets
from app.bootstrap import PARTS, SHUTDOWN, Parts, Shutdown, database_ctx, panel_ctx, routing_ctx
from app.config import (
    AgentSettings,
    AsteriskSettings,
    DatabaseSettings,
    QueueSettings,
    Settings,
    WebSettings,
    WebUserSettings,
)
from app.panel import http as panel_http
from app.panel import softphone_http
from app.web.http import SECRETS, SETTINGS, error_middleware
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "panel/api/softphone"


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_softphone") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def panel(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> AsyncIterator[dict[str, Any]]:
    var = tmp_path_factory.mktemp("softphone") / "var"
    settings = Settings(
        var_dir=str(var),
        asterisk=AsteriskSettings(http_port=18088),
        agents=(
            AgentSettings("1001", "Alice Wang", webrtc=True),
            AgentSettings("1002", "Bob Li", webrtc=True),
            AgentSettings("1003", "Chen Jing"),
        ),
        queues=(QueueSettings("general"),),
        web=WebSettings(users=(WebUserSettings("lead", "Lee Lead"),)),
        database=DatabaseSettings(url=db_url),
    )
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[SECRETS] = load_or_create_secrets(var, [a.id for a in settings.agents])
    app[PARTS], app[SHUTDOWN] = Parts(), Shutdown()
    app.cleanup_ctx.extend([database_ctx, routing_ctx, panel_ctx])
    panel_http.add_routes(app)
    softphone_http.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        secrets = yaml.safe_load((var / "secrets.yaml").read_text())
        yield {"base": str(server.make_url("")).rstrip("/") + "/", "secrets": secrets}
    finally:
        await server.close()


class Client:
    def __init__(self, panel: dict[str, Any]) -> None:
        self.panel = panel
        self.http = aiohttp.ClientSession(base_url=panel["base"], cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def sign_in(self, username: str) -> None:
        body = {"username": username, "password": self.panel["secrets"]["panel_passwords"][username]}
        async with self.http.post("login", json=body) as resp:
            assert resp.status == 200, await resp.text()
            self.csrf = (await resp.json())["csrf_token"]

    async def account(self, **headers: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"X-CSRF-Token": self.csrf, "Accept": "application/json", **headers}
        async with self.http.get(API, headers={k: v for k, v in headers.items() if v}) as resp:
            return resp.status, await resp.json(), resp


@pytest_asyncio.fixture(loop_scope="session")
async def client(panel: dict[str, Any]) -> AsyncIterator[Any]:
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(panel))
        return made[-1]

    yield make
    for c in made:
        await c.http.close()


async def test_agent_gets_their_own_account_uncached(panel: dict[str, Any], client: Any) -> None:
    alice = client()
    await alice.sign_in("1001")
    status, body, resp = await alice.account()
    assert status == 200, body
    assert body == {
        "ws_url": "ws://127.0.0.1:18088/ws",
        "sip_uri": "sip:1001@127.0.0.1",
        "authorization_user": "1001",
        "password": panel["secrets"]["agent_passwords"]["1001"],
        "display_name": "Alice Wang",
        "register_expires": 120,
    }
    assert resp.headers["Cache-Control"] == "no-store"
    assert panel["secrets"]["agent_passwords"]["1002"] not in str(body)


async def test_nobody_gets_another_account(panel: dict[str, Any], client: Any) -> None:
    others = [p for a, p in panel["secrets"]["agent_passwords"].items() if a != "1001"]

    anonymous = client()
    status, body, _ = await anonymous.account(**{"X-CSRF-Token": "whatever"})
    assert (status, body["error_id"]) == (401, "not-signed-in")

    alice = client()
    await alice.sign_in("1001")
    for headers, want in [
        ({"X-CSRF-Token": ""}, (403, "csrf-failed")),  # a plain link or <script src> carries no token
        ({"X-CSRF-Token": "forged"}, (403, "csrf-failed")),
        ({"Origin": "http://evil.example"}, (403, "forbidden")),
    ]:
        status, body, _ = await alice.account(**headers)
        assert (status, body["error_id"]) == want, (headers, body)
    # The path names no agent: asking for someone else's account is not even expressible.
    async with alice.http.get(API + "/1002", headers={"X-CSRF-Token": alice.csrf}) as resp:
        assert resp.status == 404
        text = await resp.text()
        assert not any(p in text for p in others)

    desk = client()
    await desk.sign_in("1003")  # a desk-phone agent
    status, body, _ = await desk.account()
    assert (status, body["error_id"]) == (404, "softphone-off")

    lead = client()
    await lead.sign_in("lead")  # a supervisor has no phone of their own
    status, body, _ = await lead.account()
    assert (status, body["error_id"]) == (403, "forbidden")
    assert not any(p in str(body) for p in panel["secrets"]["agent_passwords"].values())


async def test_panel_page_allows_the_asterisk_websocket_and_loads_the_softphone(
    panel: dict[str, Any], client: Any
) -> None:
    alice = client()
    await alice.sign_in("1001")
    async with alice.http.get("panel") as resp:
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert "connect-src 'self' ws://127.0.0.1:18088;" in csp
    assert "script-src 'self';" in csp  # still no inline script
    assert 'id="softphone"' in page
    desk = client()
    await desk.sign_in("1003")
    async with desk.http.get("panel") as resp:
        assert 'id="softphone"' not in await resp.text()
