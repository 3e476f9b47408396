"""The composition root: the only module that builds concrete adapters.

Every long-lived resource is an aiohttp cleanup context, opened in order before the web
server accepts requests and closed in reverse order on shutdown, or when a later one
fails at start-up, so nothing half-started is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from app.adapters.ami import AmiConnection
from app.adapters.ari import AriClient
from app.adapters.asterisk_instance import (
    REPO_ROOT,
    AsteriskProcess,
    load_or_create_secrets,
    render_instance,
)
from app.adapters.db import Store, ensure_database, migrate, resolve_url
from app.adapters.passwords import Passwords
from app.adapters.pop_store import PopStore
from app.adapters.prompts import Prompt, PromptCache
from app.adapters.speech import SpeechSettings, recognizer_from_settings
from app.adapters.web_users import WebUserStore
from app.appkeys import (
    AMI,
    ARI,
    ASTERISK,
    AUTH,
    CALLBACKS,
    DATABASE_URL,
    DIALER,
    FLOWS,
    INBOUND,
    LIVE,
    POPS,
    PROMPT_CACHE,
    PROMPTS,
    RECOGNIZER,
    ROUTING,
    SECRETS,
    SETTINGS,
    STORE,
    VOICEMAIL,
)
from app.config import Settings
from app.errors import AppError, PbxError
from app.flows.callbacks import CallbackService
from app.flows.dialer import DialerService
from app.flows.inbound import InboundService, utcnow
from app.flows.routing import RoutingService
from app.flows.voicemail import VoicemailService
from app.ivr_config import load_flows, prerender_flow_prompts
from app.panel import http as panel_http
from app.panel import pop_http, softphone_http
from app.panel.auth import AuthService, load_or_create_panel_passwords, panel_users
from app.panel.calls import CallWatch
from app.panel.live import LiveHub
from app.panel.pop import PopService
from app.web import api, callbacks_api, calls_api, campaigns_api, health, ivr_api, voicemail_api

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    var_dir: Path
    sounds_cache: Path

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        var = Path(settings.var_dir)
        if not var.is_absolute():
            var = REPO_ROOT / var
        return cls(var, REPO_ROOT / "sounds" / "cache")


async def asterisk_prefix() -> Path:
    """The cached Asterisk install; built by scripts/install-asterisk if missing."""
    env = os.environ.get("LIANLUO_ASTERISK_PREFIX")
    if env:
        return Path(env)
    proc = await asyncio.create_subprocess_exec(
        str(REPO_ROOT / "scripts" / "install-asterisk"), stdout=asyncio.subprocess.PIPE, stderr=sys.stderr
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise PbxError("scripts/install-asterisk failed; see the messages above")
    return Path(out.decode().strip().splitlines()[-1])


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = resolve_url(settings.database.url)
    app[DATABASE_URL] = url
    await ensure_database(url)
    pool = AsyncConnectionPool(url, min_size=1, max_size=8, open=False, timeout=10)
    await pool.open(wait=True, timeout=15)
    try:
        applied = await migrate(pool)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
        store = Store(pool)
        await store.sync_agents(settings.agents)
        app[STORE] = store
        yield
    finally:
        await pool.close()


async def asterisk_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    paths = Paths.of(settings)
    secrets = load_or_create_secrets(paths.var_dir, [a.id for a in settings.agents])
    app[SECRETS] = secrets
    prefix = await asterisk_prefix()
    instance = render_instance(settings, secrets, prefix, paths.var_dir)
    process = AsteriskProcess(prefix, instance)
    if settings.asterisk.manage:
        await process.start()
    else:
        await process.wait_booted(30)
    app[ASTERISK] = process
    try:
        yield
    finally:
        if settings.asterisk.manage:
            await process.stop()


async def prompts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Render every IVR prompt before the first call, so no caller waits for synthesis."""
    ivr = app[SETTINGS].ivr
    cache = PromptCache(Paths.of(app[SETTINGS]).sounds_cache)
    app[PROMPT_CACHE] = cache
    wanted = {
        "greeting": ivr.greeting,
        "connecting": ivr.connecting,
        "no_agent": ivr.no_agent,
        "invalid": ivr.invalid,
        "goodbye": ivr.goodbye,
        "callback_refused": ivr.callback_refused,
        "callback_whisper": ivr.callback_whisper,
        "callback_unreached": ivr.callback_unreached,
        "voicemail_intro": ivr.voicemail_intro,
        "voicemail_saved": ivr.voicemail_saved,
    }
    uris: dict[str, list[str]] = {}
    for name, texts in wanted.items():
        paths = [await cache.render(Prompt(t.text, t.lang)) for t in texts]
        uris[name] = [PromptCache.asterisk_uri(p) for p in paths]
    app[PROMPTS] = uris
    flows = await asyncio.to_thread(load_flows, app[SETTINGS])
    await prerender_flow_prompts(cache, flows)
    app[FLOWS] = flows
    yield


