"""The composition root: the only module that builds concrete adapters and wires the features.

Every long-lived resource is an aiohttp cleanup context, opened in order before the web
server accepts requests and closed in reverse order on shutdown, or when a later one
fails at start-up, so nothing half-started is left running.

How the app stops decides what happens to the calls (`Shutdown`): Ctrl-C (SIGINT) ends every
call and stops Asterisk; a planned restart (SIGTERM from a service manager, or SIGHUP from
`python -m app restart`) hands over: the calls stay up in Asterisk and the next start takes them
over (app/calls/recovery.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from app.adapters.ami import AmiConnection
from app.adapters.ari import AriClient
from app.adapters.asterisk_instance import (
    REPO_ROOT,
    AsteriskProcess,
    InstancePaths,
    load_or_create_secrets,
    render_instance,
)
from app.adapters.db import Store, ensure_database, migrate, resolve_url
from app.adapters.fax_pages import FaxPages
from app.adapters.fax_store import FaxStore
from app.adapters.hold_music import hold_music
from app.adapters.mail import send_mail
from app.adapters.mail_catcher import MailCatcher
from app.adapters.outbound_ledger import OutboundLedger
from app.adapters.passwords import Passwords
from app.adapters.pop_store import PopStore
from app.adapters.prompts import Prompt, PromptCache
from app.adapters.recording_store import EvaluationStore, RecordingStore
from app.adapters.report_store import ReportStore
from app.adapters.sip_acl import PjsipAcl
from app.adapters.sip_ban_store import SipBanStore
from app.adapters.speech import ManagedRecognizer, SpeechSettings, recognizer_from_settings
from app.adapters.transcriber import PoolTranscriber
from app.adapters.transcript_store import TranscriptStore
from app.adapters.web_users import WebUserStore
from app.bus import AgentsChanged, Bus, FaxJobChanged, InteractionSaved, SipBansChanged
from app.callbacks import http as callbacks_http
from app.callbacks.service import CallbackService
from app.calls import http as calls_http
from app.calls.conversation import Dialing
from app.calls.events import PbxLost
from app.calls.line import Line
from app.calls.offers import Previews
from app.calls.recovery import Recovery
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.voice import Voice
from app.calls.writer import InteractionWriter
from app.config import Settings, ban_rules, call_limits, expert_directory, sip_accounts, tile_thresholds
from app.dialer import http as dialer_http
from app.dialer.service import DialerService
from app.domain.admission import Admission
from app.domain.fax import JobRules
from app.domain.ivr_flow import FlowSet
from app.domain.outbound import OutboundPolicy
from app.domain.prompt import PromptText
from app.domain.routing import QueueConfig, Tier, qualifies
from app.domain.transcript import JobRules as TranscriptJobRules
from app.domain.wallboard import Wallboard
from app.errors import PbxError
from app.experts import http as experts_http
from app.experts.service import ExpertService
from app.experts.store import ExpertStore
from app.fax import agent as fax_agent
from app.fax import desk as fax_desk
from app.fax import http as fax_http
from app.fax.catalogue import build_catalogue
from app.fax.inbound import FaxReceiver
from app.fax.jobs import FaxJobs
from app.fax.ondemand import FaxOnDemand
from app.fax.uploads import FaxUploads
from app.inbound import http as inbound_http
from app.inbound.calls import InboundCalls
from app.inbound.flow_files import load_flows, prerender_flow_prompts
from app.inbound.waiting import InboundRoom
from app.panel import http as panel_http
from app.panel import pop_http, softphone_http
from app.panel.calls import CallWatch
from app.panel.live import LIVE, LiveHub
from app.panel.pop import POPS, PopService
from app.recording import desk as qa_desk
from app.recording import http as recording_http
from app.recording import scoring
from app.recording.forms import load_forms
from app.recording.service import RecordingService
from app.recording.transcripts import TranscriptOptions, Transcripts
from app.routing import devices
from app.routing import http as routing_http
from app.routing.desk import RoutingService, queue_config
from app.security import http as security_http
from app.security.service import SipBanService
from app.supervision import http as supervision_http
from app.supervision import metrics as metrics_http
from app.supervision.coaching import Coaching
from app.supervision.metrics import METRICS, CenterMetrics, LiveSources
from app.supervision.reports import Reports
from app.supervision.summaries import SummaryJob
from app.supervision.wallboard import WallboardService, day_start_in
from app.voicemail import http as voicemail_http
from app.voicemail.service import VoicemailService
from app.web import health, openapi
from app.web.auth import AUTH, AuthService, load_or_create_panel_passwords, panel_users
from app.web.http import SECRETS, SETTINGS, error_middleware

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Shutdown:
    """How the app is stopping: `handover` leaves the calls up for the next start."""

    handover: bool = False
    restart: bool = False  # hand over, then start again in this process
    calls_ended: int = 0


@dataclass
class Parts:
    """What the contexts build for each other (not for route handlers: those use the features'
    own keys)."""

    bus: Bus = field(default_factory=Bus)
    store: Store | None = None
    writer: InteractionWriter | None = None
    voice: Voice | None = None
    flows: FlowSet | None = None
    recognizer: ManagedRecognizer | None = None


DATABASE_URL = web.AppKey("database_url", str)
SHUTDOWN = web.AppKey("shutdown", Shutdown)
PARTS = web.AppKey("parts", Parts)


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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parts(app: web.Application) -> Parts:
    return app[PARTS]


async def mail_catcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The demo's local mail server (config `mail_catcher`), up before anything sends mail."""
    settings = app[SETTINGS]
    if settings.mail_catcher is None:
        yield
        return
    maildir = Paths.of(settings).var_dir / settings.mail_catcher.maildir
    catcher = MailCatcher(maildir, settings.mail_catcher.port, settings.mail_catcher.max_mb * 1024 * 1024)
    try:
        await asyncio.to_thread(catcher.start)
    except Exception as exc:  # aiosmtpd re-raises its server thread's failure as it was
        raise OSError(f"mail_catcher cannot listen on 127.0.0.1:{catcher.port}: {exc}") from exc
    try:
        yield
    finally:
        await asyncio.to_thread(catcher.stop)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pool, the schema, and the one writer of interactions (flushed last at stop)."""
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
        if added := await store.add_sample_data(settings.sample_data):
            log.info("sample data: %d rows added (config sample_data)", added)
        p = parts(app)
        p.store = store
        app[health.STORE] = store
        p.writer = InteractionWriter(store, p.bus)
        p.writer.start()
        try:
            yield
        finally:
            await p.writer.stop()
    finally:
        await pool.close()


async def asterisk_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    paths = Paths.of(settings)
    secrets = load_or_create_secrets(paths.var_dir, [a.id for a in sip_accounts(settings)])
    app[SECRETS] = secrets
    prefix = await asterisk_prefix()
    music = await hold_music(paths.sounds_cache)
    instance = render_instance(settings, secrets, prefix, paths.var_dir, music)
    process = AsteriskProcess(prefix, instance, external=not settings.asterisk.manage)
    if settings.asterisk.manage:
        await process.start()
    else:
        await process.wait_booted(30)
    app[health.ASTERISK] = process
    try:
        yield
    finally:
        if app[SHUTDOWN].handover:
            await process.leave_running()
            log.info("Asterisk left running for the next start (pid %s)", process.pid)
        elif settings.asterisk.manage:
            await process.stop()


async def prompts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Render every IVR prompt before the first call, so no caller waits for synthesis."""
    ivr = app[SETTINGS].ivr
    cache = PromptCache(Paths.of(app[SETTINGS]).sounds_cache)
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
        "voicemail_saved_no_callback": ivr.voicemail_saved_no_callback,
        "voicemail_empty": ivr.voicemail_empty,
        "no_agent_voicemail": ivr.no_agent_voicemail,
    }
    uris: dict[str, list[tuple[PromptText, str]]] = {}
    for name, texts in wanted.items():
        uris[name] = [
            (t, PromptCache.asterisk_uri(await cache.render(Prompt(t.text, t.lang)))) for t in texts
        ]
    p = parts(app)
    p.voice = Voice(cache, uris)
    flows = await asyncio.to_thread(load_flows, app[SETTINGS])
    await prerender_flow_prompts(cache, flows)
    p.flows = flows
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
    parts(app).recognizer = recognizer
    try:
        yield
    finally:
        await recognizer.close()


