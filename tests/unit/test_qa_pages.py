"""The QA desk's markup: every text in English and Chinese, the report page's tables and chart
data, and voicemail in the search and the player."""

from __future__ import annotations

import json
import re
from typing import Any

from app.domain.evaluation import qa_trend, qa_trend_columns
from app.panel import qa_pages
from app.panel.i18n import Lang

REPORT = {
    "by": "agent",
    "per": "week",
    "from": "2026-11-30",
    "to": "2026-12-13",
    "timezone": "Asia/Shanghai",
    **qa_trend(
        [
            {"key": "1001", "period": "2026-11-30", "count": 2, "total": 150.0, "failed": 1, "disputed": 1},
            {"key": "1001", "period": "2026-12-07", "count": 1, "total": 90.0, "failed": 0, "disputed": 0},
        ],
        "agent",
    ),
}
VOICEMAIL: dict[str, Any] = {
    "id": "5f0c5a8e-0000-4000-8000-000000000001",
    "interaction_id": "5f0c5a8e-0000-4000-8000-000000000002",
    "ani": "13900000004",
    "queue": "billing",
    "recorded_at": "2026-12-01T03:00:00+00:00",
    "duration_s": 7.5,
    "size_bytes": 120044,
    "disposition": None,
    "outcome": "voicemail",
    "recordings": ["5f0c5a8e-0000-4000-8000-000000000003"],
    "agents": [],
    "call_recordings": [
        {
            "id": "5f0c5a8e-0000-4000-8000-000000000003",
            "part": "ivr",
            "started_at": "2026-12-01T02:59:00+00:00",
            "duration_s": 42.0,
        }
    ],
}


def test_every_qa_text_is_in_both_languages() -> None:
    assert set(qa_pages.TEXT["en"]) == set(qa_pages.TEXT["zh"])
    assert all(qa_pages.TEXT["zh"].values())


def test_the_report_page_has_its_tables_chart_data_and_csv_links() -> None:
    langs: tuple[tuple[Lang, str], ...] = (("en", "QA report"), ("zh", "质检报表"))
    for lang, title in langs:
        page = qa_pages.report_page(lang, "csrf", "", REPORT, qa_trend_columns("agent"), {"lang": lang})
        assert f"<h1>{title}</h1>" in page
        rows = re.findall(r'<table id="report".*?<tbody>(.*?)</tbody>', page)[0]
        assert re.findall(r"<td>(.*?)</td>", rows) == [
            "2026-11-30", "1001", "2", "75.0", "1", "1",
            "2026-12-07", "1001", "1", "90.0", "0", "0",
        ]  # fmt: skip
        totals = re.findall(r'<table id="totals".*?<tbody>(.*?)</tbody>', page)[0]
        assert re.findall(r"<td>(.*?)</td>", totals) == ["1001", "3", "80.0", "1", "1", "15.0"]
        assert "/panel/api/qa/report?by=agent&amp;per=week&amp;from=2026-11-30" in page
        assert "table=totals" in page
        data = json.loads(re.findall(r'id="panel-data">(.*?)</script>', page)[0])
        assert data["chart"]["series"] == "agent" and data["report"]["rows"] == REPORT["rows"]
        assert "Asia/Shanghai" in page


def test_a_voicemail_only_call_is_a_row_and_plays_in_the_player() -> None:
    page = qa_pages.qa_page(
        "en", "csrf", "", {"ani": "0004"}, [{**VOICEMAIL, "kind": "voicemail"}], None,
        playing_voicemail=VOICEMAIL,
    )  # fmt: skip
    assert f'<tr data-voicemail-id="{VOICEMAIL["id"]}">' in page and "voicemail only" in page
    assert f'data-voicemail-id="{VOICEMAIL["id"]}" data-duration="7.5"' in page
    assert f'src="/panel/api/qa/voicemails/{VOICEMAIL["id"]}/audio"' in page
    rid = VOICEMAIL["recordings"][0]
    link = f'href="/qa?ani=0004&amp;play={rid}">IVR · 2026-12-01 02:59:00 UTC · 0:42</a>'
    assert link in page, "the call's IVR part is one click away, the search kept"


