"""Server-rendered panel pages: small HTML, every value escaped, no inline script or style
(the Content-Security-Policy forbids both). /static/panel.js only enhances: the forms work
without it, it adds live updates over /ws and changes state without reloading."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from app.config import NotReadyReason, SkillLabel
from app.panel.i18n import TEXT, Lang, t

ASSET_VERSION = "8"


def reason_label(lang: Lang, reasons: Sequence[NotReadyReason], code: str | None) -> str:
    if not code:
        return ""
    for r in reasons:
        if r.code == code:
            return (r.zh if lang == "zh" else r.en) or r.en or r.code
    key = f"why.{code}"
    return TEXT[lang].get(key, code)


def skill_label(lang: Lang, labels: Sequence[SkillLabel], skill: str) -> str:
    """A skill's name in the panel's language (`web.skill_labels`), or its YAML name."""
    for label in labels:
        if label.code == skill:
            return (label.zh if lang == "zh" else label.en) or label.en or skill
    return skill


def client_texts(
    lang: Lang, reasons: Sequence[NotReadyReason], skills: Sequence[SkillLabel] = ()
) -> dict[str, Any]:
    """What panel.js needs to label live updates in the page's language."""
    keys = (
        "since",
        "live",
        "offline",
        "phone_registered",
        "phone_not_registered",
        "yes",
        "no",
        "error",
        "sip_bans_none",
        "ban.lift",
        "after_call_note",
    )
    return {
        "lang": lang,
        "skills": {s.code: skill_label(lang, skills, s.code) for s in skills},
        "text": {k: t(lang, k) for k in keys},
        "states": {k.removeprefix("state."): v for k, v in TEXT[lang].items() if k.startswith("state.")},
        "lines": {k.removeprefix("line."): v for k, v in TEXT[lang].items() if k.startswith("line.")},
        "reasons": {
            **{k.removeprefix("why."): v for k, v in TEXT[lang].items() if k.startswith("why.")},
            **{r.code: reason_label(lang, reasons, r.code) for r in reasons},
        },
    }


def _script_json(data: Mapping[str, Any]) -> str:
    # Inside <script> the browser decodes no entities: escape what could end the element instead.
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _layout(
    lang: Lang,
    title: str,
    body: str,
    *,
    csrf: str | None = None,
    user_line: str = "",
    client: Mapping[str, Any] | None = None,
    page: str = "",
) -> str:
    other: Lang = "zh" if lang == "en" else "en"
    head_extra = f'<meta name="csrf-token" content="{escape(csrf)}">' if csrf else ""
    script = f'<script src="/static/panel.js?v={ASSET_VERSION}" defer></script>' if client is not None else ""
    data = (
        '<script type="application/json" id="panel-data">' + _script_json(client) + "</script>"
        if client is not None
        else ""
    )
    sign_out = (
        '<form method="post" action="/logout" class="inline">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<button type="submit" id="sign-out">{escape(t(lang, "sign_out"))}</button></form>'
        if csrf
        else ""
    )
    return (
        "<!doctype html>\n"
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · {escape(t(lang, 'title'))}</title>"
        f'<link rel="stylesheet" href="/static/panel.css?v={ASSET_VERSION}">{head_extra}{script}</head>'
        f'<body data-page="{escape(page)}"><header><strong>{escape(t(lang, "title"))}</strong>'
        f'<span class="who">{escape(user_line)}</span>'
        f'<a class="lang" href="?lang={other}" lang="{"zh-CN" if other == "zh" else "en"}">'
        f"{escape(t(lang, 'other_language'))}</a>{sign_out}</header>"
        f"<main>{body}</main>{data}</body></html>\n"
    )


def login_page(lang: Lang, form_token: str, message: str = "", username: str = "") -> str:
    note = f'<p class="message" role="alert" id="message">{escape(message)}</p>' if message else ""
    body = (
        f"<h1>{escape(t(lang, 'sign_in'))}</h1>{note}"
        '<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="csrf_token" value="{escape(form_token)}">'
        f"<label>{escape(t(lang, 'username'))}"
        f'<input name="username" id="username" autocomplete="username" required maxlength="64"'
        f' value="{escape(username)}" autofocus></label>'
        f"<small>{escape(t(lang, 'username_hint'))}</small>"
        f"<label>{escape(t(lang, 'password'))}"
        '<input name="password" id="password" type="password" autocomplete="current-password"'
        ' required maxlength="256"></label>'
        f'<button type="submit" id="sign-in">{escape(t(lang, "sign_in"))}</button></form>'
    )
    return _layout(lang, t(lang, "sign_in"), body, page="login")


