"""GET /panel/api/softphone: the signed-in agent's own SIP account, for the browser softphone
(or a supervisor's, who listens to calls with it: `phone: true, webrtc: true` in web.users).

The answer holds a password, so it is given as narrowly as the panel allows:
- only to a signed-in session whose user is an agent with ``webrtc: true``, and only that
  agent's own account: the path names no agent, so there is nothing to ask for another's;
- only to the panel's own script: the request must carry the session's CSRF token in a
  header (a page elsewhere cannot add one without a CORS preflight, which is never granted)
  and, when the browser names an Origin, this site's;
- never cached (``Cache-Control: no-store``), and never logged.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from app.config import sip_accounts
from app.domain.access import may_supervise
from app.errors import AppError
from app.panel import softphone
from app.web.auth import AUTH, CSRF_HEADER, SESSION_COOKIE, Forbidden, same_origin
from app.web.http import SECRETS, SETTINGS

log = logging.getLogger(__name__)


class SoftphoneOff(AppError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(
            "softphone-off",
            f"{agent_id} has no browser softphone (webrtc: true in the configuration)",
            {"agent_id": agent_id},
            404,
        )


async def api_softphone(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    session = await auth.session_for(request.cookies.get(SESSION_COOKIE))
    same_origin(request)
    auth.check_csrf(session, request.headers.get(CSRF_HEADER))
    who = session.principal
    settings = request.app[SETTINGS]
    # An agent's account is their id; a supervisor's who listens to calls, their username.
    agent_id = who.agent_id if who.agent_id is not None else who.username
    has_phone = any(a.id == agent_id for a in sip_accounts(settings))
    if who.agent_id is None and not (may_supervise(who) and has_phone):
        raise Forbidden("only agents, and supervisors with a phone (phone: true), have a softphone")
    if not softphone.enabled(settings, agent_id):
        raise SoftphoneOff(agent_id)
    ws_url = softphone.websocket_url(settings, request.host)
    domain = urlsplit(ws_url).netloc.rsplit(":", 1)[0]
    agent = next(a for a in sip_accounts(settings) if a.id == agent_id)
    log.info("softphone: account %s given to its session", agent_id)
    return web.json_response(
        {
            "ws_url": ws_url,
            "sip_uri": f"sip:{agent_id}@{domain}",
            "authorization_user": agent_id,
            "password": request.app[SECRETS].agent_passwords[agent_id],
            "display_name": agent.name,
            "register_expires": softphone.REGISTER_EXPIRES_S,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(softphone.API_PATH, api_softphone)
