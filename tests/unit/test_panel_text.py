"""The panel's two languages: every word in both, and the right one picked per request."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.bus import AgentsChanged
from app.config import DEFAULT_NOT_READY_REASONS, DEFAULT_SKILL_LABELS
from app.domain.agent_state import Agent
from app.panel import pages
from app.panel.i18n import TEXT, pick_language
from app.panel.live import LiveHub
from app.routing.http import agent_view


def test_every_text_exists_in_both_languages() -> None:
    assert set(TEXT["en"]) == set(TEXT["zh"])
    assert all(TEXT["zh"][k] for k in TEXT["zh"])


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "lang"),
    [
        (None, None, None, "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, None, "fr-FR,zh-TW;q=0.7,en;q=0.5", "zh"),
        (None, None, "en;q=0.3,zh;q=0.9", "zh"),
        (None, None, "zh;q=0", "en"),
        (None, "zh", "en-US", "zh"),
        ("en", "zh", "zh-CN", "en"),
        ("xx", None, "zh-CN", "zh"),
    ],
)
def test_language_choice(query: str | None, cookie: str | None, accept: str | None, lang: str) -> None:
    assert pick_language(query, cookie, accept) == lang


def test_pages_escape_what_they_show() -> None:
    agent = agent_view(Agent("1001", "<script>alert(1)</script>"))
    html = pages.supervisor_page("en", 'tok"en', "Lee <b>", [agent], DEFAULT_NOT_READY_REASONS)
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert 'content="tok&quot;en"' in html and "Lee &lt;b&gt;" in html
    data = html.split('id="panel-data">')[1].split("</script>")[0]
    assert "<" not in data


def test_skills_are_named_in_the_page_language() -> None:
    agent = agent_view(Agent("1001", "Alice", skills={"billing": 8, "sorting": 2}))
    html = pages.supervisor_page(
        "zh", "t", "Lee", [agent], DEFAULT_NOT_READY_REASONS, skill_labels=DEFAULT_SKILL_LABELS
    )
    assert '<td data-field="skills">账务 8, sorting 2</td>' in html  # no label: the YAML name
    data = json.loads(html.split('id="panel-data">')[1].split("</script>")[0])
    assert data["skills"]["tech"] == "技术支持"  # panel.js names them in live updates too


def test_reason_labels_follow_the_language() -> None:
    assert pages.reason_label("zh", DEFAULT_NOT_READY_REASONS, "lunch") == "午餐"
    assert pages.reason_label("en", DEFAULT_NOT_READY_REASONS, "no answer") == "missed a call"
    assert pages.reason_label("en", DEFAULT_NOT_READY_REASONS, "something else") == "something else"


async def test_live_hub_sends_each_viewer_what_they_may_see() -> None:
    hub = LiveHub(agent_view, max_backlog=3)
    alice = hub.subscribe(frozenset({"1001"}), b"s1")
    lead = hub.subscribe(None, b"s2")
    a, b = Agent("1001", "Alice"), Agent("1002", "Bob")
    a.login(datetime.now(UTC))
    hub.agents_changed(AgentsChanged((a, b)))
    assert [m["agent"]["id"] for m in drain(alice.queue)] == ["1001"]
    assert [m["agent"]["id"] for m in drain(lead.queue)] == ["1001", "1002"]
    assert drain(alice.queue) == [] and alice.ended is None
    # A viewer who does not read falls behind and is cut off, not queued for ever.
    for _ in range(4):
        hub.agents_changed(AgentsChanged((a,)))
        drain(lead.queue)  # the supervisor keeps up
    assert alice.ended == "too-slow" and lead.ended is None
    hub.end_session(b"s2")
    assert drain(lead.queue)[-1] == {"type": "end", "reason": "signed-out"}
    hub.unsubscribe(alice)
    hub.unsubscribe(lead)
    hub.agents_changed(AgentsChanged((a,)))  # nobody listening: nothing to do, nothing fails


def drain(queue: asyncio.Queue[dict[str, object]]) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_the_agents_nailed_up_line_is_one_line_in_their_language_and_hidden_without_one() -> None:
    agent = Agent("1001", "Alice")
    page = pages.panel_page("en", "t", "who", agent_view(agent), DEFAULT_NOT_READY_REASONS)
    assert '<p class="outbound-line" id="outbound-line" data-line="" hidden>' in page
    agent.outbound_line = "connected"
    view = agent_view(agent)
    assert view["outbound_line"] == "connected"
    page = pages.panel_page("zh", "t", "who", view, DEFAULT_NOT_READY_REASONS)
    assert 'data-line="connected">外呼线路：已接通，等待客户</p>' in page