def _time(iso: str | None) -> str:
    if not iso:
        return ""
    return f'<time datetime="{escape(iso)}">{escape(iso[11:19])} UTC</time>'


def _state_detail(lang: Lang, reasons: Sequence[NotReadyReason], agent: Mapping[str, Any]) -> str:
    parts = []
    if agent["state"] == "not_ready" and agent["not_ready_reason"]:
        parts.append(escape(reason_label(lang, reasons, agent["not_ready_reason"])))
    if agent["state_since"]:
        parts.append(escape(t(lang, "since")).replace("{time}", _time(agent["state_since"])))
    return " · ".join(parts)


def _outbound_line(lang: Lang, status: str | None) -> str:
    """The agent's nailed-up outbound line (app/dialer/nailed.py), when there is one."""
    text = t(lang, f"line.{status}") if status else ""
    hidden = "" if status else " hidden"
    return (
        f'<p class="outbound-line" id="outbound-line" data-line="{escape(status or "")}"{hidden}>'
        f"{escape(text)}</p>"
    )


def panel_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    agent: Mapping[str, Any],
    reasons: Sequence[NotReadyReason],
    extra: str = "",  # further sections after the state (the screen pop: app/panel/pop_pages.py)
    softphone: str = "",
) -> str:
    """`softphone`: the browser softphone's widget (app/panel/softphone.py), if the agent has one."""
    state = agent["state"]
    controls = set(agent.get("controls", ()))
    options = "".join(
        f'<option value="{escape(r.code)}">{escape(reason_label(lang, reasons, r.code))}</option>'
        for r in reasons
    )
    phone = t(lang, "phone_registered" if agent["device_registered"] else "phone_not_registered")
    hidden = f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'

    def button(control: str, element_id: str, css: str, key: str) -> str:
        # Every button is on the page; only those that mean something in this state show
        # (app/domain/agent_state.py decides, panel.js follows live changes).
        off = "" if control in controls else " hidden"
        return f'<button type="submit" id="{element_id}" class="{css}"{off}>{escape(t(lang, key))}</button>'

    asking = "not_ready" in controls or "not_ready_after_call" in controls
    next_note = (
        t(lang, "after_call_note", reason=reason_label(lang, reasons, agent.get("not_ready_next")))
        if agent.get("not_ready_next")
        else ""
    )
    body = (
        f'<section class="agent" id="agent" data-agent-id="{escape(agent["id"])}">'
        f"<h1>{escape(t(lang, 'your_state'))}</h1>"
        '<div class="state-line">'
        f'<p class="state state-{escape(state)}" id="state" data-state="{escape(state)}">'
        f"{escape(t(lang, 'state.' + state))}</p>"
        f'<p class="timer" id="state-timer" aria-label="{escape(t(lang, "state_timer"))}"></p></div>'
        f'<p class="detail" id="state-detail">{_state_detail(lang, reasons, agent)}</p>'
        f'<p class="after-call" id="after-call"{"" if next_note else " hidden"}>{escape(next_note)}</p>'
        '<div class="status-line">'
        f'<p class="phone" id="phone" data-registered="{str(agent["device_registered"]).lower()}">'
        f"{escape(phone)}</p>"
        + _outbound_line(lang, agent.get("outbound_line"))
        + f'<p class="live" id="live" data-live="false">{escape(t(lang, "offline"))}</p></div>'
        '<div class="actions">'
        f'<form method="post" action="/panel/state" class="state-form">{hidden}'
        '<input type="hidden" name="state" value="ready">'
        + button("ready", "ready", "ready", "ready")
        + button("stay_ready_after_call", "stay-ready", "ready", "stay_ready_after_call")
        + "</form>"
        f'<form method="post" action="/panel/state" class="state-form">{hidden}'
        '<input type="hidden" name="state" value="not_ready">'
        f'<label id="reason-label"{"" if asking else " hidden"}>{escape(t(lang, "reason"))} '
        f'<select name="reason" id="reason">{options}</select></label>'
        + button("not_ready", "not-ready", "not-ready", "not_ready")
        + button("not_ready_after_call", "not-ready-after", "not-ready", "not_ready_after_call")
        + "</form>"
        + (
            f'<button type="button" id="decline" class="decline"{"" if "decline" in controls else " hidden"}'
            f' data-interaction-id="{escape(str(agent.get("interaction_id") or ""))}">'
            f"{escape(t(lang, 'decline'))}</button>"
        )
        + "</div>"
        '<p class="message" id="message" role="status"></p>'
        "</section>" + softphone + extra
    )
    return _layout(
        lang,
        t(lang, "your_state"),
        body,
        csrf=csrf,
        user_line=user_line,
        client=client_texts(lang, reasons),
        page="agent",
    )