async def speech_ctx(app: web.Application) -> AsyncIterator[None]:
    """An offline recognizer for spoken menu answers, when the configuration asks for one."""
    cfg = app[SETTINGS].speech
    if cfg is None:
        yield
        return
    recognizer = recognizer_from_settings(
        SpeechSettings(
            engine=cfg.engine,
            model_path=Path(cfg.model_path) if cfg.model_path else None,
            min_confidence=cfg.min_confidence,
        )
    )
    await recognizer.start()
    app[RECOGNIZER] = recognizer
    try:
        yield
    finally:
        await recognizer.close()


async def routing_ctx(app: web.Application) -> AsyncIterator[None]:
    routing = RoutingService(app[SETTINGS], app[STORE], utcnow)
    await routing.start()
    app[ROUTING] = routing
    try:
        yield
    finally:
        await routing.stop()


async def panel_ctx(app: web.Application) -> AsyncIterator[None]:
    """Panel users (from the configuration, passwords in var/secrets.yaml) and the live hub."""
    settings = app[SETTINGS]
    auth = AuthService(WebUserStore(app[STORE].pool), Passwords(), settings.web, utcnow)
    users = panel_users(settings)
    passwords = await asyncio.to_thread(
        load_or_create_panel_passwords, Paths.of(settings).var_dir, [u.username for u in users]
    )
    await auth.sync_users(users, passwords)
    hub = LiveHub(api.agent_view)
    routing = app[ROUTING]
    pops = PopService(PopStore(app[STORE].pool), routing, hub, utcnow)
    routing.listeners.append(hub)
    routing.listeners.append(pops)  # screen pops: pushed the moment an agent is offered a call
    app[STORE].saved_listeners.append(pops.interaction_saved)
    calls = CallWatch(routing, hub)  # open panels follow their call's controls
    app[STORE].saved_listeners.append(calls.interaction_saved)
    app[AUTH] = auth
    app[LIVE] = hub
    app[POPS] = pops
    try:
        yield
    finally:
        routing.listeners.remove(pops)
        app[STORE].saved_listeners.remove(pops.interaction_saved)
        app[STORE].saved_listeners.remove(calls.interaction_saved)
        await pops.stop()
        routing.listeners.remove(hub)


async def ari_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    secrets = app[SECRETS]
    async with aiohttp.ClientSession() as session:
        ari = AriClient(
            session,
            f"http://127.0.0.1:{settings.asterisk.http_port}",
            secrets.ari_user,
            secrets.ari_password,
            settings.ari_app,
        )
        app[ARI] = ari
        inbound = InboundService(
            ari,
            app[STORE],
            settings,
            app[PROMPTS],
            app[ROUTING],
            app[PROMPT_CACHE],
            app[FLOWS],
            app.get(RECOGNIZER),
        )
        app[INBOUND] = inbound
        callbacks = CallbackService(inbound, app[ROUTING], app[STORE], settings, utcnow)
        inbound.callbacks = callbacks
        app[CALLBACKS] = callbacks
        voicemail = VoicemailService(ari, app[STORE], settings, callbacks, Paths.of(settings).var_dir, utcnow)
        inbound.voicemail = voicemail
        app[VOICEMAIL] = voicemail
        dialer = DialerService(inbound, app[ROUTING], app[STORE], settings, utcnow)
        app[DIALER] = dialer
        task = asyncio.create_task(inbound.run(), name="ari-events")
        try:
            # Ready means: connected and every stranded call taken up again.
            done, _ = await asyncio.wait(
                [task, asyncio.create_task(inbound.reconciled.wait())],
                timeout=30,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if task in done:
                task.result()
            if not inbound.reconciled.is_set():
                raise PbxError("could not connect to ARI within 30 s")
            # After reconciliation: an attempt still on the line was taken up there.
            await callbacks.start()
            await dialer.start()
            yield
        finally:
            await dialer.stop()
            await callbacks.stop()
            task.cancel()
            await voicemail.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await inbound.shutdown()


async def ami_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    secrets = app[SECRETS]
    ami = AmiConnection("127.0.0.1", settings.asterisk.ami_port, secrets.ami_user, secrets.ami_password)
    await ami.start()
    app[AMI] = ami
    try:
        yield
    finally:
        ami.close()


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        return web.json_response(
            {"error_id": exc.error_id, "message": exc.message, "details": exc.details},
            status=exc.http_status,
            headers=exc.headers,
        )


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.extend(
        [database_ctx, asterisk_ctx, prompts_ctx, speech_ctx, routing_ctx, panel_ctx, ari_ctx, ami_ctx]
    )
    app.on_shutdown.append(panel_http.close_live_sockets)
    app.router.add_get("/health", health.handler)
    api.add_routes(app)
    callbacks_api.add_routes(app)
    voicemail_api.add_routes(app)
    ivr_api.add_routes(app)
    calls_api.add_routes(app)
    campaigns_api.add_routes(app)
    panel_http.add_routes(app)
    pop_http.add_routes(app)
    softphone_http.add_routes(app)
    return app
