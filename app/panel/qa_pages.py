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
from app.panel.report_pages import table

QA_ASSET_VERSION = "5"
FILTERS = (
    "since",
    "until",
    "agent",
    "queue",
    "campaign",
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
        "campaign": "Campaign",
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
        "transfer.blind": "blind transfer to {to}",
        "transfer.consult": "consultation with {to}",
        "transfer.consult_completed": "handed over to {to}",
        "transfer.conference": "conference with {to}",
        "transfer.expert": "expert hand-over: {to}",
        "to.agent": "agent {name}",
        "to.queue": "queue {name}",
        "to.number": "{name}",
        "to.expert": "expert {name}",
        "call_facts": "The call",
        "ivr_path": "IVR path",
        "ivr_none": "no IVR",
        "reached_queue": "to the queue {queue}",
        "no_disposition": "none given",
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
        "part.voicemail": "voicemail only",
        "voicemail": "Voicemail",
        "voicemail_tag": "+ voicemail",
        "voicemails_of_call": "Message left on this call",
        "recordings_of_call": "This call's recordings",
        "open": "Open",
        "report": "QA report",
        "report_link": "QA report (trend, CSV)",
        "desk_link": "QA desk",
        "by": "Per",
        "by.agent": "agent",
        "by.queue": "queue",
        "per": "Each",
        "per.week": "week",
        "per.day": "day",
        "show": "Show",
        "from": "From",
        "to": "To",
        "zone": "Weeks (from Monday) and days in {zone}. A mean counts each evaluation's latest amendment.",
        "totals": "Over the period",
        "trend": "Trend",
        "csv": "Download CSV",
        "csv_totals": "Download the totals as CSV",
        "report_none": "No evaluation in this period.",
        "c.period": "week or day",
        "c.agent": "agent",
        "c.queue": "queue",
        "c.evaluations": "evaluations",
        "c.mean_score": "mean score",
        "c.failed_critical": "critical fails",
        "c.disputed": "disputed",
        "c.change": "change (last - first)",
        "score_axis": "mean score",
    },
    "zh": {
        "title": "质检台",
        "search": "搜索",
        "since": "起始日期",
        "until": "截止日期",
        "agent": "坐席",
        "queue": "队列",
        "campaign": "外呼活动",
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
        "transfer.blind": "盲转给{to}",
        "transfer.consult": "与{to}咨询",
        "transfer.consult_completed": "已转交给{to}",
        "transfer.conference": "与{to}三方通话",
        "transfer.expert": "转交专家：{to}",
        "to.agent": "坐席 {name}",
        "to.queue": "队列 {name}",
        "to.number": "{name}",
        "to.expert": "专家 {name}",
        "call_facts": "本通话",
        "ivr_path": "语音导航路径",
        "ivr_none": "未经过语音导航",
        "reached_queue": "进入队列 {queue}",
        "no_disposition": "未填写",
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
        "part.voicemail": "仅留言",
        "voicemail": "语音留言",
        "voicemail_tag": "+ 留言",
        "voicemails_of_call": "本通话的留言",
        "recordings_of_call": "本通话的录音",
        "open": "打开",
        "report": "质检报表",
        "report_link": "质检报表（趋势、CSV）",
        "desk_link": "质检台",
        "by": "按",
        "by.agent": "坐席",
        "by.queue": "队列",
        "per": "周期",
        "per.week": "周",
        "per.day": "日",
        "show": "显示",
        "from": "开始日期",
        "to": "结束日期",
        "zone": "周（从周一起）和日均为 {zone} 时区。平均分按每份评分的最新修订计算。",
        "totals": "整个时段",
        "trend": "趋势",
        "csv": "下载 CSV",
        "csv_totals": "下载汇总 CSV",
        "report_none": "该时段没有评分。",
        "c.period": "周或日",
        "c.agent": "坐席",
        "c.queue": "队列",
        "c.evaluations": "评分数",
        "c.mean_score": "平均分",
        "c.failed_critical": "致命项未通过",
        "c.disputed": "申诉",
        "c.change": "变化（末期 - 首期）",
        "score_axis": "平均分",
    },
}


def _t(lang: Lang, key: str) -> str:
    return TEXT[lang].get(key) or TEXT["en"][key]


