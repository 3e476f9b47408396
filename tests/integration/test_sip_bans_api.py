"""The SIP ban list over HTTP against a real PostgreSQL: supervisors and admins see and lift
bans (panel session with CSRF; the API token in tests/e2e/test_sip_bans.py); agents are
refused and nothing changes.

The web app runs in-process with the real database and panel contexts; the ACL is a fake
(Asterisk is left out: tests/e2e/test_sip_bans.py covers it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.adapters.sip_ban_store import SipBanStore
from app.bootstrap import PARTS, SHUTDOWN, Parts, Shutdown, database_ctx, panel_ctx, routing_ctx
from app.config import AgentSettings, DatabaseSettings, QueueSettings, Settings, WebSettings, WebUserSettings
from app.domain.sip_bans import AuthFailure, BanRules
from app.panel import http as panel_http
from app.security import http as security_http
from app.security.service import SipBanService
from app.web.http import SETTINGS, error_middleware
from tests.integration.test_panel_auth import Browser, Panel
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeAcl:
    def __init__(self) -> None:
        self.denied: list[str] = []

    async def apply(self, addresses: Iterable[str]) -> None:
        self.denied = sorted(addresses)


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_bans_api") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def panel(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> AsyncIterator[Panel]:
    var = tmp_path_factory.mktemp("bans") / "var"
    settings = Settings(
        var_dir=str(var),
        agents=(AgentSettings("1001", "Alice Wang"),),
        queues=(QueueSettings("general"),),
        web=WebSettings(users=(WebUserSettings("lead", "Lee Lead"),)),
        database=DatabaseSettings(url=db_url),
    )
    acl = FakeAcl()

    async def bans_ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[PARTS].store
        assert store is not None
        service = SipBanService(
            BanRules(3, 60, 600, ()), SipBanStore(store.pool), acl, lambda: datetime.now(UTC)
        )
        await service.start()
        app[security_http.BANS] = service
        yield
        await service.stop()

    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[PARTS], app[SHUTDOWN] = Parts(), Shutdown()
    app.cleanup_ctx.extend([database_ctx, routing_ctx, panel_ctx, bans_ctx])
    app.on_shutdown.append(panel_http.close_live_sockets)
    panel_http.add_routes(app)
    security_http.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        passwords = yaml.safe_load((var / "secrets.yaml").read_text())["panel_passwords"]
        yield Panel(server, app, db_url, passwords)
    finally:
        await server.close()


async def banned(panel: Panel, address: str) -> None:
    service = panel.app[security_http.BANS]
    for _ in range(3):
        service.auth_failure(AuthFailure("ChallengeResponseFailed", address, "1001"))
    assert service.active and service.active[-1].address == address


async def test_supervisor_sees_and_lifts_a_ban_and_an_agent_may_do_neither(panel: Panel) -> None:
    await banned(panel, "192.0.2.7")
    agent, lead = Browser(panel), Browser(panel)
    try:
        assert (await agent.sign_in("1001"))[0] == 200
        assert (await lead.sign_in("lead"))[0] == 200
        for method in ("GET", "DELETE"):
            path = "/panel/api/security/bans" + ("/192.0.2.7" if method == "DELETE" else "")
            status, answer, _ = await agent.call(method, path)
            assert status == 403 and answer["error_id"] == "forbidden", (method, answer)

        status, listed, _ = await lead.call("GET", "/panel/api/security/bans")
        assert status == 200 and [b["address"] for b in listed] == ["192.0.2.7"]
        ban = listed[0]
        assert ban["failures"] == 3 and 590 <= ban["left_s"] <= 600
        assert datetime.fromisoformat(ban["until"]) - datetime.fromisoformat(ban["since"]) == timedelta(
            seconds=600
        )

        status, _, _ = await lead.call("DELETE", "/panel/api/security/bans/192.0.2.7", csrf="wrong")
        assert status == 403
        assert [b.address for b in panel.app[security_http.BANS].active] == ["192.0.2.7"]

        status, answer, _ = await lead.call("DELETE", "/panel/api/security/bans/192.0.2.7")
        assert status == 200 and answer["address"] == "192.0.2.7", answer
        assert (await lead.call("GET", "/panel/api/security/bans"))[1] == []
        assert (await lead.call("DELETE", "/panel/api/security/bans/192.0.2.7"))[0] == 404
    finally:
        await agent.close()
        await lead.close()
    await panel.app[security_http.BANS].stop()  # flushes the rows
    rows = await panel.query("SELECT kind, data FROM sip_ban_events WHERE address = '192.0.2.7' ORDER BY id")
    assert [r[0] for r in rows] == ["banned", "lifted"] and rows[1][1] == {"by": "lead"}
    assert await panel.query("SELECT * FROM sip_bans") == []
