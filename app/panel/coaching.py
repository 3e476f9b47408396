"""The supervisor page's "Live calls" section: listen to, whisper to or barge into a call from the
supervisor's own phone (app/supervision/coaching.py carries it out).

Drawn by /static/coach.js from GET /panel/api/supervision/calls; the buttons post to
/panel/api/supervision/calls/{id}/{mode} and /panel/api/supervision/end. Every label is here,
in the page's language; the script sets text only, never HTML.
"""

from __future__ import annotations

from html import escape

from app.panel.i18n import Lang
from app.panel.pages import _script_json as script_json

COACH_ASSET_VERSION = "3"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Live calls",
        "none": "No call to listen to.",
        "caller": "Caller",
        "agent": "Agent",
        "kind": "Call",
        "queue": "Queue",
        "listening": "Listening",
        "actions": "Your phone",
        "listen": "Listen",
        "whisper": "Whisper",
        "barge": "Barge",
        "end": "Hang up",
        "mine.ringing": "Your phone is ringing ({mode})",
        "mine.connected": "On call {call}: {mode}",
        "mine.none": "Pick a call: your phone rings, then you hear it.",
        "mode.listen": "listening (nobody hears you)",
        "mode.whisper": "whispering (only the agent hears you)",
        "mode.barge": "barging in (agent and caller hear you)",
        "mode.barge.caller": "speaking to the caller (no agent yet)",
        "stage.ivr": "in the IVR",
        "stage.waiting": "waiting in line",
        "no_whisper": "No agent yet: nobody to whisper to",
        "failed": "Refused: {message}",
    },
    "zh": {
        "title": "通话中",
        "none": "没有可监听的通话。",
        "caller": "来电号码",
        "agent": "坐席",
        "kind": "通话类型",
        "queue": "队列",
        "listening": "监听者",
        "actions": "您的话机",
        "listen": "监听",
        "whisper": "耳语",
        "barge": "强插",
        "end": "挂断",
        "mine.ringing": "您的话机正在振铃（{mode}）",
        "mine.connected": "通话 {call}：{mode}",
        "mine.none": "选择一个通话：您的话机会振铃，接听后即可听到。",
        "mode.listen": "监听中（无人听到您）",
        "mode.whisper": "耳语中（只有坐席听到您）",
        "mode.barge": "强插中（坐席和客户都听到您）",
        "mode.barge.caller": "正在与客户通话（尚无坐席）",
        "stage.ivr": "在语音导航中",
        "stage.waiting": "排队等待中",
        "no_whisper": "尚无坐席：无人可耳语",
        "failed": "被拒绝：{message}",
    },
}


def _t(lang: Lang, key: str) -> str:
    return escape(TEXT[lang][key])


def live_calls_section(lang: Lang) -> str:
    head = "".join(
        f"<th>{_t(lang, k)}</th>" for k in ("caller", "agent", "kind", "queue", "listening", "actions")
    )
    return (
        f'<section class="coaching"><h2>{_t(lang, "title")}</h2>'
        f'<p id="coach-status" role="status">{_t(lang, "mine.none")}</p>'
        f'<p><button type="button" id="coach-end" hidden>{_t(lang, "end")}</button></p>'
        f'<table id="live-calls"><thead><tr>{head}</tr></thead><tbody></tbody></table>'
        f'<p id="no-live-calls">{_t(lang, "none")}</p></section>'
        '<script type="application/json" id="coach-data">' + script_json({"text": TEXT[lang]}) + "</script>"
        f'<script src="/static/coach.js?v={COACH_ASSET_VERSION}" defer></script>'
    )
