"""The fax desk (/faxes) for supervisors: every fax sent and received with a first-page preview
and its PDF, the outbound jobs with their tries and a Resend button, and a form to fax catalogue
documents to a number. Plain forms and links, so it works without script. The routes are
app/fax/desk.py; the JSON API app/fax/http.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from app.domain.fax import FaxDocument, JobStatus
from app.panel.i18n import Lang
from app.panel.pages import _layout

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Faxes",
        "send": "Fax documents to a number",
        "number": "Fax number",
        "documents": "Documents",
        "upload": "and/or a PDF",
        "send_button": "Send",
        "no_documents": "The catalogue has no documents (fax.documents).",
        "jobs": "Outbound jobs",
        "faxes": "Faxes sent and received",
        "refresh": "Refresh",
        "when": "When",
        "direction": "Direction",
        "in": "received",
        "out": "sent",
        "mode.on_call": "on the caller's call",
        "mode.job": "job",
        "mode.in": "fax line",
        "status": "Result",
        "pages": "Pages",
        "station": "Station",
        "error": "Error",
        "preview": "First page",
        "pdf": "PDF",
        "tries": "Tries",
        "next": "Next try",
        "by": "Queued by",
        "resend": "Resend",
        "none": "No faxes yet.",
        "no_jobs": "No jobs yet.",
        "queued": "Queued: {documents} to {number}.",
        "status.ok": "sent in full",
        "status.partial": "partly",
        "status.failed": "failed",
        "status.sending": "in progress",
        "status.queued": "waiting",
        "status.receiving": "in progress",
        "status.sent": "sent",
        "status.refused": "refused by the outbound policy",
    },
    "zh": {
        "title": "传真",
        "send": "向号码发送传真文件",
        "number": "传真号码",
        "documents": "文件",
        "upload": "和/或PDF文件",
        "send_button": "发送",
        "no_documents": "文件目录为空（fax.documents）。",
        "jobs": "外发任务",
        "faxes": "收发的传真",
        "refresh": "刷新",
        "when": "时间",
        "direction": "方向",
        "in": "接收",
        "out": "发送",
        "mode.on_call": "来电中发送",
        "mode.job": "任务",
        "mode.in": "传真专线",
        "status": "结果",
        "pages": "页数",
        "station": "传真标识",
        "error": "错误",
        "preview": "首页",
        "pdf": "PDF",
        "tries": "尝试次数",
        "next": "下次尝试",
        "by": "发起人",
        "resend": "重新发送",
        "none": "暂无传真。",
        "no_jobs": "暂无任务。",
        "queued": "已排队：{documents} 发往 {number}。",
        "status.ok": "全部发送",
        "status.partial": "部分",
        "status.failed": "失败",
        "status.sending": "进行中",
        "status.queued": "等待中",
        "status.receiving": "进行中",
        "status.sent": "已发送",
        "status.refused": "外呼策略拒绝",
    },
}


def text(lang: Lang, key: str, **values: str) -> str:
    text = TEXT[lang].get(key, TEXT["en"].get(key, key))
    return text.format(**values) if values else text


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else escape(str(value or ""))


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'


def faxes_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    faxes: Sequence[Mapping[str, Any]],
    jobs: Sequence[Mapping[str, Any]],
    documents: Sequence[FaxDocument],
    message: str = "",
    error: str = "",
) -> str:
    notice = (
        f'<p class="message error" id="fax-error" role="alert">{escape(error)}</p>'
        if error
        else f'<p class="message" id="fax-message">{escape(message)}</p>'
        if message
        else ""
    )
    body = (
        f"<h1>{escape(text(lang, 'title'))}</h1>{notice}"
        f"{_send_form(lang, csrf, documents)}"
        f"<h2>{escape(text(lang, 'jobs'))}</h2>{_jobs(lang, csrf, jobs)}"
        f"<h2>{escape(text(lang, 'faxes'))} "
        f'<a href="/faxes" id="refresh">{escape(text(lang, "refresh"))}</a></h2>'
        f"{_faxes(lang, faxes)}"
    )
    return _layout(lang, text(lang, "title"), body, csrf=csrf, user_line=user_line, page="faxes")


def _send_form(lang: Lang, csrf: str, documents: Sequence[FaxDocument]) -> str:
    """The catalogue's documents and/or an uploaded PDF to a number. The CSRF token comes before
    the file in the form (app/fax/uploads.py checks it before keeping any of the file)."""
    boxes = "".join(
        f'<label><input type="checkbox" name="documents" value="{escape(d.code)}"> {escape(d.code)} '
        f"{escape(d.title_zh if lang == 'zh' and d.title_zh else d.title_en)} ({d.pages})</label> "
        for d in documents
    )
    listed = (
        f'<span class="documents">{escape(text(lang, "documents"))}: {boxes}</span>'
        if documents
        else f'<span id="no-documents">{escape(text(lang, "no_documents"))}</span> '
    )
    return (
        '<form method="post" action="/faxes/send" id="send-fax" enctype="multipart/form-data"><fieldset>'
        f"<legend>{escape(text(lang, 'send'))}</legend>{_csrf(csrf)}"
        f'<label>{escape(text(lang, "number"))} <input name="number" inputmode="tel" required '
        'pattern="[+0-9]{3,20}" autocomplete="off"></label> '
        f"{listed}"
        f'<label>{escape(text(lang, "upload"))} <input type="file" name="pdf" accept="application/pdf,.pdf">'
        "</label> "
        f'<button type="submit">{escape(text(lang, "send_button"))}</button></fieldset></form>'
    )


def _jobs(lang: Lang, csrf: str, jobs: Sequence[Mapping[str, Any]]) -> str:
    if not jobs:
        return f'<p id="jobs-none">{escape(text(lang, "no_jobs"))}</p>'
    head = "".join(
        f"<th>{escape(text(lang, k))}</th>"
        for k in ("when", "number", "documents", "status", "tries", "next", "error", "by", "resend")
    )
    rows = "".join(
        f'<tr data-job-id="{escape(j["id"])}"><td>{_when(j["created_at"])}</td><td>{escape(j["number"])}</td>'
        f"<td>{escape(', '.join(j.get('contents') or j['documents']))}</td>"
        f'<td class="status">{escape(text(lang, "status." + str(j["status"])))}</td><td>{j["attempts"]}</td>'
        f"<td>{_when(j['next_attempt_at']) if j['status'] == 'queued' else ''}</td>"
        f"<td>{escape(j['last_error'] or '')}</td><td>{escape(j.get('created_by') or '')}</td>"
        f"<td>{_resend(lang, csrf, j)}</td></tr>"
        for j in jobs
    )
    return f'<table id="jobs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _resend(lang: Lang, csrf: str, job: Mapping[str, Any]) -> str:
    if not JobStatus(job["status"]).finished:  # still to be tried: nothing to resend
        return ""
    return (
        f'<form method="post" action="/faxes/jobs/{escape(job["id"])}/resend" class="inline">{_csrf(csrf)}'
        f'<button type="submit" class="resend">{escape(text(lang, "resend"))}</button></form>'
    )


def _faxes(lang: Lang, faxes: Sequence[Mapping[str, Any]]) -> str:
    if not faxes:
        return f'<p id="faxes-none">{escape(text(lang, "none"))}</p>'
    head = "".join(
        f"<th>{escape(text(lang, k))}</th>"
        for k in (
            "when",
            "direction",
            "number",
            "station",
            "documents",
            "pages",
            "status",
            "error",
            "preview",
        )
    )

    def row(f: Mapping[str, Any]) -> str:
        pages = f"{f['pages'] or 0}" + (f" / {f['pages_expected']}" if f.get("pages_expected") else "")
        has_pages = bool(f.get("pdf_path") or f.get("tiff_path")) and (f.get("pages") or 0) > 0
        preview = (
            f'<a href="/panel/api/faxes/{escape(f["id"])}/pdf" class="pdf" target="_blank" rel="noopener">'
            f'<img src="/panel/api/faxes/{escape(f["id"])}/preview.png" '
            f'alt="{escape(text(lang, "preview"))}" loading="lazy" width="110">'
            f"<br>{escape(text(lang, 'pdf'))}</a>"
            if has_pages
            else ""
        )
        mode = text(lang, "mode." + str(f.get("mode") or ""))
        return (
            f'<tr data-fax-id="{escape(f["id"])}"><td>{_when(f["started_at"])}</td>'
            f"<td>{escape(text(lang, str(f['direction'])))} · {escape(mode)}</td>"
            f"<td>{escape(f.get('number') or '')}</td><td>{escape(f.get('station_id') or '')}</td>"
            f"<td>{escape(', '.join(f.get('documents') or []))}</td><td>{pages}</td>"
            f'<td class="status">{escape(text(lang, "status." + str(f["status"])))}</td>'
            f"<td>{escape(f.get('error') or '')}</td><td>{preview}</td></tr>"
        )

    return (
        f'<table id="faxes"><thead><tr>{head}</tr></thead><tbody>{"".join(map(row, faxes))}</tbody></table>'
    )