async def routing_ctx(app: web.Application) -> AsyncIterator[None]:
    p = parts(app)
    assert p.store is not None
    desk = RoutingService(app[SETTINGS], p.store, utcnow, p.bus)
    await desk.start()
    app[routing_http.DESK] = desk
    try:
        yield
    finally:
        if not app[SHUTDOWN].handover:
            desk.log_everyone_out("center stopped")
        await desk.stop()


def flows_now(app: web.Application) -> Callable[[], FlowSet | None]:
    """The IVR flows in use, read each time: a reload replaces the inbound calls' flows."""

    def flows() -> FlowSet | None:
        inbound = app.get(inbound_http.INBOUND)
        return inbound.flows if inbound is not None else parts(app).flows

    return flows


async def panel_ctx(app: web.Application) -> AsyncIterator[None]:
    """Panel users (from the configuration, passwords in var/secrets.yaml) and the live hub."""
    settings = app[SETTINGS]
    p = parts(app)
    assert p.store is not None
    auth = AuthService(WebUserStore(p.store.pool), Passwords(), settings.web, utcnow)
    users = panel_users(settings)
    passwords = await asyncio.to_thread(
        load_or_create_panel_passwords, Paths.of(settings).var_dir, [u.username for u in users]
    )
    # Checking every user's password (argon2, about 150 ms each) must not hold up taking calls
    # over after a restart: when every user is in the database already, they sign in meanwhile
    # and the check runs behind; a new user is created before anyone may sign in.
    synced = asyncio.create_task(auth.sync_users(users, passwords), name="panel-users")
    if not await auth.knows(u.username for u in users):
        await synced
    hub = LiveHub(routing_http.agent_view)
    desk = app[routing_http.DESK]

    pops = PopService(PopStore(p.store.pool), desk, hub, utcnow, flows_now(app))
    calls = CallWatch(desk, hub)  # open panels follow their call's controls
    unsubscribe = [
        p.bus.subscribe(AgentsChanged, hub.agents_changed),
        # Screen pops: pushed the moment an agent is offered a call, completed as events land.
        p.bus.subscribe(AgentsChanged, pops.agents_changed),
        p.bus.subscribe(InteractionSaved, pops.interaction_saved),
        p.bus.subscribe(InteractionSaved, calls.interaction_saved),
        # The call box's faxes: the sending agent follows each job until delivered or failed.
        p.bus.subscribe(FaxJobChanged, fax_agent.FaxBoxWatch(hub).job_changed),
        # Supervisors' screens list the SIP bans in force, live.
        p.bus.subscribe(
            SipBansChanged,
            lambda n: hub.to_supervisors(
                {"type": "sip_bans", "bans": [security_http.ban_view(b, utcnow()) for b in n.bans]}
            ),
        ),
    ]
    app[AUTH] = auth
    app[LIVE] = hub
    app[POPS] = pops
    try:
        yield
    finally:
        for stop in unsubscribe:
            stop()
        await pops.stop()
        await asyncio.gather(synced, return_exceptions=True)


