"""The panel's words in English and Chinese, and which language a request gets.

Order of choice: `?lang=` in the address (the toggle link; remembered in a cookie), then
that cookie, then the browser's Accept-Language, then English.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")
LANG_COOKIE = "lianluo_lang"

TEXT: dict[Lang, dict[str, str]] = {
    "en": {
        "title": "Lianluo agent panel",
        "other_language": "中文",
        "sign_in": "Sign in",
        "username": "Username",
        "password": "Password",
        "username_hint": "Agents: your agent number",
        "wrong_credentials": "Wrong username or password.",
        "too_many": "Too many failed attempts. Try again in {seconds} seconds.",
        "form_expired": "The sign-in form expired. Please try again.",
        "session_expired": "Your session ended. Please sign in again.",
        "signed_out": "You are signed out.",
        "sign_out": "Sign out",
        "signed_in_as": "Signed in as {name} ({role})",
        "your_state": "Your state",
        "since": "since {time}",
        "reason": "Reason",
        "ready": "Ready",
        "not_ready": "Not Ready",
        "phone_registered": "Phone connected",
        "phone_not_registered": "Phone not connected: calls cannot reach you",
        "live": "Live",
        "offline": "Reconnecting…",
        "forbidden": "You do not have access to this page.",
        "home": "Back",
        "supervisor": "Agents",
        "agent": "Agent",
        "name": "Name",
        "state": "State",
        "phone": "Phone",
        "skills": "Skills",
        "yes": "yes",
        "no": "no",
        "no_agents": "No agents are configured.",
        "error": "Something went wrong: {message}",
        "role.agent": "agent",
        "role.expert": "expert",
        "role.supervisor": "supervisor",
        "role.admin": "admin",
        "state.logged_out": "Logged out",
        "state.ready": "Ready",
        "state.reserved": "Call being offered",
        "state.ringing": "Ringing",
        "state.on_call": "On a call",
        "state.wrap_up": "After-call work",
        "state.not_ready": "Not Ready",
        "why.login": "just signed in",
        "why.no answer": "missed a call",
    },
    "zh": {
        "title": "联络坐席面板",
        "other_language": "English",
        "sign_in": "登录",
        "username": "用户名",
        "password": "密码",
        "username_hint": "坐席请输入工号",
        "wrong_credentials": "用户名或密码错误。",
        "too_many": "失败次数过多，请在{seconds}秒后重试。",
        "form_expired": "登录表单已过期，请重试。",
        "session_expired": "会话已结束，请重新登录。",
        "signed_out": "您已退出登录。",
        "sign_out": "退出登录",
        "signed_in_as": "当前用户：{name}（{role}）",
        "your_state": "您的状态",
        "since": "自 {time} 起",
        "reason": "原因",
        "ready": "就绪",
        "not_ready": "未就绪",
        "phone_registered": "话机已连接",
        "phone_not_registered": "话机未连接：来电无法接通",
        "live": "实时",
        "offline": "正在重新连接…",
        "forbidden": "您无权访问此页面。",
        "home": "返回",
        "supervisor": "坐席",
        "agent": "工号",
        "name": "姓名",
        "state": "状态",
        "phone": "话机",
        "skills": "技能",
        "yes": "是",
        "no": "否",
        "no_agents": "尚未配置坐席。",
        "error": "出错了：{message}",
        "role.agent": "坐席",
        "role.expert": "专家坐席",
        "role.supervisor": "班长",
        "role.admin": "管理员",
        "state.logged_out": "已签出",
        "state.ready": "就绪",
        "state.reserved": "来电分配中",
        "state.ringing": "振铃中",
        "state.on_call": "通话中",
        "state.wrap_up": "话后处理",
        "state.not_ready": "未就绪",
        "why.login": "刚登录",
        "why.no answer": "未接来电",
    },
}


def t(lang: Lang, key: str, **values: object) -> str:
    text = TEXT[lang].get(key) or TEXT["en"].get(key) or key
    return text.format(**values) if values else text


def _as_lang(value: str | None) -> Lang | None:
    if not value:
        return None
    primary = value.strip().lower().split("-")[0].split("_")[0]
    if primary == "zh":
        return "zh"
    if primary == "en":
        return "en"
    return None


def pick_language(query: str | None, cookie: str | None, accept_language: str | None) -> Lang:
    for chosen in (_as_lang(query), _as_lang(cookie)):
        if chosen is not None:
            return chosen
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if tag.strip() and q > 0:
            ranked.append((-q, i, tag))
    for _, _, tag in sorted(ranked):
        lang = _as_lang(tag)
        if lang is not None:
            return lang
    return "en"
