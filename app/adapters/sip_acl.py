"""The PJSIP ACL that enforces SIP bans inside Asterisk, without root: the app writes
`pjsip_bans.conf` (included by pjsip.conf) in the instance's config dir and has Asterisk
reload PJSIP's configuration (`module reload res_pjsip.so`: res_pjsip_acl itself cannot be
reloaded; the acl objects are res_pjsip's), which leaves registrations and calls in progress
alone (tests/e2e/test_sip_bans.py checks a live call). A denied source's every request is
answered 403 before any endpoint or password is looked at.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from app.errors import PbxError

SECTION = "lianluo-bans"
FILE_NAME = "pjsip_bans.conf"


def render_acl(addresses: Iterable[str]) -> str:
    lines = ["; Written by Lianluo (app/security/): sources banned for guessing SIP passwords."]
    denied = sorted(set(addresses))
    if denied:  # an acl section with no rule would be an error; no bans, no section
        lines += ["", f"[{SECTION}]", "type = acl"]
        lines += [f"deny = {a}/{32 if ':' not in a else 128}" for a in denied]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".conf.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class PjsipAcl:
    def __init__(self, etc_dir: Path, command: Callable[[str], Awaitable[str]]) -> None:
        self.path = etc_dir / FILE_NAME
        self._command = command

    async def apply(self, addresses: Iterable[str]) -> None:
        await asyncio.to_thread(_write, self.path, render_acl(addresses))
        output = await self._command("module reload res_pjsip.so")
        if "reloaded successfully" not in output:
            raise PbxError(f"Asterisk did not reload PJSIP: {output.strip()}")
