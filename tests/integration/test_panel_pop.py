"""Screen pop and after-call work against a real PostgreSQL and the real routing desk.

The web app runs in-process with the database, routing and panel contexts of app/bootstrap.py;
only Asterisk is left out, so offers are made by putting interactions in line directly. Every
refusal is checked twice: the answer is clear, and nothing changed in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from psycopg.types.json import Jsonb

from app.bootstrap import PARTS, SHUTDOWN, Parts, Shutdown, database_ctx, panel_ctx, routing_ctx, utcnow
from app.config import AgentSettings, DatabaseSettings, QueueSettings, Settings, WebSettings, WebUserSettings
from app.domain.interaction import Interaction, Phase
from app.domain.routing import WaitingInteraction
from app.panel import http as panel_http
from app.panel import pop_http
from app.panel.pop import POPS, PopService
from app.routing import http as routing_http
from app.routing.desk import RoutingService
from app.routing.http import DESK
from app.voicemail.http import VOICEMAIL
from app.voicemail.service import VoicemailService
from app.web.http import SETTINGS, error_middleware
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

AGENTS = ("1001", "1002", "1003", "1004", "1005")


@dataclass
class Panel:
    server: TestServer
    app: web.Application
    db_url: str
    passwords: dict[str, str]
    var: Path

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def routing(self) -> RoutingService:
        return self.app[DESK]

    @property
    def pops(self) -> PopService:
        return self.app[POPS]

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_pop") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def panel(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> AsyncIterator[Panel]:
    var = tmp_path_factory.mktemp("pop") / "var"
    settings = Settings(
        var_dir=str(var),
        agents=tuple(AgentSettings(a, f"Agent {a}") for a in AGENTS),
        queues=(QueueSettings("general", wrap_up_s=30),),
        web=WebSettings(users=(WebUserSettings("lead", "Lee Lead"),)),
        database=DatabaseSettings(url=db_url),
    )
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    # Only its directory is used here; recording and e-mail need Asterisk.
    app[VOICEMAIL] = VoicemailService(None, None, settings, None, None, var, utcnow)  # type: ignore[arg-type]
    app[PARTS], app[SHUTDOWN] = Parts(), Shutdown()
    app.cleanup_ctx.extend([database_ctx, routing_ctx, panel_ctx])
    app.on_shutdown.append(panel_http.close_live_sockets)
    panel_http.add_routes(app)
    routing_http.add_routes(app)
    pop_http.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        passwords = yaml.safe_load((var / "secrets.yaml").read_text())["panel_passwords"]
        yield Panel(server, app, db_url, passwords, var)
    finally:
        await server.close()


class Browser:
    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.http = aiohttp.ClientSession(
            base_url=panel.base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def sign_in(self, username: str) -> None:
        body = {"username": username, "password": self.panel.passwords[username]}
        async with self.http.post("login", json=body) as resp:
            assert resp.status == 200, await resp.text()
            self.csrf = (await resp.json())["csrf_token"]

    async def call(
        self, method: str, path: str, body: Any = None, csrf: str | None = "session", **headers: str
    ) -> tuple[int, Any]:
        if csrf is not None:
            headers["X-CSRF-Token"] = self.csrf if csrf == "session" else csrf
        headers.setdefault("Accept", "application/json")
        async with self.http.request(method, path.lstrip("/"), json=body, headers=headers) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.read()

    def socket(self) -> Any:
        return self.http.ws_connect("ws", headers={"Origin": self.panel.base})


@pytest_asyncio.fixture(loop_scope="session")
async def browser(panel: Panel) -> AsyncIterator[Any]:
    made: list[Browser] = []

    async def make(username: str | None = None) -> Browser:
        b = Browser(panel)
        made.append(b)
        if username:
            await b.sign_in(username)
        return b

    yield make
    for b in made:
        await b.http.close()


# -- seeding --------------------------------------------------------------------------------------


async def add_customer(panel: Panel, phone: str, **fields: Any) -> int:
    values = {"name": "Wang Fang", "tier": "medium", "vip": False, "notes": "", **fields, "phone": phone}
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    rows = await panel.query(
        f"INSERT INTO customers ({cols}) VALUES ({marks}) RETURNING id", *values.values()
    )
    return int(rows[0][0])


async def add_interaction(
    panel: Panel,
    ani: str,
    *,
    customer_id: int | None = None,
    agent_id: str | None = None,
    ended: bool = False,
    ago_s: float = 0,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    **columns: Any,
) -> str:
    iid = str(uuid.uuid4())
    arrived = datetime.now(UTC) - timedelta(seconds=ago_s)
    values: dict[str, Any] = {
        "id": iid,
        "ani": ani,
        "dnis": "7000",
        "customer_id": customer_id,
        "agent_id": agent_id,
        "phase": "ended" if ended else "queued",
        "arrived_at": arrived,
        "queue": "general",
        "ended_at": arrived + timedelta(seconds=60) if ended else None,
        "outcome": "completed" if ended else None,
        **columns,
    }
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    await panel.query(f"INSERT INTO interactions ({cols}) VALUES ({marks})", *values.values())
    for i, (kind, data) in enumerate(events):
        await panel.query(
            "INSERT INTO interaction_events (interaction_id, at, kind, data) VALUES (%s, %s, %s, %s)",
            iid,
            arrived + timedelta(seconds=i + 1),
            kind,
            Jsonb(data),
        )
    return iid


def make_ready(panel: Panel, agent_id: str) -> None:
    panel.routing.device_changed(agent_id, True)
    if panel.routing.agents[agent_id].state.value != "ready":
        panel.routing.set_state(agent_id, "ready", None)


def leave_idle(panel: Panel, agent_id: str) -> None:
    """Take the agent out of routing again so later tests choose whom to offer to."""
    agent = panel.routing.agents[agent_id]
    if agent.state.value in ("reserved", "ringing"):
        panel.routing.offer_failed(agent_id, "general", "test over", no_answer=True)
    elif agent.state.value in ("ready", "wrap_up"):
        panel.routing.set_state(agent_id, "not_ready", "break")


def offer(panel: Panel, interaction_id: str, ani: str) -> None:
    queued = datetime.now(UTC) - timedelta(seconds=3)
    panel.routing.enqueue(
        WaitingInteraction(interaction_id, "general", queued, data={"ani": ani, "digits": "1"})
    )


async def next_pop(ws: Any, timeout: float = 2.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_json()
            if message["type"] == "pop":
                return dict(message["pop"])


async def snapshot(panel: Panel, iid: str) -> list[tuple[Any, ...]]:
    """What a refused request must leave alone about one interaction."""
    return [
        *(
            await panel.query(
                "SELECT disposition, notes, disposition_by, customer_id FROM interactions WHERE id = %s", iid
            )
        ),
        *(await panel.query("SELECT count(*) FROM interaction_events WHERE interaction_id = %s", iid)),
        *(await panel.query("SELECT count(*) FROM customers")),
    ]


# -- the pop --------------------------------------------------------------------------------------


async def test_an_offer_pops_the_caller_ivr_reason_and_history(panel: Panel, browser: Any) -> None:
    ani = "13800000011"
    cid = await add_customer(
        panel, ani, name="Wang Fang", tier="top", vip=True, account_number="ACC-11", notes="Prefers Mandarin"
    )
    for n in range(6):  # six earlier calls: the pop shows the last five, newest first
        await add_interaction(
            panel,
            ani,
            customer_id=cid,
            agent_id="1002",
            ended=True,
            ago_s=86400 * (n + 1),
            disposition="resolved",
            notes=f"call {n}",
        )
    iid = await add_interaction(
        panel,
        ani,
        customer_id=cid,
        events=[
            ("dtmf", {"digit": "1"}),
            ("collected", {"order_number": "A-778", "language": "zh"}),
            ("queued", {"queue": "general", "tier": "top", "reason": "menu:1"}),
        ],
    )
    alice = await browser("1001")
    async with alice.socket() as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
        make_ready(panel, "1001")
        started = asyncio.get_running_loop().time()
        offer(panel, iid, ani)
        pop = await next_pop(ws)
        took_ms = (asyncio.get_running_loop().time() - started) * 1000
        # The call writes its `offered` event behind the pop: the pop follows, complete.
        assert pop["offered_at"] is None
        call = Interaction(iid, "chan", ani, "7000", datetime.now(UTC), customer_id=cid, phase=Phase.QUEUED)
        call.queue, call.tier, call.digits = "general", "top", "1"
        call.offer(datetime.now(UTC), ("1001",), "the desk's reason")
        writer = panel.app[PARTS].writer
        assert writer is not None
        writer.save(call)  # the one path interactions take to PostgreSQL, announced when written
        completed = await next_pop(ws)
        assert completed["interaction_id"] == iid and completed["offered_at"] is not None
    print(f"\n[pop] offer to pop on the agent's socket: {took_ms:.1f} ms")
    assert took_ms < 1000
    assert pop["interaction_id"] == iid and pop["ani"] == ani
    assert pop["customer"] == {
        "id": cid,
        "name": "Wang Fang",
        "phone": ani,
        "account_number": "ACC-11",
        "email": None,
        "tier": "top",
        "vip": True,
        "notes": "Prefers Mandarin",
    }
    # jsonb keeps no key order within one event: compare as a mapping.
    assert (pop["ivr"]["digits"], pop["ivr"]["menu"]) == ("1", ["1"])
    assert dict(pop["ivr"]["collected"]) == {"order_number": "A-778", "language": "zh"}
    assert pop["route"]["queue"] == "general" and "longest idle" in pop["route"]["reason"]
    assert [h["notes"] for h in pop["history"]] == ["call 0", "call 1", "call 2", "call 3", "call 4"]
    assert pop["history"][0]["agent_name"] == "Agent 1002" and pop["history"][0]["disposition"] == "resolved"
    assert pop["callback"] is None

    # A panel opened (or reloaded) while the call is on gets the same pop after its snapshot.
    async with alice.socket() as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
        again = await next_pop(ws)
    assert again["interaction_id"] == iid and again["customer"]["name"] == "Wang Fang"
    leave_idle(panel, "1001")


async def test_a_callback_pop_plays_its_voicemail_to_that_agent_only(panel: Panel, browser: Any) -> None:
    ani = "13800000022"
    origin = await add_interaction(
        panel, ani, ended=True, ago_s=900, events=[("dtmf", {"digit": "2"}), ("queued", {"reason": "menu:2"})]
    )
    callback_id, vm_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    await panel.query(
        "INSERT INTO callbacks (id, phone, queue, origin_interaction_id, source, place_at, requested_at,"
        " status, data) VALUES (%s, %s, 'general', %s, 'voicemail', %s, %s, 'waiting', %s)",
        callback_id,
        ani,
        origin,
        now,
        now,
        Jsonb({"voicemail_id": vm_id}),
    )
    audio = b"RIFF" + bytes(range(256)) * 40
    (panel.var / "voicemail").mkdir(parents=True, exist_ok=True)
    (panel.var / "voicemail" / f"{vm_id}.wav").write_bytes(audio)
    await panel.query(
        "INSERT INTO voicemails (id, interaction_id, phone, queue, recorded_at, duration_s, file_path,"
        " size_bytes, callback_id) VALUES (%s, %s, %s, 'general', %s, 6.5, %s, %s, %s)",
        vm_id,
        origin,
        ani,
        now,
        str(panel.var / "voicemail" / f"{vm_id}.wav"),
        len(audio),
        callback_id,
    )
    iid = await add_interaction(panel, ani, direction="outbound", callback_id=callback_id)
    agent, other, lead, stranger = (
        await browser("1003"),
        await browser("1002"),
        await browser("lead"),
        await browser(),
    )
    async with agent.socket() as ws:
        await ws.receive_json(timeout=5)
        make_ready(panel, "1003")
        offer(panel, iid, ani)
        pop = await next_pop(ws)
    assert pop["direction"] == "outbound" and pop["customer"] is None
    assert pop["ivr"]["digits"] == "2" and pop["ivr"]["menu"] == ["2"]  # from the original call
    cb = pop["callback"]
    assert cb["id"] == callback_id and cb["source"] == "voicemail" and cb["attempts"] == 0
    url = cb["voicemail"]["audio_url"]
    assert url == f"/panel/api/voicemails/{vm_id}/audio" and cb["voicemail"]["duration_s"] == 6.5

    status, body = await agent.call("GET", url)
    assert status == 200 and body == audio
    status, body = await other.call("GET", url)
    assert status == 403 and body["error_id"] == "forbidden"
    status, body = await stranger.call("GET", url)
    assert status == 401 and body["error_id"] == "not-signed-in"
    status, body = await lead.call("GET", url)
    assert status == 200 and body == audio
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        status, body = await agent.call("GET", f"/panel/api/voicemails/{bad}/audio")
        assert status == 404 and body["error_id"] == "not-found"
    leave_idle(panel, "1003")


# -- notes and disposition --------------------------------------------------------------------------


async def test_only_the_agent_who_took_the_call_writes_its_notes(panel: Panel, browser: Any) -> None:
    ani = "13800000033"
    cid = await add_customer(panel, ani, name="Zhao Lei")
    iid = await add_interaction(panel, ani, customer_id=cid, agent_id="1001", ended=True, ago_s=120)
    url = f"/panel/api/interactions/{iid}/disposition"
    note = {"code": "follow_up", "notes": "Wants the refund by Friday."}
    alice, bob, lead = await browser("1001"), await browser("1002"), await browser("lead")
    before = await snapshot(panel, iid)

    refusals: list[tuple[Browser, str | None, dict[str, str], Any, int, str]] = [
        (bob, "session", {}, note, 403, "forbidden"),  # another agent
        (lead, "session", {}, note, 403, "forbidden"),  # not even a supervisor writes an agent's notes
        (alice, None, {}, note, 403, "csrf-failed"),  # no CSRF token
        (alice, bob.csrf, {}, note, 403, "csrf-failed"),  # someone else's token
        (alice, "session", {"Origin": "http://evil.example"}, note, 403, "forbidden"),
        (alice, "session", {}, {"code": "sold", "notes": ""}, 400, "bad-request"),  # not a configured code
        (alice, "session", {}, {"code": "resolved", "notes": "x" * 4001}, 400, "bad-request"),
    ]
    for who, csrf, headers, body, status, error_id in refusals:
        got, answer = await who.call("POST", url, body, csrf=csrf, **headers)
        assert (got, answer["error_id"]) == (status, error_id), (who.csrf[:6], csrf, answer)
    got, answer = await alice.call("POST", f"/panel/api/interactions/{uuid.uuid4()}/disposition", note)
    assert (got, answer["error_id"]) == (404, "not-found")
    # The plain form, without its hidden token, from another agent.
    async with bob.http.post(
        "panel/disposition",
        data={"interaction_id": iid, "code": "resolved", "csrf_token": bob.csrf},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 403
    async with alice.http.post(
        "panel/disposition", data={"interaction_id": iid, "code": "resolved"}, allow_redirects=False
    ) as resp:
        assert resp.status == 403
    assert await snapshot(panel, iid) == before

    got, answer = await alice.call("POST", url, note)
    assert got == 200 and answer["code"] == "follow_up" and answer["notes"] == note["notes"]
    row = await panel.query("SELECT disposition, notes, disposition_by FROM interactions WHERE id = %s", iid)
    assert row == [("follow_up", "Wants the refund by Friday.", "1001")]
    # Corrected by the plain form: the row holds the latest, the events keep both.
    async with alice.http.post(
        "panel/disposition",
        data={"interaction_id": iid, "code": "resolved", "notes": "Refund sent.", "csrf_token": alice.csrf},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/panel"
    events = await panel.query(
        "SELECT data FROM interaction_events WHERE interaction_id = %s AND kind = 'disposition' ORDER BY id",
        iid,
    )
    assert [e[0]["code"] for e in events] == ["follow_up", "resolved"] and events[1][0]["agent_id"] == "1001"
    # The customer's history now shows it to whoever takes their next call.
    nxt = await add_interaction(panel, ani, customer_id=cid)
    ctx = await panel.pops.store.context(nxt)
    assert ctx is not None and [(h.id, h.disposition, h.notes) for h in ctx.history] == [
        (iid, "resolved", "Refund sent.")
    ]


async def test_after_a_consult_transfer_both_agents_write_notes(panel: Panel, browser: Any) -> None:
    """The first agent's wrap-up follows a transfer: they may still write the call's notes."""
    ani = "13800000034"
    iid = await add_interaction(
        panel,
        ani,
        agent_id="1002",  # the call is the second agent's now
        events=[
            ("connected", {"agent_id": "1001"}),
            ("control_consult", {"by": "1001", "to": "agent:1002", "state": "ringing"}),
            ("consult_answered", {"agent_id": "1002"}),
            ("transferred", {"to": "agent:1002", "from_agent": "1001", "how": "consult"}),
        ],
    )
    url = f"/panel/api/interactions/{iid}/disposition"
    alice, bob, chen = await browser("1001"), await browser("1002"), await browser("1003")
    before = await snapshot(panel, iid)
    got, answer = await chen.call("POST", url, {"code": "resolved", "notes": ""})
    assert (got, answer["error_id"]) == (403, "forbidden")  # never on the call
    assert await snapshot(panel, iid) == before
    got, answer = await alice.call("POST", url, {"code": "follow_up", "notes": "Handed to Bob."})
    assert got == 200 and answer["code"] == "follow_up", answer
    got, answer = await bob.call("POST", url, {"code": "resolved", "notes": "Done."})
    assert got == 200, answer
    row = await panel.query("SELECT disposition, notes, disposition_by FROM interactions WHERE id = %s", iid)
    assert row == [("resolved", "Done.", "1002")]
    events = await panel.query(
        "SELECT data FROM interaction_events WHERE interaction_id = %s AND kind = 'disposition' ORDER BY id",
        iid,
    )
    assert [(e[0]["agent_id"], e[0]["code"]) for e in events] == [("1001", "follow_up"), ("1002", "resolved")]


# -- unknown callers ------------------------------------------------------------------------------


async def test_an_unknown_caller_gets_a_profile_from_the_panel(panel: Panel, browser: Any) -> None:
    ani = "13800000044"
    iid = await add_interaction(panel, ani, events=[("dtmf", {"digit": "1"})])
    agent, other = await browser("1004"), await browser("1002")
    async with agent.socket() as ws:
        await ws.receive_json(timeout=5)
        make_ready(panel, "1004")
        offer(panel, iid, ani)
        pop = await next_pop(ws)
    assert pop["customer"] is None and pop["history"] == []
    profile = {"interaction_id": iid, "name": "Sun Li", "account_number": "ACC-44", "notes": "New caller"}
    before = await snapshot(panel, iid)
    for who, csrf, status, error_id in [
        (agent, None, 403, "csrf-failed"),
        (other, "session", 403, "forbidden"),
    ]:
        got, answer = await who.call("POST", "/panel/api/customers", profile, csrf=csrf)
        assert (got, answer["error_id"]) == (status, error_id)
    got, answer = await agent.call("POST", "/panel/api/customers", {**profile, "name": ""})
    assert (got, answer["error_id"]) == (400, "bad-request")
    got, answer = await agent.call("POST", "/panel/api/customers", {"name": "No Call"})
    assert (got, answer["error_id"]) == (403, "forbidden")  # agents create profiles from a call only
    assert await snapshot(panel, iid) == before

    got, answer = await agent.call("POST", "/panel/api/customers", profile)
    assert got == 201 and answer["name"] == "Sun Li" and answer["phone"] == ani and answer["tier"] == "medium"
    linked = await panel.query("SELECT customer_id FROM interactions WHERE id = %s", iid)
    assert linked == [(answer["id"],)]
    got, again = await agent.call("POST", "/panel/api/customers", profile)
    assert (got, again["error_id"]) == (409, "customer-exists")
    # The call's own later writes (it does not know about the profile) keep the link.
    call = Interaction(iid, "chan", ani, "7000", datetime.now(UTC), customer_id=None, phase=Phase.QUEUED)
    writer = panel.app[PARTS].writer
    assert writer is not None
    writer.save(call)
    assert await writer.flush(iid, timeout=5)
    assert await panel.query("SELECT customer_id FROM interactions WHERE id = %s", iid) == linked
    leave_idle(panel, "1004")


# -- idle -----------------------------------------------------------------------------------------


async def test_idle_sets_not_ready_only_from_ready(panel: Panel, browser: Any) -> None:
    agent, other = await browser("1005"), await browser("1002")
    make_ready(panel, "1005")
    url = "/panel/api/agents/1005/idle"
    for who, csrf, status, error_id in [
        (agent, None, 403, "csrf-failed"),
        (other, "session", 403, "forbidden"),
    ]:
        got, answer = await who.call("POST", url, csrf=csrf)
        assert (got, answer["error_id"]) == (status, error_id)
        assert panel.routing.agents["1005"].state.value == "ready"

    # Offered a call: idleness changes nothing.
    iid = await add_interaction(panel, "13800000055")
    offer(panel, iid, "13800000055")
    deadline = asyncio.get_running_loop().time() + 2
    while panel.routing.agents["1005"].state.value != "reserved":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    got, answer = await agent.call("POST", url)
    assert (got, answer["error_id"], answer["details"]["state"]) == (409, "not-ready-state", "reserved")
    assert panel.routing.agents["1005"].state.value == "reserved"
    leave_idle(panel, "1005")  # missed it: Not Ready ("no answer")
    got, answer = await agent.call("POST", url)
    assert got == 409 and panel.routing.agents["1005"].not_ready_reason == "no answer"

    make_ready(panel, "1005")
    got, answer = await agent.call("POST", url)
    assert got == 200 and answer["state"] == "not_ready" and answer["not_ready_reason"] == "idle"
    deadline = asyncio.get_running_loop().time() + 5
    while not await panel.query(
        "SELECT 1 FROM agent_state_events"
        " WHERE agent_id = '1005' AND to_state = 'not_ready' AND reason = 'idle'"
    ):
        assert asyncio.get_running_loop().time() < deadline, "idle Not Ready not stored"
        await asyncio.sleep(0.02)
