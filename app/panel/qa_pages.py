"""The QA desk (/qa): find recorded calls and replay them. Server-rendered like the other panel
pages: the search is a plain GET form and the results a table, so it works without script;
/static/qa.js adds the speed buttons (1x, 1.5x, 2x) and the marks on the player's time line.
The routes are app/recording/http.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from app.panel.i18n import Lang
from app.panel.pages import _layout, _script_json

QA_ASSET_VERSION = "3"
FILTERS = (
    "since",
    "until",
    "agent",
    "queue",
    "ani",
    "disposition",
    "min_s",
    "max_s",
    "min_score",
    "max_score",
    "words",
)

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "QA desk",
        "search": "Search",
        "since": "From (date)",
        "until": "To (date)",
        "agent": "Agent",
        "queue": "Queue",
        "ani": "Caller number",
        "disposition": "Disposition",
        "min_s": "Longer than (s)",
        "max_s": "Shorter than (s)",
        "min_score": "Score from",
        "max_score": "Score to",
        "words": "Words in the transcript",
        "transcript": "Transcript",
        "who.caller": "Caller",
        "who.center": "Agent",
        "who.ivr": "IVR",
        "transcript.none": "No transcript.",
        "transcript.queued": "The transcript is being made.",
        "transcript.failed": "The transcript could not be made.",
        "behind": "Transcripts waiting: {waiting} (the oldest for {oldest} s)",
        "started": "Started",
        "part": "Part",
        "part.conversation": "with agents",
        "part.ivr": "IVR",
        "duration": "Length",
        "agents": "Agents",
        "play": "Play",
        "download": "Download",
        "none": "No recording matches.",
        "player": "Replay",
        "speed": "Speed",
        "marks": "Marked spans",
        "mark.pause": "recording paused",
        "mark.hold": "caller on hold",
        "mark.silence": "long silence",
        "mark.overtalk": "both talking",
        "channels": "Left: caller · right: the center",
        "checksum": "SHA-256",
        "evaluations": "Evaluations",
        "evaluator": "Evaluator",
        "score": "Score",
        "failed_critical": "Failed critical",
        "amended": "Amended",
        "calibration": "Calibration: {count} evaluations, {low}–{high}, spread {spread}",
        "score_call": "Score this call",
        "yes": "Yes",
        "no": "No",
        "na": "N/A",
        "comment": "Comment",
        "submit": "Submit evaluation",
        "scored": "Result: {message}",
        "critical": "critical",
        "mine": "Your evaluations",
        "mine_none": "No evaluation of your calls yet.",
        "form": "Form",
        "when": "When",
        "status": "Your answer",
        "acknowledge": "Acknowledge",
        "dispute": "Dispute",
        "acknowledged": "Acknowledged",
        "disputed": "Disputed",
    },
    "zh": {
        "title": "质检台",
        "search": "搜索",
        "since": "起始日期",
        "until": "截止日期",
        "agent": "坐席",
        "queue": "队列",
        "ani": "主叫号码",
        "disposition": "处理结果",
        "min_s": "长于（秒）",
        "max_s": "短于（秒）",
        "min_score": "最低得分",
        "max_score": "最高得分",
        "words": "转写文本中的词",
        "transcript": "转写文本",
        "who.caller": "客户",
        "who.center": "坐席",
        "who.ivr": "语音导航",
        "transcript.none": "没有转写文本。",
        "transcript.queued": "正在生成转写文本。",
        "transcript.failed": "转写文本生成失败。",
        "behind": "等待转写：{waiting} 个（最早的已等 {oldest} 秒）",
        "started": "开始时间",
        "part": "部分",
        "part.conversation": "人工通话",
        "part.ivr": "语音导航",
        "duration": "时长",
        "agents": "坐席",
        "play": "播放",
        "download": "下载",
        "none": "没有匹配的录音。",
        "player": "回放",
        "speed": "速度",
        "marks": "标记时段",
        "mark.pause": "录音暂停",
        "mark.hold": "客户保持中",
        "mark.silence": "长时间静音",
        "mark.overtalk": "双方同时讲话",
        "channels": "左声道：客户 · 右声道：坐席",
        "checksum": "SHA-256",
        "evaluations": "评分记录",
        "evaluator": "评分人",
        "score": "得分",
        "failed_critical": "致命项未通过",
        "amended": "已修订",
        "calibration": "校准：{count} 份评分，{low}–{high}，极差 {spread}",
        "score_call": "为本通话评分",
        "yes": "是",
        "no": "否",
        "na": "不适用",
        "comment": "备注",
        "submit": "提交评分",
        "scored": "结果：{message}",
        "critical": "致命项",
        "mine": "我的评分",
        "mine_none": "您的通话还没有评分。",
        "form": "评分表",
        "when": "时间",
        "status": "您的回复",
        "acknowledge": "确认",
        "dispute": "申诉",
        "acknowledged": "已确认",
        "disputed": "已申诉",
    },
}


def _t(lang: Lang, key: str) -> str:
    return TEXT[lang].get(key) or TEXT["en"][key]


def _length(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _player(lang: Lang, r: Mapping[str, Any]) -> str:
    src = f"/panel/api/recordings/{escape(r['id'])}/audio"
    speeds = "".join(
        f'<button type="button" class="speed" data-rate="{v}">{label}</button>'
        for v, label in (("1", "1×"), ("1.5", "1.5×"), ("2", "2×"))
    )
    marks = "".join(
        f'<li data-kind="{escape(str(s["kind"]))}" data-start="{s["start_s"]}" data-end="{s["end_s"]}">'
        f"{_length(float(s['start_s']))}–{_length(float(s['end_s']))} "
        f"{escape(_t(lang, 'mark.' + str(s['kind'])))}</li>"
        for s in r["spans"]
    )
    return (
        f'<section class="qa-player" id="player" data-recording-id="{escape(r["id"])}"'
        f' data-duration="{r["duration_s"]}">'
        f"<h2>{escape(_t(lang, 'player'))}: {escape(r['ani'])} · {escape(', '.join(r['agents']))}"
        f" · {escape(r['started_at'][:19].replace('T', ' '))} UTC</h2>"
        f'<audio id="audio" controls preload="metadata" src="{src}"></audio>'
        '<canvas class="waveform" id="waveform" width="900" height="80"></canvas>'
        f'<div class="timeline" id="timeline"></div>'
        f'<p>{escape(_t(lang, "speed"))}: <span id="speeds">{speeds}</span>'
        f' <span id="rate">1×</span></p>'
        f"<p>{escape(_t(lang, 'channels'))}</p>"
        f'<h3>{escape(_t(lang, "marks"))}</h3><ul id="marks">{marks}</ul>'
        f'<p><a id="download" href="{src}?download=1">{escape(_t(lang, "download"))}</a>'
        f" · {escape(_t(lang, 'checksum'))} <code>{escape(r['sha256'])}</code></p>"
        "</section>"
    )


def _clock(seconds: float) -> str:
    tenths = round(seconds * 10)
    return f"{tenths // 600}:{tenths // 10 % 60:02d}.{tenths % 10}"


def _who(line: Mapping[str, Any]) -> str:
    return "ivr" if line.get("who") == "IVR" else str(line["side"])


def _transcript(lang: Lang, t: Mapping[str, Any]) -> str:
    """Each line with who spoke and when; a click on a line seeks the player there (qa.js)."""
    lines = "".join(
        f'<li class="line side-{escape(ln["side"])}" data-side="{escape(ln["side"])}"'
        f' data-start="{ln["start_s"]:.2f}" data-end="{ln["end_s"]:.2f}">'
        f'<button type="button" class="seek"><span class="who">{escape(_t(lang, "who." + _who(ln)))}</span>'
        f' <span class="at">{_clock(ln["start_s"])}</span></button>'
        f' <span class="text">{escape(ln["text"])}</span></li>'
        for ln in t["lines"]
    )
    if lines:
        inner = f'<ol id="transcript-lines">{lines}</ol>'
    else:
        state = {"queued": "transcript.queued", "running": "transcript.queued", "failed": "transcript.failed"}
        inner = f'<p id="transcript-state">{escape(_t(lang, state.get(t["state"], "transcript.none")))}</p>'
    return (
        f'<section class="qa-transcript" id="transcript" data-state="{escape(t["state"])}">'
        f"<h2>{escape(_t(lang, 'transcript'))}</h2>{inner}</section>"
    )


def qa_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    filters: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
    playing: Mapping[str, Any] | None,
    scoring: Mapping[str, Any] | None = None,
    transcript: Mapping[str, Any] | None = None,
    behind: Mapping[str, Any] | None = None,
) -> str:
    fields = "".join(
        f'<label>{escape(_t(lang, k))} <input name="{k}" id="f-{k}" value="{escape(filters.get(k, ""))}"'
        f'{" type=date" if k in ("since", "until") else ""} size="12"></label> '
        for k in FILTERS
    )
    form = (
        f'<form method="get" action="/qa" class="qa-search" id="search">{fields}'
        f'<button type="submit" id="search-go">{escape(_t(lang, "search"))}</button></form>'
    )
    kept = {k: v for k, v in filters.items() if v}
    head = "".join(
        f"<th>{escape(_t(lang, k))}</th>"
        for k in ("started", "part", "ani", "queue", "agents", "duration", "disposition", "score", "play")
    )
    body_rows = []
    for r in rows:
        link = "/qa?" + urlencode({**kept, "play": r["id"]})
        body_rows.append(
            f'<tr data-recording-id="{escape(r["id"])}">'
            f"<td>{escape(r['started_at'][:19].replace('T', ' '))}</td>"
            f"<td>{escape(_t(lang, 'part.' + r['part']))}</td>"
            f"<td>{escape(r['ani'])}</td><td>{escape(r['queue'] or '')}</td>"
            f"<td>{escape(', '.join(r['agents']))}</td><td>{_length(r['duration_s'])}</td>"
            f"<td>{escape(r['disposition'] or '')}</td>"
            f"<td>{'' if r['score'] is None else format(r['score'], 'g')}</td>"
            f'<td><a class="play" href="{escape(link)}">{escape(_t(lang, "play"))}</a></td></tr>'
        )
    table = (
        f'<table id="recordings"><thead><tr>{head}</tr></thead><tbody>{"".join(body_rows)}</tbody></table>'
        if body_rows
        else f'<p id="no-recordings">{escape(_t(lang, "none"))}</p>'
    )
    player = _player(lang, playing) if playing is not None else ""
    if playing is not None and transcript is not None:
        player = f'<div class="qa-replay">{player}{_transcript(lang, transcript)}</div>'
    if playing is not None and scoring is not None:
        player += _scoring(lang, csrf, playing, filters, scoring)
    data = _script_json(
        {"marks": {k: _t(lang, "mark." + k) for k in ("pause", "hold", "silence", "overtalk")}}
    )
    body = (
        f'<link rel="stylesheet" href="/static/qa.css?v={QA_ASSET_VERSION}">'
        f"<h1>{escape(_t(lang, 'title'))}</h1>{form}{_behind(lang, behind)}{player}{table}"
        f'<script type="application/json" id="qa-data">{data}</script>'
        f'<script src="/static/qa.js?v={QA_ASSET_VERSION}" defer></script>'
    )
    return _layout(lang, _t(lang, "title"), body, csrf=csrf, user_line=user_line, page="qa")


def _behind(lang: Lang, behind: Mapping[str, Any] | None) -> str:
    if behind is None:
        return ""
    text = _t(lang, "behind").format(waiting=behind["waiting"], oldest=f"{behind['oldest_wait_s']:g}")
    return (
        f'<p id="transcripts-behind" data-waiting="{behind["waiting"]}"'
        f' data-oldest-wait-s="{behind["oldest_wait_s"]}">{escape(text)}</p>'
    )


def message(lang: Lang, csrf: str, user_line: str, text: str) -> str:
    body = f'<h1>{escape(_t(lang, "title"))}</h1><p class="message" id="message">{escape(text)}</p>'
    return _layout(lang, _t(lang, "title"), body, csrf=csrf, user_line=user_line, page="qa")


def _scoring(
    lang: Lang, csrf: str, playing: Mapping[str, Any], filters: Mapping[str, str], scoring: Mapping[str, Any]
) -> str:
    """The evaluations of the call being played, their spread, and the form to score it."""
    rows = "".join(
        f'<tr data-evaluation-id="{escape(e["id"])}"><td>{escape(e["evaluator"])}</td>'
        f'<td class="score">{e["score"]:g}</td><td>{escape(", ".join(e["failed_critical"]))}</td>'
        f"<td>{escape(e['amended']['why'] if e['amended'] else '')}</td></tr>"
        for e in scoring["evaluations"]
    )
    head = "".join(
        f"<th>{escape(_t(lang, k))}</th>" for k in ("evaluator", "score", "failed_critical", "amended")
    )
    cal = {k: format(v, "g") if isinstance(v, float) else v for k, v in scoring["calibration"].items()}
    spread = (
        f'<p id="calibration">{escape(_t(lang, "calibration").format(**cal))}</p>'
        if int(cal["count"]) > 1
        else ""
    )
    message = (
        f'<p class="message" id="scored" role="status">'
        f"{escape(_t(lang, 'scored').format(message=scoring['message']))}</p>"
        if scoring["message"]
        else ""
    )
    out = (
        f'<section class="qa-scoring" id="scoring"><h2>{escape(_t(lang, "evaluations"))}</h2>{message}'
        + (
            f'<table id="evaluations"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            if rows
            else ""
        )
        + spread
    )
    form = scoring["form"]
    if form is None:
        return out + "</section>"
    fields = []
    for section in form.sections:
        fields.append(f"<fieldset><legend>{escape(section.title)}</legend>")
        for q in section.questions:
            choices = [("yes", _t(lang, "yes")), ("no", _t(lang, "no"))]
            if q.type == "scale":
                choices = [(str(v), str(v)) for v in range(q.max + 1)]
            if q.na:
                choices.append(("na", _t(lang, "na")))
            radios = "".join(
                f'<label><input type="radio" name="q.{escape(q.id)}" value="{v}" required>'
                f" {escape(label)}</label> "
                for v, label in choices
            )
            flag = f" <strong>({escape(_t(lang, 'critical'))})</strong>" if q.critical else ""
            fields.append(
                f'<p class="question" data-question="{escape(q.id)}">{escape(q.text)}{flag}<br>{radios}</p>'
            )
        fields.append("</fieldset>")
    return out + (
        f"<h3>{escape(_t(lang, 'score_call'))}: {escape(form.title)}</h3>"
        '<form method="post" action="/qa/evaluate" id="evaluate">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<input type="hidden" name="recording" value="{escape(playing["id"])}">'
        f'<input type="hidden" name="form" value="{escape(form.name)}">'
        f'<input type="hidden" name="ani" value="{escape(filters.get("ani", ""))}">'
        + "".join(fields)
        + f"<label>{escape(_t(lang, 'comment'))}"
        ' <textarea name="comment" maxlength="2000"></textarea></label>'
        f'<button type="submit" id="evaluate-go">{escape(_t(lang, "submit"))}</button></form></section>'
    )


def mine_page(lang: Lang, csrf: str, user_line: str, evaluations: Sequence[Mapping[str, Any]]) -> str:
    """An agent's evaluations, each acknowledged or disputed (with a comment) by a plain form."""
    head = "".join(
        f"<th>{escape(_t(lang, k))}</th>"
        for k in ("when", "form", "evaluator", "score", "failed_critical", "amended", "status")
    )
    rows = []
    for e in evaluations:
        if e["acknowledged_at"]:
            status = escape(_t(lang, "disputed" if e["disputed"] else "acknowledged"))
            if e["agent_comment"]:
                status += f": {escape(e['agent_comment'])}"
        else:
            hidden = (
                f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
                f'<input type="hidden" name="evaluation" value="{escape(e["id"])}">'
            )
            status = (
                f'<form method="post" action="/qa/mine/answer" class="inline">{hidden}'
                f'<button type="submit" name="dispute" value="0" class="acknowledge">'
                f"{escape(_t(lang, 'acknowledge'))}</button></form> "
                f'<form method="post" action="/qa/mine/answer" class="inline">{hidden}'
                '<input name="comment" required maxlength="2000" size="24"'
                f' aria-label="{escape(_t(lang, "comment"))}">'
                f'<button type="submit" name="dispute" value="1" class="dispute">'
                f"{escape(_t(lang, 'dispute'))}</button></form>"
            )
        rows.append(
            f'<tr data-evaluation-id="{escape(e["id"])}"><td>{escape((e["submitted_at"] or "")[:16])}</td>'
            f"<td>{escape(e['form'])}</td><td>{escape(e['evaluator'])}</td>"
            f'<td class="score">{e["score"]:g}</td><td>{escape(", ".join(e["failed_critical"]))}</td>'
            f"<td>{escape(e['amended']['why'] if e['amended'] else '')}</td>"
            f'<td class="status">{status}</td></tr>'
        )
    table = (
        f'<table id="my-evaluations"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        if rows
        else f'<p id="no-evaluations">{escape(_t(lang, "mine_none"))}</p>'
    )
    body = f"<h1>{escape(_t(lang, 'mine'))}</h1>{table}"
    return _layout(lang, _t(lang, "mine"), body, csrf=csrf, user_line=user_line, page="qa-mine")