def supervisor_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    agents: Sequence[Mapping[str, Any]],
    reasons: Sequence[NotReadyReason],
    bans: Sequence[Mapping[str, Any]] = (),
    extra: str = "",  # further sections (the experts: app/panel/experts.py)
    skill_labels: Sequence[SkillLabel] = (),
) -> str:
    head = "".join(
        f"<th>{escape(t(lang, k))}</th>" for k in ("agent", "name", "state", "reason", "phone", "skills")
    )
    rows = []
    for a in agents:
        skills = ", ".join(
            f"{escape(skill_label(lang, skill_labels, k))} {v}" for k, v in a["skills"].items()
        )
        reason = reason_label(lang, reasons, a["not_ready_reason"]) if a["state"] == "not_ready" else ""
        rows.append(
            f'<tr data-agent-id="{escape(a["id"])}"><td>{escape(a["id"])}</td><td>{escape(a["name"])}</td>'
            f'<td class="state state-{escape(a["state"])}" data-field="state">'
            f"{escape(t(lang, 'state.' + a['state']))} {_time(a['state_since'])}</td>"
            f'<td data-field="reason">{escape(reason)}</td>'
            f'<td data-field="phone">{escape(t(lang, "yes" if a["device_registered"] else "no"))}</td>'
            f'<td data-field="skills">{skills}</td></tr>'
        )
    table = (
        f'<table id="agents"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        if rows
        else f"<p>{escape(t(lang, 'no_agents'))}</p>"
    )
    body = (
        f"<h1>{escape(t(lang, 'supervisor'))}</h1>"
        f'<p><a href="/wallboard" id="to-wallboard">{escape(t(lang, "wallboard"))}</a> · '
        f'<a href="/reports" id="to-reports">{escape(t(lang, "reports"))}</a></p>{table}'
        f'<p class="live" id="live" data-live="false">{escape(t(lang, "offline"))}</p>'
        f"{_bans_section(lang, bans)}{extra}"
    )
    return _layout(
        lang,
        t(lang, "supervisor"),
        body,
        csrf=csrf,
        user_line=user_line,
        client=client_texts(lang, reasons, skill_labels),
        page="supervisor",
    )


