"""The admin's page of the expert directory (/experts): everyone in it, from the YAML and added
here or over the API, and a form to add an expert on an outside number or remove one added.

Plain HTML forms (no script): a refused entry comes back with the error beside its field and
what was typed kept. The checks are the directory's own (app/domain/experts.py `added`), the
same the API's POST /api/experts answers with; this module only reads the form's text fields
into that entry (comma-separated lists, "tag level" pairs) and names the field a refusal is about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from app.panel.i18n import Lang
from app.panel.pages import _layout

FIELDS = ("id", "name", "number", "email", "groups", "expertise", "languages", "max_calls")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Expert directory",
        "intro": "Experts from the configuration stay until the configuration changes; experts on an"
        " outside number can be added and removed here (kept over restarts).",
        "col.id": "Id",
        "col.name": "Name",
        "col.reach": "Reached by",
        "col.groups": "Groups",
        "col.expertise": "Expertise",
        "col.languages": "Languages",
        "col.state": "State",
        "col.source": "From",
        "source.config": "configuration",
        "source.roster": "added here or over the API",
        "reach.panel": "panel and phone",
        "reach.number": "outside number {number}",
        "remove": "Remove",
        "add.title": "Add an expert on an outside number",
        "field.id": "Id (a-z, 0-9, _ and -)",
        "field.name": "Name",
        "field.number": "Number",
        "field.email": "E-mail (for the preview link)",
        "field.groups": "Groups (comma-separated)",
        "field.expertise": "Expertise (e.g. mortgage 8, loans 5)",
        "field.languages": "Languages (e.g. zh, en)",
        "field.max_calls": "Calls at once",
        "add": "Add expert",
        "added": "Expert {id} added.",
        "removed": "Expert {id} removed.",
        "refused": "Not added: see the field marked below.",
        "groups.known": "Groups: {names}",
        "none": "No experts yet.",
    },
    "zh": {
        "title": "专家名录",
        "intro": "配置文件中的专家随配置变化；外部号码的专家可在此添加和删除（重启后保留）。",
        "col.id": "编号",
        "col.name": "姓名",
        "col.reach": "联系方式",
        "col.groups": "专家组",
        "col.expertise": "专长",
        "col.languages": "语言",
        "col.state": "状态",
        "col.source": "来源",
        "source.config": "配置文件",
        "source.roster": "在此或通过 API 添加",
        "reach.panel": "面板与话机",
        "reach.number": "外部号码 {number}",
        "remove": "删除",
        "add.title": "添加外部号码专家",
        "field.id": "编号（a-z、0-9、_ 和 -）",
        "field.name": "姓名",
        "field.number": "号码",
        "field.email": "电子邮件（接收预览链接）",
        "field.groups": "专家组（逗号分隔）",
        "field.expertise": "专长（如 mortgage 8, loans 5）",
        "field.languages": "语言（如 zh, en）",
        "field.max_calls": "同时通话数",
        "add": "添加专家",
        "added": "已添加专家 {id}。",
        "removed": "已删除专家 {id}。",
        "refused": "未添加：请查看下方标出的字段。",
        "groups.known": "专家组：{names}",
        "none": "暂无专家。",
    },
}


class FormProblem(ValueError):
    """A form field that cannot be read into the directory's entry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _t(lang: Lang, key: str, **values: object) -> str:
    text = TEXT[lang][key]
    return escape(text.format(**values) if values else text)


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.replace("，", ",").split(",") if part.strip()]


def entry_of(form: Mapping[str, str]) -> dict[str, Any]:
    """The form's text fields as the entry `added` checks (what was left empty is left out)."""
    entry: dict[str, Any] = {}
    for key in ("id", "name", "number", "email"):
        value = form.get(key, "").strip()
        if value or key in ("id", "name", "number"):
            entry[key] = value
    if groups := _list(form.get("groups", "")):
        entry["groups"] = groups
    if languages := _list(form.get("languages", "")):
        entry["languages"] = languages
    levels: dict[str, int] = {}
    for pair in _list(form.get("expertise", "")):
        tag, _, level = pair.replace(":", " ").rpartition(" ")
        if not tag.strip() or not level.strip().isdigit():
            raise FormProblem("expertise", f"write each as 'tag level', e.g. 'mortgage 8'; got {pair!r}")
        levels[tag.strip()] = int(level)
    if levels:
        entry["expertise"] = levels
    calls = form.get("max_calls", "").strip()
    if calls:
        if not calls.isdigit():
            raise FormProblem("max_calls", "a whole number, 1-10")
        entry["max_calls"] = int(calls)
    return entry


