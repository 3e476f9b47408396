"""Experts outside the center: their live state, the offers with a preview, and the answers.

A conversation (app/calls/conversation.py) asks `next_offer` for the next expert; this service
chooses one by the directory's rules (app/domain/experts.py), reserves them, pushes the preview
to their panel and starts the offer's clock. The expert's Accept or Reject (app/experts/http.py),
or the clock running out, comes back to the call's own queue as an `OfferReply`, so the call
decides in its own order of events; a late answer to an offer that is over is ignored there.

An expert with a panel is an agent account of the center: their state (Ready, Not Ready with a
reason, busy, offline) is the routing desk's, so a queue call and an expert offer never take the
same person twice. An expert on an outside number has no panel and no desk state: they are Ready
unless someone sets them Not Ready here, busy once they hold `max_calls` calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from app.calls.conversation import ExpertOffer
from app.calls.offers import Previews, card_of
from app.calls.session import Call
from app.domain.agent_state import AgentState
from app.domain.experts import (
    Ask,
    Directory,
    Expert,
    JourneyEvent,
    Presence,
    Status,
    added,
    changed,
    choose,
    report,
    unavailable,
    with_expert,
    without_expert,
)
from app.domain.offers import OfferTerms, Verdict, aftermath
from app.domain.prompt import PromptText
from app.errors import AppError

log = logging.getLogger(__name__)

Push = Callable[[str, dict[str, Any]], int]
OwnExpert = Callable[[int], Awaitable[str | None]]
Journeys = Callable[[datetime], Awaitable[list[JourneyEvent]]]
Say = Callable[[Sequence[PromptText]], Awaitable[list[str]]]
Mail = Callable[[tuple[str, ...], str, str], Awaitable[None]]


class Changes(Protocol):
    """Where changes made over the API are kept (app/experts/store.py)."""

    async def expert_changes(self) -> dict[str, dict[str, Any]]: ...
    async def save_expert_changes(
        self, expert_id: str, changes: dict[str, Any], by: str, at: datetime
    ) -> None: ...
    async def roster(self) -> list[tuple[str, dict[str, Any] | None, bool]]: ...
    async def save_roster(
        self, expert_id: str, entry: dict[str, Any] | None, removed: bool, by: str, at: datetime
    ) -> None: ...


class Links(Protocol):
    """Where one-time preview links are kept (app/experts/store.py)."""

    async def create_link(
        self,
        token_hash: bytes,
        interaction_id: str,
        expert_id: str,
        preview: dict[str, Any],
        created_at: datetime,
        expires_at: datetime,
    ) -> None: ...

    async def open_link(self, token_hash: bytes, now: datetime) -> dict[str, Any] | None: ...


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# What an outside expert hears on answering, in their first language (English otherwise).
SUMMARY = {
    "en": (
        "This is {center}. {agent} asks for your help with a caller. Customer: {customer}.{data}"
        " Note from the agent: {note}. Press 1 to take the call, or 2 to decline."
    ),
    "zh": "这里是{center}。{agent}请您协助一位来电客户。客户：{customer}。{data}"
    "坐席备注：{note}。接听请按1，拒绝请按2。",
}


class ExpertError(AppError):
    def __init__(self, message: str, http_status: int = 409) -> None:
        super().__init__("experts", message, {}, http_status)


@dataclass
class OutsideState:
    presence: Presence = Presence.READY
    reason: str | None = None
    calls: set[str] = field(default_factory=set)  # interactions they are on (ringing or talking)
    idle_since: datetime | None = None


class ExpertService:
    def __init__(
        self,
        directory: Directory,
        desk: Any,  # RoutingService: agents, reserve_direct, offer_failed
        clock: Callable[[], datetime],
        *,
        push: Push | None = None,
        own_expert: OwnExpert | None = None,
        journeys: Journeys | None = None,
        say: Say | None = None,
        center_name: str = "Lianluo",
        key_s: float = 10.0,
        no_response_reason: str = "no response",
        number_ring_s: float = 30.0,
        links: Links | None = None,
        changes: Changes | None = None,
        mail: Mail | None = None,
        link_base: str = "http://127.0.0.1:8080",
        link_ttl_s: float = 600.0,
        previews: Previews | None = None,
    ) -> None:
        self.directory = directory
        self.desk = desk
        self.clock = clock
        self.push: Push = push or (lambda agent_id, message: 0)
        self.own_expert = own_expert
        self.journeys = journeys
        self.say = say
        self.center_name = center_name
        self.key_s = key_s
        self.links = links
        self.changes = changes
        self.mail = mail
        self.link_base = link_base.rstrip("/")
        self.link_ttl_s = link_ttl_s
        self._tasks: set[asyncio.Task[None]] = set()  # e-mails on their way
        self.no_response_reason = no_response_reason
        self.number_ring_s = number_ring_s
        # Offers being previewed, shared with queues that offer with a preview (app/calls/offers.py).
        self.previews = previews if previews is not None else Previews(self.push)
        self.roster: set[str] = set()  # experts added over the API or the admin page (not the YAML)
        self.outside: dict[str, OutsideState] = {
            e.id: OutsideState() for e in directory.experts if e.agent_id is None
        }

    # -- live state -------------------------------------------------------------

    def status(self, e: Expert) -> Status:
        if e.agent_id is None:
            o = self.outside.setdefault(e.id, OutsideState())
            presence = (
                Presence.BUSY if o.presence is Presence.READY and len(o.calls) >= e.max_calls else o.presence
            )
            return Status(presence, len(o.calls), o.idle_since, o.reason)
        agent = self.desk.agents.get(e.agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT or not agent.device_registered:
            return Status(Presence.OFFLINE)
        if agent.state is AgentState.READY:
            return Status(Presence.READY, 0, agent.ready_since)
        if agent.state is AgentState.NOT_READY:
            return Status(Presence.NOT_READY, 0, None, agent.not_ready_reason)
        return Status(Presence.BUSY, 1)

    def statuses(self) -> dict[str, Status]:
        return {e.id: self.status(e) for e in self.directory.experts}

    def view(self, e: Expert) -> dict[str, Any]:
        """For the agent's picker and supervisors: who, what they know, whether they can take a call."""
        s = self.status(e)
        return {
            "id": e.id,
            "name": e.name,
            "expertise": dict(e.expertise),
            "groups": list(e.groups),
            "languages": list(e.languages),
            "reach": "panel" if e.agent_id is not None else "number",
            "state": s.presence.value,
            "reason": s.reason,
            "calls": s.active_calls,
            "available": unavailable(e, s, self.clock()) is None,
        }

    def views(self) -> list[dict[str, Any]]:
        return [self.view(e) for e in self.directory.experts]

    def set_outside_state(self, expert_id: str, state: str, reason: str | None) -> dict[str, Any]:
        """Ready or Not Ready for an expert on an outside number (one with a panel uses the desk)."""
        e = self.directory.expert(expert_id)
        if e is None:
            raise ExpertError(f"no expert {expert_id!r}", 404)
        if e.agent_id is not None:
            raise ExpertError(f"expert {expert_id} is agent {e.agent_id}: change that agent's state", 409)
        if state not in ("ready", "not_ready"):
            raise ExpertError("state: ready or not_ready", 400)
        o = self.outside.setdefault(e.id, OutsideState())
        o.presence = Presence(state)
        o.reason = (reason or "break") if state == "not_ready" else None
        return self.view(e)

    # -- asking -------------------------------------------------------------------

    async def ask_for(self, call: Call, target: str, agent_groups: tuple[str, ...]) -> Ask:
        """The ask an agent makes from the call box, refused (403/404) when it can never be served;
        a VIP customer's own expert (customers.own_expert) comes with it."""
        try:
            ask = Ask.parse(target, agent_groups)
        except ValueError as exc:
            raise ExpertError(str(exc), 400) from exc
        refusal = self.directory.refusal(ask)
        if refusal is not None:
            raise ExpertError(refusal, 404 if refusal.startswith("no ") else 403)
        customer = call.customer
        if self.own_expert is not None and customer is not None and (customer.vip or customer.tier == "top"):
            own = await self.own_expert(customer.id)
            if own is not None and self.directory.expert(own) is not None:
                ask = Ask(ask.kind, ask.name, ask.agent_groups, own)
        return ask

    def next_offer(self, call: Call, ask: Ask, note: str, by: str) -> ExpertOffer | None:
        tried = set(ask.tried)
        while True:
            choice = choose(
                self.directory,
                Ask(ask.kind, ask.name, ask.agent_groups, ask.vip_expert, frozenset(tried)),
                self.statuses(),
                self.clock(),
            )
            if choice is None:
                return None
            e = choice.expert
            offer = ExpertOffer(
                offer_id=str(uuid.uuid4()),
                expert_id=e.id,
                name=e.name,
                reason=choice.reason,
                offer_s=choice.offer_s,
                agent_id=e.agent_id,
                number=e.number,
            )
            if e.agent_id is None:
                self.outside.setdefault(e.id, OutsideState()).calls.add(
                    call.it.id
                )  # their phone rings next: one call more
                call.log.info("expert %s (%s) is offered the call: %s", e.id, e.number, choice.reason)
                return offer
            try:
                self.desk.reserve_direct(e.agent_id, call.it.id)
            except AppError as exc:  # changed state since the statuses were read
                call.log.info("expert %s could not be reserved: %s", e.id, exc)
                tried.add(e.id)
                continue
            preview = self._preview(call, offer, note, by)
            _, sent = self.previews.open(
                call, e.agent_id, preview, offer.offer_s, self.clock(), offer_id=offer.offer_id
            )
            call.log.info("expert %s previews the call (%d panel(s)): %s", e.id, sent, choice.reason)
            return offer

    def _preview(self, call: Call, offer: ExpertOffer, note: str, by: str) -> dict[str, Any]:
        """What the expert sees before their phone rings."""
        now = self.clock()
        asker = self.desk.agents.get(call.it.agent_id or "")
        return card_of(
            call,
            offer.reason,
            note=note,
            asked_by={"id": call.it.agent_id, "name": asker.name if asker is not None else by},
            kind="expert",
            offer_id=offer.offer_id,
            expert_id=offer.expert_id,
            offer_s=offer.offer_s,
            offered_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=offer.offer_s)).isoformat(),
        )

    def summary_text(self, call: Call, offer: ExpertOffer, note: str) -> PromptText:
        """The spoken summary: who asks, the customer, what the IVR collected, the note. Digits
        are read one by one (an account number, not a quantity)."""
        e = self.directory.expert(offer.expert_id)
        lang: Literal["en", "zh"] = "zh" if e is not None and e.languages[:1] == ("zh",) else "en"
        it = call.it
        customer = call.customer
        asker = self.desk.agents.get(it.agent_id or "")

        def spoken(value: str) -> str:
            return " ".join(value) if value.isdigit() else value

        who = customer.name if customer is not None else spoken(it.ani)
        entered = [f"{k.replace('_', ' ')}: {spoken(v)}." for k, v in it.collected.items()]
        if lang == "zh":
            data = "".join(f"{k}：{spoken(v)}。" for k, v in it.collected.items())
        else:
            data = " " + " ".join(["The caller entered", *entered]) if entered else ""
        text = SUMMARY[lang].format(
            center=self.center_name,
            agent=asker.name if asker is not None else "An agent",
            customer=who,
            data=data,
            note=note or ("无" if lang == "zh" else "none"),
        )
        return PromptText(text, lang)

    async def summary(self, call: Call, offer: ExpertOffer, note: str) -> list[str]:
        """What an outside expert gets while their phone rings: the spoken summary (returned), and
        a one-time link to the preview, recorded in the journey and e-mailed to them."""
        try:
            await self._link(call, offer, note)
        except Exception:  # the link is a help, not the call: the summary goes on without it
            call.log.exception("expert %s: no preview link", offer.expert_id)
        text = self.summary_text(call, offer, note)
        call.it.record(
            call.now(), "expert_summary", expert_id=offer.expert_id, lang=text.lang, text=text.text
        )
        call.save_soon()
        return await self.say([text]) if self.say is not None else []

    async def _link(self, call: Call, offer: ExpertOffer, note: str) -> None:
        if self.links is None:
            return
        token = secrets.token_urlsafe(24)
        now = self.clock()
        expires = now + timedelta(seconds=self.link_ttl_s)
        preview = self._preview(call, offer, note, call.it.agent_id or "")
        await self.links.create_link(token_hash(token), call.it.id, offer.expert_id, preview, now, expires)
        url = f"{self.link_base}/experts/link/{token}"
        call.it.record(now, "expert_link", expert_id=offer.expert_id, url=url, expires_at=expires.isoformat())
        call.save_soon()
        e = self.directory.expert(offer.expert_id)
        if e is not None and e.email and self.mail is not None:
            body = (
                f"{self.center_name}: {preview['asked_by']['name']} asks for your help with a caller"
                f" ({preview['customer']['name'] or preview['customer']['ani']}).\n\n"
                f"The call's details, for one look until {expires:%H:%M} UTC:\n{url}\n"
            )
            task = asyncio.create_task(self._send(call, e.email, body), name=f"expert-link-{offer.offer_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, call: Call, to: str, body: str) -> None:
        assert self.mail is not None
        try:
            await self.mail((to,), f"{self.center_name}: a caller for you", body)
            call.log.info("preview link e-mailed to %s", to)
        except AppError as exc:
            call.log.warning("preview link not e-mailed to %s: %s", to, exc.message)

    # -- live changes to the directory -------------------------------------------------------

    async def start(self) -> None:
        """Apply what was changed over the API before this start (what still fits): experts
        added and removed, then changes to experts."""
        if self.changes is None:
            return
        for expert_id, entry, removed in await self.changes.roster():
            if removed:
                self.directory = without_expert(self.directory, expert_id)
                self.roster.discard(expert_id)
                continue
            try:
                new = added(without_expert(self.directory, expert_id), entry or {})
            except ValueError as exc:
                log.warning("expert %s: added over the API, no longer fits (%s); left out", expert_id, exc)
                continue
            self.directory = with_expert(self.directory, new)
            self.roster.add(expert_id)
            self.outside.setdefault(expert_id, OutsideState())
        for expert_id, changes in (await self.changes.expert_changes()).items():
            e = self.directory.expert(expert_id)
            if e is None:
                continue  # no longer configured
            try:
                self.directory = with_expert(self.directory, changed(self.directory, e, changes))
            except ValueError as exc:
                log.warning(
                    "expert %s: a saved change no longer applies (%s); the configuration holds", e.id, exc
                )

    async def change(self, expert_id: str, changes: dict[str, Any], by: str) -> dict[str, Any]:
        """Change an expert's expertise, groups, languages or call limit; the next choice uses it."""
        e = self.directory.expert(expert_id)
        if e is None:
            raise ExpertError(f"no expert {expert_id!r}", 404)
        try:
            new = changed(self.directory, e, changes)
        except ValueError as exc:
            raise ExpertError(str(exc), 400) from exc
        if self.changes is not None:
            await self.changes.save_expert_changes(expert_id, changes, by, self.clock())
        self.directory = with_expert(self.directory, new)
        log.info("expert %s changed by %s: %s", expert_id, by, changes)
        return self.view(new)

    async def add(self, entry: dict[str, Any], by: str) -> dict[str, Any]:
        """A new expert on an outside number; kept over restarts; the next choice may pick them."""
        try:
            new = added(self.directory, entry)
        except ValueError as exc:
            raise ExpertError(str(exc), 400) from exc
        if self.changes is not None:
            await self.changes.save_roster(new.id, dict(entry), False, by, self.clock())
        self.directory = with_expert(self.directory, new)
        self.roster.add(new.id)
        self.outside.setdefault(new.id, OutsideState())
        log.info("expert %s (%s) added by %s", new.id, new.number, by)
        return self.view(new)

    async def remove(self, expert_id: str, by: str) -> None:
        """Out of the directory (an agent who was one stays an agent). Refused while they are on a
        call or an offer to them is open: finish or cancel that first."""
        e = self.directory.expert(expert_id)
        if e is None:
            raise ExpertError(f"no expert {expert_id!r}", 404)
        offered = any(p.card.get("expert_id") == expert_id for p in self.previews)
        if offered or self.status(e).active_calls:
            raise ExpertError(
                f"expert {expert_id} is on a call or being offered one; try again after it", 409
            )
        if self.changes is not None:
            await self.changes.save_roster(expert_id, None, True, by, self.clock())
        self.directory = without_expert(self.directory, expert_id)
        self.roster.discard(expert_id)
        self.outside.pop(expert_id, None)
        log.info("expert %s removed by %s", expert_id, by)

    async def open_link(self, token: str) -> dict[str, Any] | None:
        """The preview behind a one-time link, the first time only; None otherwise."""
        if self.links is None or not 16 <= len(token) <= 64:
            return None
        return await self.links.open_link(token_hash(token), self.clock())

    async def stop(self, timeout: float = 10.0) -> None:
        """Let e-mails already on their way finish."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def closed(self, call: Call, offer: ExpertOffer, verdict: str) -> None:
        """The offer is over: the preview closes, and the expert is treated as the verdict says
        (app/domain/offers.py: accepted stays reserved, rejected is free, silent is Not Ready)."""
        self.previews.close(offer.offer_id, verdict)
        if offer.agent_id is None:
            return
        after = aftermath(Verdict(verdict), OfferTerms(offer.offer_s, self.no_response_reason))
        if after.rings:
            return  # reserved still: their phone rings next (the conversation tells the desk)
        self.desk.offer_failed(
            offer.agent_id,
            "",
            f"expert offer: {verdict}",
            no_answer=after.no_answer,
            not_ready_reason=after.not_ready_reason,
        )
        call.log.info("expert %s: offer %s", offer.expert_id, verdict)

    def released(self, call: Call, offer: ExpertOffer) -> None:
        if offer.agent_id is None:
            o = self.outside.setdefault(offer.expert_id, OutsideState())
            o.calls.discard(call.it.id)
            o.idle_since = self.clock()

    # -- the expert's answer (their panel) ------------------------------------------

    def offer_of(self, agent_id: str) -> dict[str, Any] | None:
        """The preview this agent account holds now (a panel opened during the offer)."""
        return self.previews.holding(agent_id)

    def reply(self, offer_id: str, verdict: str, agent_id: str | None, by: str) -> None:
        """Accept or Reject from the expert's panel, carried out by the call in its own order."""
        self.previews.reply(offer_id, verdict, agent_id, by)

    # -- reports --------------------------------------------------------------------------

    async def report(self, hours: float) -> dict[str, Any]:
        """Per expert and group, over the last `hours`: offers, accepts, rejects, timeouts, time to
        accept and talk time, from the journeys' events."""
        if self.journeys is None:
            raise ExpertError("no event log to report from", 503)
        since = self.clock() - timedelta(hours=hours)
        figures = report(self.directory, await self.journeys(since))
        return {"since": since.isoformat(), **figures}