PLAYING: dict[str, Any] = {
    "id": "5f0c5a8e-0000-4000-8000-000000000010",
    "interaction_id": "5f0c5a8e-0000-4000-8000-000000000011",
    "ani": "13700000072",
    "agents": ["1001", "1002"],
    "started_at": "2026-12-04T09:00:00+00:00",
    "duration_s": 40.0,
    "sha256": "ab" * 32,
    "spans": [{"kind": "hold", "start_s": 12.5, "end_s": 21.3}],
    "transfers": [
        {"how": "consult", "at_s": 12.4, "to": "agent:1002"},
        {"how": "consult_completed", "at_s": 21.25, "to": "agent:1002"},
    ],
    "ivr_path": {
        "flow": "main",
        "steps": [{"choice": "1", "label": "General enquiries"}],
        "queue": "general",
    },
    "disposition": "resolved",
    "disposition_label": "Resolved",
    "part": "conversation",
}


def test_the_campaign_is_a_filter_of_the_search_form_and_kept_in_the_links() -> None:
    row = {**PLAYING, "queue": None, "campaign": "renewals", "score": None, "voicemails": []}
    page = qa_pages.qa_page("en", "csrf", "", {"campaign": "renewals"}, [row], None)
    assert '<input name="campaign" id="f-campaign" value="renewals"' in page
    assert "<th>Campaign</th>" in page and '<td class="campaign">renewals</td>' in page
    assert f"/qa?campaign=renewals&amp;play={PLAYING['id']}" in page
    zh = qa_pages.qa_page("zh", "csrf", "", {}, [], None)
    assert "外呼活动" in zh and 'name="campaign"' in zh


def test_the_player_marks_transfers_in_time_order_among_the_spans() -> None:
    page = qa_pages.qa_page("en", "csrf", "", {}, [], PLAYING)
    marks = re.findall(r'<ul id="marks">(.*?)</ul>', page)[0]
    items = re.findall(r'<li data-kind="(\w+)"(?: data-how="(\w+)")?.*?>(.*?)</li>', marks)
    assert items == [
        ("transfer", "consult", "0:12 consultation with agent 1002"),
        ("hold", "", "0:12–0:21 caller on hold"),
        ("transfer", "consult_completed", "0:21 handed over to agent 1002"),
    ]
    assert 'data-start="21.25" data-end="21.25"' in marks, "a transfer is a moment on the time line"


def test_each_kind_of_transfer_has_its_words_in_both_languages() -> None:
    hows = ("blind", "consult", "consult_completed", "conference", "expert")
    tos = ("queue:billing", "agent:1003", "agent:1003", "agent:1003", "expert:8")
    playing = {
        **PLAYING,
        "transfers": [{"how": h, "at_s": i, "to": t} for i, (h, t) in enumerate(zip(hows, tos, strict=True))],
    }
    en = re.findall(r'data-kind="transfer".*?>(.*?)</li>', qa_pages.qa_page("en", "c", "", {}, [], playing))
    assert en == [
        "0:00 blind transfer to queue billing",
        "0:01 consultation with agent 1003",
        "0:02 handed over to agent 1003",
        "0:03 conference with agent 1003",
        "0:04 expert hand-over: expert 8",
    ]
    zh = re.findall(r'data-kind="transfer".*?>(.*?)</li>', qa_pages.qa_page("zh", "c", "", {}, [], playing))
    assert zh[0] == "0:00 盲转给队列 billing" and zh[4] == "0:04 转交专家：专家 8"


def test_beside_the_player_the_ivr_path_and_the_disposition() -> None:
    page = qa_pages.qa_page("en", "csrf", "", {}, [], PLAYING)
    facts = re.findall(r'<aside class="call-facts" id="call-facts">(.*?)</aside>', page)[0]
    assert re.findall(r'<ol id="ivr-path">(.*?)</ol>', facts) == [
        '<li data-choice="1">General enquiries</li>'
        '<li class="reached" data-queue="general">to the queue general</li>'
    ]
    assert '<p id="disposition" data-code="resolved">Resolved (resolved)</p>' in facts
    # A placed call: no IVR; no wrap-up code given yet.
    bare = {**PLAYING, "ivr_path": {"flow": None, "steps": [], "queue": None}, "disposition": None}
    facts = qa_pages.qa_page("zh", "csrf", "", {}, [], bare)
    assert '<p id="ivr-path">未经过语音导航</p>' in facts
    assert '<p id="disposition" data-code="">未填写</p>' in facts