def _length(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _to(lang: Lang, to: str) -> str:
    """'agent:1002' as the desk says it: 'agent 1002'."""
    kind, _, name = to.partition(":")
    if not name or "to." + kind not in TEXT["en"]:
        return to or "?"
    return _t(lang, "to." + kind).format(name=name)


def _marks(lang: Lang, r: Mapping[str, Any]) -> str:
    """The spans (pauses, holds, long silences, overtalk) and the transfers, in time order; a
    transfer is a moment (its start is its end)."""
    items: list[tuple[float, str]] = []
    for s in r["spans"]:
        items.append(
            (
                float(s["start_s"]),
                f'<li data-kind="{escape(str(s["kind"]))}"'
                f' data-start="{s["start_s"]}" data-end="{s["end_s"]}">'
                f"{_length(float(s['start_s']))}–{_length(float(s['end_s']))} "
                f"{escape(_t(lang, 'mark.' + str(s['kind'])))}</li>",
            )
        )
    for m in r.get("transfers", ()):
        what = _t(lang, "transfer." + str(m["how"])).format(to=_to(lang, str(m["to"])))
        items.append(
            (
                float(m["at_s"]),
                f'<li data-kind="transfer" data-how="{escape(str(m["how"]))}"'
                f' data-to="{escape(str(m["to"]))}"'
                f' data-start="{m["at_s"]}" data-end="{m["at_s"]}">'
                f"{_length(float(m['at_s']))} {escape(what)}</li>",
            )
        )
    return "".join(html for _, html in sorted(items, key=lambda item: item[0]))


def _call_facts(lang: Lang, r: Mapping[str, Any]) -> str:
    """Beside the player: the caller's way through the IVR (by the flow's labels) and the
    agent's wrap-up code."""
    path = r.get("ivr_path") or {"steps": (), "queue": None}
    steps = "".join(
        f'<li data-choice="{escape(str(st["choice"]))}">{escape(str(st["label"]))}</li>'
        for st in path["steps"]
    )
    if path["queue"]:
        queue = escape(_t(lang, "reached_queue").format(queue=path["queue"]))
        steps += f'<li class="reached" data-queue="{escape(str(path["queue"]))}">{queue}</li>'
    route = (
        f'<ol id="ivr-path">{steps}</ol>' if steps else f'<p id="ivr-path">{escape(_t(lang, "ivr_none"))}</p>'
    )
    code = r.get("disposition")
    label = r.get("disposition_label")
    said = f"{label} ({code})" if code and label and label != code else code or _t(lang, "no_disposition")
    return (
        f'<aside class="call-facts" id="call-facts"><h3>{escape(_t(lang, "call_facts"))}</h3>'
        f"<h4>{escape(_t(lang, 'ivr_path'))}</h4>{route}"
        f"<h4>{escape(_t(lang, 'disposition'))}</h4>"
        f'<p id="disposition" data-code="{escape(code or "")}">{escape(said)}</p></aside>'
    )


def _player(lang: Lang, r: Mapping[str, Any]) -> str:
    src = f"/panel/api/recordings/{escape(r['id'])}/audio"
    speeds = "".join(
        f'<button type="button" class="speed" data-rate="{v}">{label}</button>'
        for v, label in (("1", "1×"), ("1.5", "1.5×"), ("2", "2×"))
    )
    return (
        f'<section class="qa-player" id="player" data-recording-id="{escape(r["id"])}"'
        f' data-duration="{r["duration_s"]}">'
        f"<h2>{escape(_t(lang, 'player'))}: {escape(r['ani'])} · {escape(', '.join(r['agents']))}"
        f" · {escape(r['started_at'][:19].replace('T', ' '))} UTC</h2>"
        f'<div class="player-and-facts"><div class="player-main">'
        f'<audio id="audio" controls preload="metadata" src="{src}"></audio>'
        '<canvas class="waveform" id="waveform" width="900" height="80"></canvas>'
        f'<div class="timeline" id="timeline"></div>'
        f'<p>{escape(_t(lang, "speed"))}: <span id="speeds">{speeds}</span>'
        f' <span id="rate">1×</span></p>'
        f"<p>{escape(_t(lang, 'channels'))}</p>"
        f'<h3>{escape(_t(lang, "marks"))}</h3><ul id="marks">{_marks(lang, r)}</ul>'
        f'<p><a id="download" href="{src}?download=1">{escape(_t(lang, "download"))}</a>'
        f" · {escape(_t(lang, 'checksum'))} <code>{escape(r['sha256'])}</code></p>"
        f"</div>{_call_facts(lang, r)}</div>"
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
    voicemails: Sequence[Mapping[str, Any]] = (),
    playing_voicemail: Mapping[str, Any] | None = None,
    transcript: Mapping[str, Any] | None = None,
    behind: Mapping[str, Any] | None = None,
) -> str:
    """The search, the player (of a recording, with the messages left on its call; or of a
    message) and the results: recordings, and calls that only left a message."""
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
        for k in (
            "started",
            "part",
            "ani",
            "queue",
            "campaign",
            "agents",
            "duration",
            "disposition",
            "score",
            "play",
        )
    )
    body_rows = []
    for r in rows:
        if r.get("kind") == "voicemail":
            body_rows.append(_voicemail_row(lang, kept, r))
            continue
        link = "/qa?" + urlencode({**kept, "play": r["id"]})
        tag = (
            f' <span class="vm-tag">{escape(_t(lang, "voicemail_tag"))}</span>' if r.get("voicemails") else ""
        )
        body_rows.append(
            f'<tr data-recording-id="{escape(r["id"])}">'
            f"<td>{escape(r['started_at'][:19].replace('T', ' '))}</td>"
            f"<td>{escape(_t(lang, 'part.' + r['part']))}{tag}</td>"
            f"<td>{escape(r['ani'])}</td><td>{escape(r['queue'] or '')}</td>"
            f'<td class="campaign">{escape(r.get("campaign") or "")}</td>'
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
    if playing is not None and voicemails:
        player += _linked_voicemails(lang, kept, voicemails)
    if playing_voicemail is not None:
        player = _voicemail_player(lang, kept, playing_voicemail)
    if playing is not None and scoring is not None:
        player += _scoring(lang, csrf, playing, filters, scoring)
    data = _script_json(
        {"marks": {k: _t(lang, "mark." + k) for k in ("pause", "hold", "silence", "overtalk")}}
    )
    body = (
        f'<link rel="stylesheet" href="/static/qa.css?v={QA_ASSET_VERSION}">'
        f"<h1>{escape(_t(lang, 'title'))}</h1>"
        f'<p><a href="/qa/report" id="to-qa-report">{escape(_t(lang, "report_link"))}</a></p>'
        f"{form}{_behind(lang, behind)}{player}{table}"
        f'<script type="application/json" id="qa-data">{data}</script>'
        f'<script src="/static/qa.js?v={QA_ASSET_VERSION}" defer></script>'
    )
    return _layout(lang, _t(lang, "title"), body, csrf=csrf, user_line=user_line, page="qa")


def _voicemail_row(lang: Lang, kept: Mapping[str, str], v: Mapping[str, Any]) -> str:
    """A call that left a message and has no recording: found by the same filters."""
    link = "/qa?" + urlencode({**kept, "voicemail": v["id"]})
    return (
        f'<tr data-voicemail-id="{escape(v["id"])}">'
        f"<td>{escape(v['recorded_at'][:19].replace('T', ' '))}</td>"
        f"<td>{escape(_t(lang, 'part.voicemail'))}</td>"
        f"<td>{escape(v['ani'])}</td><td>{escape(v['queue'] or '')}</td><td></td>"
        f"<td>{escape(', '.join(v['agents']))}</td><td>{_length(float(v['duration_s'] or 0))}</td>"
        f"<td>{escape(v['disposition'] or '')}</td><td></td>"
        f'<td><a class="play" href="{escape(link)}">{escape(_t(lang, "play"))}</a></td></tr>'
    )


def _voicemail_src(v: Mapping[str, Any]) -> str:
    return f"/panel/api/qa/voicemails/{escape(v['id'])}/audio"


def _linked_voicemails(lang: Lang, kept: Mapping[str, str], voicemails: Sequence[Mapping[str, Any]]) -> str:
    """Beside a recording: the messages left on the same call, each with its own player."""
    items = "".join(
        f'<li class="voicemail" data-voicemail-id="{escape(v["id"])}">'
        f'<audio class="voicemail-audio" controls preload="metadata" src="{_voicemail_src(v)}"></audio>'
        f" {escape(v['recorded_at'][:19].replace('T', ' '))} UTC · {_length(float(v['duration_s'] or 0))}"
        f' · <a class="open" href="/qa?{escape(urlencode({**kept, "voicemail": v["id"]}))}">'
        f"{escape(_t(lang, 'open'))}</a>"
        f' · <a href="{_voicemail_src(v)}?download=1">{escape(_t(lang, "download"))}</a></li>'
        for v in voicemails
    )
    return (
        f'<section class="qa-voicemails" id="voicemails"><h3>{escape(_t(lang, "voicemails_of_call"))}</h3>'
        f"<ul>{items}</ul></section>"
    )


def _voicemail_player(lang: Lang, kept: Mapping[str, str], v: Mapping[str, Any]) -> str:
    """A message in the player, with links to its call's recordings (the IVR part, say:
    `call_recordings`, their views)."""
    src = _voicemail_src(v)
    speeds = "".join(
        f'<button type="button" class="speed" data-rate="{r}">{label}</button>'
        for r, label in (("1", "1×"), ("1.5", "1.5×"), ("2", "2×"))
    )
    recordings = "".join(
        f'<li><a class="recording" data-recording-id="{escape(r["id"])}"'
        f' href="/qa?{escape(urlencode({**kept, "play": r["id"]}))}">'
        f"{escape(_t(lang, 'part.' + r['part']))} · {escape(r['started_at'][:19].replace('T', ' '))} UTC"
        f" · {_length(float(r['duration_s']))}</a></li>"
        for r in v.get("call_recordings", ())
    )
    linked = (
        f'<h3>{escape(_t(lang, "recordings_of_call"))}</h3><ul id="call-recordings">{recordings}</ul>'
        if recordings
        else ""
    )
    return (
        f'<section class="qa-player" id="player" data-voicemail-id="{escape(v["id"])}"'
        f' data-duration="{float(v["duration_s"] or 0)}">'
        f"<h2>{escape(_t(lang, 'voicemail'))}: {escape(v['ani'])} · {escape(v['queue'] or '')}"
        f" · {escape(v['recorded_at'][:19].replace('T', ' '))} UTC</h2>"
        f'<audio id="audio" controls preload="metadata" src="{src}"></audio>'
        f'<p>{escape(_t(lang, "speed"))}: <span id="speeds">{speeds}</span> <span id="rate">1×</span></p>'
        f'<p><a id="download" href="{src}?download=1">{escape(_t(lang, "download"))}</a></p>'
        f"{linked}</section>"
    )


def report_page(
    lang: Lang,
    csrf: str,
    user_line: str,
    report: Mapping[str, Any],
    columns: Mapping[str, tuple[str, ...]],
    client_base: Mapping[str, Any],
    notice: str = "",
) -> str:
    """The QA report: its form, the trend chart (panel.js draws it with Chart.js: a line of the
    mean score per agent or queue, the evaluations as bars), the table per period and the
    totals, each with its CSV."""
    by, per = str(report["by"]), str(report["per"])
    first, last = str(report["from"]), str(report["to"])

    def options(name: str, values: tuple[str, ...], chosen: str) -> str:
        return "".join(
            f'<option value="{v}"{" selected" if v == chosen else ""}>'
            f"{escape(_t(lang, f'{name}.{v}'))}</option>"
            for v in values
        )

    query = {"by": by, "per": per, "from": first, "to": last, "format": "csv"}
    csv_rows = "/panel/api/qa/report?" + urlencode(query)
    csv_totals = "/panel/api/qa/report?" + urlencode({**query, "table": "totals"})
    notice_html = f'<p class="message" role="alert" id="message">{escape(notice)}</p>' if notice else ""
    body = (
        f'<p><a href="/qa" id="to-qa-desk">{escape(_t(lang, "desk_link"))}</a></p>'
        f"<h1>{escape(_t(lang, 'report'))}</h1>{notice_html}"
        '<form method="get" action="/qa/report" class="inline report-form" id="qa-report-form">'
        f'<label>{escape(_t(lang, "by"))} <select name="by" id="f-by">'
        f"{options('by', ('agent', 'queue'), by)}</select></label> "
        f'<label>{escape(_t(lang, "per"))} <select name="per" id="f-per">'
        f"{options('per', ('week', 'day'), per)}</select></label> "
        f'<label>{escape(_t(lang, "from"))} <input type="date" name="from" id="f-from"'
        f' value="{escape(first)}"></label> '
        f'<label>{escape(_t(lang, "to"))} <input type="date" name="to" id="f-to"'
        f' value="{escape(last)}"></label> '
        f'<button type="submit" id="report-go">{escape(_t(lang, "show"))}</button></form>'
        f'<p class="note">{escape(_t(lang, "zone").format(zone=report["timezone"]))}</p>'
        f"<h2>{escape(_t(lang, 'trend'))}</h2>"
        f'<a id="csv" href="{escape(csv_rows)}">{escape(_t(lang, "csv"))}</a>'
        '<div class="chart"><canvas id="report-chart" height="110"></canvas></div>'
        f"{_report_table(lang, 'report', report['rows'], columns['rows'])}"
        f"<h2>{escape(_t(lang, 'totals'))}</h2>"
        f'<a id="csv-totals" href="{escape(csv_totals)}">{escape(_t(lang, "csv_totals"))}</a>'
        f"{_report_table(lang, 'totals', report['totals'], columns['totals'])}"
        '<script src="/static/vendor/chart.umd.min.js" defer></script>'
    )
    client = {
        **client_base,
        "report": {"rows": report["rows"]},
        "chart": {
            "x": ["period"],
            "series": by,
            "bars": ["evaluations"],
            "lines": ["mean_score"],
            "right": "score",
            "right_label": _t(lang, "score_axis"),
        },
        "labels": {c: _t(lang, "c." + c) for c in columns["rows"]},
    }
    title = _t(lang, "report")
    return _layout(lang, title, body, csrf=csrf, user_line=user_line, client=client, page="report")


def _report_table(
    lang: Lang, table_id: str, rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...]
) -> str:
    return table(table_id, rows, columns, {c: _t(lang, "c." + c) for c in columns}, _t(lang, "report_none"))


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
