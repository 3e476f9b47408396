"""The agent page's screen pop and after-call work sections.

The pop itself is drawn by /static/pop.js from the websocket's `pop` message (it only exists
once a call is offered). The after-call form is rendered here, so it also works without
JavaScript while the agent is on a call or in wrap-up; the script adds the countdown and
saves in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from app.config import WebSettings, WrapUpCode
from app.panel.i18n import TEXT, Lang, t
from app.panel.pages import _script_json as script_json
from app.panel.pages import skill_label

POP_ASSET_VERSION = "5"
# Text keys the script needs, by prefix.
_CLIENT_PREFIXES = ("pop.", "acw.", "tier.", "outcome.", "idle.", "rr.")


def code_label(lang: Lang, codes: Sequence[WrapUpCode], code: str) -> str:
    for c in codes:
        if c.code == code:
            return (c.zh if lang == "zh" else c.en) or c.en or c.code
    return code


def pop_client_data(lang: Lang, web: WebSettings) -> dict[str, Any]:
    return {
        "lang": lang,
        "skills": {s.code: skill_label(lang, web.skill_labels, s.code) for s in web.skill_labels},
        "text": {k: v for k, v in TEXT[lang].items() if k.startswith(_CLIENT_PREFIXES)},
        "codes": {c.code: code_label(lang, web.wrap_up_codes, c.code) for c in web.wrap_up_codes},
        "idle_s": web.idle_not_ready_s,
    }


def pop_section(lang: Lang, csrf: str, web: WebSettings, agent: Mapping[str, Any]) -> str:
    """The pop's place on the page, the after-call form, and the script that fills them."""
    working = agent.get("state") in ("on_call", "wrap_up") and agent.get("interaction_id")
    interaction_id = str(agent.get("interaction_id") or "") if working else ""
    options = f'<option value="">{escape(t(lang, "acw.pick"))}</option>' + "".join(
        f'<option value="{escape(c.code)}">{escape(code_label(lang, web.wrap_up_codes, c.code))}</option>'
        for c in web.wrap_up_codes
    )
    hidden = "" if working else " hidden"
    return (
        f'<link rel="stylesheet" href="/static/pop.css?v={POP_ASSET_VERSION}">'
        '<section class="pop" id="pop" hidden aria-live="polite"></section>'
        f'<section class="acw" id="acw"{hidden}>'
        f"<h2>{escape(t(lang, 'acw.title'))}</h2>"
        '<p class="countdown" id="acw-countdown" hidden></p>'
        '<form method="post" action="/panel/disposition" id="acw-form">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<input type="hidden" name="interaction_id" id="acw-interaction" value="{escape(interaction_id)}">'
        f"<label>{escape(t(lang, 'acw.code'))} "
        f'<select name="code" id="acw-code" required aria-describedby="acw-code-error">{options}</select>'
        '<span class="field-error" id="acw-code-error" role="alert"></span></label>'
        f'<label class="notes">{escape(t(lang, "acw.notes"))}'
        '<textarea name="notes" id="acw-notes" rows="3" maxlength="4000" aria-describedby="acw-notes-error">'
        '</textarea><span class="field-error" id="acw-notes-error" role="alert"></span></label>'
        f'<button type="submit" id="acw-save">{escape(t(lang, "acw.save"))}</button>'
        '<span class="saved" id="acw-saved" role="status"></span>'
        "</form></section>"
        '<script type="application/json" id="pop-data">'
        + script_json(pop_client_data(lang, web))
        + "</script>"
        f'<script src="/static/pop.js?v={POP_ASSET_VERSION}" defer></script>'
    )
