"""The browser softphone on the agent's panel: where it connects, what the page shows.

An agent with ``webrtc: true`` gets a small widget on /panel. Its script
(/static/softphone.js, with JsSIP bundled into /static/vendor/jssip.min.js by
scripts/build-js) asks /panel/api/softphone for the signed-in agent's own SIP account and
registers it with Asterisk over a SIP websocket. Asterisk's registration is what the
routing desk sees: the browser becomes the agent's device like a desk phone would.

Pure helpers here (no aiohttp request handling); the route is in softphone_http.py.
"""

from __future__ import annotations

import ipaddress
import json
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from app.config import Settings, sip_accounts
from app.panel.i18n import Lang

STATIC_DIR = Path(__file__).resolve().parent / "static"
BUNDLE = STATIC_DIR / "vendor" / "jssip.min.js"
ASSET_VERSION = "2"
API_PATH = "/panel/api/softphone"
# JsSIP renews well before this; Asterisk's default minimum is 60 s.
REGISTER_EXPIRES_S = 120

TEXT: dict[Lang, dict[str, str]] = {
    "en": {
        "title": "Browser phone",
        "connecting": "Connecting to the phone server…",
        "registered": "Ready to ring: calls come to this browser.",
        "unregistered": "Not connected, calls cannot ring here: {cause}",
        "no_bundle": "The browser phone is not installed on the server (run scripts/setup).",
        "unsupported": "This browser cannot make WebRTC calls.",
        "elsewhere": "The browser phone is open in another tab of this browser: calls ring there.",
        "no_microphone": "No microphone: allow this site to use the microphone, then try again.",
        "incoming": "Incoming call from {caller}",
        "answering": "Connecting the call…",
        "on_call": "On a call with {caller}",
        "ended": "Call ended.",
        "missed": "The caller was gone before you answered.",
        "failed": "The call failed: {cause}",
        "answer": "Answer",
        "hangup": "Hang up",
    },
    "zh": {
        "title": "浏览器电话",
        "connecting": "正在连接电话服务器…",
        "registered": "已就绪：来电将在此浏览器响铃。",
        "unregistered": "未连接，来电无法在此响铃：{cause}",
        "no_bundle": "服务器未安装浏览器电话（请运行 scripts/setup）。",
        "unsupported": "此浏览器不支持 WebRTC 通话。",
        "elsewhere": "浏览器电话已在本浏览器的另一个标签页中打开：来电将在那里响铃。",
        "no_microphone": "没有麦克风：请允许本网站使用麦克风后重试。",
        "incoming": "来电：{caller}",
        "answering": "正在接通…",
        "on_call": "通话中：{caller}",
        "ended": "通话已结束。",
        "missed": "来电方在接听前已挂断。",
        "failed": "通话失败：{cause}",
        "answer": "接听",
        "hangup": "挂断",
    },
}


def enabled(settings: Settings, account: str | None) -> bool:
    """Does this SIP account (an agent's id, or a supervisor's username) use the browser softphone?"""
    return account is not None and any(a.id == account and a.webrtc for a in sip_accounts(settings))


def any_enabled(settings: Settings) -> bool:
    return any(a.webrtc for a in sip_accounts(settings))


def _hostname(request_host: str) -> str:
    """The host of a Host header, ready for a URL ("pbx.lan:8080" -> "pbx.lan", "[::1]:80" -> "[::1]")."""
    try:
        host = urlsplit(f"//{request_host}").hostname
    except ValueError:
        return ""
    if not host:
        return ""
    return f"[{host}]" if ":" in host else host


def websocket_url(settings: Settings, request_host: str) -> str:
    """Where the browser opens its SIP websocket.

    ws: Asterisk's HTTP server, which listens on loopback only, so the browser must be on
    this machine. wss: the TLS listener; when it listens on every address the browser uses
    the name it reached the panel by, which the certificate must then carry.
    """
    a = settings.asterisk
    if a.webrtc_socket == "ws":
        return f"ws://127.0.0.1:{a.http_port}/ws"
    bind = ipaddress.ip_address(a.wss_bind)
    if bind.is_unspecified:
        host = _hostname(request_host) or "127.0.0.1"
    else:
        host = f"[{bind}]" if bind.version == 6 else str(bind)
    return f"wss://{host}:{a.wss_port}/ws"


def connect_sources(settings: Settings, request_host: str) -> tuple[str, ...]:
    """Origins the panel's Content-Security-Policy must let scripts connect to."""
    if not any_enabled(settings):
        return ()
    parts = urlsplit(websocket_url(settings, request_host))
    return (f"{parts.scheme}://{parts.netloc}",)


def _script_json(data: object) -> str:
    # Inside <script> nothing is decoded: escape what could close the element instead.
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def widget(lang: Lang) -> str:
    """The softphone's place on the agent's page. Everything runs from static files (the CSP
    forbids inline script); without the bundle it only says what is missing."""
    text = TEXT[lang]
    if not BUNDLE.exists():
        return (
            f'<section class="softphone" id="softphone" data-state="unavailable">'
            f"<h2>{escape(text['title'])}</h2>"
            f'<p class="softphone-status" id="softphone-status">{escape(text["no_bundle"])}</p></section>'
        )
    v = ASSET_VERSION
    return (
        '<section class="softphone" id="softphone" data-state="connecting" aria-live="polite">'
        f'<link rel="stylesheet" href="/static/softphone.css?v={v}">'
        f"<h2>{escape(text['title'])}</h2>"
        f'<p class="softphone-status" id="softphone-status" role="status">{escape(text["connecting"])}</p>'
        '<div class="softphone-actions">'
        f'<button type="button" id="softphone-answer" class="ready" hidden>{escape(text["answer"])}</button>'
        f'<button type="button" id="softphone-hangup" class="hangup" hidden>{escape(text["hangup"])}</button>'
        "</div>"
        '<audio id="softphone-audio" autoplay></audio>'
        '<script type="application/json" id="softphone-data">'
        + _script_json({"api": API_PATH, "text": text})
        + "</script>"
        f'<script src="/static/vendor/jssip.min.js?v={int(BUNDLE.stat().st_mtime)}" defer></script>'
        f'<script src="/static/softphone.js?v={v}" defer></script>'
        "</section>"
    )
