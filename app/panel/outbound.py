"""The agent page's outbound section: the campaigns the agent works, and the preview card.

Rendered here with the campaigns known when the page loads; /static/outbound.js asks for the
next customer of a preview campaign, shows the card with Call and Skip and counts down the
campaign's `preview_hold_s`, then hands the customer back (a skip: no attempt spent). Every
call placed goes through the dialer and its outbound policy (app/dialer/service.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from app.panel.i18n import TEXT, Lang, t
from app.panel.pages import _script_json as script_json

OUTBOUND_ASSET_VERSION = "1"


def outbound_section(lang: Lang, campaigns: Sequence[Mapping[str, Any]]) -> str:
    if not campaigns:
        return ""
    items = []
    for c in campaigns:
        name, mode, active = str(c["name"]), str(c["mode"]), bool(c["active"])
        status = t(lang, "out.active" if active else "out.stopped")
        button = (
            f'<button type="button" class="preview-next" data-campaign="{escape(name)}"'
            f' data-hold-s="{float(c["preview_hold_s"]):g}">{escape(t(lang, "out.next"))}</button>'
            if mode == "preview" and active
            else ""
        )
        items.append(
            f'<li data-campaign="{escape(name)}" data-mode="{escape(mode)}">'
            f'<strong>{escape(name)}</strong> <span class="mode">{escape(t(lang, "out.mode." + mode))}</span>'
            f' · <span class="status">{escape(status)}</span> {button}</li>'
        )
    texts = {k: v for k, v in TEXT[lang].items() if k.startswith("out.")}
    return (
        '<section class="outbound" id="outbound">'
        f"<h2>{escape(t(lang, 'out.title'))}</h2>"
        f'<ul class="campaigns" id="my-campaigns">{"".join(items)}</ul>'
        '<div class="preview-card" id="preview-card" hidden aria-live="polite">'
        '<p class="preview-head"><strong id="preview-phone"></strong>'
        ' <span class="countdown" id="preview-countdown"></span></p>'
        '<dl id="preview-details"></dl>'
        f'<button type="button" id="preview-call" class="ready">{escape(t(lang, "out.call"))}</button> '
        f'<button type="button" id="preview-skip">{escape(t(lang, "out.skip"))}</button></div>'
        '<p class="preview-message" id="preview-message" role="status"></p>'
        '<script type="application/json" id="outbound-data">' + script_json({"text": texts}) + "</script>"
        f'<script src="/static/outbound.js?v={OUTBOUND_ASSET_VERSION}" defer></script></section>'
    )
