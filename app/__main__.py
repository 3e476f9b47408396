"""Command line: ``python -m app run --config FILE`` and ``python -m app check-config FILE``."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from app.appkeys import SECRETS, SETTINGS
from app.config import Settings, load_settings
from app.errors import AppError, ConfigError


def banner(settings: Settings, agent_passwords: dict[str, str]) -> str:
    a = settings.asterisk
    lines = [
        "",
        f"Lianluo is running: {settings.center_name}",
        f"  health page:  http://{settings.web.host}:{settings.web.port}/health",
        f"  SIP server:   {a.sip_bind}:{a.sip_port} (UDP)",
        "  Register a softphone as an agent (username = password list below):",
    ]
    for agent in settings.agents[:10]:
        lines.append(f"    {agent.id}  {agent.name:<12}  password {agent_passwords.get(agent.id, '?')}")
    dids = ", ".join(settings.carrier.dids)
    lines += [
        f"  Call a service line ({dids}) from a second registered phone, or as the carrier",
        f"  from {', '.join(settings.carrier.match)} (e.g. sipp -sn uac -s 7000 -i 127.0.0.2 "
        f"127.0.0.1:{a.sip_port}).",
        "  Press 1 in the menu to reach an agent. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Lianluo contact center")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start Asterisk, the call flows and the web server")
    run.add_argument("--config", default="config/demo.yaml")
    run.add_argument("--log-level", default="INFO")
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{args.config}: OK")
        return 0

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CallFormatter("%(asctime)s %(levelname)s %(name)s %(callprefix)s%(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    from app.bootstrap import build_app  # after logging is set, so start-up is logged

    app = build_app(settings)

    async def announce(app: web.Application) -> None:
        print(banner(app[SETTINGS], dict(app[SECRETS].agent_passwords)), flush=True)

    app.on_startup.append(announce)
    try:
        web.run_app(
            app,
            host=settings.web.host,
            port=settings.web.port,
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
    return 0


class CallFormatter(logging.Formatter):
    """Every log line about a call carries its interaction id (``extra={"call": id}``)."""

    def format(self, record: logging.LogRecord) -> str:
        call = getattr(record, "call", None)
        record.callprefix = f"[{call}] " if call else ""
        return super().format(record)


if __name__ == "__main__":
    sys.exit(main())
