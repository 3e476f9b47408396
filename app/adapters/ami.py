"""AMI through panoramisk: a supervised connection for health checks, to have phones qualified
at once when Asterisk (re)starts, and for the security events that SIP bans feed on.

AMI carries what ARI does not (queue and agent events, originate with AMD for the
dialer); later features hang their event handlers on this connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from panoramisk import Manager

from app.domain.sip_bans import FAILURE_EVENTS, AuthFailure, parse_security_event
from app.errors import PbxError

log = logging.getLogger(__name__)


class AmiConnection:
    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        self._where = f"{host}:{port}"
        self._manager = Manager(
            host=host,
            port=port,
            username=user,
            secret=secret,
            # Only the security class (authentication failures, for SIP bans): every call's
            # dozens of other events would only cost CPU on the loop that routes calls.
            events="security",
            ping_delay=10,
            reconnect_timeout=2,
            loop=asyncio.get_running_loop(),
            log=logging.getLogger("panoramisk"),
        )

    async def start(self, timeout: float = 10.0) -> None:
        # panoramisk reconnects by itself after a loss; the first login we wait for.
        try:
            await self._manager.connect()
        except OSError as exc:
            raise PbxError(f"cannot connect to AMI at {self._where}: {exc}") from exc
        if not await self.ping(timeout):
            raise PbxError(f"AMI at {self._where} did not log us in within {timeout:.0f} s")

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            resp: Any = await asyncio.wait_for(self._manager.send_action({"Action": "Ping"}), timeout)
        except (TimeoutError, OSError, ConnectionError):
            return False
        return str(getattr(resp, "Response", "")) == "Success"

    async def qualify(self, endpoint: str, timeout: float = 2.0) -> bool:
        """Have Asterisk qualify a PJSIP endpoint's contacts now (PJSIPQualify)."""
        try:
            resp: Any = await asyncio.wait_for(
                self._manager.send_action({"Action": "PJSIPQualify", "Endpoint": endpoint}), timeout
            )
        except (TimeoutError, OSError, ConnectionError):
            return False
        return str(getattr(resp, "Response", "")) == "Success"

    def on_auth_failure(self, handler: Callable[[AuthFailure], None]) -> None:
        """Call `handler` for every failed authentication Asterisk reports (security events)."""

        def dispatch(_manager: Any, message: Mapping[str, str]) -> None:
            failure = parse_security_event({k: str(v) for k, v in message.items()})
            if failure is not None:
                handler(failure)

        for name in sorted(FAILURE_EVENTS):
            self._manager.register_event(name, dispatch)

    async def command(self, command: str, timeout: float = 5.0) -> str:
        """Run an Asterisk CLI command over AMI (no process forked); its output."""
        try:
            resp: Any = await asyncio.wait_for(
                self._manager.send_action({"Action": "Command", "Command": command}), timeout
            )
        except (TimeoutError, OSError, ConnectionError) as exc:
            raise PbxError(f"AMI command {command!r} failed: {exc!r}") from exc
        if str(getattr(resp, "Response", "")) not in ("Success", "Follows"):
            raise PbxError(f"AMI command {command!r} refused: {getattr(resp, 'Message', '')}")
        output = getattr(resp, "Output", "")
        return "\n".join(output) if isinstance(output, list) else str(output)

    async def action(self, fields: Mapping[str, str], timeout: float = 5.0) -> Mapping[str, str]:
        """Send one AMI action; its response's fields. PbxError when refused or unanswered."""
        try:
            resp: Any = await asyncio.wait_for(self._manager.send_action(dict(fields)), timeout)
        except (TimeoutError, OSError, ConnectionError) as exc:
            raise PbxError(f"AMI {fields.get('Action')} failed: {exc!r}") from exc
        if str(getattr(resp, "Response", "")) != "Success":
            raise PbxError(f"AMI {fields.get('Action')} refused: {getattr(resp, 'Message', '')}")
        return {str(k): str(v) for k, v in dict(resp).items()}

    async def mix_monitor(self, channel: str, path: str, options: str, command: str = "") -> None:
        """Start MixMonitor on a channel (by name or ARI id) into `path` (absolute)."""
        fields = {"Action": "MixMonitor", "Channel": channel, "File": path, "Options": options}
        if command:
            fields["Command"] = command
        await self.action(fields)

    async def stop_mix_monitor(self, channel: str) -> None:
        """Stop the channel's MixMonitor: Asterisk closes the file and runs its command."""
        await self.action({"Action": "StopMixMonitor", "Channel": channel})

    async def mix_monitor_mute(self, channel: str, on: bool) -> None:
        """Silence (both directions) or restore a channel's MixMonitor recording."""
        await self.action(
            {"Action": "MixMonitorMute", "Channel": channel, "Direction": "both", "State": "1" if on else "0"}
        )

    def close(self) -> None:
        self._manager.close()
