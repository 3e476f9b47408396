"""Call controls while a caller talks to an agent: hold, mute, keys, hang-up, transfers, consult, conference.

Each request is put in the call's own event queue and carried out between the call's
ARI events, so a control never races a hang-up. The caller on hold leaves the bridge and
hears music; the agent hears nothing of them. A consultation rings a second agent (who
must be Ready) while the caller holds; then the first agent completes the transfer,
brings everyone into a conference, or cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.adapters.ari import ChannelDestroyed, ChannelHangupRequest, StasisEnd, StasisStart
from app.domain.callback import valid_phone
from app.errors import AppError, PbxError

if TYPE_CHECKING:
    from app.flows.inbound import CallEvent, CallSession

ACTIONS = (
    "hold",
    "resume",
    "mute",
    "unmute",
    "dtmf",
    "hangup",
    "transfer",
    "consult",
    "complete",
    "conference",
    "cancel",
)
_DTMF = re.compile(r"^[0-9*#A-D]{1,32}$")


class ControlError(AppError):
    def __init__(self, message: str, http_status: int = 409) -> None:
        super().__init__("call-control", message, {}, http_status)


@dataclass
class ControlRequest:
    """Asked by a person (panel or API); answered through `done`."""

    action: str
    by: str
    target: str | None = None  # transfer/consult: "agent:1002" or "queue:billing"
    digits: str | None = None
    done: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Transfer:
    """The call leaves its agent for another agent, a queue or a number (blind transfer)."""

    queue: str | None
    agent_id: str | None
    number: str | None = None


@dataclass
class Consult:
    agent_id: str
    channel_id: str
    answered: bool = False


class CallControls:
    """The controls of one connected call; lives as long as its CallSession is connected."""

    def __init__(self, session: CallSession) -> None:
        self.s = session
        self.held = False
        self.muted = False
        self.consult: Consult | None = None

    # -- requests ---------------------------------------------------------------

    async def handle(self, req: ControlRequest) -> Transfer | None:
        """Carry out one request; a Transfer means the call leaves this agent."""
        try:
            result, transfer = await self._do(req)
        except AppError as exc:  # PbxError included: the person is told, the call goes on
            if not req.done.done():
                req.done.set_exception(exc)
            return None
        self.s.it.record(self.s.now(), f"control_{req.action}", by=req.by, **result)
        self.s.save_soon()
        if not req.done.done():
            req.done.set_result({"action": req.action, **result})
        return transfer

    async def _do(self, req: ControlRequest) -> tuple[dict[str, Any], Transfer | None]:
        s = self.s
        agent = s.agent_channel_id
        if agent is None:
            raise ControlError("the call has no agent any more")
        if req.action == "hold":
            if self.held:
                raise ControlError("the caller is already on hold")
            await self._hold()
            return {}, None
        if req.action == "resume":
            if not self.held:
                raise ControlError("the caller is not on hold")
            if self.consult is not None:
                raise ControlError("end the consultation first: complete, conference or cancel")
            await self._resume()
            return {}, None
        if req.action in ("mute", "unmute"):
            if req.action == "mute":
                await s.ari.mute(agent)
            else:
                await s.ari.unmute(agent)
            self.muted = req.action == "mute"
            return {}, None
        if req.action == "dtmf":
            if req.digits is None or not _DTMF.fullmatch(req.digits):
                raise ControlError("digits: 1-32 of 0-9 * # A-D", 400)
            await s.ari.send_dtmf(s.caller, req.digits)
            return {"digits": req.digits}, None
        if req.action == "hangup":
            await s.ari.hangup(agent)  # the hang-up event ends the call as the agent's
            return {}, None
        if req.action == "transfer":
            if self.consult is not None:
                raise ControlError("end the consultation first: complete, conference or cancel")
            target = self._target(req.target)
            await self._leave_agent()
            return {"to": req.target}, target
        if req.action == "consult":
            return await self._start_consult(req.target), None
        if req.action in ("complete", "conference", "cancel"):
            return await self._end_consult(req.action), None
        raise ControlError(f"unknown action {req.action!r}; use one of {', '.join(ACTIONS)}", 400)

    def _target(self, target: str | None) -> Transfer:
        kind, _, name = (target or "").partition(":")
        if kind == "queue" and name in self.s.routing.queue_settings:
            if not self.s.routing.anyone_logged_in(name):
                raise ControlError(f"nobody is logged in to queue {name}: the caller stays with you")
            return Transfer(queue=name, agent_id=None)
        if kind == "agent" and name in self.s.routing.agents:
            if name == self.s.agent_on_call:
                raise ControlError("that is the agent on the call")
            return Transfer(queue=None, agent_id=name)
        if kind == "number":
            allowed = self.s.service.settings.routing.transfer_numbers
            if not valid_phone(name):
                raise ControlError(f"not a phone number: {name!r}", 400)
            if not any(name.startswith(prefix) for prefix in allowed):
                raise ControlError(
                    f"transfers to {name} are not allowed here (routing.transfer_numbers)", 403
                )
            return Transfer(queue=None, agent_id=None, number=name)
        raise ControlError(
            f"transfer target must be 'agent:<id>', 'queue:<name>' or 'number:<digits>', got {target!r}", 400
        )

    # -- hold -------------------------------------------------------------------

    async def _hold(self) -> None:
        s = self.s
        if s.bridge_id is not None:
            await s.ari.remove_from_bridge(s.bridge_id, [s.caller])
        await s.ari.start_moh(s.caller)
        self.held = True

    async def _resume(self) -> None:
        s = self.s
        await s.ari.stop_moh(s.caller)
        if s.bridge_id is not None:
            await s.ari.add_to_bridge(s.bridge_id, [s.caller])
        self.held = False

    async def _leave_agent(self) -> None:
        """The agent drops off (blind transfer): their leg ends and their wrap-up starts."""
        s = self.s
        agent_channel, agent_id = s.agent_channel_id, s.agent_on_call
        if not self.held:
            await self._hold()  # music until the next agent answers
        s.agent_channel_id = None
        s.agent_on_call = None
        if agent_channel is not None:
            s.service.unwatch(agent_channel)
            await s.ari.hangup(agent_channel)
        if agent_id is not None:
            s.agent_done(agent_id)

    # -- consultation -----------------------------------------------------------

    async def _start_consult(self, target: str | None) -> dict[str, Any]:
        s = self.s
        if self.consult is not None:
            raise ControlError("a consultation is already under way")
        kind, _, agent_id = (target or "").partition(":")
        if kind != "agent" or agent_id not in s.routing.agents or agent_id == s.agent_on_call:
            raise ControlError(f"consult target must be another agent as 'agent:<id>', got {target!r}", 400)
        s.routing.reserve_direct(agent_id, s.it.id)  # refused (409) unless they are Ready
        if not self.held:
            await self._hold()
        channel_id = f"consult-{uuid.uuid4()}"
        s.service.watch(channel_id, s)
        queue = s.it.queue or ""
        try:
            await s.ari.originate(
                endpoint=f"PJSIP/{agent_id}",
                channel_id=channel_id,
                app_args=f"agent,{s.it.id}",
                caller_id=f'"{s.agent_on_call}" <{s.agent_on_call}>',
                timeout_s=max(1, round(s.service.ring_timeout(queue))),
                variables={
                    "LIANLUO_INTERACTION": s.it.id,
                    "LIANLUO_CONSULT_FROM": s.agent_on_call or "",
                    "PJSIP_HEADER(add,X-Lianluo-Interaction)": s.it.id,
                    "PJSIP_HEADER(add,X-Lianluo-Consult)": s.agent_on_call or "",
                },
            )
        except PbxError as exc:
            s.service.unwatch(channel_id)
            s.routing.offer_failed(agent_id, queue, "originate failed", no_answer=False)
            raise ControlError(f"could not ring agent {agent_id}: {exc.message}", 502) from exc
        s.routing.ringing(agent_id)
        self.consult = Consult(agent_id, channel_id)
        return {"to": target, "state": "ringing"}

    async def _end_consult(self, how: str) -> dict[str, Any]:
        s = self.s
        c = self.consult
        if c is None:
            raise ControlError("there is no consultation to end")
        if how == "cancel":
            await s.ari.hangup(c.channel_id)  # its hang-up event finishes the bookkeeping
            self.consult = None
            await self._consult_gone(c, answered=c.answered)
            await self._resume()
            return {"with": c.agent_id}
        if not c.answered:
            raise ControlError(f"agent {c.agent_id} has not answered yet")
        self.consult = None
        await s.ari.stop_moh(s.caller)
        self.held = False
        if s.bridge_id is not None:
            await s.ari.add_to_bridge(s.bridge_id, [s.caller])
        if how == "conference":
            s.extra_agents[c.channel_id] = c.agent_id
            return {"with": c.agent_id}
        # complete: the caller stays with the consulted agent; the first agent drops off
        old_channel, old_agent = s.agent_channel_id, s.agent_on_call
        s.agent_channel_id = c.channel_id
        s.agent_on_call = c.agent_id
        s.answered_at = s.now()
        s.it.hand_over(s.now(), c.agent_id)
        if old_channel is not None:
            s.service.unwatch(old_channel)
            await s.ari.hangup(old_channel)
        if old_agent is not None:
            s.agent_done(old_agent)
        return {"to": c.agent_id, "from": old_agent}

    async def on_event(self, ev: CallEvent) -> bool:
        """ARI events about the consulted agent's leg; True when the event was theirs."""
        c = self.consult
        s = self.s
        if c is None:
            return False
        if isinstance(ev, StasisStart) and ev.channel.id == c.channel_id:
            c.answered = True
            s.routing.answered(c.agent_id, s.it.queue or "", 0.0, s.it.id, s.tier(), first=False)
            if s.bridge_id is not None:
                await s.ari.add_to_bridge(s.bridge_id, [c.channel_id])
            s.it.record(s.now(), "consult_answered", agent_id=c.agent_id)
            s.save_soon()
            return True
        if (
            isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd)
            and ev.channel.id == c.channel_id
        ):
            self.consult = None
            await self._consult_gone(c, answered=c.answered)
            return True
        return False

    async def _consult_gone(self, c: Consult, answered: bool) -> None:
        s = self.s
        s.service.unwatch(c.channel_id)
        if answered:
            s.agent_done(c.agent_id)
        else:
            s.routing.offer_failed(c.agent_id, s.it.queue or "", "consult not answered", no_answer=False)
        s.it.record(s.now(), "consult_ended", agent_id=c.agent_id, answered=answered)
        s.save_soon()

    async def close(self) -> None:
        """The call ended: no consultation is left ringing or talking."""
        c, self.consult = self.consult, None
        if c is not None:
            with contextlib.suppress(PbxError):
                await self.s.ari.hangup(c.channel_id)
            await self._consult_gone(c, answered=c.answered)
