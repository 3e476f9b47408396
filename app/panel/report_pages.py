"""The report pages beyond the interval report (queues, agents, IVR, callbacks and voicemail,
campaigns) and the staffing page: each a form for its period, a chart (Chart.js, bundled;
panel.js draws it from the page's data), its tables and their CSV, in English and Chinese.
A table cell reads as the CSV's cell does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from app.domain.reports import AGENT_INTERVAL_COLUMNS
from app.panel.i18n import Lang, t
from app.panel.pages import _layout, client_texts

# The pages in the order of the reports' menu: (page, address, title key).
MENU = (
    ("interval", "/reports", "reports"),
    ("queues", "/reports/queues", "r.queues"),
    ("agents", "/reports/agents", "r.agents"),
    ("ivr", "/reports/ivr", "r.ivr"),
    ("work", "/reports/work", "r.work"),
    ("campaigns", "/reports/campaigns", "r.campaigns"),
    ("staffing", "/staffing", "r.staffing"),
)

# What each page's chart shows, one point per table row: `x`, the columns that label a point;
# `bars` counts on the left axis; `lines` on the right (`right`: its unit).
CHARTS: dict[str, dict[str, Any]] = {
    "queues": {
        "x": ["start", "queue"],
        "bars": ["offered", "answered", "abandoned"],
        "lines": ["service_level_percent"],
        "right": "percent",
    },
    "agents": {
        "x": ["agent"],
        "bars": ["talk_s", "wrap_up_s", "ready_s", "not_ready_s"],
        "stacked": True,
        "lines": ["occupancy_percent"],
        "right": "percent",
    },
    "ivr": {"x": ["flow", "step", "exit"], "bars": ["calls"], "lines": [], "right": None},
    "work": {
        "x": ["start", "queue"],
        "bars": ["callbacks_requested", "callbacks_completed", "voicemails", "voicemails_handled"],
        "lines": [],
        "right": None,
    },
    "campaigns": {
        "x": ["start", "campaign"],
        "bars": ["attempts", "live_answers", "abandoned"],
        "lines": ["abandon_percent", "abandon_percent_30d"],
        "right": "percent",
    },
    "staffing": {
        "x": ["start", "queue"],
        "bars": ["offered"],
        "lines": ["erlang_c_agents", "erlang_a_agents", "agents_staffed"],
        "right": "agents",
    },
}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "r.queues": "Queue report",
        "r.agents": "Agent report",
        "r.ivr": "IVR report",
        "r.work": "Callbacks and voicemail",
        "r.campaigns": "Outbound campaigns",
        "r.staffing": "Staffing",
        "r.forecast": "Forecast day",
        "r.from": "From",
        "r.to": "To",
        "r.day": "Day",
        "r.weeks": "Same weekday of the last (weeks)",
        "r.volume": "Volume %",
        "r.aht": "Handle time %",
        "r.none": "Nothing to report for this period.",
        "r.choices": "Choices in menus",
        "r.exits": "Where callers leave the flow",
        "r.zone": "Days and times in {zone}.",
        "r.staffing_note": (
            "Agents needed for each queue's service-level target (its standard tier) by Erlang C"
            " (callers wait as long as it takes) and Erlang A (callers give up, with the patience"
            " seen in the abandons), beside the agents logged in and serving the queue."
        ),
        "r.forecast_note": (
            "The average of the same weekday over the past weeks ({days}); the agents staffed"
            " are those days' average."
        ),
        "r.csv_choices": "Download the choices as CSV",
        "r.interval_agents": "Agents in each interval",
        "c.agents_logged_in": "agents logged in",
        "percent": "%",
        "agents": "agents",
        # columns
        "c.start": "from",
        "c.queue": "queue",
        "c.agent": "agent",
        "c.campaign": "campaign",
        "c.flow": "flow",
        "c.step": "step",
        "c.exit": "left by",
        "c.menu": "menu",
        "c.choice": "key or word",
        "c.to": "leads to",
        "c.calls": "calls",
        "c.percent": "%",
        "c.offered": "offered",
        "c.answered": "answered",
        "c.answered_in_target": "in target",
        "c.abandoned": "abandoned",
        "c.short_abandoned": "short",
        "c.service_level_percent": "service level %",
        "c.asa_s": "ASA s",
        "c.aht_s": "AHT s",
        "c.longest_answered_wait_s": "longest wait answered s",
        "c.longest_abandoned_wait_s": "longest wait abandoned s",
        "c.logged_in_s": "logged in s",
        "c.ready_s": "ready s",
        "c.ringing_s": "ringing s",
        "c.talk_s": "talk s",
        "c.wrap_up_s": "after-call work s",
        "c.not_ready_s": "not ready s",
        "c.occupancy_percent": "occupancy %",
        "c.not_ready_by_reason": "not ready by reason (s)",
        "c.callbacks_requested": "callbacks requested",
        "c.from_ivr": "from the IVR",
        "c.from_web": "from the web",
        "c.from_voicemail": "from voicemail",
        "c.callbacks_completed": "completed",
        "c.callbacks_failed": "failed",
        "c.callbacks_cancelled": "cancelled",
        "c.callbacks_open": "still open",
        "c.attempts": "attempts",
        "c.avg_time_to_complete_s": "request to completion s",
        "c.voicemails": "voicemails",
        "c.voicemails_handled": "handled",
        "c.avg_voicemail_s": "message length s",
        "c.live_answers": "live answers",
        "c.abandon_percent": "abandon %",
        "c.abandon_percent_30d": "abandon % 30 days",
        "c.results": "results",
        "c.calls_per_hour": "calls per hour",
        "c.patience_s": "patience s",
        "c.erlang_c_agents": "Erlang C agents",
        "c.erlang_a_agents": "Erlang A agents",
        "c.erlang_a_abandon_percent": "Erlang A abandon %",
        "c.agents_staffed": "agents staffed",
    },
    "zh": {
        "r.queues": "队列报表",
        "r.agents": "坐席报表",
        "r.ivr": "语音导航报表",
        "r.work": "回拨与留言",
        "r.campaigns": "外呼活动",
        "r.staffing": "人员配置",
        "r.forecast": "预测日",
        "r.from": "开始日期",
        "r.to": "结束日期",
        "r.day": "日期",
        "r.weeks": "取过去几周的同一星期几",
        "r.volume": "话务量 %",
        "r.aht": "处理时长 %",
        "r.none": "该时段没有可报告的数据。",
        "r.choices": "菜单选择",
        "r.exits": "来电者离开流程的位置",
        "r.zone": "日期和时间均为 {zone} 时区。",
        "r.staffing_note": (
            "按各队列（标准等级）的服务水平目标所需坐席数：Erlang C（来电者一直等待）与 Erlang A"
            "（来电者会放弃，耐心时长由放弃记录估算），并与当时登录并服务该队列的坐席数对照。"
        ),
        "r.forecast_note": "过去几周同一星期几（{days}）的平均值；在岗坐席为这些天的平均数。",
        "r.csv_choices": "下载菜单选择 CSV",
        "r.interval_agents": "各时段坐席",
        "c.agents_logged_in": "登录坐席",
        "percent": "%",
        "agents": "坐席",
        "c.start": "开始",
        "c.queue": "队列",
        "c.agent": "坐席",
        "c.campaign": "外呼活动",
        "c.flow": "流程",
        "c.step": "步骤",
        "c.exit": "离开方式",
        "c.menu": "菜单",
        "c.choice": "按键或词语",
        "c.to": "去向",
        "c.calls": "来电",
        "c.percent": "%",
        "c.offered": "进线",
        "c.answered": "接通",
        "c.answered_in_target": "目标内接通",
        "c.abandoned": "放弃",
        "c.short_abandoned": "短时放弃",
        "c.service_level_percent": "服务水平 %",
        "c.asa_s": "平均应答 秒",
        "c.aht_s": "平均处理 秒",
        "c.longest_answered_wait_s": "接通最长等待 秒",
        "c.longest_abandoned_wait_s": "放弃最长等待 秒",
        "c.logged_in_s": "登录 秒",
        "c.ready_s": "就绪 秒",
        "c.ringing_s": "振铃 秒",
        "c.talk_s": "通话 秒",
        "c.wrap_up_s": "话后处理 秒",
        "c.not_ready_s": "未就绪 秒",
        "c.occupancy_percent": "占用率 %",
        "c.not_ready_by_reason": "未就绪原因（秒）",
        "c.callbacks_requested": "回拨请求",
        "c.from_ivr": "来自语音导航",
        "c.from_web": "来自网页",
        "c.from_voicemail": "来自留言",
        "c.callbacks_completed": "已完成",
        "c.callbacks_failed": "失败",
        "c.callbacks_cancelled": "已取消",
        "c.callbacks_open": "未完成",
        "c.attempts": "拨打次数",
        "c.avg_time_to_complete_s": "请求到完成 秒",
        "c.voicemails": "留言",
        "c.voicemails_handled": "已处理",
        "c.avg_voicemail_s": "留言时长 秒",
        "c.live_answers": "真人接听",
        "c.abandon_percent": "放弃率 %",
        "c.abandon_percent_30d": "30天放弃率 %",
        "c.results": "结果",
        "c.calls_per_hour": "每小时来电",
        "c.patience_s": "耐心 秒",
        "c.erlang_c_agents": "Erlang C 坐席",
        "c.erlang_a_agents": "Erlang A 坐席",
        "c.erlang_a_abandon_percent": "Erlang A 放弃率 %",
        "c.agents_staffed": "在岗坐席",
    },
}


def _t(lang: Lang, key: str, **values: str) -> str:
    text = TEXT[lang].get(key) or TEXT["en"].get(key)
    if text is None:
        return t(lang, key)
    return text.format(**values) if values else text


def cell(value: Any) -> str:
    """As the CSV writes it (app/supervision/http.py csv_cell)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k or '-'}={v}" for k, v in value.items())
    return str(value)