def _bans_section(lang: Lang, bans: Sequence[Mapping[str, Any]]) -> str:
    """The SIP bans in force, each with its Lift button (panel.js keeps the list live)."""
    head = "".join(
        f"<th>{escape(t(lang, 'ban.' + k))}</th>" for k in ("address", "since", "until", "failures")
    )
    rows = "".join(
        f'<tr data-address="{escape(b["address"])}"><td>{escape(b["address"])}</td>'
        f"<td>{_time(b['since'])}</td><td>{_time(b['until'])}</td><td>{int(b['failures'])}</td>"
        f'<td><button type="button" class="lift-ban" data-address="{escape(b["address"])}">'
        f"{escape(t(lang, 'ban.lift'))}</button></td></tr>"
        for b in bans
    )
    empty = "" if bans else " hidden"
    table_hidden = " hidden" if not bans else ""
    return (
        f'<section id="sip-bans"><h2>{escape(t(lang, "sip_bans"))}</h2>'
        f'<p class="note">{escape(t(lang, "sip_bans_note"))}</p>'
        '<p class="message" id="message" role="status"></p>'
        f'<p id="sip-bans-none"{empty}>{escape(t(lang, "sip_bans_none"))}</p>'
        f'<table id="sip-bans-table"{table_hidden}><thead><tr>{head}<th></th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


WALLBOARD_COLUMNS = (
    "waiting", "longest", "sl_today", "sl_30", "asa", "offered", "answered", "abandoned", "short",
    "callbacks", "voicemails", "ready",
)  # fmt: skip


def wallboard_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    board: Mapping[str, Any],
    big: bool,
    reasons: Sequence[NotReadyReason] = (),
) -> str:
    """Queue tiles and agents by state (counts, then each agent with the time in state and the
    Not Ready reason); panel.js fills them from `board` and then live."""
    head = f"<th>{escape(t(lang, 'wb.queue'))}</th>" + "".join(
        f'<th data-col="{c}">{escape(t(lang, "wb." + c))}</th>' for c in WALLBOARD_COLUMNS
    )
    agent_head = "".join(
        f'<th data-col="{c}">{escape(t(lang, k))}</th>'
        for c, k in (("name", "name"), ("state", "state"), ("time", "wb.time_in_state"), ("reason", "reason"))
    )
    size = " big" if big else ""
    body = (
        f"<h1>{escape(t(lang, 'wallboard'))}</h1>"
        f'<p><a href="?big={0 if big else 1}" id="big">{escape(t(lang, "wb.big"))}</a></p>'
        f'<table id="wallboard" class="wallboard{size}"><thead><tr>{head}</tr></thead>'
        "<tbody></tbody></table>"
        f'<h2>{escape(t(lang, "wb.agents"))}</h2><ul id="agent-states" class="agent-states"></ul>'
        f'<table id="wallboard-agents" class="wallboard-agents{size}"><thead><tr>{agent_head}</tr></thead>'
        "<tbody></tbody></table>"
        f'<h2>{escape(t(lang, "wb.campaigns"))}</h2><ul id="campaigns" class="agent-states"></ul>'
        f'<p class="live" id="live" data-live="false">{escape(t(lang, "offline"))}</p>'
    )
    client = {**client_texts(lang, reasons), "board": board, "columns": WALLBOARD_COLUMNS}
    return _layout(
        lang, t(lang, "wallboard"), body, csrf=csrf, user_line=user_line, client=client, page="wallboard"
    )


def reports_page(
    lang: Lang, csrf: str, user_line: str, report: Mapping[str, Any], nav: str = "", after: str = ""
) -> str:
    """The interval report of a day: a chart (Chart.js, bundled) and the table, with CSV;
    `nav` above (the reports' menu), `after` below (the agents' side)."""
    from app.domain.reports import COLUMNS

    day, minutes = str(report["date"]), int(report["minutes"])
    csv_url = f"/panel/api/reports/interval?date={day}&minutes={minutes}&format=csv"
    options = "".join(
        f'<option value="{m}"{" selected" if m == minutes else ""}>{m}</option>' for m in (15, 30, 60)
    )
    head = "".join(f"<th>{escape(t(lang, 'rep.' + c))}</th>" for c in COLUMNS)

    def cell(row: Mapping[str, Any], column: str) -> str:
        value = row[column]
        if column == "start":
            return f"<td>{_time(value)}</td>"
        return f"<td>{'' if value is None else escape(str(value))}</td>"

    rows = "".join("<tr>" + "".join(cell(r, c) for c in COLUMNS) + "</tr>" for r in report["rows"])
    table = (
        f'<table id="report"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        if report["rows"]
        else f'<p id="report-none">{escape(t(lang, "rep.none"))}</p>'
    )
    body = (
        f"{nav}<h1>{escape(t(lang, 'reports'))}</h1>"
        '<form method="get" action="/reports" class="inline report-form">'
        f'<label>{escape(t(lang, "rep.date"))} <input type="date" name="date" value="{escape(day)}"></label> '
        f'<label>{escape(t(lang, "rep.minutes"))} <select name="minutes">{options}</select></label> '
        f'<button type="submit">{escape(t(lang, "rep.show"))}</button></form> '
        f'<a id="csv" href="{escape(csv_url)}">{escape(t(lang, "rep.csv"))}</a>'
        '<div class="chart"><canvas id="report-chart" height="110"></canvas></div>'
        f"{table}{after}"
        '<script src="/static/vendor/chart.umd.min.js" defer></script>'
    )
    client = {**client_texts(lang, ()), "report": report, "labels": {c: t(lang, "rep." + c) for c in COLUMNS}}
    return _layout(
        lang, t(lang, "reports"), body, csrf=csrf, user_line=user_line, client=client, page="reports"
    )


def message_page(lang: Lang, title: str, message: str, csrf: str | None = None) -> str:
    body = f'<h1>{escape(title)}</h1><p class="message" id="message">{escape(message)}</p>'
    body += f'<p><a href="/">{escape(t(lang, "home"))}</a></p>'
    return _layout(lang, title, body, csrf=csrf, page="message")
