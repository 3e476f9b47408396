"""The agent page's expert sections (issue 13): "Ask an expert" under the call box, for the agent
on a call, and the offer's preview, for an expert, with Accept, Reject and a countdown.

Both are drawn by /static/experts.js: the ask box from GET /panel/api/experts and the call as
GET /panel/api/calls/current describes it; the preview from the websocket's `expert_offer`
message (or GET /panel/api/experts/offer for a panel opened during the offer). Every label is
here, in the page's language; the script sets text only, never HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from app.panel.i18n import Lang
from app.panel.pages import _script_json as script_json

EXPERTS_ASSET_VERSION = "2"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "ask.title": "Ask an expert",
        "ask.target": "Who",
        "ask.pick": "choose a group, an expertise or an expert",
        "ask.group": "Group: {name}",
        "ask.expertise": "Expertise: {name}",
        "ask.expert": "{name} ({state})",
        "ask.note": "Note for the expert",
        "ask.consult": "Consult expert",
        "ask.blind": "Transfer to expert",
        "ask.offering": "Offered to {expert}: waiting for Accept or Reject",
        "ask.ringing": "{expert} accepted: their phone rings",
        "ask.talking": "{expert} is on the line",
        "offer.title": "Call offered to you",
        "offer.customer": "Customer",
        "offer.ivr": "From the IVR",
        "offer.note": "Agent's note",
        "offer.asked_by": "Asked by",
        "offer.reason": "Why you",
        "offer.queue": "queue {queue}",
        "offer.left": "{seconds} s left",
        "offer.accept": "Accept",
        "offer.reject": "Reject",
        "offer.closed.timeout": "The offer timed out: you are Not Ready.",
        "offer.closed.cancel": "The offer was withdrawn.",
        "offer.closed.reject": "Rejected.",
        "offer.closed.accept": "Accepted: your phone rings.",
        "error": "Refused: {message}",
        "board.title": "Experts",
        "board.expert": "Expert",
        "board.reach": "Reached by",
        "board.state": "State",
        "board.calls": "Calls",
        "board.expertise": "Expertise",
        "board.available": "Can take a call",
        "reach.panel": "panel and phone",
        "reach.number": "outside number",
        "state.ready": "Ready",
        "state.not_ready": "Not Ready",
        "state.busy": "Busy",
        "state.offline": "Offline",
        "yes": "yes",
        "no": "no",
    },
    "zh": {
        "ask.title": "求助专家",
        "ask.target": "对象",
        "ask.pick": "选择专家组、专长或专家",
        "ask.group": "专家组：{name}",
        "ask.expertise": "专长：{name}",
        "ask.expert": "{name}（{state}）",
        "ask.note": "给专家的备注",
        "ask.consult": "咨询专家",
        "ask.blind": "转给专家",
        "ask.offering": "已推送给{expert}：等待接受或拒绝",
        "ask.ringing": "{expert}已接受：正在振铃",
        "ask.talking": "{expert}已接通",
        "offer.title": "有来电推送给您",
        "offer.customer": "客户",
        "offer.ivr": "IVR 收集的信息",
        "offer.note": "坐席备注",
        "offer.asked_by": "求助坐席",
        "offer.reason": "推送原因",
        "offer.queue": "队列 {queue}",
        "offer.left": "剩余 {seconds} 秒",
        "offer.accept": "接受",
        "offer.reject": "拒绝",
        "offer.closed.timeout": "推送超时：您已置为未就绪。",
        "offer.closed.cancel": "推送已撤回。",
        "offer.closed.reject": "已拒绝。",
        "offer.closed.accept": "已接受：您的电话正在振铃。",
        "error": "被拒绝：{message}",
        "board.title": "专家",
        "board.expert": "专家",
        "board.reach": "联系方式",
        "board.state": "状态",
        "board.calls": "通话",
        "board.expertise": "专长",
        "board.available": "可接来电",
        "reach.panel": "面板与话机",
        "reach.number": "外部号码",
        "state.ready": "就绪",
        "state.not_ready": "未就绪",
        "state.busy": "忙",
        "state.offline": "离线",
        "yes": "是",
        "no": "否",
    },
}


def _t(lang: Lang, key: str) -> str:
    return escape(TEXT[lang][key])


def expert_sections(lang: Lang) -> str:
    return (
        f'<link rel="stylesheet" href="/static/experts.css?v={EXPERTS_ASSET_VERSION}">'
        '<section class="experts-ask" id="experts-ask" hidden>'
        f"<h3>{_t(lang, 'ask.title')}</h3>"
        f'<label>{_t(lang, "ask.target")} <select id="experts-target">'
        f'<option value="">{_t(lang, "ask.pick")}</option></select></label>'
        f'<label>{_t(lang, "ask.note")} <textarea id="experts-note" rows="2" maxlength="500">'
        "</textarea></label>"
        f'<button type="button" id="experts-consult">{_t(lang, "ask.consult")}</button>'
        f'<button type="button" id="experts-blind">{_t(lang, "ask.blind")}</button>'
        '<p class="experts-status" id="experts-status" role="status"></p>'
        "</section>"
        '<section class="expert-offer" id="expert-offer" hidden aria-live="assertive">'
        f"<h2>{_t(lang, 'offer.title')}</h2>"
        "<dl>"
        f'<dt>{_t(lang, "offer.customer")}</dt><dd id="expert-offer-customer"></dd>'
        f'<dt>{_t(lang, "offer.ivr")}</dt><dd id="expert-offer-ivr"></dd>'
        f'<dt data-row="note">{_t(lang, "offer.note")}</dt><dd data-row="note" id="expert-offer-note"></dd>'
        f'<dt data-row="asked-by">{_t(lang, "offer.asked_by")}</dt>'
        '<dd data-row="asked-by" id="expert-offer-asked-by"></dd>'
        f'<dt>{_t(lang, "offer.reason")}</dt><dd id="expert-offer-reason"></dd>'
        "</dl>"
        '<p class="expert-offer-left" id="expert-offer-left"></p>'
        f'<button type="button" id="expert-offer-accept">{_t(lang, "offer.accept")}</button>'
        f'<button type="button" id="expert-offer-reject">{_t(lang, "offer.reject")}</button>'
        "</section>"
        '<p class="expert-offer-closed" id="expert-offer-closed" role="status"></p>'
        '<script type="application/json" id="experts-data">' + script_json({"text": TEXT[lang]}) + "</script>"
        f'<script src="/static/experts.js?v={EXPERTS_ASSET_VERSION}" defer></script>'
    )


def _state(lang: Lang, e: Mapping[str, Any]) -> str:
    label = TEXT[lang].get(f"state.{e['state']}", str(e["state"]))
    return f"{label} ({e['reason']})" if e.get("reason") else label


def supervisor_section(lang: Lang, experts: Sequence[Mapping[str, Any]]) -> str:
    """The experts' live state on the supervisor's page (kept current by /static/experts-board.js)."""
    if not experts:
        return ""
    head = "".join(
        f"<th>{_t(lang, k)}</th>"
        for k in (
            "board.expert",
            "board.reach",
            "board.state",
            "board.calls",
            "board.expertise",
            "board.available",
        )
    )
    rows = "".join(
        f'<tr data-expert-id="{escape(str(e["id"]))}"><td>{escape(str(e["name"]))}</td>'
        f"<td>{_t(lang, 'reach.' + str(e['reach']))}</td>"
        f'<td data-field="state" data-state="{escape(str(e["state"]))}">{escape(_state(lang, e))}</td>'
        f'<td data-field="calls">{int(e["calls"])}</td>'
        f"<td>{escape(', '.join(f'{k} {v}' for k, v in e['expertise'].items()))}</td>"
        f'<td data-field="available">{_t(lang, "yes" if e["available"] else "no")}</td></tr>'
        for e in experts
    )
    return (
        f'<section class="experts-board"><h2>{_t(lang, "board.title")}</h2>'
        f'<table id="experts"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>'
        '<script type="application/json" id="experts-board-data">'
        + script_json({"text": TEXT[lang]})
        + "</script>"
        f'<script src="/static/experts-board.js?v={EXPERTS_ASSET_VERSION}" defer></script>'
    )
