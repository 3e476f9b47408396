"""Fax-on-demand: the IVR's `fax` node, and the fax sent back on the caller's own call.

The caller keys document codes (each followed by #); every title is read back, an unknown code
is refused and asked again. A # alone (or silence) once something is chosen ends the choice.
Then: "press start on your fax machine now", and the cover page (center, date, documents,
pages) and the documents go out with SendFAX on this very call. The call ends there, with a
`faxes` row saying how many pages went.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.adapters.fax_pages import FaxPages
from app.adapters.fax_store import FaxStore
from app.calls.session import Call
from app.calls.voice import Voice, filled
from app.domain.fax import (
    Catalogue,
    Fax,
    FaxDocument,
    FaxJob,
    choose,
    cover_lines,
    cover_postscript,
    keyed_number_problem,
)
from app.domain.interaction import Outcome
from app.domain.ivr_flow import Node
from app.domain.prompt import PromptText
from app.errors import AppError
from app.fax.session import send_fax

QueueJob = Callable[[str, list[str], str], Awaitable[FaxJob]]  # (number, codes, by) -> the job

MAX_CODE_DIGITS = 8
# The longest a fax may take: set-up, then a generous minute per page.


@dataclass(frozen=True)
class FaxPrompts:
    ask: tuple[PromptText, ...] = (
        PromptText("Please enter the code of the document you want, then press the pound key."),
        PromptText("请输入您需要的文件编号，以井号键结束。", "zh"),
    )
    more: tuple[PromptText, ...] = (
        PromptText(
            "To add another document, enter its code and press pound. To receive your fax now, press pound."
        ),
        PromptText("如需添加其他文件，请输入编号并按井号键。现在接收传真，请按井号键。", "zh"),
    )
    unknown: tuple[PromptText, ...] = (
        PromptText("Sorry, there is no document with that code."),
        PromptText("对不起，没有这个编号的文件。", "zh"),
    )
    start: tuple[PromptText, ...] = (
        PromptText("Please press the start button on your fax machine now."),
        PromptText("现在请按下传真机上的开始键。", "zh"),
    )
    how: tuple[PromptText, ...] = (
        PromptText(
            "To receive your fax now on this call, press 1. To have it sent to a fax number, press 2."
        ),
        PromptText("现在在本次通话中接收传真，请按1。发送到传真号码，请按2。", "zh"),
    )
    ask_number: tuple[PromptText, ...] = (
        PromptText("Please enter the fax number, then press the pound key."),
        PromptText("请输入传真号码，以井号键结束。", "zh"),
    )
    number_refused: tuple[PromptText, ...] = (
        PromptText("Sorry, we cannot send faxes to that number."),
        PromptText("对不起，我们无法向该号码发送传真。", "zh"),
    )
    queued: tuple[PromptText, ...] = (
        PromptText("Thank you. Your fax will be sent to {number}. Goodbye."),
        PromptText("谢谢。您的传真将发送至{number}。再见。", "zh"),
    )
    nothing: tuple[PromptText, ...] = (
        PromptText("No document was chosen. Goodbye."),
        PromptText("您没有选择文件。再见。", "zh"),
    )


def chosen_prompt(doc: FaxDocument) -> list[PromptText]:
    out = [PromptText(f"You chose {doc.title_en}.")]
    if doc.title_zh:
        out.append(PromptText(f"您选择了{doc.title_zh}。", "zh"))
    return out


class FaxOnDemand:
    def __init__(
        self,
        *,
        catalogue: Catalogue,
        pages: FaxPages,
        store: FaxStore,
        voice: Voice,
        out_dir: Path,
        center_name: str,
        station_id: str,
        paper: str,
        max_documents: int,
        prompts: FaxPrompts = FaxPrompts(),
        numbers: tuple[str, ...] = (),
        queue_job: QueueJob | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.pages = pages
        self.store = store
        self.voice = voice
        self.out_dir = out_dir
        self.center_name = center_name
        self.station_id = station_id
        self.paper = paper
        self.max_documents = max_documents
        self.prompts = prompts
        self.numbers = numbers  # prefixes of fax numbers callers may key (a job); empty: not offered
        self.queue_job = queue_job

    async def prerender(self) -> None:
        """The fixed prompts and every title, before the first caller asks."""
        p = self.prompts
        for texts in (p.ask, p.more, p.unknown, p.start, p.nothing, p.how, p.ask_number, p.number_refused):
            await self.voice.say(texts)
        for doc in self.catalogue.documents:
            await self.voice.say(chosen_prompt(doc))

    async def run(self, call: Call, node: Node) -> None:
        """The `fax` node: choose, then send on this call. The call ends here."""
        chosen = await self.choose(call, node)
        it = call.it
        if not chosen:
            await call.play(await self.voice.say(self.prompts.nothing, call.it.language), interruptible=True)
            it.end(call.now(), Outcome.NO_INPUT, ended_by="system")
            await call.hang_up()
            return
        if self.numbers and self.queue_job is not None and await self.later(call, node, chosen) != "now":
            return
        fax = Fax(
            id=str(uuid.uuid4()),
            direction="out",
            mode="on_call",
            number=it.ani,
            started_at=call.now(),
            status="sending",
            interaction_id=it.id,
            documents=tuple(d.code for d in chosen),
        )
        tiff = await self.compose(fax, chosen, call.now())
        await call.play(await self.voice.say(self.prompts.start, call.it.language), interruptible=False)
        it.record(
            call.now(), "fax_sending", fax_id=fax.id, documents=list(fax.documents), pages=fax.pages_expected
        )
        await call.save()  # the fax row refers to the interaction
        await self.store.save(fax)
        expected = fax.pages_expected or 0
        result = await send_fax(
            call, tiff, station_id=self.station_id, header=self.center_name, pages=expected
        )
        fax.finish(result, call.now())
        it.legs.pop("fax", None)
        it.record(
            call.now(),
            "fax_sent" if result.ok else "fax_failed",
            fax_id=fax.id,
            status=result.status.value,
            pages=result.pages,
            of=expected,
            rate=result.rate,
            ecm=result.ecm,
            error=result.error,
        )
        call.log.info(
            "fax on call: %s, %d of %d pages at %s bit/s (%s)",
            result.status.value,
            result.pages,
            expected,
            result.rate,
            result.error or "no error",
        )
        it.end(call.now(), Outcome.FAX, ended_by="system")
        call.save_soon()
        await self.store.save(fax)
        if call.caller not in call.gone:
            await call.hang_up()

    async def later(self, call: Call, node: Node, chosen: Sequence[FaxDocument] = ()) -> str:
        """Now on this call ("now", the default when no key comes), or a job to a number the
        caller keys: "queued", or "refused" after the last refused try. The call ends unless now."""
        it = call.it
        key = await call.play(await self.voice.say(self.prompts.how, call.it.language), interruptible=True)
        if key is None:
            key = await call.wait_digit(node.timeout_s)
        if key != "2":
            return "now"
        assert self.queue_job is not None
        ask = await self.voice.say(self.prompts.ask_number, call.it.language)
        refused = await self.voice.say(self.prompts.number_refused, call.it.language)
        codes = [d.code for d in chosen]
        for attempt in range(1, node.attempts + 1):
            number = await self.gather(call, ask, node.timeout_s, longest=20)
            problem = keyed_number_problem(number, self.numbers)
            if problem is None:
                try:
                    job = await self.queue_job(number, codes, f"ivr:{it.id}")
                except AppError as exc:
                    problem = exc.message
                else:
                    it.record(call.now(), "fax_job_queued", job_id=job.id, number=number, documents=codes)
                    it.end(call.now(), Outcome.FAX, ended_by="system")
                    call.save_soon()
                    spoken = " ".join(number)
                    await call.play(
                        await self.voice.say(filled(self.prompts.queued, number=spoken), call.it.language),
                        False,
                    )
                    await call.hang_up()
                    return "queued"
            it.record(call.now(), "fax_number_refused", number=number, reason=problem, attempt=attempt)
            call.save_soon()
            # A key over it stops it and is the first of the next try's number.
            await call.play(refused, interruptible=True, keep_key=True)
        it.end(call.now(), Outcome.NO_INPUT, ended_by="system")
        await call.hang_up()
        return "refused"

    async def choose(self, call: Call, node: Node) -> list[FaxDocument]:
        it = call.it
        ask = await self.voice.say(list(node.prompt) or self.prompts.ask, call.it.language)
        more = await self.voice.say(self.prompts.more, call.it.language)
        unknown = await self.voice.say(self.prompts.unknown, call.it.language)
        chosen: list[FaxDocument] = []
        failures = 0
        while failures < node.attempts and len(chosen) < self.max_documents:
            code = await self.gather(call, more if chosen else ask, node.timeout_s)
            if not code:
                if chosen:
                    break
                failures += 1
                it.record(call.now(), "no_input", node="fax", attempt=failures)
                continue
            picked = choose(self.catalogue, chosen, code, self.max_documents)
            if isinstance(picked, str):
                failures += 1
                it.record(call.now(), "fax_invalid_code", code=code, reason=picked, attempt=failures)
                call.save_soon()
                await call.play(unknown, interruptible=True, keep_key=True)
                continue
            chosen.append(picked)
            it.record(call.now(), "fax_document_chosen", code=picked.code, title=picked.title_en)
            call.save_soon()
            # A caller who knows the next code types it over the confirmation: it counts.
            await call.play(
                await self.voice.say(chosen_prompt(picked), call.it.language),
                interruptible=True,
                keep_key=True,
            )
        return chosen

    @staticmethod
    async def gather(call: Call, prompt: list[str], timeout_s: float, longest: int = MAX_CODE_DIGITS) -> str:
        """Keys until #, the longest code, or a pause; the prompt stops at the first key."""
        digits = ""
        key = await call.play(prompt, interruptible=True)
        if key is None:
            key = await call.wait_digit(timeout_s)
        while key is not None and key != "#" and len(digits) < longest:
            digits += key
            key = await call.wait_digit(timeout_s)
        return digits

    async def compose(self, fax: Fax, docs: Sequence[FaxDocument], now: datetime) -> Path:
        return await compose_fax(self.pages, self.out_dir, self.center_name, self.paper, fax, docs, now)


async def compose_fax(
    pages: FaxPages,
    out_dir: Path,
    center_name: str,
    paper: str,
    fax: Fax,
    docs: Sequence[FaxDocument],
    now: datetime,
    to: str = "",
) -> Path:
    """The cover page and the documents as one TIFF for this fax (its pages_expected set)."""
    program = cover_postscript(cover_lines(center_name, now, docs, to), paper)
    cover = await pages.page_from_postscript(program, out_dir / f"{fax.id}-cover.tif")
    out = out_dir / f"{fax.id}.tif"
    fax.pages_expected = await pages.join([cover, *(Path(d.tiff) for d in docs)], out)
    cover.unlink(missing_ok=True)
    fax.tiff_path = str(out)
    return out
