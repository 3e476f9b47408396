"""Waiting in line for an agent, the offer, the conversation, and the transfers that follow.

`Line.to_agent` is the loop every call kind uses once its caller wants a person: take a place
in the queue at the routing desk, wait (what the caller hears and may press meanwhile is the
call kind's `WaitingRoom`), ring the chosen agent(s), talk, and when the agent transfers the call
blind, wait again keeping the original place in line (or ring the named agent first).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from app.calls.conversation import Conversation, Dialing, Experts, Transfer
from app.calls.events import CallDropped, CallerGone, Decided, OfferReply, Overflowed
from app.calls.legs import ring_agents
from app.calls.offers import Previews, card_of
from app.calls.ports import Desk, OfferRules, Ticket
from app.calls.session import Call
from app.domain.offers import OfferTerms, Verdict, aftermath
from app.domain.routing import Decision, SkillRequirement, Tier, WaitingInteraction
from app.errors import AppError, PbxError

log = logging.getLogger(__name__)

DEFAULT_RING_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Leave:
    """The caller chose to leave the line (e.g. for a callback or a message); `step` carries it
    out and says whether the call is over (False: refused, back in line in the same place)."""

    step: Callable[[], Awaitable[bool]]


class WaitingRoom(Protocol):
    """What a caller hears and may do while waiting; each call kind brings its own."""

    async def greet(self, call: Call, ticket: Ticket) -> None:
        """Once, as the caller takes their place (e.g. "please hold")."""

    async def wait(self, call: Call, ticket: Ticket) -> Decision | Leave | None:
        """Until the desk decides (the decision), the caller leaves (Leave), or nobody could
        ever answer any more (None)."""

    async def nobody(self, call: Call, queue: str) -> None:
        """Nobody could take the call: tell the caller; the call ends here."""


class SilentRoom:
    """No music, no keys: for legs that are not up yet (a callback's customer) or calls whose
    own kind handles the waiting."""

    async def greet(self, call: Call, ticket: Ticket) -> None:
        return None

    async def wait(self, call: Call, ticket: Ticket) -> Decision | Leave | None:
        while not ticket.decided.done():
            await call.next_event()
        return ticket.decided.result()

    async def nobody(self, call: Call, queue: str) -> None:
        return None


def waiting_of(
    call: Call, queue: str, customer_value: float = 0.0, last_agent: str | None = None
) -> WaitingInteraction:
    """The call as the desk sees it in line: its place (the first time it queued), its tier, the
    flow's skills and what travels with it to the agent."""
    it = call.it
    return WaitingInteraction(
        id=it.id,
        queue=queue,
        queued_at=it.queued_at or call.now(),
        tier=Tier(it.tier or "medium"),
        customer_value=customer_value,
        required_skills=tuple(SkillRequirement(s, lvl) for s, lvl in sorted(it.skills.items())),
        last_agent_id=last_agent,
        data={"ani": it.ani, "dnis": it.dnis, "digits": it.digits, **it.collected},
    )


class Line:
    def __init__(
        self, desk: Desk, dialing: Dialing, experts: Experts | None = None, previews: Previews | None = None
    ) -> None:
        self.desk = desk
        self.dialing = dialing
        self.experts = experts  # asked from the call box (app/experts); None: not offered
        # Offers previewed in the agent's panel, where a queue says so (`queues[i].offer`).
        self.previews = previews if previews is not None else Previews()

    def ring_timeout(self, queue: str) -> float:
        rules = self.desk.queue_rules(queue)
        return rules.ring_timeout_s if rules is not None else DEFAULT_RING_TIMEOUT_S

    def conversation(self, call: Call) -> Conversation:
        conv = call.conversation
        if not isinstance(conv, Conversation):
            conv = Conversation(call, self.desk, self.dialing, self.experts)
        return conv

    async def to_agent(
        self, call: Call, waiting: WaitingInteraction, room: WaitingRoom, direct: str | None = None
    ) -> None:
        """Wait in `waiting.queue` for an agent (or ring the `direct` agent first), talk, and
        follow any transfer, until the call ends."""
        greeted = False
        while True:
            if direct is not None:
                target, direct = direct, None
                try:
                    chosen = self.desk.reserve_direct(target, call.it.id, waiting.queue)
                except AppError as exc:
                    call.log.info(
                        "transfer to agent %s: %s; the caller waits in %s", target, exc, waiting.queue
                    )
                else:
                    if await self.offer(call, chosen, waiting.queue):
                        transfer = await self.converse(call)
                        if transfer is None:
                            return
                        direct = self.after_transfer(call, transfer, waiting)
                    else:
                        waiting.excluded_agents = waiting.excluded_agents | frozenset(chosen.agent_ids)
                    continue
            if not self.desk.anyone_logged_in(waiting.queue):
                await room.nobody(call, waiting.queue)
                return
            ticket = self.enter(call, waiting)
            try:
                if not greeted:
                    greeted = True
                    await room.greet(call, ticket)
                outcome = await room.wait(call, ticket)
            except (CallerGone, CallDropped):
                self.leave(call, ticket, abandoned=True)
                raise
            except BaseException:
                self.leave(call, ticket)
                raise
            if isinstance(outcome, Leave):
                self.leave(call, ticket)
                if await outcome.step():
                    return
                continue  # refused: back in line, in the same place
            if outcome is None:
                self.leave(call, ticket)
                await room.nobody(call, waiting.queue)
                return
            if await self.offer(call, outcome, waiting.queue):
                transfer = await self.converse(call)
                if transfer is None:
                    return
                direct = self.after_transfer(call, transfer, waiting)
                continue
            # Keep the place in line (queued_at) and try someone else first.
            waiting.excluded_agents = waiting.excluded_agents | frozenset(outcome.agent_ids)

    async def follow(self, call: Call, waiting: WaitingInteraction, room: WaitingRoom) -> None:
        """A call already talking (a callback, a dialer call, one taken over after a restart):
        follow it to its end, and back in line after a blind transfer."""
        transfer = await self.converse(call)
        if transfer is None:
            return
        direct = self.after_transfer(call, transfer, waiting)
        await self.to_agent(call, waiting, room, direct=direct)

    async def converse(self, call: Call) -> Transfer | None:
        """Talk until the call ends (None) or a blind transfer to a queue or agent (returned). A
        transfer to a number is carried out here; if nobody answers there, back in line."""
        conv = self.conversation(call)
        transfer = await conv.run()
        if transfer is None or transfer.number is None:
            return transfer
        if await conv.to_number(transfer.number):
            return None
        return Transfer(queue=call.it.queue, agent_id=None)

    def after_transfer(self, call: Call, transfer: Transfer, waiting: WaitingInteraction) -> str | None:
        """A blind transfer: back in line (the original place), or to ring one agent first."""
        if transfer.queue is not None:
            waiting.queue = transfer.queue
        waiting.excluded_agents = frozenset()
        call.it.enqueue(call.now(), waiting.queue, waiting.tier.value, "transfer")
        call.save_soon()
        return transfer.agent_id

    def enter(self, call: Call, waiting: WaitingInteraction) -> Ticket:
        """Take the place in line; the call hears of the decision and of overflows in its queue."""

        def overflowed(queue: str) -> None:
            call.events.put_nowait(Overflowed(queue))

        ticket = self.desk.enqueue(waiting, on_overflow=overflowed)
        ticket.decided.add_done_callback(lambda _: call.events.put_nowait(Decided()))
        # A free agent is found before this call yields: its phone rings without a loop turn lost.
        self.desk.dispatch_now()
        return ticket

    def leave(self, call: Call, ticket: Ticket, abandoned: bool = False) -> None:
        """The caller leaves the line; agents already reserved for them are set free."""
        if not ticket.decided.done():
            self.desk.withdraw(call.it.id, abandoned=abandoned)
        elif not ticket.decided.cancelled():
            for agent_id in ticket.decided.result().agent_ids:
                self.desk.offer_failed(agent_id, ticket.waiting.queue, "caller left", no_answer=False)

    async def offer(self, call: Call, decision: Decision, queue: str, hold_caller: bool = True) -> bool:
        """Ring the chosen agent(s) (after their Accept, where the queue offers with a preview).
        True when one answered and is talking with the caller."""
        rules = self.desk.queue_rules(queue)
        if rules is not None and rules.offer.accept and len(decision.agent_ids) == 1:
            if not await self.preview(call, decision, queue, rules.offer, hold_caller):
                return False
        leg = await ring_agents(
            call, self.desk, decision, queue, ring_timeout_s=self.ring_timeout(queue), hold_caller=hold_caller
        )
        if leg is None:
            return False
        await self.conversation(call).join(leg)
        call.log.info("caller %s connected to agent %s (%s)", call.it.ani, leg.agent_id, decision.reason)
        return True

    async def preview(
        self, call: Call, decision: Decision, queue: str, rules: OfferRules, hold_caller: bool = True
    ) -> bool:
        """The chosen agent sees the call in their panel (customer, IVR data, why them, a
        countdown) with Accept and Reject before their phone rings; the caller keeps hearing the
        queue's music meanwhile. True on Accept (the agent stays reserved: their phone rings
        next). Otherwise the agent is treated as app/domain/offers.py says (a rejecting one is
        never offered this caller again, a silent one goes Not Ready) and the caller waits on,
        in the same place, for the next agent the routing desk chooses."""
        agent_id = decision.agent_ids[0]
        terms = OfferTerms(rules.offer_s, rules.no_response_reason)
        card = card_of(call, decision.reason, kind="queue", queue=queue, agent_id=agent_id)
        offer_id, panels = self.previews.open(call, agent_id, card, terms.offer_s, call.now())
        call.it.record(
            call.now(),
            "queue_offered",
            agent_id=agent_id,
            reason=decision.reason,
            offer_s=terms.offer_s,
            offer_id=offer_id,
            panels=panels,
        )
        call.save_soon()
        call.log.info("agent %s previews the call (%d panel(s)): %s", agent_id, panels, decision.reason)
        verdict, by = Verdict.CANCEL, ""
        try:
            if hold_caller:  # music, not silence, while the agent reads (after any notice playing)
                await call.prompt_over()
                with contextlib.suppress(PbxError):  # a caller gone meanwhile: its hang-up follows
                    await call.music(True)
            while True:
                ev = await call.next_event()
                if isinstance(ev, OfferReply) and ev.offer_id == offer_id:
                    verdict, by = Verdict(ev.verdict), ev.by
                    break
        finally:  # the caller may have hung up meanwhile: the agent is set free all the same
            self.previews.close(offer_id, verdict.value)
            after = aftermath(verdict, terms)
            call.it.record(call.now(), f"queue_offer_{after.event}", agent_id=agent_id, by=by or None)
            call.save_soon()
            call.log.info("agent %s: queue offer %s", agent_id, verdict.value)
            if not after.rings:
                if after.never_again:
                    self.desk.declined(agent_id)
                self.desk.offer_failed(
                    agent_id,
                    queue,
                    f"offer {verdict.value}",
                    no_answer=after.no_answer,
                    not_ready_reason=after.not_ready_reason,
                )
        return after.rings
