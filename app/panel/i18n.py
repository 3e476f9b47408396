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
        # screen pop and after-call work (app/panel/pop_pages.py, static/pop.js)
        "why.idle": "no activity",
        "pop.title": "Incoming call",
        "pop.title_on_call": "On the call",
        "pop.title_ended": "Last call",
        "pop.unknown": "Unknown caller",
        "pop.unknown_hint": "No customer profile matches this number. Create one so nobody has to ask again.",
        "pop.account": "Account",
        "pop.tier": "Tier: {tier}",
        "pop.vip": "VIP",
        "pop.phone": "Phone",
        "pop.email": "E-mail",
        "pop.name": "Name",
        "pop.notes": "Customer notes",
        "pop.create": "Create customer profile",
        "pop.created": "Customer profile created.",
        "pop.ivr": "What the caller chose",
        "pop.digits": "Keys pressed",
        "pop.menu": "Menu choice",
        "pop.collected": "Collected",
        "pop.nothing": "nothing",
        "pop.route": "Why you",
        "pop.queue": "Queue",
        "pop.callback": "Callback",
        "pop.callback_detail": "requested {time}; {attempts} earlier attempt(s)",
        "pop.source.ivr": "asked for while waiting",
        "pop.source.web": "requested on the web",
        "pop.source.voicemail": "from a voicemail",
        "pop.voicemail": "Voicemail",
        "pop.voicemail_file": "Download the message",
        "pop.history": "Last interactions",
        "pop.no_history": "No earlier interactions.",
        "pop.when": "When",
        "pop.outcome": "Outcome",
        "pop.handled_by": "Agent",
        "pop.code": "Code",
        "pop.direction.inbound": "inbound",
        "pop.direction.outbound": "outbound",
        "tier.top": "Top",
        "tier.high": "High",
        "tier.medium": "Medium",
        "tier.low": "Low",
        "outcome.completed": "Completed",
        "outcome.no_agent": "No agent",
        "outcome.abandoned": "Abandoned",
        "outcome.hung_up_in_ivr": "Hung up in the IVR",
        "outcome.no_input": "No input",
        "outcome.failed": "Failed",
        "outcome.lost": "Lost",
        "outcome.callback_requested": "Callback requested",
        "outcome.customer_unreached": "Customer not reached",
        "outcome.voicemail": "Voicemail",
        "outcome.open": "In progress",
        "acw.title": "After-call work",
        "acw.countdown": "Wrap-up ends in {seconds} s",
        "acw.over": "Wrap-up time is over",
        "acw.code": "Disposition",
        "acw.pick": "Choose…",
        "acw.notes": "Notes",
        "acw.save": "Save",
        "acw.saved": "Saved: {code}",
        "idle.set": "No activity for a while: you are now Not Ready.",
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
        # screen pop and after-call work (app/panel/pop_pages.py, static/pop.js)
        "why.idle": "长时间无操作",
        "pop.title": "来电",
        "pop.title_on_call": "通话中",
        "pop.title_ended": "上一通电话",
        "pop.unknown": "未知来电",
        "pop.unknown_hint": "没有与此号码匹配的客户资料。请创建一份，以后就不必再问。",
        "pop.account": "账号",
        "pop.tier": "客户等级：{tier}",
        "pop.vip": "贵宾",
        "pop.phone": "电话",
        "pop.email": "电子邮件",
        "pop.name": "姓名",
        "pop.notes": "客户备注",
        "pop.create": "创建客户资料",
        "pop.created": "客户资料已创建。",
        "pop.ivr": "来电者的选择",
        "pop.digits": "按键",
        "pop.menu": "菜单选项",
        "pop.collected": "已收集信息",
        "pop.nothing": "无",
        "pop.route": "分配给您的原因",
        "pop.queue": "队列",
        "pop.callback": "回电",
        "pop.callback_detail": "申请于 {time}；此前已尝试 {attempts} 次",
        "pop.source.ivr": "排队时申请",
        "pop.source.web": "网页申请",
        "pop.source.voicemail": "来自语音留言",
        "pop.voicemail": "语音留言",
        "pop.voicemail_file": "下载留言",
        "pop.history": "最近的联络记录",
        "pop.no_history": "没有以往的联络记录。",
        "pop.when": "时间",
        "pop.outcome": "结果",
        "pop.handled_by": "坐席",
        "pop.code": "处理结果",
        "pop.direction.inbound": "呼入",
        "pop.direction.outbound": "呼出",
        "tier.top": "顶级",
        "tier.high": "高",
        "tier.medium": "中",
        "tier.low": "低",
        "outcome.completed": "已完成",
        "outcome.no_agent": "无坐席",
        "outcome.abandoned": "放弃",
        "outcome.hung_up_in_ivr": "在语音导航中挂机",
        "outcome.no_input": "未输入",
        "outcome.failed": "失败",
        "outcome.lost": "丢失",
        "outcome.callback_requested": "申请回电",
        "outcome.customer_unreached": "未联系上客户",
        "outcome.voicemail": "语音留言",
        "outcome.open": "进行中",
        "acw.title": "话后处理",
        "acw.countdown": "话后处理剩余 {seconds} 秒",
        "acw.over": "话后处理时间已到",
        "acw.code": "处理结果",
        "acw.pick": "请选择…",
        "acw.notes": "备注",
        "acw.save": "保存",
        "acw.saved": "已保存：{code}",
        "idle.set": "长时间无操作：您已被设为未就绪。",
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
