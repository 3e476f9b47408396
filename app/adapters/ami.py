"""AMI through panoramisk. For now: a supervised connection used for health checks, and to have
phones qualified at once when Asterisk (re)starts.

AMI carries what ARI does not (queue and agent events, originate with AMD for the
dialer); later features hang their event handlers on this connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from panoramisk import Manager

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
            # No feature listens to AMI events yet; parsing every call's dozens of events
            # would only cost CPU on the loop that routes calls. Switch on when one does.
            events="off",
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

    def close(self) -> None:
        self._manager.close()
