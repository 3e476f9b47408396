"""The IVR's `fax` node against a fake PBX: codes keyed, refused, chosen, then SendFAX on the call."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.adapters.ari import Channel, ChannelUserevent
from app.bus import Bus
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.domain.fax import Catalogue, Fax, FaxDocument
from app.domain.interaction import Interaction, Outcome, Phase
from app.domain.ivr_flow import Node
from app.domain.outbound import DialPlan, OutboundPolicy
from app.fax.ondemand import FaxOnDemand
from app.fax.session import CONTEXT, REPORT
from tests.support.fake_center import until
from tests.support.fake_pbx import FakePbx, FakeStore, now

SHEET = FaxDocument("101", "the product sheet", "产品说明", 2, "/cache/sheet.tif")


class Voice:
    async def say(self, texts: Sequence[Any], lang: str | None = None) -> list[str]:
        return [f"said:{t.text}" for t in texts]


class Pages:
    """Fax pages without Ghostscript: the join counts the pages it is given."""

    async def page_from_postscript(self, program: str, out: Path) -> Path:
        assert "Fax from Test center" in program and "101  the product sheet  \\(2 pages\\)" in program
        return out

    @staticmethod
    async def join(parts: list[Path], out: Path) -> int:
        return 1 + 2 * (len(parts) - 1)


class Faxes:
    def __init__(self) -> None:
        self.saved: list[Fax] = []

    async def save(self, fax: Fax) -> None:
        self.saved.append(dataclasses.replace(fax))


async def test_codes_are_checked_read_back_and_the_fax_goes_on_the_call(tmp_path: Path) -> None:
    pbx, store = FakePbx(), FakeStore()
    writer = InteractionWriter(store, Bus())
    writer.start()
    board = Switchboard(pbx)
    runtime = Runtime(pbx, writer, board, now, OutboundPolicy(DialPlan()))
    faxes = Faxes()
    on_demand = FaxOnDemand(
        catalogue=Catalogue((SHEET,)),
        pages=Pages(),  # type: ignore[arg-type]
        store=faxes,  # type: ignore[arg-type]
        voice=Voice(),  # type: ignore[arg-type]
        out_dir=tmp_path,
        center_name="Test center",
        station_id="7000",
        paper="a4",
        max_documents=5,
    )
    node = Node(type="fax", timeout_s=2, attempts=3)

    async def arrived(channel: Channel, args: tuple[str, ...]) -> None:
        it = Interaction("it-1", channel.id, ani="13800000001", dnis="7000", arrived_at=now())
        call = runtime.call(it, "inbound")
        call.create()
        board.launch(call, lambda: call.run(lambda: on_demand.run(call, node)))

    board.on_stasis("inbound", arrived)
    events = asyncio.create_task(board.run())
    try:
        caller = pbx.caller_arrives("13800000001")
        await until(lambda: "it-1" in store.rows, "the interaction")
        for key in "999#":
            pbx.press(caller, key)
        await until(lambda: "fax_invalid_code" in store.kinds("it-1"), "the unknown code refused")
        for key in "101#":
            pbx.press(caller, key)
        await until(lambda: "fax_document_chosen" in store.kinds("it-1"), "the document chosen")
        pbx.press(caller, "#")  # done choosing
        sent = await until(lambda: [r for r in pbx.requests if r[0] == "continue"], "SendFAX on the call")
        _, channel_id, context, extension, variables = sent[0]
        assert (channel_id, context, extension) == (caller, CONTEXT, "send")
        assert variables["LIANLUO_FAX_FILE"].endswith(".tif") and variables["LIANLUO_FAX_STATION"] == "7000"
        played = [uri for _, uris in pbx.played for uri in uris]
        assert "said:Sorry, there is no document with that code." in played
        assert "said:You chose the product sheet." in played and "said:您选择了产品说明。" in played
        assert "said:Please press the start button on your fax machine now." in played

        report = {"status": "SUCCESS", "pages": "3", "rate": "14400", "ecm": "yes", "remote": "86 10 1"}
        pbx.queue.put_nowait(ChannelUserevent(pbx.legs[caller].channel, REPORT, report))
        await until(lambda: store.rows["it-1"].phase is Phase.ENDED, "the call to end")
        assert store.rows["it-1"].outcome is Outcome.FAX
        await until(lambda: faxes.saved and faxes.saved[-1].status == "ok", "the fax row")
        fax = faxes.saved[-1]
        assert (fax.documents, fax.pages, fax.pages_expected, fax.rate, fax.ecm) == (
            ("101",),
            3,
            3,
            14400,
            True,
        )
        assert fax.mode == "on_call" and fax.station_id == "86 10 1" and fax.interaction_id == "it-1"
        await until(lambda: "fax_sent" in store.kinds("it-1"), "the fax_sent event")
    finally:
        await board.stop_calls()
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await writer.stop(timeout=1)
