"""The call section of the agent's page: hold, mute, keys, hang-up, transfer and consult.

The buttons are drawn here, hidden; /static/calls.js shows them while the agent has a call
(`GET /panel/api/calls/current`) and sends each one to `POST /panel/api/calls/<id>/<action>`
(app/calls/http.py), which hands it to the call's own task (app/calls/conversation.py).
The controls need the script: they act on a live call, so there is no plain-form fallback.

`CallWatch` keeps open panels in step with calls that change without their agent's state
changing (a consultation answered, a transfer completed by someone else): when a call's
control events are saved, every agent holding that interaction gets a `{"type": "call"}`
message and their page asks for the call again.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

from app.bus import InteractionSaved
from app.panel.i18n import TEXT, Lang, t
from app.panel.live import LiveHub
from app.panel.pages import _script_json as script_json
from app.routing.desk import RoutingService

log = logging.getLogger(__name__)

CALLS_ASSET_VERSION = "5"
# Saved events after which a panel showing the call must look again.
CHANGE_KINDS = frozenset(
    {
        "connected",
        "consult_answered",
        "consult_ended",
        "transferred",
        "ended",
        # On a call we place: the recording notice playing, the agent's microphone off meanwhile.
        "recording_notice",
        "recording_notice_over",
    }
)
KEYPAD = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")


def changes_call(kind: str) -> bool:
    return kind in CHANGE_KINDS or kind.startswith(("control_", "expert_"))


class CallWatch:
    """Follows saved interactions (the bus): pushes "look again" to the agents on a call."""

    def __init__(self, routing: RoutingService, hub: LiveHub) -> None:
        self.routing = routing
        self.hub = hub

    def interaction_saved(self, notice: InteractionSaved) -> None:
        interaction_id = notice.interaction_id
        if not any(changes_call(e.kind) for e in notice.events):
            return
        for agent in self.routing.agents.values():
            if agent.interaction_id == interaction_id:
                sent = self.hub.push(agent.id, {"type": "call", "interaction_id": interaction_id})
                log.debug("interaction %s: call changed, agent %s told (%d)", interaction_id, agent.id, sent)


def calls_client_data(lang: Lang) -> dict[str, Any]:
    return {"lang": lang, "text": {k: v for k, v in TEXT[lang].items() if k.startswith("call.")}}


def _button(
    lang: Lang, key: str, element_id: str, action: str = "", css: str = "", hidden: bool = False
) -> str:
    attrs = f' data-action="{escape(action)}"' if action else ""
    attrs += f' class="{escape(css)}"' if css else ""
    attrs += " hidden" if hidden else ""
    return f'<button type="button" id="{escape(element_id)}"{attrs}>{escape(t(lang, key))}</button>'


def call_section(lang: Lang) -> str:
    """The section, hidden until the script finds a call; every label in the page's language."""
    keys = "".join(
        f'<button type="button" class="key" data-digit="{escape(k)}">{escape(k)}</button>' for k in KEYPAD
    )
    return (
        f'<link rel="stylesheet" href="/static/calls.css?v={CALLS_ASSET_VERSION}">'
        '<section class="call" id="call" hidden aria-live="polite">'
        '<div class="call-head">'
        f'<h2 id="call-title">{escape(t(lang, "call.title"))}</h2>'
        f'<span class="call-timer" id="call-timer" title="{escape(t(lang, "call.timer"))}"></span></div>'
        '<p class="call-status" id="call-status"></p>'
        '<p class="call-part" id="call-part" hidden></p>'
        '<div class="call-actions" id="call-actions">'
        + _button(lang, "call.hold", "call-hold", "hold")
        + _button(lang, "call.resume", "call-resume", "resume", hidden=True)
        + _button(lang, "call.mute", "call-mute", "mute")
        + _button(lang, "call.unmute", "call-unmute", "unmute", hidden=True)
        + _button(lang, "call.keypad", "call-keypad-toggle")
        + _button(lang, "call.pause_recording", "call-rec-pause", "pause_recording", hidden=True)
        + _button(lang, "call.resume_recording", "call-rec-resume", "resume_recording", hidden=True)
        + _button(lang, "call.hangup", "call-hangup", "hangup", "hangup")
        + "</div>"
        '<div class="call-keypad" id="call-keypad" hidden role="group"'
        f' aria-label="{escape(t(lang, "call.keypad"))}">{keys}</div>'
        '<div class="call-transfer" id="call-transfer">'
        f'<label>{escape(t(lang, "call.target"))} <select id="call-target">'
        f'<option value="">{escape(t(lang, "call.pick"))}</option></select></label>'
        f' <label>{escape(t(lang, "call.number"))} <input id="call-number" inputmode="tel"'
        ' autocomplete="off" size="14" pattern="[+0-9]*"></label>'
        + _button(lang, "call.transfer", "call-transfer-go", "transfer")
        + _button(lang, "call.consult", "call-consult", "consult")
        + "</div>"
        '<div class="call-consulting" id="call-consulting" hidden>'
        '<p class="call-consult-status" id="call-consult-status"></p>'
        + _button(lang, "call.complete", "call-complete", "complete")
        + _button(lang, "call.conference", "call-conference", "conference")
        + _button(lang, "call.cancel", "call-cancel", "cancel")
        + "</div>"
        '<p class="call-message" id="call-message" role="alert"></p>'
        '<script type="application/json" id="call-data">' + script_json(calls_client_data(lang)) + "</script>"
        f'<script src="/static/calls.js?v={CALLS_ASSET_VERSION}" defer></script>'
        "</section>"
    )
