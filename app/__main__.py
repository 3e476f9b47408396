"""Command line: ``python -m app run``, ``restart``, ``check-config``, ``import-leads``,
``import-dnc`` and ``replay``.

Stopping, three ways: Ctrl-C (SIGINT) ends every call and stops Asterisk, after saying how many
calls it ends; SIGTERM (a service manager) and ``python -m app restart`` (SIGHUP to the running
app, which then starts itself again in place) hand over: the calls stay up in Asterisk and the
next start takes them over."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

from aiohttp import web

from app.adapters.db import safe_url
from app.config import Settings, load_settings
from app.domain.ivr_flow import describe_choices, main_menu
from app.errors import AppError, ConfigError
from app.inbound.flow_files import load_flows
from app.recording.forms import load_forms


def banner(settings: Settings, database: str) -> str:
    """What a person starting the center needs, and where to read the secrets: never the secrets
    themselves (a run log is often kept, shared or world-readable)."""
    a = settings.asterisk
    secrets = f"{settings.var_dir.rstrip('/')}/secrets.yaml"
    lines = [
        "",
        f"Lianluo is running: {settings.center_name}",
        f"  health page:  http://{settings.web.host}:{settings.web.port}/health",
        f"  SIP server:   {a.sip_bind}:{a.sip_port} (UDP)",
        "  Agents: register a softphone with username = the agent number; the passwords are",
        f"    `agent_passwords` in {secrets} (mode 0600); list them with",
        f"    {_list_command('agent_passwords', secrets)}",
    ]
    for agent in settings.agents[:10]:
        phone = "  (browser softphone: sign in to the agent panel)" if agent.webrtc else ""
        lines.append(f"    {agent.id}  {agent.name}{phone}")
    listeners = [u for u in settings.web.users if u.phone]
    if listeners:
        lines.append("  Supervisors' phones to listen to calls: username = the panel username, same list")
        for user in listeners:
            phone = "  (browser softphone: on the supervisor page)" if user.webrtc else ""
            lines.append(f"    {user.username}  {user.name}{phone}")
    lines += panel_banner(settings)
    dids = ", ".join(settings.carrier.dids)
    lines += [
        f"  Call a service line ({dids}) from a second registered phone, or as the carrier",
        f"  from {', '.join(settings.carrier.match)} (e.g. sipp -sn uac -s {settings.carrier.dids[0]} "
        f"-i 127.0.0.2 -m 1 -d 15000 127.0.0.1:{a.sip_port}, which listens to the greeting).",
        *menu_banner(settings),
        *mail_banner(settings),
        f"  Interactions are stored in {database}.",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def menu_banner(settings: Settings) -> list[str]:
    """The real first menu of the flow answering the first service line (read from the flow
    files, so it cannot drift from what callers hear)."""
    flow = load_flows(settings).for_dnis(settings.carrier.dids[0] if settings.carrier.dids else "")
    menu = main_menu(flow)
    if menu is None:
        return []
    keys = "; ".join(f"{key} {what}" for key, what in describe_choices(flow, menu))
    text = f"In the menu, press {keys}."
    step = flow.language
    if step.prompt:  # asked first (README, "Languages")
        names = {"en": "English", "zh": "Mandarin"}
        chosen = ", ".join(f"{key} {names.get(lang, lang)}" for key, lang in step.keys.items())
        lines = ", ".join(f"{number} is {names.get(lang, lang)}" for number, lang in step.by_dnis.items())
        text = (
            f"First the language: press {chosen}"
            + (f" ({lines} without asking)" if lines else "")
            + ". "
            + text
        )
    return [*textwrap.wrap(text, 92, initial_indent="  ", subsequent_indent="    ")]


def mail_banner(settings: Settings) -> list[str]:
    if settings.mail_catcher is None:
        return []
    maildir = f"{settings.var_dir.rstrip('/')}/{settings.mail_catcher.maildir}"
    return [
        f"  E-mail (voicemail, faxes) is caught on this machine: one file per message in {maildir}/new",
        f"    (e.g. ls -t {maildir}/new | head; or mutt -f {maildir})",
    ]


def panel_banner(settings: Settings) -> list[str]:
    web = settings.web
    others = ", ".join(f"{u.username} ({u.role})" for u in web.users)
    secrets = f"{settings.var_dir.rstrip('/')}/secrets.yaml"
    return [
        f"  Agent panel:  http://{web.host}:{web.port}/login",
        "    agents sign in with their number" + (f"; also {others}" if others else ""),
        f"    passwords: `panel_passwords` in {secrets}; list them with",
        f"    {_list_command('panel_passwords', secrets)}",
    ]


def _list_command(key: str, secrets: str) -> str:
    return f"awk '/^{key}:/ {{p=1; next}} /^[^ ]/ {{p=0}} p' {secrets}"


async def import_list(settings: Settings, args: argparse.Namespace) -> int:
    """The list commands: the same database the running center uses, migrated first."""
    from psycopg_pool import AsyncConnectionPool

    from app.adapters.db import Store, ensure_database, migrate, resolve_url
    from app.dialer.lists import import_dnc, import_leads

    try:
        text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8-sig")
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.command == "import-leads" and args.campaign not in {c.name for c in settings.campaigns}:
        known = ", ".join(c.name for c in settings.campaigns) or "none"
        print(f"no campaign {args.campaign!r} in {args.config} (campaigns: {known})", file=sys.stderr)
        return 2
    url = resolve_url(settings.database.url)
    # Said first: with DATABASE_URL unset or pointing elsewhere, the rows would land in a
    # database the running center does not read, and nothing else would tell.
    print(f"database: {safe_url(url)}", flush=True)
    try:
        await ensure_database(url)
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            await migrate(pool)
            store = Store(pool)
            if args.command == "import-leads":
                try:
                    report = await import_leads(store, args.campaign, text, settings.languages)
                except ValueError as exc:
                    print(f"{args.file}: {exc}", file=sys.stderr)
                    return 2
                print(f"{args.file} -> campaign {args.campaign}: {report.summary()}")
            else:
                added, refused = await import_dnc(store, text, source=Path(args.file).name)
                print(f"{args.file}: {added} numbers added to the do-not-call list, {len(refused)} refused")
                for line, reason in refused[:50]:
                    print(f"  line {line}: {reason}")
    except AppError as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 1
    return 0


async def replay(settings: Settings, args: argparse.Namespace) -> int:
    """Replay recorded calls against the running center's flows (app/replay/): 0 when every call
    matches, 1 when some differ, 2 when some could not be replayed."""
    import yaml
    from psycopg_pool import AsyncConnectionPool

    from app.adapters.db import resolve_url
    from app.adapters.sip_caller import SipCaller
    from app.bootstrap import Paths
    from app.domain.replay import summary
    from app.replay.service import Target, caller_address, can_bind, run_replays
    from app.replay.store import ReplayStore

    var_dir = Paths.of(settings).var_dir
    secrets_file = var_dir / "secrets.yaml"
    try:
        loaded = await asyncio.to_thread(lambda: yaml.safe_load(secrets_file.read_text()) or {})
    except (OSError, yaml.YAMLError) as exc:
        print(f"cannot read {secrets_file} (the running center's): {exc}", file=sys.stderr)
        return 2
    secret = loaded.get("api_token") if isinstance(loaded, dict) else None
    if not isinstance(secret, str) or not secret:
        print(f"no api_token in {secrets_file}: has this center ever run?", file=sys.stderr)
        return 2
    bind = await asyncio.to_thread(caller_address, settings.carrier.match, can_bind)
    if bind is None:
        print(
            "cannot call as the carrier: no address of carrier.match"
            f" ({', '.join(settings.carrier.match)}) is on this machine",
            file=sys.stderr,
        )
        return 2
    recordings = Path(settings.recording.directory)
    if not recordings.is_absolute():
        recordings = var_dir / recordings
    host = settings.asterisk.sip_bind
    target = Target(
        "127.0.0.1" if host in ("0.0.0.0", "::", "") else host,
        settings.asterisk.sip_port,
        tuple(settings.carrier.dids),
        tuple(settings.carrier.match),
        secret,
        recordings,
    )
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            print(
                f"--since {args.since!r}: expected a date, e.g. 2026-12-01 or 2026-12-01T09:00",
                file=sys.stderr,
            )
            return 2
        if since.tzinfo is None:
            since = since.astimezone()  # the machine's local time
    if args.interaction:
        try:
            args.interaction = str(uuid.UUID(args.interaction))
        except ValueError:
            print(f"--interaction {args.interaction!r}: not an interaction id", file=sys.stderr)
            return 2
    if args.limit < 1 or args.grace <= 0:
        print("--limit must be at least 1 and --grace above 0", file=sys.stderr)
        return 2
    url = resolve_url(settings.database.url)
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        store = ReplayStore(pool)
        calls = await store.calls(args.interaction, since, args.limit)
        if not calls:
            what = f"interaction {args.interaction}" if args.interaction else f"since {since}"
            print(f"no recorded inbound call to replay ({what}) in {safe_url(url)}", file=sys.stderr)
            return 2
        caller = SipCaller(bind, var_dir / "replay-pjsua.log" if args.sip_log else None)
        try:
            await caller.start()
            verdicts = await run_replays(
                store, caller, target, calls, args.grace, lambda line: print(line, flush=True)
            )
        except AppError as exc:
            print(f"replay failed: {exc}", file=sys.stderr)
            return 2
        finally:
            await caller.close()
    line, code = summary(verdicts)
    print(line)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Lianluo contact center")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start Asterisk, the call flows and the web server")
    run.add_argument("--config", default="config/demo.yaml")
    run.add_argument("--log-level", default="INFO")
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config")
    leads = sub.add_parser("import-leads", help="import a campaign's list from a CSV file")
    leads.add_argument("--config", default="config/demo.yaml")
    leads.add_argument("campaign")
    leads.add_argument("file")
    dnc = sub.add_parser("import-dnc", help="add numbers to the do-not-call list (one per line or CSV)")
    dnc.add_argument("--config", default="config/demo.yaml")
    dnc.add_argument("file")
    again = sub.add_parser(
        "restart", help="restart the running center (e.g. after an upgrade) without dropping a call"
    )
    again.add_argument("--config", default="config/demo.yaml")
    again.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it (default 120)")
    rerun = sub.add_parser(
        "replay", help="replay recorded calls against the running center's flows and compare the paths"
    )
    rerun.add_argument("--config", default="config/demo.yaml")
    which = rerun.add_mutually_exclusive_group(required=True)
    which.add_argument("--interaction", help="the recorded call's interaction id")
    which.add_argument(
        "--since", help="every recorded inbound call since this date (local time unless given)"
    )
    rerun.add_argument("--limit", type=int, default=20, help="at most this many calls (default 20)")
    rerun.add_argument(
        "--grace",
        type=float,
        default=8.0,
        help="hang up when nothing new happened for this long (s, default 8)",
    )
    rerun.add_argument("--sip-log", action="store_true", help="write pjsua's log to var_dir/replay-pjsua.log")
    rerun.add_argument("--verbose", action="store_true", help="say what the replay does in each node")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.config)
        load_flows(settings)  # flow files are checked before anything starts, too
        load_forms(settings)  # and the QA scoring forms
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{args.config}: OK")
        return 0
    if args.command in ("import-leads", "import-dnc"):
        return asyncio.run(import_list(settings, args))
    if args.command == "restart":
        return restart(settings, args.timeout)
    if args.command == "replay":
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
        return asyncio.run(replay(settings, args))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CallFormatter("%(asctime)s %(levelname)s %(name)s %(callprefix)s%(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    from app.adapters.asterisk_instance import lock_instance
    from app.bootstrap import DATABASE_URL, SHUTDOWN, Paths, build_app  # after logging is set
    from app.web.http import SETTINGS

    try:
        lock_instance(Paths.of(settings).var_dir, settings.asterisk.instance)
        # Bind the web port before anything starts, so a busy port fails fast and the
        # banner below is only printed once the page it names is really served.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.web.host, settings.web.port))
    except OSError as exc:
        where = f"{settings.web.host}:{settings.web.port}"
        print(f"start-up failed: cannot serve web.port {where}: {exc.strerror}", file=sys.stderr)
        return 1
    except AppError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    app = build_app(settings)

    async def announce(app: web.Application) -> None:
        print(banner(app[SETTINGS], safe_url(app[DATABASE_URL])), flush=True)
        # Once running: SIGTERM and SIGHUP hand the calls over instead of ending them (SIGINT,
        # Ctrl-C, keeps aiohttp's handler: stop everything).
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, hand_over, app, False)
        loop.add_signal_handler(signal.SIGHUP, hand_over, app, True)

    def hand_over(app: web.Application, again: bool) -> None:
        shutdown = app[SHUTDOWN]
        shutdown.handover = True
        shutdown.restart = again
        logging.getLogger("app").warning(
            "%s: handing the calls over to the next start", "restarting" if again else "stopping"
        )
        raise web.GracefulExit()

    app.on_startup.append(announce)
    try:
        web.run_app(
            app,
            sock=sock,
            print=None,
            shutdown_timeout=5,
            access_log=None,
        )
    except AppError as exc:
        logging.getLogger("app").error("start-up failed: %s", exc)
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    if app[SHUTDOWN].restart:
        # The same command line again, in this process: the terminal, the service manager and
        # whoever waits on this pid see one process throughout.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "app", *sys.argv[1:]])
    return 0


def restart(settings: Settings, timeout: float) -> int:
    """Ask the running center for this configuration to restart itself, and wait until it
    serves again."""
    from app.adapters.asterisk_instance import InstancePaths, running_app_pid
    from app.bootstrap import Paths

    root = InstancePaths.under(Paths.of(settings).var_dir, settings.asterisk.instance).root
    pid = running_app_pid(root / "lianluo.lock")
    if pid is None:
        print(f"no Lianluo is running instance {settings.asterisk.instance!r} in {root}", file=sys.stderr)
        return 1
    health = f"http://{settings.web.host}:{settings.web.port}/health"
    before = _started_at(health)
    started = time.monotonic()
    os.kill(pid, signal.SIGHUP)
    print(f"restarting Lianluo (pid {pid}); calls stay up", flush=True)
    while time.monotonic() - started < timeout:
        now = _started_at(health)
        if now is not None and now != before:
            print(f"Lianluo serves again after {time.monotonic() - started:.1f} s", flush=True)
            return 0
        time.sleep(0.2)
    print(f"Lianluo did not come back within {timeout:.0f} s; see its log", file=sys.stderr)
    return 1


def _started_at(url: str) -> str | None:
    """When the app serving `url` started, if it answers healthy."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    app = body.get("app") if isinstance(body, dict) else None
    return str(app.get("started_at")) if isinstance(app, dict) and body.get("status") == "ok" else None


# What could make one record look like several (CR, LF, the Unicode line separators), hide text
# (other control characters) or fail the write (lone surrogates), in what callers and browsers send.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape", "backslashreplace").decode("ascii")


class CallFormatter(logging.Formatter):
    """Every log line about a call carries its interaction id (``extra={"call": id}``), and one
    record is one line: control characters in the message (a caller ID, a username, a body) are
    written escaped, so no input can forge a line. A traceback keeps its lines."""

    def format(self, record: logging.LogRecord) -> str:
        call = getattr(record, "call", None)
        record.callprefix = f"[{call}] " if call else ""
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _UNSAFE.sub(_escaped, record.message)
        return super().formatMessage(record)


if __name__ == "__main__":
    sys.exit(main())
