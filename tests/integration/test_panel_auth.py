"""The panel's sign-in, sessions, CSRF, roles and throttling against a real PostgreSQL.

The web app runs in-process (aiohttp test server) with the real database, routing desk and
panel contexts from app/bootstrap.py; only Asterisk is left out. Every refusal is checked
twice: the answer is clear, and nothing changed in PostgreSQL or in the routing state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.bootstrap import PARTS, SHUTDOWN, Parts, Shutdown, database_ctx, panel_ctx, routing_ctx
from app.config import AgentSettings, DatabaseSettings, QueueSettings, Settings, WebSettings, WebUserSettings
from app.panel import http as panel_http
from app.routing import http as routing_http
from app.routing.desk import RoutingService
from app.routing.http import DESK
from app.web.auth import AUTH, TooManyAttempts, WrongCredentials
from app.web.http import SETTINGS, error_middleware
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Panel:
    server: TestServer
    app: web.Application
    db_url: str
    passwords: dict[str, str]

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def routing(self) -> RoutingService:
        return self.app[DESK]

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    """A database of this module's own: the routing desk starts with everyone logged out,
    and so must the agents table that the checks compare it with."""
    with scratch_database("lianluo_panel") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def panel(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> AsyncIterator[Panel]:
    var = tmp_path_factory.mktemp("panel") / "var"
    settings = Settings(
        var_dir=str(var),
        agents=(
            AgentSettings("1001", "Alice Wang", skills={"billing": 8}),
            AgentSettings("1002", "Bob Li", skills={"tech": 7}),
            AgentSettings("1003", "Chen Jing", role="expert"),
            AgentSettings("1004", "Deng Hui"),
        ),
        queues=(QueueSettings("general"),),
        web=WebSettings(
            users=(WebUserSettings("lead", "Lee Lead"), WebUserSettings("root", "Ada Admin", "admin"))
        ),
        database=DatabaseSettings(url=db_url),
    )
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[PARTS], app[SHUTDOWN] = Parts(), Shutdown()
    app.cleanup_ctx.extend([database_ctx, routing_ctx, panel_ctx])
    app.on_shutdown.append(panel_http.close_live_sockets)
    panel_http.add_routes(app)
    routing_http.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        passwords = yaml.safe_load((var / "secrets.yaml").read_text())["panel_passwords"]
        yield Panel(server, app, db_url, passwords)
    finally:
        await server.close()


class Browser:
    """One person's browser: its own cookies; writes carry the session's CSRF token."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.http = aiohttp.ClientSession(
            base_url=panel.base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def sign_in(self, username: str, password: str | None = None) -> tuple[int, Any]:
        body = {"username": username, "password": password or self.panel.passwords[username]}
        async with self.http.post("login", json=body) as resp:
            data = await resp.json()
            if resp.status == 200:
                self.csrf = data["csrf_token"]
            return resp.status, data

    async def call(
        self, method: str, path: str, body: Any = None, csrf: str | None = "session", **headers: str
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        if csrf is not None:
            headers["X-CSRF-Token"] = self.csrf if csrf == "session" else csrf
        headers.setdefault("Accept", "application/json")
        async with self.http.request(method, path.lstrip("/"), json=body, headers=headers) as resp:
            data = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, data, resp

    async def page(self, path: str) -> tuple[int, str, str | None]:
        async with self.http.get(path.lstrip("/"), allow_redirects=False) as resp:
            return resp.status, await resp.text(), resp.headers.get("Location")

    def session_cookie(self) -> str | None:
        for cookie in self.http.cookie_jar:
            if cookie.key == "lianluo_session":
                return cookie.value
        return None


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(panel: Panel) -> AsyncIterator[list[Browser]]:
    made: list[Browser] = []
    yield made
    for b in made:
        await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def new_browser(panel: Panel, browsers: list[Browser]) -> Any:
    def make() -> Browser:
        b = Browser(panel)
        browsers.append(b)
        return b

    return make


async def settled(panel: Panel) -> dict[str, Any]:
    """Everything a refused request must leave alone, once the desk has saved its last change."""
    routing = panel.routing
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        rows = await panel.query("SELECT id, state, not_ready_reason FROM agents WHERE active ORDER BY id")
        memory = [
            (a.id, a.state.value, a.not_ready_reason)
            for a in sorted(routing.agents.values(), key=lambda a: a.id)
        ]
        if rows == memory:
            break
        assert asyncio.get_running_loop().time() < deadline, (rows, memory)
        await asyncio.sleep(0.02)
    return {
        "agents": rows,
        "events": await panel.query("SELECT count(*) FROM agent_state_events"),
        "overrides": await panel.query(
            "SELECT agent_id, skill, level FROM agent_skill_overrides ORDER BY 1, 2"
        ),
        "skills": {a.id: dict(a.skills) for a in routing.agents.values()},
    }


# -- signing in -----------------------------------------------------------------------------------


async def test_users_come_from_the_configuration_with_hashes_only(panel: Panel) -> None:
    rows = await panel.query(
        "SELECT username, role, agent_id, password_hash FROM web_users WHERE active ORDER BY username"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("1001", "agent", "1001"),
        ("1002", "agent", "1002"),
        ("1003", "expert", "1003"),
        ("1004", "agent", "1004"),
        ("lead", "supervisor", None),
        ("root", "admin", None),
    ]
    for username, _, _, password_hash in rows:
        assert password_hash.startswith("$argon2id$")
        assert panel.passwords[username] not in password_hash


async def test_wrong_password_is_refused_and_opens_no_session(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    before = await panel.query("SELECT count(*) FROM web_sessions")
    state_before = await settled(panel)
    status, body = await browser.sign_in("1004", "not-the-password")
    assert status == 401 and body["error_id"] == "wrong-credentials", body
    status, body = await browser.sign_in("nobody", "whatever")
    assert (
        status == 401 and body["message"] == "wrong username or password"
    )  # no hint that 'nobody' is unknown

    # The plain form: the page again, with the message, and still no session.
    status, text, _ = await browser.page("/login")
    token = text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"username": "1004", "password": "wrong", "csrf_token": token}
    async with browser.http.post("login", data=form, allow_redirects=False) as resp:
        assert resp.status == 401
        assert "Wrong username or password." in await resp.text()
    assert browser.session_cookie() is None
    assert await panel.query("SELECT count(*) FROM web_sessions") == before
    assert (await browser.call("GET", "/panel/api/me"))[0] == 401
    status, body, _ = await browser.call("POST", "/panel/api/agents/1004/state", {"state": "ready"})
    assert status == 401 and body["error_id"] == "not-signed-in"
    assert await settled(panel) == state_before


async def test_sign_in_form_needs_its_own_token(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    form = {"username": "1004", "password": panel.passwords["1004"]}
    async with browser.http.post("login", data=form, allow_redirects=False) as resp:
        assert resp.status == 403
        assert "expired" in await resp.text()
    assert browser.session_cookie() is None


async def test_agent_signs_in_with_the_form_and_sees_the_panel(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    status, text, _ = await browser.page("/login")
    assert status == 200
    token = text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"username": "1004", "password": panel.passwords["1004"], "csrf_token": token}
    async with browser.http.post("login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/panel"
        cookie = resp.cookies["lianluo_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    status, text, _ = await browser.page("/panel")
    assert status == 200 and 'data-agent-id="1004"' in text
    csrf = text.split('name="csrf-token" content="')[1].split('"')[0]
    # The Ready button without JavaScript: a form post with the hidden token.
    async with browser.http.post(
        "panel/state", data={"state": "ready", "csrf_token": csrf}, allow_redirects=False
    ) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/panel"
    assert panel.routing.agents["1004"].state.value == "ready"
    status, text, _ = await browser.page("/panel?lang=zh")
    assert "就绪" in text and 'lang="zh-CN"' in text


async def test_pages_send_strangers_to_the_sign_in_page(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    for path in ("/panel", "/supervisor", "/"):
        status, _, location = await browser.page(path)
        assert (status, location) == (303, "/login"), path
    status, body, _ = await browser.call("GET", "/panel/api/me")
    assert status == 401 and body["error_id"] == "not-signed-in"


# -- sessions -------------------------------------------------------------------------------------


async def test_idle_and_over_age_sessions_are_refused_and_change_nothing(
    panel: Panel, new_browser: Any
) -> None:
    browser = new_browser()
    assert (await browser.sign_in("1001"))[0] == 200
    before = await settled(panel)
    # Forty minutes without a request (idle limit 30).
    await panel.query(
        "UPDATE web_sessions SET last_seen_at = last_seen_at - interval '40 minutes' WHERE username = '1001'"
    )
    status, body, _ = await browser.call("POST", "/panel/api/agents/1001/state", {"state": "ready"})
    assert status == 401 and body["error_id"] == "session-expired" and body["details"]["reason"] == "idle"
    assert await settled(panel) == before
    assert await panel.query("SELECT count(*) FROM web_sessions WHERE username = '1001'") == [(0,)]
    status, _, location = await browser.page("/panel")
    assert (status, location) == (303, "/login")  # the ended session is gone: plain sign-in page

    # Active all along, but signed in 13 hours ago (absolute limit 12).
    assert (await browser.sign_in("1001"))[0] == 200
    await panel.query(
        "UPDATE web_sessions SET created_at = created_at - interval '13 hours' WHERE username = '1001'"
    )
    status, _, location = await browser.page("/panel")
    assert (status, location) == (303, "/login?expired=1")
    assert await settled(panel) == before


async def test_sign_out_ends_the_session(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    assert (await browser.sign_in("1002"))[0] == 200
    status, body, _ = await browser.call("POST", "/logout", csrf=None)
    assert status == 403 and body["error_id"] == "csrf-failed"  # a forged sign-out is refused too
    assert (await browser.call("GET", "/panel/api/me"))[0] == 200
    status, body, _ = await browser.call("POST", "/logout")
    assert status == 200 and body == {"signed_out": True}
    assert await panel.query("SELECT count(*) FROM web_sessions WHERE username = '1002'") == [(0,)]
    assert (await browser.call("GET", "/panel/api/me"))[0] == 401


# -- CSRF -----------------------------------------------------------------------------------------


async def test_writes_without_the_right_csrf_token_are_refused(panel: Panel, new_browser: Any) -> None:
    alice, bob = new_browser(), new_browser()
    assert (await alice.sign_in("1001"))[0] == 200
    assert (await bob.sign_in("1002"))[0] == 200
    before = await settled(panel)
    state = {"state": "not_ready", "reason": "lunch"}
    for csrf in (None, "", "forged-token", bob.csrf):
        status, body, _ = await alice.call("POST", "/panel/api/agents/1001/state", state, csrf=csrf)
        assert status == 403 and body["error_id"] == "csrf-failed", (csrf, body)
    # The no-JavaScript form without its hidden field.
    async with alice.http.post("panel/state", data={"state": "ready"}, allow_redirects=False) as resp:
        assert resp.status == 403
    # The right token, sent from another site's page.
    status, body, _ = await alice.call(
        "POST", "/panel/api/agents/1001/state", state, Origin="http://evil.example"
    )
    assert status == 403 and body["error_id"] == "forbidden"
    assert await settled(panel) == before

    status, body, _ = await alice.call("POST", "/panel/api/agents/1001/state", state)
    assert status == 200 and body["state"] == "not_ready" and body["not_ready_reason"] == "lunch"


# -- roles ----------------------------------------------------------------------------------------


async def test_agent_cannot_use_supervisor_endpoints(panel: Panel, new_browser: Any) -> None:
    agent = new_browser()
    assert (await agent.sign_in("1003"))[0] == 200  # an expert: still an agent's rights
    before = await settled(panel)
    refused = [
        ("PUT", "/panel/api/agents/1003/skills/billing", {"level": 9}),
        ("DELETE", "/panel/api/agents/1001/skills/billing", None),
        ("POST", "/panel/api/agents/1002/state", {"state": "not_ready", "reason": "break"}),
        ("GET", "/panel/api/agents", None),
        ("GET", "/panel/api/agents/1002", None),
    ]
    for method, path, body in refused:
        status, answer, _ = await agent.call(method, path, body)
        assert status == 403 and answer["error_id"] == "forbidden", (method, path, answer)
        assert answer["message"], answer
    status, text, _ = await agent.page("/supervisor")
    assert status == 403 and "do not have access" in text
    assert await settled(panel) == before
    # Their own state they may see and change, with a configured reason only.
    assert (await agent.call("GET", "/panel/api/agents/1003"))[0] == 200
    status, answer, _ = await agent.call(
        "POST", "/panel/api/agents/1003/state", {"state": "not_ready", "reason": "nap"}
    )
    assert status == 400 and "break" in answer["message"]
    assert await settled(panel) == before


async def test_supervisor_changes_any_agent(panel: Panel, new_browser: Any) -> None:
    lead = new_browser()
    status, body = await lead.sign_in("lead")
    assert status == 200 and body["home"] == "/supervisor"
    status, agents, _ = await lead.call("GET", "/panel/api/agents")
    assert status == 200 and [a["id"] for a in agents] == ["1001", "1002", "1003", "1004"]
    status, body, _ = await lead.call(
        "POST", "/panel/api/agents/1002/state", {"state": "not_ready", "reason": "meeting"}
    )
    assert status == 200 and body["not_ready_reason"] == "meeting"
    status, body, _ = await lead.call("PUT", "/panel/api/agents/1002/skills/billing", {"level": 6})
    assert status == 200 and body["skills"]["billing"] == 6
    assert ("1002", "billing", 6) in await panel.query(
        "SELECT agent_id, skill, level FROM agent_skill_overrides"
    )
    status, text, _ = await lead.page("/supervisor")
    assert status == 200 and "Bob Li" in text and "Meeting" in text
    status, _, location = await lead.page("/panel")
    assert (status, location) == (303, "/supervisor")


# -- hostile input -----------------------------------------------------------------------------


JSON = {"Content-Type": "application/json"}


async def raw_post(browser: Browser, path: str, raw: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "X-CSRF-Token": browser.csrf}
    async with browser.http.post(path.lstrip("/"), data=raw, headers=headers) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def test_hostile_bodies_get_a_clear_error_and_change_nothing(panel: Panel, new_browser: Any) -> None:
    stranger = new_browser()
    # Deep JSON on the unauthenticated sign-in: refused before parsing (size) or after (depth).
    assert (await raw_post(stranger, "/login", b"[" * 50_000 + b"]" * 50_000))[0] == 413
    status, body = await raw_post(stranger, "/login", b'{"username": ' + b"[" * 1_000 + b"]" * 1_000 + b"}")
    assert status == 400 and "nested deeper" in body["message"]
    for raw, words in (
        (rb'{"username": "ro\u0000ot", "password": "x"}', "NUL"),
        (rb'{"username": "\ud800", "password": "x"}', "surrogate"),
        (b'{"username": "root", "password": "\xff"}', "not JSON"),  # not UTF-8
        (b'{"username": "root", "password": "x"', "not JSON"),
    ):
        status, body = await raw_post(stranger, "/login", raw)
        assert status == 400 and words in body["message"], (raw, body)
    assert await panel.query("SELECT count(*) FROM web_sessions WHERE username = 'root'") == [(0,)]

    # A body sent in pieces, with no length said beforehand, is read whole, and still limited.
    async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            await asyncio.sleep(0.01)
            yield body[i : i + size]

    login = json.dumps({"username": "1004", "password": panel.passwords["1004"]}).encode()
    async with new_browser().http.post("login", data=pieces(login, 7), headers=JSON) as resp:
        assert resp.status == 200, await resp.text()
    async with stranger.http.post("login", data=pieces(b" " * 70_000 + login, 8192), headers=JSON) as resp:
        assert resp.status == 413

    lead = new_browser()
    assert (await lead.sign_in("lead"))[0] == 200
    before = await settled(panel)
    for path, raw in (
        ("/panel/api/agents/1002/state", rb'{"state": "not_ready", "reason": "lunch\u0000"}'),
        ("/panel/api/agents/1002/state", rb'{"state": "not_ready", "reason": "\udfff"}'),
    ):
        status, body = await raw_post(lead, path, raw)
        assert status == 400, body
    status, body, _ = await lead.call("PUT", "/panel/api/agents/1002/skills/bill%00ing", {"level": 6})
    assert status == 400 and "NUL" in body["message"]
    for name in ("bill%0Aing", "bill%20ing", "bill,ing"):  # a line break, a space, a comma
        status, body, _ = await lead.call("PUT", f"/panel/api/agents/1002/skills/{name}", {"level": 6})
        assert status == 400 and "skill name" in body["message"], (name, body)
    status, body, _ = await lead.call("GET", "/panel/api/agents?x=%00")
    assert status == 400 and "NUL" in body["message"]
    assert await settled(panel) == before, "a refused request changed something"
    # What is answered is not for caches: JSON carries agents, calls and customers.
    status, _, resp = await lead.call("GET", "/panel/api/agents")
    assert status == 200 and resp.headers["Cache-Control"] == "no-store"


# -- throttling -----------------------------------------------------------------------------------


async def test_repeated_failures_are_throttled(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    for _ in range(5):
        assert (await browser.sign_in("root", "guess"))[0] == 401
    # Even the right password is refused now, with how long to wait.
    async with browser.http.post(
        "login", json={"username": "root", "password": panel.passwords["root"]}
    ) as resp:
        assert resp.status == 429
        retry_after = int(resp.headers["Retry-After"])
        body = await resp.json()
    assert 250 <= retry_after <= 300, retry_after
    assert body["error_id"] == "too-many-attempts" and body["details"]["retry_after_s"] == retry_after
    assert await panel.query("SELECT count(*) FROM web_sessions WHERE username = 'root'") == [(0,)]
    # The plain form says the same in the page.
    _status, text, _ = await browser.page("/login")
    token = text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"username": "root", "password": "x", "csrf_token": token}
    async with browser.http.post("login", data=form, allow_redirects=False) as resp:
        assert resp.status == 429 and "Retry-After" in resp.headers
        assert "Too many failed attempts" in await resp.text()
    # Another user from the same address is not affected.
    assert (await new_browser().sign_in("1004"))[0] == 200
    # Five minutes later the window has passed: the right password works and the slate is clean.
    await panel.query(
        "UPDATE web_login_failures SET at = at - interval '301 seconds' WHERE username = 'root'"
    )
    assert (await browser.sign_in("root"))[0] == 200
    assert await panel.query("SELECT count(*) FROM web_login_failures WHERE username = 'root'") == [(0,)]


async def test_concurrent_guesses_cannot_pass_the_limit(panel: Panel, new_browser: Any) -> None:
    browser = new_browser()
    results = await asyncio.gather(*(browser.sign_in("lead", f"guess{i}") for i in range(12)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(401) <= 5 and set(statuses) <= {401, 429}, statuses
    await panel.query("DELETE FROM web_login_failures WHERE username = 'lead'")


async def test_guessing_across_addresses_or_accounts_is_throttled_too(panel: Panel) -> None:
    auth = panel.app[AUTH]
    right = panel.passwords["1004"]
    # One address spraying a guess over many accounts (most of them not even users).
    for i in range(20):
        with pytest.raises(WrongCredentials):
            await auth.sign_in(f"user{i}", "Winter2026!", "198.51.100.7", "spray")
    with pytest.raises(TooManyAttempts):
        await auth.sign_in("1004", right, "198.51.100.7", "spray")  # even a real user, rightly
    # Many addresses guessing one account: 4 tries each stays under the per-address-pair limit.
    for i in range(20):
        with pytest.raises(WrongCredentials):
            await auth.sign_in("1003", f"guess{i}", f"203.0.113.{i // 4}", "botnet")
    with pytest.raises(TooManyAttempts):
        await auth.sign_in("1003", panel.passwords["1003"], "203.0.113.200", "botnet")
    # Others are not affected: another user from another address signs in.
    assert (await auth.sign_in("1004", right, "192.0.2.1", "desk")).session.user.username == "1004"
    await panel.query("DELETE FROM web_login_failures")


# -- live -----------------------------------------------------------------------------------------


async def test_websocket_pushes_the_agents_own_state(panel: Panel, new_browser: Any) -> None:
    agent, lead = new_browser(), new_browser()
    assert (await agent.sign_in("1004"))[0] == 200
    assert (await lead.sign_in("lead"))[0] == 200
    origin = {"Origin": panel.base}
    async with (
        agent.http.ws_connect("ws", headers=origin) as ws,
        lead.http.ws_connect("ws", headers=origin) as sws,
    ):
        snapshot = await ws.receive_json(timeout=5)
        assert snapshot["type"] == "snapshot" and [a["id"] for a in snapshot["agents"]] == ["1004"]
        assert len((await sws.receive_json(timeout=5))["agents"]) == 4
        # Another agent's change is not sent to this agent; their own is.
        panel.routing.set_state("1001", "not_ready", "training")
        status, _, _ = await agent.call(
            "POST", "/panel/api/agents/1004/state", {"state": "not_ready", "reason": "break"}
        )
        assert status == 200
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "agent" and message["agent"]["id"] == "1004"
        assert message["agent"]["state"] == "not_ready" and message["agent"]["not_ready_reason"] == "break"
        seen = {(await sws.receive_json(timeout=5))["agent"]["id"] for _ in range(2)}
        assert seen == {"1001", "1004"}
        # Signing out closes the socket at once.
        assert (await agent.call("POST", "/logout"))[0] == 200
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4001


async def test_websocket_refuses_strangers_and_other_sites(panel: Panel, new_browser: Any) -> None:
    stranger, agent = new_browser(), new_browser()
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await stranger.http.ws_connect("ws", headers={"Origin": panel.base})
    assert err.value.status == 401
    assert (await agent.sign_in("1004"))[0] == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await agent.http.ws_connect("ws", headers={"Origin": "http://evil.example"})
    assert err.value.status == 403