async def calls_ctx(app: web.Application) -> AsyncIterator[None]:
    """The call runtime and every call kind, composed; ready once ARI is connected and every
    call found in Asterisk is taken up again."""
    settings = app[SETTINGS]
    secrets = app[SECRETS]
    p = parts(app)
    assert p.store is not None and p.writer is not None and p.voice is not None and p.flows is not None
    store, writer, voice = p.store, p.writer, p.voice
    desk = app[routing_http.DESK]
    carrier = settings.carrier
    async with aiohttp.ClientSession() as session:
        ari = AriClient(
            session,
            f"http://{_url_host(settings.asterisk.host)}:{settings.asterisk.http_port}",
            secrets.ari_user,
            secrets.ari_password,
            settings.ari_app,
            event_lag=app[METRICS].ari_event_lag,
        )
        app[health.ARI] = ari
        board = Switchboard(ari)
        app[calls_http.BOARD] = board
        app[health.APP].calls = lambda: sum(1 for _ in board.live_calls())
        app[health.APP].writes_waiting = lambda: writer.backlog
        # Experts outside the center, asked from the agent's call box (app/experts/).
        expert_store = ExpertStore(store.pool)
        # Offers previewed in a panel before any phone rings: experts' and queues' (one registry).
        previews = Previews(app[LIVE].push)
        experts = ExpertService(
            expert_directory(settings),
            desk,
            utcnow,
            push=app[LIVE].push,
            own_expert=expert_store.own_expert,
            journeys=expert_store.journeys,
            say=voice.say,
            center_name=settings.center_name,
            key_s=settings.experts.key_s,
            links=expert_store,
            changes=expert_store,
            mail=lambda to, subject, body: send_mail(settings.voicemail.smtp, to, subject, body),
            link_base=settings.experts.link_base_url or f"http://{settings.web.host}:{settings.web.port}",
            link_ttl_s=settings.experts.link_ttl_s,
            no_response_reason=settings.experts.no_response_reason,
            number_ring_s=settings.experts.number_ring_s,
            previews=previews,
        )
        await experts.start()  # the directory as changed over the API
        app[experts_http.EXPERTS] = experts
        line = Line(
            desk,
            Dialing(
                carrier=carrier.name,
                presented_number=carrier.presented_number,
                center_name=settings.center_name,
                transfer_prefixes=tuple(settings.routing.transfer_numbers),
            ),
            experts if settings.experts.directory else None,
            previews,
        )
        # Where a transferred callback or dialer customer waits: music and announcements, no
        # keys to leave the line (they are already someone we called).
        plain_room = InboundRoom(desk, voice, settings.ivr, None, None)
        # One outbound policy for every call the center places (app/domain/outbound.py), its
        # counts kept in PostgreSQL so a restart does not reset the hourly and daily limits.
        ledger = OutboundLedger(store.pool)
        outbound = OutboundPolicy(settings.outbound.dial_plan(), on_admit=ledger.record)
        restored = outbound.restore(await ledger.since(utcnow() - timedelta(days=1)), utcnow())
        if restored:
            log.info("outbound policy: %d call(s) dialled in the last day counted again", restored)
        ledger.start()
        recordings = app[recording_http.RECORDINGS] if settings.recording.enabled else None
        runtime = Runtime(ari, writer, board, utcnow, outbound)
        if recordings is not None:  # app/recording/: the conversation tells it what happens
            runtime = dataclasses.replace(runtime, recorder=recordings)
        callbacks = CallbackService(
            runtime=runtime,
            desk=desk,
            line=line,
            voice=voice,
            room=plain_room,
            store=store,
            settings=settings,
        )
        voicemail = VoicemailService(
            ari, store, settings, callbacks, voice, Paths.of(settings).var_dir, utcnow
        )
        room = InboundRoom(
            desk, voice, settings.ivr, callbacks, voicemail, recordings.consent if recordings else None
        )
        # Fax (app/fax/): the catalogue's PDFs made into fax pages now (cached by content).
        fax_dir = Paths.of(settings).var_dir / "fax"
        fax_pages = FaxPages(fax_dir / "cache", settings.fax.paper)
        fax_store = FaxStore(store.pool)
        fax_station = settings.fax.station_id or carrier.presented_number
        catalogue, _ = await build_catalogue(settings, fax_pages)  # problems are logged there
        fax_receiver = FaxReceiver(
            runtime=runtime,
            store=fax_store,
            pages=fax_pages,
            in_dir=fax_dir / "in",
            station_id=fax_station,
            email_to=settings.fax.email_to,
            smtp=settings.fax.smtp or settings.voicemail.smtp,
            tone_dids=settings.fax.detected_on(carrier.dids),
            tone_window_s=settings.fax.detect_window_s,
        )
        fax_jobs = FaxJobs(
            runtime=runtime,
            store=fax_store,
            pages=fax_pages,
            catalogue=catalogue,
            rules=JobRules(
                settings.fax.job_attempts, settings.fax.job_retry_after_s, settings.fax.job_daily_limit
            ),
            out_dir=fax_dir / "out",
            trunk=carrier.name,
            center_name=settings.center_name,
            presented_number=carrier.presented_number,
            station_id=fax_station,
            paper=settings.fax.paper,
            ring_s=settings.fax.job_ring_s,
            can_dial=carrier.outbound_contact is not None,
            changed=lambda job: p.bus.publish(FaxJobChanged(job)),
            lines=settings.fax.job_lines,
        )
        on_demand = FaxOnDemand(
            catalogue=catalogue,
            pages=fax_pages,
            store=fax_store,
            voice=voice,
            out_dir=fax_dir / "out",
            center_name=settings.center_name,
            station_id=fax_station,
            paper=settings.fax.paper,
            max_documents=settings.fax.max_documents,
            numbers=settings.fax.numbers,
            queue_job=fax_jobs.queue,
        )
        if catalogue.documents:
            await on_demand.prerender()
        app[fax_http.FAXES] = fax_store
        app[fax_http.JOBS] = fax_jobs
        # PDFs uploaded to fax (the call box, the fax desk): the catalogue's converter.
        app[fax_agent.UPLOADS] = FaxUploads(
            fax_pages, fax_dir / "uploads", settings.fax.max_upload_mb, settings.fax.max_upload_pages
        )
        inbound = InboundCalls(
            runtime=runtime,
            desk=desk,
            line=line,
            voice=voice,
            room=room,
            flows=p.flows,
            customers=store.customer_by_phone,
            lookup=store.self_service,
            recognizer=p.recognizer,
            voicemail=voicemail,
            default_queue=settings.ivr.menu[0].queue if settings.ivr.menu else settings.queues[0].name,
            admission=Admission(limits) if (limits := call_limits(settings)) else None,
            fax=on_demand.run,
            fax_tone=fax_receiver.after_tone if settings.fax.detect_on_voice else None,
            languages=settings.languages,
            replay_secret=app[SECRETS].api_token,
        )
        dialer = DialerService(
            runtime=runtime,
            desk=desk,
            line=line,
            voice=voice,
            room=plain_room,
            store=store,
            settings=settings,
        )
        recovery = Recovery(runtime=runtime, store=store, desk=desk, app_name=settings.ari_app)
        recovery.register("inbound", inbound.resume)
        recovery.register("callback", callbacks.resume, callbacks.gone)
        recovery.register("dialer", dialer.resume)

        ami = app[health.AMI]
        qualifying: set[asyncio.Task[list[str]]] = set()

        def phone_out(agent_id: str) -> bool:
            agent = desk.agents.get(agent_id)  # None: removed by a reload meanwhile
            return agent is not None and not agent.device_registered

        async def read_devices(reconnect: bool) -> None:
            """Events were lost while disconnected: read every agent's device state afresh."""
            await ari.subscribe("endpoint:PJSIP")
            offline = []
            for agent_id in desk.agents:
                endpoint = await ari.endpoint("PJSIP", agent_id)
                online = endpoint is not None and endpoint.online
                desk.device_changed(agent_id, online)
                if not online:
                    offline.append(agent_id)
            # Held unreachable by a (re)started Asterisk until qualified: ask now (their state
            # follows as endpoint events; app/routing/devices.py says why).
            if offline:
                task = asyncio.create_task(devices.bring_back(ami, offline, phone_out), name="qualify-agents")
                qualifying.add(task)
                task.add_done_callback(qualifying.discard)

        async def events_used(reconnect: bool) -> None:
            """Only the events the calls act on: most of what Asterisk sends about a call (each
            parsed on the event loop) is never looked at. Set on every connect, since a
            restarted Asterisk forgets it."""
            await ari.filter_events()

        board.on_endpoint(desk.device_changed)
        board.on_connect(events_used)
        board.on_connect(read_devices)
        board.on_connect(recovery.reconcile)
        app[inbound_http.INBOUND] = inbound
        app[callbacks_http.CALLBACKS] = callbacks
        app[voicemail_http.VOICEMAIL] = voicemail
        app[dialer_http.DIALER] = dialer
        events = asyncio.create_task(board.run(), name="ari-events")
        try:
            # Ready means: connected and every stranded call taken up again.
            ready = asyncio.create_task(board.ready.wait())
            done, _ = await asyncio.wait([events, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if events in done:
                events.result()
            if not board.ready.is_set():
                ready.cancel()
                raise PbxError("could not connect to ARI within 30 s")
            # After reconciliation: a try still on the line was taken up there.
            await callbacks.start()
            await dialer.start(recovery.found)
            await fax_jobs.start()
            yield
        finally:
            for task in qualifying:
                task.cancel()
            shutdown = app[SHUTDOWN]
            if not shutdown.handover:
                shutdown.calls_ended = await end_every_call(board)
            await dialer.stop(hand_over=shutdown.handover)
            await callbacks.stop()
            await fax_jobs.stop()
            await board.stop_calls()
            events.cancel()
            await voicemail.stop()
            await experts.stop()
            await asyncio.gather(events, return_exceptions=True)
            await ledger.stop()


async def coaching_ctx(app: web.Application) -> AsyncIterator[None]:
    """Supervisors listening to live calls (app/supervision/coaching.py): opened after the
    calls, so it is closed first and hangs up every supervisor's phone call."""
    settings = app[SETTINGS]
    board = app[calls_http.BOARD]
    phones = {u.username: f"PJSIP/{u.username}" for u in settings.web.users if u.phone}
    coaching = Coaching(app[health.ARI], board, phones)
    board.on_connect(coaching.reconcile)
    app[supervision_http.COACHING] = coaching
    try:
        yield
    finally:
        await coaching.stop()


async def end_every_call(board: Switchboard, timeout: float = 10.0) -> int:
    """The center is being stopped (not restarted): every call ends, recorded as dropped, its
    agents freed, before Asterisk goes down."""
    calls = [c for c in board.live_calls() if c.channels]  # those not yet dialled end with their kind
    if calls:
        print(f"Stopping: ending {len(calls)} call(s) in progress.", file=sys.stderr, flush=True)
    for call in calls:
        call.events.put_nowait(PbxLost(call.channels, pbx_restarted=True, why="the center was stopped"))
    tasks = [c.task for c in calls if c.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    return len(calls)


async def ami_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    secrets = app[SECRETS]
    ami = AmiConnection(
        settings.asterisk.host, settings.asterisk.ami_port, secrets.ami_user, secrets.ami_password
    )
    await ami.start()
    app[health.AMI] = ami
    try:
        yield
    finally:
        ami.close()


async def sip_bans_ctx(app: web.Application) -> AsyncIterator[None]:
    """SIP bans: AMI's failed authentications in, a PJSIP ACL out (app/security/)."""
    settings = app[SETTINGS]
    p = parts(app)
    assert p.store is not None
    ami = app[health.AMI]
    etc = InstancePaths.under(Paths.of(settings).var_dir, settings.asterisk.instance).etc
    bus = p.bus
    service = SipBanService(
        ban_rules(settings),
        SipBanStore(p.store.pool),
        PjsipAcl(etc, ami.command),
        utcnow,
        on_change=lambda bans: bus.publish(SipBansChanged(tuple(bans))),
    )
    app[security_http.BANS] = service
    if not settings.security.sip_bans.enabled:
        yield
        return
    await service.start()
    ami.on_auth_failure(service.auth_failure)
    try:
        yield
    finally:
        await service.stop()


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """GET /metrics (app/supervision/metrics.py): live figures read at each scrape."""
    p = parts(app)
    desk = app[routing_http.DESK]

    def calls() -> int:
        board = app.get(calls_http.BOARD)
        return sum(1 for _ in board.live_calls()) if board is not None else 0

    def bans() -> int:
        service = app.get(security_http.BANS)
        return len(service.active) if service is not None else 0

    sources = LiveSources(
        queues=lambda: [desk.stats(q) for q in desk.queue_settings],
        agents=lambda: desk.agents.values(),
        calls=calls,
        writes_waiting=lambda: p.writer.backlog if p.writer is not None else 0,
        sip_bans=bans,
        transcripts_behind=lambda: (
            app[recording_http.TRANSCRIPTS].behind if recording_http.TRANSCRIPTS in app else None
        ),
    )
    center_metrics = CenterMetrics(p.bus, sources)
    app[METRICS] = center_metrics
    # The wallboard: figures folded from the saved events, pushed to supervisors' pages.
    settings = app[SETTINGS]
    configs = {q.name: queue_config(q) for q in settings.queues}

    def target_s(queue: str, tier: str) -> float:
        """The (queue, tier)'s service-level target; the defaults for one no longer configured."""
        config = configs.get(queue) or QueueConfig(queue)
        try:
            return config.target(Tier(tier)).seconds
        except ValueError:
            return config.target(Tier.MEDIUM).seconds

    assert p.store is not None
    board = Wallboard(
        target_s,
        day_start_in(ZoneInfo(settings.timezone)),
        settings.supervision.short_abandon_s,
        tile_thresholds(settings),
    )
    wall = WallboardService(
        board,
        p.bus,
        p.store.queue_events_since,
        lambda: [desk.stats(q) for q in desk.queue_settings],
        lambda: list(desk.agents.values()),
        lambda message: app[LIVE].to_supervisors(message) if LIVE in app else None,
        utcnow,
        work_waiting=p.store.work_waiting,
        campaigns=lambda: (
            [d.view(s) for s in d.campaigns.values()] if (d := app.get(dialer_http.DIALER)) else []
        ),
    )
    await wall.start()
    app[supervision_http.WALLBOARD] = wall

    def staffing_targets() -> dict[str, tuple[float, float]]:
        """Staffing plans each queue for its standard (medium) tier's service level."""
        return {
            name: (c.target(Tier.MEDIUM).seconds, c.target(Tier.MEDIUM).percent / 100)
            for name, c in configs.items()
        }

    def serves(agent_id: str, queue: str) -> bool:
        """Whether an agent (as configured now) takes the queue's calls: a member with its skills."""
        agent, config = desk.agents.get(agent_id), configs.get(queue)
        return agent is not None and config is not None and qualifies(agent, config)

    zone = ZoneInfo(settings.timezone)
    report_store = ReportStore(p.store.pool, zone)
    # Each finished day of the center summed up for the reports, a few minutes after its midnight.
    summaries = SummaryJob(
        report_store,
        zone,
        timedelta(minutes=settings.supervision.summary_after_min),
        utcnow,
        writes_waiting=lambda: p.writer.backlog if p.writer is not None else 0,
    )
    await summaries.start()
    app[supervision_http.REPORTS] = Reports(
        report_store.calls,
        ZoneInfo(settings.timezone),
        target_s,
        settings.supervision.short_abandon_s,
        utcnow,
        store=report_store,
        targets=staffing_targets,
        serves=serves,
    )
    try:
        yield
    finally:
        await summaries.stop()
        await wall.stop()
        center_metrics.close()


async def recording_ctx(app: web.Application) -> AsyncIterator[None]:
    """Call recording (app/recording/): MixMonitor over AMI, files under recording.directory,
    rows in PostgreSQL, the sweep and retention job; the QA desk reads through it."""
    settings = app[SETTINGS]
    p = parts(app)
    assert p.store is not None
    directory = Path(settings.recording.directory)
    if not directory.is_absolute():
        directory = Paths.of(settings).var_dir / directory
    rows = RecordingStore(p.store.pool)
    service = RecordingService(
        settings.recording.policy(),
        app[health.AMI],
        rows,
        directory,
        utcnow,
        retention_check_s=settings.recording.retention_check_s,
        ivr=settings.recording.ivr,
    )
    app[recording_http.RECORDINGS] = service
    app[recording_http.RECORDING_ROWS] = rows
    app[recording_http.CALL_FLOWS] = flows_now(app)
    app[recording_http.TRANSCRIPT_LINES] = TranscriptStore(p.store.pool)
    forms = await asyncio.to_thread(load_forms, settings)
    app[scoring.SCORING] = scoring.Scoring(
        forms, EvaluationStore(p.store.pool), utcnow, ZoneInfo(settings.timezone)
    )
    if not settings.recording.enabled:
        yield
        return
    cache = PromptCache(Paths.of(settings).sounds_cache)
    for text in settings.recording.consent_prompt:
        path = await cache.render(Prompt(text.text, text.lang))
        service.consent_uris.append((text, PromptCache.asterisk_uri(path)))
    transcripts: Transcripts | None = None
    t = settings.recording.transcripts
    if t.enabled:
        # The worker processes start with the first job (no cost at start-up).
        transcriber = PoolTranscriber(t.engine, t.model_path, t.workers, t.nice)
        transcripts = Transcripts(
            app[recording_http.TRANSCRIPT_LINES],
            transcriber,
            service.path_of,
            utcnow,
            TranscriptOptions(
                workers=t.workers,
                pause_s=t.line_pause_s,
                rules=TranscriptJobRules(max_attempts=t.max_attempts, retry_s=t.retry_s),
            ),
        )
        app[recording_http.TRANSCRIPTS] = transcripts
        service.recorded.append(transcripts.recorded)
        await transcripts.start()
    await service.start()
    try:
        yield
    finally:
        await service.stop()
        if transcripts is not None:
            await transcripts.stop()
            await transcriber.close()


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[SHUTDOWN] = Shutdown()
    app[PARTS] = Parts()
    app[health.APP] = health.AppStatus(utcnow().isoformat())
    app.cleanup_ctx.extend(
        [
            mail_catcher_ctx,
            database_ctx,
            asterisk_ctx,
            prompts_ctx,
            speech_ctx,
            routing_ctx,
            panel_ctx,
            ami_ctx,
            sip_bans_ctx,
            metrics_ctx,
            recording_ctx,
            calls_ctx,
            coaching_ctx,
        ]
    )
    app.on_shutdown.append(panel_http.close_live_sockets)
    app.router.add_get("/health", health.handler)
    routing_http.add_routes(app)
    calls_http.add_routes(app)
    callbacks_http.add_routes(app)
    voicemail_http.add_routes(app)
    inbound_http.add_routes(app)
    dialer_http.add_routes(app)
    panel_http.add_routes(app)
    pop_http.add_routes(app)
    softphone_http.add_routes(app)
    security_http.add_routes(app)
    metrics_http.add_routes(app)
    supervision_http.add_routes(app)
    experts_http.add_routes(app)
    recording_http.add_routes(app)
    scoring.add_routes(app)
    qa_desk.add_routes(app)
    fax_http.add_routes(app)
    fax_desk.add_routes(app)
    fax_agent.add_routes(app)
    app[panel_http.CALL_BOX_PARTS] = (fax_agent.call_box_part,)
    openapi.add_routes(app)
    return app