def field_of(message: str) -> str | None:
    """The form field a directory refusal is about ("number: a phone number ..."), if any."""
    head = message.partition(":")[0].strip()
    return head if head in FIELDS else None


def _row(lang: Lang, e: Mapping[str, Any], roster: bool, csrf: str) -> str:
    reach = (
        _t(lang, "reach.panel")
        if e["reach"] == "panel"
        else _t(lang, "reach.number", number=e.get("number") or "")
    )
    remove = (
        f'<form method="post" action="/experts/{escape(str(e["id"]))}/remove" class="inline">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<button type="submit" data-remove="{escape(str(e["id"]))}">{_t(lang, "remove")}</button></form>'
        if roster
        else ""
    )
    expertise = ", ".join(f"{k} {v}" for k, v in e["expertise"].items())
    return (
        f'<tr data-expert-id="{escape(str(e["id"]))}" data-source="{"roster" if roster else "config"}">'
        f"<td>{escape(str(e['id']))}</td><td>{escape(str(e['name']))}</td><td>{reach}</td>"
        f"<td>{escape(', '.join(e['groups']))}</td><td>{escape(expertise)}</td>"
        f"<td>{escape(', '.join(e['languages']))}</td><td>{escape(str(e['state']))}</td>"
        f"<td>{_t(lang, 'source.roster' if roster else 'source.config')}</td><td>{remove}</td></tr>"
    )


def directory_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    experts: Sequence[Mapping[str, Any]],
    roster: frozenset[str],
    groups: Sequence[str],
    *,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    notice: str = "",
) -> str:
    form, errors = form or {}, errors or {}
    cols = ("id", "name", "reach", "groups", "expertise", "languages", "state", "source")
    head = "".join(f"<th>{_t(lang, 'col.' + c)}</th>" for c in cols) + "<th></th>"
    rows = "".join(_row(lang, e, e["id"] in roster, csrf) for e in experts)
    table = (
        f'<table id="expert-directory"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        if experts
        else f"<p>{_t(lang, 'none')}</p>"
    )
    inputs = []
    for f in FIELDS:
        kind = ' type="email"' if f == "email" else ""
        error = errors.get(f)
        err = f'<span class="field-error" role="alert" id="error-{f}">{escape(error)}</span>' if error else ""
        invalid = ' aria-invalid="true"' if error else ""
        inputs.append(
            f"<label>{_t(lang, 'field.' + f)} "
            f'<input name="{f}" id="expert-{f}"{kind}{invalid} value="{escape(form.get(f, ""))}"'
            f' maxlength="200"></label>{err}'
        )
    note = f'<p class="message" role="status" id="message">{escape(notice)}</p>' if notice else ""
    known = _t(lang, "groups.known", names=", ".join(groups)) if groups else ""
    body = (
        f"<h1>{_t(lang, 'title')}</h1>{note}<p>{_t(lang, 'intro')}</p>{table}"
        f"<h2>{_t(lang, 'add.title')}</h2><p>{known}</p>"
        '<form method="post" action="/experts" id="add-expert" class="expert-form">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        + "".join(f"<p>{i}</p>" for i in inputs)
        + f'<button type="submit" id="add-expert-submit">{_t(lang, "add")}</button></form>'
    )
    return _layout(lang, TEXT[lang]["title"], body, csrf=csrf, user_line=user_line, page="experts")


def link(lang: Lang) -> str:
    """The way to this page, on the supervisor's page of an admin."""
    return f'<p><a href="/experts" id="to-experts">{_t(lang, "title")}</a></p>'


def notice_text(lang: Lang, key: str, **values: object) -> str:
    text = TEXT[lang][key]
    return text.format(**values) if values else text
