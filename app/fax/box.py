"""The call box's "Send by fax": catalogue documents (titles in the page's language) and an
optional PDF to the caller's fax number, during the call and on the last-call card after it.

Drawn here hidden; /static/fax.js follows the screen pop's card (the call it shows, whether the
call is on or over, the caller's number), prefills the number, posts the form to
`POST /panel/api/interactions/<id>/faxes` (app/fax/agent.py) and keeps the call's jobs and
their results live from the websocket's `fax_job` messages. It needs the script, like the
call's controls: it belongs to a call the script knows of.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from app.domain.fax import FaxDocument
from app.panel.i18n import TEXT, Lang, t
from app.panel.pages import _script_json as script_json

FAX_ASSET_VERSION = "1"


def _title(lang: Lang, doc: FaxDocument) -> str:
    return doc.title_zh if lang == "zh" and doc.title_zh else doc.title_en


def fax_client_data(lang: Lang) -> dict[str, Any]:
    return {"lang": lang, "text": {k: v for k, v in TEXT[lang].items() if k.startswith("fax.")}}


def fax_section(lang: Lang, documents: Sequence[FaxDocument], max_upload_mb: float) -> str:
    boxes = "".join(
        f'<label class="fax-doc"><input type="checkbox" name="documents" value="{escape(d.code)}"> '
        f"{escape(_title(lang, d))} <small>({d.pages})</small></label>"
        for d in documents
    )
    docs = (
        f'<fieldset class="fax-docs"><legend>{escape(t(lang, "fax.documents"))}</legend>{boxes}</fieldset>'
        if documents
        else ""
    )
    mb = f"{max_upload_mb:g}"
    return (
        f'<link rel="stylesheet" href="/static/fax.css?v={FAX_ASSET_VERSION}">'
        '<section class="fax-box" id="fax-box" hidden aria-live="polite">'
        f"<h2>{escape(t(lang, 'fax.title'))}</h2>"
        '<form id="fax-form" enctype="multipart/form-data" novalidate>'
        f'<label>{escape(t(lang, "fax.number"))} <input name="number" id="fax-number" inputmode="tel"'
        ' autocomplete="off" maxlength="32" size="16"></label>'
        f"{docs}"
        f'<label class="fax-upload">{escape(t(lang, "fax.upload"))} '
        '<input type="file" name="pdf" id="fax-pdf" accept="application/pdf,.pdf">'
        f" <small>{escape(t(lang, 'fax.upload_hint', mb=mb))}</small></label>"
        f'<button type="submit" id="fax-send">{escape(t(lang, "fax.send"))}</button>'
        '<p class="fax-error" id="fax-error" role="alert"></p>'
        '<p class="fax-note" id="fax-note" role="status"></p>'
        "</form>"
        f'<h3 id="fax-jobs-title" hidden>{escape(t(lang, "fax.jobs"))}</h3>'
        '<ul class="fax-jobs" id="fax-jobs"></ul>'
        '<script type="application/json" id="fax-data">' + script_json(fax_client_data(lang)) + "</script>"
        f'<script src="/static/fax.js?v={FAX_ASSET_VERSION}" defer></script>'
        "</section>"
    )