def _table(lang: Lang, table_id: str, rows: list[Mapping[str, Any]], columns: tuple[str, ...]) -> str:
    return table(table_id, rows, columns, {c: _t(lang, "c." + c) for c in columns}, _t(lang, "r.none"))


def table(
    table_id: str,
    rows: Sequence[Mapping[str, Any]],
    columns: tuple[str, ...],
    headers: Mapping[str, str],
    none: str,
) -> str:
    """A report's table (the reports' and the QA report's pages): each cell reads as the CSV's
    cell does, so a test compares the page with the CSV."""
    if not rows:
        return f'<p id="{table_id}-none">{escape(none)}</p>'
    head = "".join(f'<th data-col="{c}">{escape(headers[c])}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell(r[c]))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return (
        f'<table id="{table_id}" class="report"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def menu(lang: Lang, current: str) -> str:
    links = []
    for page, href, key in MENU:
        label = escape(_t(lang, key))
        links.append(
            f"<strong>{label}</strong>" if page == current else f'<a href="{href}" id="to-{page}">{label}</a>'
        )
    return f'<nav class="reports-menu">{" · ".join(links)}</nav>'


def _client(lang: Lang, kind: str, report: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    chart = CHARTS[kind]
    labels = {c: _t(lang, "c." + c) for c in columns}
    right = chart.get("right")
    return {
        **client_texts(lang, ()),
        "report": report,
        "chart": {**chart, "right_label": _t(lang, right) if right else None},
        "labels": labels,
    }


def period_report_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    kind: str,
    report: Mapping[str, Any],
    tables: Mapping[str, tuple[str, ...]],
    notice: str = "",
) -> str:
    """A report over days: the period's form, the chart, the table(s) and CSV links; `notice`,
    why the period asked for was not shown."""
    first, last = str(report["from"]), str(report["to"])
    query = urlencode({"from": first, "to": last, "format": "csv"})
    links = f'<a id="csv" href="/panel/api/reports/{kind}?{escape(query)}">{escape(t(lang, "rep.csv"))}</a>'
    sections = _table(lang, "report", list(report["rows"]), tables["rows"])
    if "choices" in tables:
        links += (
            f' · <a id="csv-choices" href="/panel/api/reports/{kind}?{escape(query)}&amp;table=choices">'
            f"{escape(_t(lang, 'r.csv_choices'))}</a>"
        )
        sections = (
            f"<h2>{escape(_t(lang, 'r.exits'))}</h2>{sections}"
            f"<h2>{escape(_t(lang, 'r.choices'))}</h2>"
            f"{_table(lang, 'choices', list(report['choices']), tables['choices'])}"
        )
    title = _t(lang, dict((p, k) for p, _, k in MENU)[kind])
    body = (
        f"{menu(lang, kind)}<h1>{escape(title)}</h1>{_notice(notice)}"
        f'<form method="get" class="inline report-form">'
        f'<label>{escape(_t(lang, "r.from"))} <input type="date" name="from" value="{escape(first)}">'
        "</label> "
        f'<label>{escape(_t(lang, "r.to"))} <input type="date" name="to" value="{escape(last)}"></label> '
        f'<button type="submit">{escape(t(lang, "rep.show"))}</button></form> {links}'
        f'<p class="note">{escape(_t(lang, "r.zone", zone=str(report["timezone"])))}</p>'
        '<div class="chart"><canvas id="report-chart" height="110"></canvas></div>'
        f"{sections}"
        '<script src="/static/vendor/chart.umd.min.js" defer></script>'
    )
    client = _client(lang, kind, report, tables["rows"])
    return _layout(lang, title, body, csrf=csrf, user_line=user_line, client=client, page="report")


def staffing_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    history: Mapping[str, Any],
    ahead: Mapping[str, Any],
    columns: tuple[str, ...],
    notice: str = "",
) -> str:
    """A day's staffing from its history, and a forecast day (its own chart and table)."""
    minutes = int(history["minutes"])
    options = "".join(
        f'<option value="{m}"{" selected" if m == minutes else ""}>{m}</option>' for m in (15, 30, 60)
    )
    q_history = urlencode({"date": history["date"], "minutes": minutes, "format": "csv"})
    q_ahead = urlencode(
        {
            "date": ahead["date"],
            "minutes": minutes,
            "weeks": ahead["weeks"],
            "volume": ahead["volume_percent"],
            "aht": ahead["aht_percent"],
            "format": "csv",
        }
    )
    title = _t(lang, "r.staffing")
    days = ", ".join(str(d) for d in ahead["from_days"])
    body = (
        f"{menu(lang, 'staffing')}<h1>{escape(title)}</h1>{_notice(notice)}"
        f'<p class="note">{escape(_t(lang, "r.staffing_note"))}</p>'
        '<form method="get" action="/staffing" class="inline report-form">'
        f'<label>{escape(_t(lang, "r.day"))} <input type="date" name="date" '
        f'value="{escape(history["date"])}">'
        f'</label> <label>{escape(t(lang, "rep.minutes"))} <select name="minutes">{options}</select></label> '
        f'<label>{escape(_t(lang, "r.forecast"))} <input type="date" name="forecast" '
        f'value="{escape(ahead["date"])}"></label> '
        f'<label>{escape(_t(lang, "r.weeks"))} <input type="number" name="weeks" min="1" max="12" '
        f'value="{int(ahead["weeks"])}"></label> '
        f'<label>{escape(_t(lang, "r.volume"))} <input type="number" name="volume" min="0" max="1000" '
        f'value="{escape(str(ahead["volume_percent"]))}"></label> '
        f'<label>{escape(_t(lang, "r.aht"))} <input type="number" name="aht" min="1" max="1000" '
        f'value="{escape(str(ahead["aht_percent"]))}"></label> '
        f'<button type="submit">{escape(t(lang, "rep.show"))}</button></form>'
        f'<p class="note">{escape(_t(lang, "r.zone", zone=str(history["timezone"])))}</p>'
        f"<h2>{escape(_t(lang, 'r.day'))} {escape(history['date'])}</h2>"
        f'<a id="csv" href="/panel/api/reports/staffing?{escape(q_history)}">{escape(t(lang, "rep.csv"))}</a>'
        '<div class="chart"><canvas id="report-chart" height="110"></canvas></div>'
        f"{_table(lang, 'report', _local_times(history['rows']), columns)}"
        f"<h2>{escape(_t(lang, 'r.forecast'))} {escape(ahead['date'])}</h2>"
        f'<p class="note">{escape(_t(lang, "r.forecast_note", days=days))}</p>'
        f'<a id="csv-forecast" href="/panel/api/reports/forecast?{escape(q_ahead)}">'
        f"{escape(t(lang, 'rep.csv'))}</a>"
        '<div class="chart"><canvas id="forecast-chart" height="110"></canvas></div>'
        f"{_table(lang, 'forecast', _local_times(ahead['rows']), columns)}"
        '<script src="/static/vendor/chart.umd.min.js" defer></script>'
    )
    client = _client(lang, "staffing", history, columns)
    client["forecast"] = ahead
    return _layout(lang, title, body, csrf=csrf, user_line=user_line, client=client, page="report")


def interval_agents(lang: Lang, report: Mapping[str, Any]) -> str:
    """The interval report's agents' side: a table under the calls, and its CSV."""
    query = urlencode(
        {"date": report["date"], "minutes": report["minutes"], "format": "csv", "table": "agents"}
    )
    return (
        f"<h2>{escape(_t(lang, 'r.interval_agents'))}</h2>"
        f'<a id="csv-agents" href="/panel/api/reports/interval?{escape(query)}">'
        f"{escape(t(lang, 'rep.csv'))}</a>"
        f"{_table(lang, 'agents', _local_times(list(report.get('agents', []))), AGENT_INTERVAL_COLUMNS)}"
    )


def _notice(text: str) -> str:
    return f'<p class="message" role="alert" id="message">{escape(text)}</p>' if text else ""


def _local_times(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Staffing rows start at a time of the center's day: shown as HH:MM there."""
    return [{**r, "start": str(r["start"])[11:16]} for r in rows]
