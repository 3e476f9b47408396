"""The reports and staffing over HTTP against a real PostgreSQL: a day of rows written to the
tables the center writes (interactions and their events, agent state changes, callbacks,
voicemails, dial attempts), read back by each report as JSON and as CSV (Python's csv module)
in the center's time zone; an agent is refused every report and page.

The web app runs in-process with the real database and panel (no Asterisk: the Chromium test
in tests/e2e/test_reports.py opens the pages on the whole center)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.adapters.report_store import ReportStore
from app.bootstrap import PARTS, SHUTDOWN, Parts, Shutdown, database_ctx, panel_ctx, routing_ctx
from app.config import AgentSettings, DatabaseSettings, QueueSettings, Settings, WebSettings, WebUserSettings
from app.domain.staffing import agents_needed
from app.panel import http as panel_http
from app.supervision import http as supervision_http
from app.supervision.reports import Reports
from app.supervision.summaries import SummaryJob
from app.web.http import SETTINGS, error_middleware
from tests.integration.test_panel_auth import Browser, Panel
from tests.support.report_day import DAY, ZONE, write_day
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=ZONE)  # the nightly job's time: three days are over


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_reports") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def panel(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> AsyncIterator[Panel]:
    var = tmp_path_factory.mktemp("reports") / "var"
    settings = Settings(
        var_dir=str(var),
        agents=(AgentSettings("1001", "Alice Wang"), AgentSettings("1002", "Bob Li")),
        queues=(QueueSettings("general"),),
        web=WebSettings(users=(WebUserSettings("lead", "Lee Lead"),)),
        database=DatabaseSettings(url=db_url),
        timezone="Asia/Shanghai",
    )

    async def reports_ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[PARTS].store
        assert store is not None
        reports = ReportStore(store.pool, ZONE)
        app[supervision_http.REPORTS] = Reports(
            reports.calls,
            ZONE,
            lambda queue, tier: 30.0,
            5.0,
            lambda: datetime.now(UTC),
            store=reports,
            targets=lambda: {"general": (30.0, 0.8)},
            serves=lambda agent, queue: agent == "1001",
        )
        yield

    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[PARTS], app[SHUTDOWN] = Parts(), Shutdown()
    app.cleanup_ctx.extend([database_ctx, routing_ctx, panel_ctx, reports_ctx])
    app.on_shutdown.append(panel_http.close_live_sockets)
    panel_http.add_routes(app)
    supervision_http.add_routes(app)
    server = TestServer(app)
    await server.start_server()
    try:
        passwords = yaml.safe_load((var / "secrets.yaml").read_text())["panel_passwords"]
        p = Panel(server, app, db_url, passwords)
        await write_day(db_url)
        yield p
    finally:
        await server.close()


async def report_and_csv(
    lead: Browser, kind: str, query: str, table: str = ""
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    status, body, _ = await lead.call("GET", f"/panel/api/reports/{kind}?{query}")
    assert status == 200, body
    status, text, resp = await lead.call("GET", f"/panel/api/reports/{kind}?{query}&format=csv{table}")
    assert status == 200 and resp.content_type == "text/csv", text
    return body, list(csv.DictReader(io.StringIO(text)))


def as_csv(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, dict):
            return "; ".join(f"{k or '-'}={x}" for k, x in v.items())
        return str(v)

    return [{k: cell(v) for k, v in r.items()} for r in rows]


async def test_each_report_reads_the_day_back_as_json_and_csv(panel: Panel) -> None:
    lead = Browser(panel)
    try:
        assert (await lead.sign_in("lead"))[0] == 200
        period = f"from={DAY}&to={DAY}"

        # The interval report's agents' side: Alice, 09:00-11:00 (Shanghai) by the hour.
        interval, agent_rows = await report_and_csv(
            lead, "interval", f"date={DAY}&minutes=60", "&table=agents"
        )
        assert [(r["start"][11:16], r["agents_logged_in"]) for r in interval["agents"]] == [
            ("09:00", 1.0),
            ("10:00", 1.0),
        ]
        ten = interval["agents"][1]
        assert (ten["talk_s"], ten["wrap_up_s"], ten["ready_s"], ten["not_ready_s"]) == (300, 30, 30, 3240)
        assert ten["not_ready_by_reason"] == {"lunch": 3240} and ten["occupancy_percent"] == round(
            100 * 330 / 360, 1
        )
        assert agent_rows == as_csv(interval["agents"])

        queues, rows = await report_and_csv(lead, "queues", period)
        (general,) = queues["rows"]
        assert (general["offered"], general["answered"], general["abandoned"]) == (2, 1, 1)
        assert (general["service_level_percent"], general["asa_s"], general["aht_s"]) == (50.0, 20.0, 300.0)
        assert (queues["timezone"], general["start"]) == ("Asia/Shanghai", DAY)
        assert rows == as_csv(queues["rows"])

        agents, rows = await report_and_csv(lead, "agents", period)
        (alice,) = agents["rows"]
        assert alice["agent"] == "1001" and alice["calls"] == 1
        assert (alice["logged_in_s"], alice["ready_s"], alice["talk_s"], alice["wrap_up_s"]) == (
            7200,
            3630,
            300,
            30,
        )
        assert alice["not_ready_by_reason"] == {"lunch": 3240}
        assert (alice["aht_s"], alice["occupancy_percent"]) == (330.0, round(100 * 330 / 3960, 1))
        assert rows == as_csv(agents["rows"]) and rows[0]["not_ready_by_reason"] == "lunch=3240"

        ivr, rows = await report_and_csv(lead, "ivr", period)
        assert [(r["step"], r["exit"], r["calls"]) for r in ivr["rows"]] == [
            ("general", "queue:general", 2),
            ("messages", "voicemail", 1),
            ("welcome", "hung_up", 1),
        ]
        assert [(r["choice"], r["calls"], r["percent"]) for r in ivr["choices"]] == [
            ("1", 2, 66.7),
            ("9", 1, 33.3),
        ]
        assert rows == as_csv(ivr["rows"])
        _, choices = await report_and_csv(lead, "ivr", period, "&table=choices")
        assert choices == as_csv(ivr["choices"])

        work, rows = await report_and_csv(lead, "work", period)
        (day,) = work["rows"]
        assert (day["callbacks_requested"], day["callbacks_completed"], day["avg_time_to_complete_s"]) == (
            1,
            1,
            600.0,
        )
        assert (day["voicemails"], day["voicemails_handled"], day["avg_voicemail_s"]) == (1, 0, 12.5)
        assert rows == as_csv(work["rows"])

        campaigns, rows = await report_and_csv(lead, "campaigns", period)
        (renewals,) = campaigns["rows"]
        assert (renewals["attempts"], renewals["live_answers"], renewals["abandoned"]) == (4, 2, 1)
        assert (renewals["abandon_percent"], renewals["abandon_percent_30d"]) == (50.0, 33.33)
        assert (
            rows == as_csv(campaigns["rows"])
            and rows[0]["results"] == "abandoned=1; connected=1; no_answer=2"
        )

        # Three days read from the events (no summary yet), then summed up by the nightly job
        # (every finished day of the center, Shanghai, still missing) and read from there: the
        # same figures.
        wider = "from=2026-11-29&to=2026-12-01"
        before = {kind: (await report_and_csv(lead, kind, wider))[0]["rows"] for kind in ("agents", "queues")}
        job = SummaryJob(panel.app[supervision_http.REPORTS].store, ZONE, timedelta(minutes=5), lambda: NOW)
        assert await job.run_once() == ([date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)], [])
        for kind, first in (("agents", agents), ("queues", queues)):
            again, _ = await report_and_csv(lead, kind, wider)
            assert again["rows"] == before[kind], kind
            assert [{k: v for k, v in r.items() if k != "start"} for r in again["rows"]] == [
                {k: v for k, v in r.items() if k != "start"} for r in first["rows"]
            ], kind
        kept = await panel.query("SELECT day::text FROM report_days_kept ORDER BY day")
        assert kept == [("2026-11-30",), ("2026-12-01",), ("2026-12-02",)]
        assert (await panel.query("SELECT count(*) FROM report_calls"))[0][0] == 2

        # A day of the center ends at its midnight: the next day (in Shanghai) has none of it.
        empty, _ = await report_and_csv(lead, "queues", "from=2026-12-01")
        assert empty["rows"] == []
        for bad in ("from=2026-12-02&to=2026-12-01", "from=yesterday", "from=2026-01-01&to=2026-12-01"):
            status, answer, _ = await lead.call("GET", f"/panel/api/reports/queues?{bad}")
            assert status == 400 and answer["error_id"] == "bad-request", (bad, answer)
        assert (await lead.call("GET", "/panel/api/reports/nothing"))[0] == 404
    finally:
        await lead.close()


async def test_staffing_puts_erlang_c_and_a_beside_the_agents_who_were_there(panel: Panel) -> None:
    lead = Browser(panel)
    try:
        assert (await lead.sign_in("lead"))[0] == 200
        staffing, rows = await report_and_csv(lead, "staffing", f"date={DAY}&minutes=30")
        at_ten = next(r for r in staffing["rows"] if r["start"].startswith(f"{DAY}T10:00"))
        # Two callers in the half hour, 300 s of handling for the one answered; 20 s + 60 s of
        # waiting over one abandon: a patience of 80 s. Alice was logged in all of it.
        assert (at_ten["offered"], at_ten["aht_s"], at_ten["patience_s"], at_ten["agents_staffed"]) == (
            2, 300.0, 80.0, 1.0,
        )  # fmt: skip
        assert at_ten["erlang_c_agents"] == agents_needed(2 / 1800, 300, 30, 0.8).agents
        assert at_ten["erlang_a_agents"] == agents_needed(2 / 1800, 300, 30, 0.8, 80).agents
        assert rows == as_csv(staffing["rows"])
        # Intervals staffed with no call are shown too (Alice from 09:00), empty ones are not.
        assert [r["start"][11:16] for r in staffing["rows"]] == ["09:00", "09:30", "10:00", "10:30"]

        # The next Monday from the one before, with twice the calls.
        ahead, rows = await report_and_csv(lead, "forecast", "date=2026-12-07&minutes=30&weeks=1&volume=200")
        assert ahead["from_days"] == [DAY]
        at_ten = next(r for r in ahead["rows"] if r["start"].startswith("2026-12-07T10:00"))
        assert (at_ten["offered"], at_ten["aht_s"], at_ten["patience_s"]) == (4.0, 300.0, 80.0)
        assert at_ten["erlang_c_agents"] == agents_needed(4 / 1800, 300, 30, 0.8).agents
        assert rows == as_csv(ahead["rows"])
        for bad in ("weeks=40", "weeks=inf", "volume=nan", "aht=0", "minutes=20", "date=soon"):
            status, answer, _ = await lead.call("GET", f"/panel/api/reports/forecast?{bad}")
            assert status == 400 and answer["error_id"] == "bad-request", (bad, answer)
        # The page says why it shows the defaults instead.
        status, page, _ = await lead.page("/staffing?weeks=40&lang=en")
        assert status == 200 and 'id="message"' in page and "weeks" in page
        status, page, _ = await lead.page("/reports/queues?from=2026-12-02&to=2026-12-01")
        assert status == 200 and "before it starts" in page
    finally:
        await lead.close()


async def test_an_agent_is_refused_every_report_and_page(panel: Panel) -> None:
    agent = Browser(panel)
    try:
        assert (await agent.sign_in("1001"))[0] == 200
        for kind in ("interval", "queues", "agents", "ivr", "work", "campaigns", "staffing", "forecast"):
            for fmt in ("", "?format=csv"):
                status, answer, _ = await agent.call("GET", f"/panel/api/reports/{kind}{fmt}")
                assert status == 403 and answer["error_id"] == "forbidden", (kind, answer)
        for path in ("/reports", "/reports/queues", "/reports/agents", "/reports/ivr", "/reports/work",
                     "/reports/campaigns", "/staffing"):  # fmt: skip
            status, _, _ = await agent.page(path)
            assert status == 403, path
    finally:
        await agent.close()
    nobody = Browser(panel)
    try:
        status, _, where = await nobody.page("/staffing")
        assert status in (302, 303) and where is not None and where.startswith("/login")
    finally:
        await nobody.close()


async def test_days_no_report_can_be_about_are_refused_with_400_and_pages_show_today(panel: Panel) -> None:
    """Found by the API fuzz (tests/e2e/test_openapi_fuzz.py): the next midnight of 9999-12-31,
    a forecast's weeks before 0001-01-01 and the campaigns' 30 days before it do not exist, and
    each of these answered 500."""
    lead = Browser(panel)
    try:
        assert (await lead.sign_in("lead"))[0] == 200
        for query in (
            "interval?date=9999-12-31",
            "interval?date=0001-01-01",
            "queues?from=9999-12-31&to=9999-12-31",
            "campaigns?from=0001-01-01",
            "staffing?date=9999-12-31",
            "forecast?date=0001-01-01",
            "forecast?date=0001-01-01&format=csv",
        ):
            status, answer, _ = await lead.call("GET", f"/panel/api/reports/{query}")
            assert status == 400 and answer["error_id"] == "bad-request", (query, answer)
            assert "1970-01-01 to 9998-12-31" in answer["message"], answer
        for page in (
            "/reports?date=9999-12-31",
            "/reports/queues?from=9999-12-31",
            "/staffing?date=9999-12-31",
            "/staffing?forecast=0001-01-01",
        ):
            status, _, _ = await lead.page(page)
            assert status == 200, page
    finally:
        await lead.close()
