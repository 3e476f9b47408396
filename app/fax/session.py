"""A fax session on a call's own channel: SendFAX or ReceiveFAX, which only the dialplan runs.

The caller's channel leaves Stasis for `lianluo-fax-session` (dialplans/extensions.conf) with
the file and station id as channel variables. Whatever way the session ends (the far end hangs
up when the fax is done, or mid-page), a hangup handler the context pushes reports Asterisk's fax
variables as a `LianluoFax` user event, which reaches the call through the endpoint
subscription like the channel's hang-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from app.adapters.ari import ChannelDestroyed, ChannelUserevent
from app.calls.events import CallDropped, PbxLost
from app.calls.session import Call
from app.domain.fax import FaxResult, fax_result

CONTEXT = "lianluo-fax-session"
# How long a sending session may take: the handshake, then each page (slow lines, retrains).
SESSION_BASE_S = 90.0
SESSION_PER_PAGE_S = 60.0
REPORT = "LianluoFax"
# After the channel is gone, how long its report may still be on its way.
LATE_REPORT_S = 3.0


async def fax_session(
    call: Call,
    direction: Literal["send", "receive"],
    file: Path,
    *,
    station_id: str,
    header: str,
    timeout_s: float,
) -> Mapping[str, str] | None:
    """Run the session on the caller's channel; Asterisk's fax fields (status, pages, rate, ecm,
    error, remote...), or None when no report came (the channel vanished without one)."""
    await call.pbx.continue_in_dialplan(
        call.caller,
        CONTEXT,
        direction,
        {"LIANLUO_FAX_FILE": str(file), "LIANLUO_FAX_STATION": station_id, "LIANLUO_FAX_HEADER": header},
    )
    call.it.legs["fax"] = {"direction": direction, "file": str(file)}
    call.save_soon()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                ev = await call.events.get()
        except TimeoutError:
            break
        if isinstance(ev, ChannelUserevent) and ev.channel.id == call.caller and ev.name == REPORT:
            return ev.fields
        if isinstance(ev, ChannelDestroyed) and ev.channel.id == call.caller:
            call.gone.add(call.caller)
            deadline = min(deadline, loop.time() + LATE_REPORT_S)
        elif isinstance(ev, PbxLost) and call.caller in ev.channel_ids:
            call.gone |= ev.channel_ids
            if ev.pbx_restarted:
                raise CallDropped(ev.why or "Asterisk restarted")
            return None
    if call.caller not in call.gone:
        call.log.warning("no fax report within %.0f s; hanging up", timeout_s)
        await call.hang_up()
    return None


async def send_fax(call: Call, tiff: Path, *, station_id: str, header: str, pages: int) -> FaxResult:
    """Send `tiff` (`pages` pages) on the caller's channel; what Asterisk reports of it."""
    fields = await fax_session(
        call,
        "send",
        tiff,
        station_id=station_id,
        header=header,
        timeout_s=SESSION_BASE_S + SESSION_PER_PAGE_S * pages,
    )
    return fax_result(fields or {}, expected_pages=pages)
