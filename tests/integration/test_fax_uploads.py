"""Faxing from the agent's call box against a real PostgreSQL, the real panel and Ghostscript.

The web app runs in-process with the database, routing and panel contexts of app/bootstrap.py
and the real fax jobs, store, converter and upload checks; only Asterisk is left out (the jobs'
loop is not started, so a queued job stays queued). Each refusal is checked twice: the answer
is clear, and nothing was queued or kept.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import psycopg
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.adapters.fax_pages import FaxPages
from app.adapters.fax_store import FaxStore
from app.bootstrap import PARTS, SHUTDOWN, Parts, Shutdown, database_ctx, panel_ctx, routing_ctx, utcnow
from app.bus import FaxJobChanged
from app.config import (
    AgentSettings,
    DatabaseSettings,
    FaxDocumentSettings,
    FaxSettings,
    QueueSettings,
    Settings,
    WebSettings,
    WebUserSettings,
)
from app.domain.fax import JobRules
from app.domain.outbound import OutboundPolicy
from app.fax import agent as fax_agent
from app.fax import desk as fax_desk
from app.fax import http as fax_http
from app.fax.catalogue import build_catalogue
from app.fax.jobs import FaxJobs
from app.fax.uploads import FaxUploads
from app.panel import http as panel_http
from app.panel.live import LIVE
from app.routing import http as routing_http
from app.routing.http import DESK
from app.web.http import SETTINGS, error_middleware
from tests.support.stack import scratch_database

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
FORM = REPO / "config" / "fax" / "repair-form.pdf"
NUMBER = "01055550100"
MAX_PAGES = 3
MAX_MB = 0.25


def make_pdf(path: Path, pages: int) -> Path:
    program = "%!PS\n/Helvetica findfont 30 scalefont setfont\n" + "".join(
        f"80 600 moveto (Offer page {n}) show showpage\n" for n in range(1, pages + 1)
    )
    path.with_suffix(".ps").write_text(program)
    gs = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sPAPERSIZE=a4", "-sDEVICE=pdfwrite"]
    subprocess.run([*gs, f"-sOutputFile={path}", str(path.with_suffix(".ps"))], check=True)
    return path


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_faxup") as url:
        yield url


class Center:
    def __init__(self, server: TestServer, app: web.Application, db_url: str, passwords: dict[str, str]):
        self.server, self.app, self.db_url, self.passwords = server, app, db_url, passwords

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    @property
    def uploads_dir(self) -> Path:
        return self.app[fax_agent.UPLOADS].directory


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def center(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> AsyncIterator[Center]:
    var = tmp_path_factory.mktemp("faxup") / "var"
    settings = Settings(
        var_dir=str(var),
        agents=(AgentSettings("1001", "Alice"), AgentSettings("1002", "Bob")),
        queues=(QueueSettings("general"),),
        web=WebSettings(users=(WebUserSettings("lead", "Lee Lead"),)),
        database=DatabaseSettings(url=db_url),
        fax=FaxSettings(
            documents=(FaxDocumentSettings("102", "the repair form", str(FORM), zh="维修申请表"),),
            max_upload_mb=MAX_MB,
            max_upload_pages=MAX_PAGES,
        ),
    )

    async def fax_ctx(app: web.Application) -> AsyncIterator[None]:
        """The fax parts of calls_ctx, without Asterisk: jobs are queued, never dialled."""
        p = app[PARTS]
        assert p.store is not None
        pages = FaxPages(var / "fax" / "cache")
        catalogue, problems = await build_catalogue(settings, pages)
        assert not problems
        runtime = SimpleNamespace(clock=utcnow, outbound=OutboundPolicy(settings.outbound.dial_plan()))
        app[fax_http.FAXES] = store = FaxStore(p.store.pool)
        app[fax_http.JOBS] = FaxJobs(
            runtime=runtime,  # type: ignore[arg-type]
            store=store,
            pages=pages,
            catalogue=catalogue,
            rules=JobRules(),
            out_dir=var / "fax" / "out",
            trunk="carrier",
            center_name="Test Center",
            presented_number="7000",
            station_id="7000",
            paper="a4",
            ring_s=10,
            can_dial=True,
            changed=lambda job: p.bus.publish(FaxJobChanged(job)),
        )
        app[fax_agent.UPLOADS] = FaxUploads(pages, var / "fax" / "uploads", MAX_MB, MAX_PAGES)
        stop = p.bus.subscribe(FaxJobChanged, fax_agent.FaxBoxWatch(app[LIVE]).job_changed)
        yield
        stop()

    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[PARTS], app[SHUTDOWN] = Parts(), Shutdown()
    app.cleanup_ctx.extend([database_ctx, routing_ctx, panel_ctx, fax_ctx])
    app.on_shutdown.append(panel_http.close_live_sockets)
    panel_http.add_routes(app)
    routing_http.add_routes(app)
    fax_http.add_routes(app)
    fax_desk.add_routes(app)
    fax_agent.add_routes(app)
    app[panel_http.CALL_BOX_PARTS] = (fax_agent.call_box_part,)
    server = TestServer(app)
    await server.start_server()
    try:
        passwords = yaml.safe_load((var / "secrets.yaml").read_text())["panel_passwords"]
        yield Center(server, app, db_url, passwords)
    finally:
        await server.close()


class Browser:
    def __init__(self, center: Center) -> None:
        self.center = center
        self.http = aiohttp.ClientSession(
            base_url=center.base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def sign_in(self, username: str) -> Browser:
        body = {"username": username, "password": self.center.passwords[username]}
        async with self.http.post("login", json=body) as resp:
            assert resp.status == 200, await resp.text()
            self.csrf = (await resp.json())["csrf_token"]
        return self

    async def fax(
        self,
        interaction_id: str,
        number: str = NUMBER,
        documents: tuple[str, ...] = (),
        pdf: tuple[str, bytes] | None = None,
        csrf: str | None = "session",
    ) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("number", number)
        for code in documents:
            form.add_field("documents", code)
        if pdf is not None:
            form.add_field("pdf", pdf[1], filename=pdf[0], content_type="application/pdf")
        headers = {"Accept": "application/json"}
        if csrf is not None:
            headers["X-CSRF-Token"] = self.csrf if csrf == "session" else csrf
        url = f"panel/api/interactions/{interaction_id}/faxes"
        async with self.http.post(url, data=form, headers=headers) as resp:
            return resp.status, await resp.json()

    async def jobs(self, interaction_id: str) -> tuple[int, Any]:
        async with self.http.get(f"panel/api/interactions/{interaction_id}/faxes") as resp:
            return resp.status, await resp.json()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(center: Center) -> AsyncIterator[Any]:
    made: list[Browser] = []

    async def make(username: str) -> Browser:
        b = Browser(center)
        made.append(b)
        return await b.sign_in(username)

    yield make
    for b in made:
        await b.http.close()


async def handled_call(center: Center, agent_id: str, ani: str = NUMBER) -> str:
    """A call `agent_id` took and finished, with its `connected` event."""
    iid = str(uuid.uuid4())
    arrived = datetime.now(UTC) - timedelta(minutes=2)
    await center.query(
        "INSERT INTO interactions (id, ani, dnis, agent_id, phase, arrived_at, queue, ended_at, outcome)"
        " VALUES (%s, %s, '7000', %s, 'ended', %s, 'general', %s, 'completed')",
        iid,
        ani,
        agent_id,
        arrived,
        arrived + timedelta(seconds=60),
    )
    await center.query(
        "INSERT INTO interaction_events (interaction_id, at, kind, data) VALUES (%s, %s, 'connected', %s)",
        iid,
        arrived + timedelta(seconds=5),
        psycopg.types.json.Jsonb({"agent_id": agent_id}),
    )
    return iid


async def queued(center: Center) -> int:
    return int((await center.query("SELECT count(*) FROM fax_jobs"))[0][0])


def kept_uploads(center: Center) -> list[str]:
    d = center.uploads_dir
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


async def test_the_agent_faxes_a_document_and_an_upload_to_their_caller(
    center: Center, browser: Any, tmp_path: Path
) -> None:
    iid = await handled_call(center, "1001")
    alice = await browser("1001")
    two = make_pdf(tmp_path / "offer.pdf", 2).read_bytes()
    async with alice.http.ws_connect("ws", headers={"Origin": center.base}) as ws:
        status, job = await alice.fax(iid, documents=("102",), pdf=("Our offer (v2).pdf", two))
        assert status == 201, job
        assert job["interaction_id"] == iid and job["agent_id"] == "1001" and job["status"] == "queued"
        assert job["contents"] == ["102", "Our offer (v2).pdf"] and job["number"] == NUMBER
        assert job["uploads"] == [{"name": "Our offer (v2).pdf", "pages": 2}]  # no path on disk
        async with asyncio.timeout(5):
            while (msg := await ws.receive_json())["type"] != "fax_job":
                pass
        assert msg["job"]["id"] == job["id"] and msg["job"]["status"] == "queued"
    row = await center.query(
        "SELECT interaction_id::text, agent_id, uploads FROM fax_jobs WHERE id = %s", job["id"]
    )
    assert row[0][0] == iid and row[0][1] == "1001"
    stored = row[0][2][0]
    assert stored["pages"] == 2 and await asyncio.to_thread(Path(stored["pdf"]).read_bytes) == two
    assert await asyncio.to_thread(Path(stored["tiff"]).is_file)
    event = await center.query(
        "SELECT data FROM interaction_events WHERE interaction_id = %s AND kind = 'fax_job_queued'", iid
    )
    assert event[0][0]["job_id"] == job["id"] and event[0][0]["documents"] == ["102", "Our offer (v2).pdf"]
    assert (await alice.jobs(iid)) == (200, [job])
    # The supervisor may fax to any call's customer.
    lead = await browser("lead")
    status, by_lead = await lead.fax(iid, documents=("102",))
    assert status == 201 and by_lead["created_by"] == "supervisor:lead"


async def test_refusals_queue_and_keep_nothing(center: Center, browser: Any, tmp_path: Path) -> None:
    iid = await handled_call(center, "1001", ani="01055550111")
    alice, bob = await browser("1001"), await browser("1002")
    good = make_pdf(tmp_path / "good.pdf", 1).read_bytes()
    before, files = await queued(center), kept_uploads(center)

    cases: list[tuple[Browser, dict[str, Any], int, str, str]] = [
        (bob, {"documents": ("102",)}, 403, "forbidden", "calls they handled"),  # not Bob's call
        (bob, {"pdf": ("x.pdf", good)}, 403, "forbidden", "calls they handled"),  # nor his file kept
        (alice, {"documents": ("102",), "csrf": None}, 403, "csrf-failed", ""),
        (alice, {}, 400, "fax-job-refused", "choose at least one document"),
        # With a file the form is multipart, read field by field: a field is capped as it streams.
        (alice, {"number": "0" * 5000, "pdf": ("x.pdf", good)}, 400, "bad-request", "longer than 4096"),
        (alice, {"documents": ("999",)}, 400, "fax-job-refused", "catalogue codes"),
        (alice, {"number": "+12025550100", "documents": ("102",)}, 403, "fax-job-refused", "international"),
        (alice, {"pdf": ("notes.pdf", b"hello, this is text")}, 400, "bad-request", "only PDF files"),
        (alice, {"pdf": ("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)}, 400, "bad-request", "only PDF"),
        (alice, {"pdf": ("broken.pdf", b"%PDF-1.4\nnot really a PDF\n")}, 400, "bad-request", "Ghostscript"),
        (alice, {"pdf": ("empty.pdf", b"")}, 400, "bad-request", "empty"),
        (
            alice,
            {"pdf": ("long.pdf", make_pdf(tmp_path / "long.pdf", MAX_PAGES + 1).read_bytes())},
            400,
            "bad-request",
            f"at most {MAX_PAGES}",
        ),
        (
            alice,
            {"pdf": ("big.pdf", good + b"%" * int(MAX_MB * 1024 * 1024))},
            413,
            "payload-too-large",
            "MB",
        ),
    ]
    for who, fields, status, error_id, words in cases:
        got, answer = await who.fax(iid, **fields)
        assert (got, answer["error_id"]) == (status, error_id), (fields.keys(), answer)
        assert words in answer["message"], answer
        assert await queued(center) == before and kept_uploads(center) == files, fields.keys()
    got, answer = await alice.fax(str(uuid.uuid4()), documents=("102",))
    assert (got, answer["error_id"]) == (404, "not-found")
    assert (await bob.jobs(iid))[0] == 403
    assert await center.query("SELECT count(*) FROM interaction_events WHERE kind = 'fax_job_queued'"
                              " AND interaction_id = %s", iid) == [(0,)]  # fmt: skip


async def test_the_agent_on_the_call_may_fax_before_the_call_names_them(center: Center, browser: Any) -> None:
    """During the call the desk knows who holds it before its row and events are written."""
    iid = str(uuid.uuid4())
    await center.query(
        "INSERT INTO interactions (id, ani, dnis, phase, arrived_at, queue)"
        " VALUES (%s, %s, '7000', 'queued', now(), 'general')",
        iid,
        "01055550122",
    )
    bob = await browser("1002")
    assert (await bob.fax(iid, documents=("102",)))[0] == 403
    agent = center.app[DESK].agents["1002"]
    agent.state, agent.interaction_id = type(agent.state)("on_call"), iid
    try:
        status, job = await bob.fax(iid, "01055550122", documents=("102",))
        assert status == 201 and job["agent_id"] == "1002", job
    finally:
        agent.state, agent.interaction_id = type(agent.state)("logged_out"), None


async def test_the_agent_page_offers_the_fax_box_in_its_language(center: Center, browser: Any) -> None:
    alice = await browser("1001")
    async with alice.http.get("panel?lang=zh") as resp:
        page = await resp.text()
    assert 'id="fax-box"' in page and "维修申请表" in page and "传真发送" in page
    assert 'type="file" name="pdf"' in page


async def test_the_fax_desk_form_takes_an_upload(center: Center, browser: Any, tmp_path: Path) -> None:
    lead = await browser("lead")
    one = make_pdf(tmp_path / "letter.pdf", 1).read_bytes()

    async def post(pdf: tuple[str, bytes]) -> str:
        form = aiohttp.FormData()
        form.add_field("csrf_token", lead.csrf)  # before the file, as the page's form has it
        form.add_field("number", "01055550133")
        form.add_field("pdf", pdf[1], filename=pdf[0], content_type="application/pdf")
        async with lead.http.post("faxes/send", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            return str(resp.headers["Location"])

    before = await queued(center)
    refused = await post(("notes.pdf", b"plain text"))
    assert "error=" in refused and "only+PDF" in refused and await queued(center) == before
    sent = await post(("letter.pdf", one))
    assert "sent=" in sent and "letter.pdf" in sent
    rows = await center.query("SELECT created_by, uploads FROM fax_jobs WHERE number = '01055550133'")
    assert [(r[0], [u["name"] for u in r[1]]) for r in rows] == [("supervisor:lead", ["letter.pdf"])]
    # An agent may not use the desk's form, and no file of theirs is kept.
    alice = await browser("1001")
    form = aiohttp.FormData()
    form.add_field("csrf_token", alice.csrf)
    form.add_field("number", "01055550133")
    form.add_field("pdf", one, filename="x.pdf", content_type="application/pdf")
    files = kept_uploads(center)
    async with alice.http.post("faxes/send", data=form, allow_redirects=False) as resp:
        assert resp.status == 403
    assert kept_uploads(center) == files
