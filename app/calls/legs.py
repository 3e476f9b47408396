"""The legs of a call: an agent's phone, a number through the carrier, an expert.

`place` is the one way a leg is originated: its events are routed to the call before the
request goes out (an answer can come back faster than the HTTP response), and unrouted again if
the PBX refuses it. `dial_out` is the one way a number is called through a trunk: the outbound
policy admits it first (app/domain/outbound.py), or it is refused, recorded and never dialled.
`ring_agents` rings the agents of one routing decision and tells the desk what each did:
ringing, answered, no answer, refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from app.adapters.ari import Channel, ChannelDestroyed, StasisStart
from app.calls.events import CallDropped, CallerGone, DialFailed, PbxLost
from app.calls.ports import Desk
from app.calls.session import Call
from app.domain.outbound import Purpose, Refusal
from app.domain.routing import Decision, Tier
from app.errors import AppError, PbxError

# Q.850 causes that mean "the phone rang and nobody picked up" (ring-no-answer).
NO_ANSWER_CAUSES = frozenset({0, 18, 19})
# Asterisk cancels the ring itself after the ring timeout; this margin covers call set-up.
RING_MARGIN_S = 5.0
MUSIC_SETTLE_S = 0.2


@dataclass
class Leg:
    """One channel of a call besides the caller's."""

    channel_id: str
    agent_id: str | None = None  # an agent's (or expert's) phone
    number: str | None = None  # a number reached through the carrier
    answered_at: datetime | None = None
    # A line that outlives the call (an agent's nailed-up outbound line): at the end of the
    # agent's part it is handed back to its owner instead of being hung up.
    give_back: Callable[[Call], Awaitable[None]] | None = None


async def place(
    call: Call,
    *,
    endpoint: str,
    kind: str,
    caller_id: str,
    timeout_s: float,
    variables: Mapping[str, str],
    channel_id: str | None = None,
    dialplan_context: str | None = None,
) -> str | None:
    """Originate a leg of `call`: its channel id, or None when the PBX refused it (logged).

    With `dialplan_context` the answered leg runs that context first (e.g. AMD) and enters our
    Stasis app from there; otherwise it enters Stasis as `<kind>,<interaction id>` on answer."""
    channel_id = channel_id or f"{kind}-{uuid.uuid4()}"
    call.route(channel_id)
    try:
        if dialplan_context is not None:
            await call.pbx.originate_to_dialplan(
                endpoint=endpoint,
                channel_id=channel_id,
                context=dialplan_context,
                caller_id=caller_id,
                timeout_s=max(1, round(timeout_s)),
                variables=variables,
            )
        else:
            await call.pbx.originate(
                endpoint=endpoint,
                channel_id=channel_id,
                app_args=f"{kind},{call.it.id}",
                caller_id=caller_id,
                timeout_s=max(1, round(timeout_s)),
                variables=variables,
            )
    except PbxError as exc:
        call.unroute(channel_id)
        call.log.warning("could not place %s leg to %s: %s", kind, endpoint, exc.message)
        return None
    if channel_id == call.caller:
        call.caller_placed = True
    return channel_id


class OutboundRefused(AppError):
    """The outbound policy refused a destination: nothing was dialled."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            "outbound-refused",
            refusal.detail,
            {"number": refusal.number, "purpose": refusal.purpose.value, "reason": refusal.reason.value},
            403,
        )
        self.refusal = refusal


async def dial_out(
    call: Call,
    *,
    number: str,
    trunk: str,
    purpose: Purpose,
    kind: str,
    caller_id: str,
    timeout_s: float,
    variables: Mapping[str, str],
    channel_id: str | None = None,
    dialplan_context: str | None = None,
) -> str | None:
    """`place` a leg to `number` through `trunk`, once the outbound policy admits it.

    Raises OutboundRefused (recorded on the interaction as `outbound_refused`) when it does not."""
    refusal = call.outbound.admit(number, purpose, trunk, call.now())
    if refusal is not None:
        call.it.record(
            call.now(), "outbound_refused", number=number, purpose=purpose.value, reason=refusal.reason.value
        )
        call.save_soon()
        call.log.warning("outbound policy refused %r (%s): %s", number, purpose.value, refusal.detail)
        raise OutboundRefused(refusal)
    if not call.outbound.plan.call_data:  # what the IVR collected stays inside (outbound.call_data)
        variables = {k: v for k, v in variables.items() if k != DATA_HEADER}
    return await place(
        call,
        endpoint=f"PJSIP/{number}@{trunk}",
        kind=kind,
        caller_id=caller_id,
        timeout_s=timeout_s,
        variables=variables,
        channel_id=channel_id,
        dialplan_context=dialplan_context,
    )


async def wait_answer(call: Call, channel_id: str, timeout: float | None = None) -> ChannelDestroyed | None:
    """Wait until the leg answers (None) or ends unanswered (its ChannelDestroyed). A timeout
    counts as unanswered: the leg is hung up."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        left = None if deadline is None else max(0.01, deadline - loop.time())
        ev = await call.next_event(left)
        if ev is None:
            await call.hang_up(channel_id)
            call.unroute(channel_id)
            return ChannelDestroyed(_channel(channel_id), 19, "no answer (timeout)")
        if isinstance(ev, StasisStart) and ev.channel.id == channel_id:
            return None
        if isinstance(ev, ChannelDestroyed) and ev.channel.id == channel_id:
            call.unroute(channel_id)
            return ev
        if isinstance(ev, DialFailed) and ev.channel_id == channel_id:
            call.unroute(channel_id)
            return ChannelDestroyed(_channel(channel_id), 0, ev.reason)


def _channel(channel_id: str) -> Channel:
    return Channel(channel_id, "", "", "", "", "", "", "", "")


DATA_HEADER = "PJSIP_HEADER(add,X-Lianluo-Data)"


def call_data(call: Call, **headers: str) -> dict[str, str]:
    """What travels on every leg we place for a call, to a phone of ours or a number outside:
    the interaction (a channel variable and the X-Lianluo-Interaction header) and what the IVR
    collected (X-Lianluo-Data, form-encoded), plus `headers` as X-Lianluo-<name> headers
    (e.g. Consult="1001"). Only the collected fields go out, never a note or a profile: a
    carrier's leg carries what an agent's phone does, no more, and the collected fields only
    where the outbound policy lets them leave (`dial_out`)."""
    it = call.it
    out = {"LIANLUO_INTERACTION": it.id, "PJSIP_HEADER(add,X-Lianluo-Interaction)": it.id}
    if it.collected:
        out[DATA_HEADER] = urlencode(it.collected)
    out.update({f"PJSIP_HEADER(add,X-Lianluo-{name})": value for name, value in headers.items()})
    return out


def agent_call_data(call: Call, queue: str, reason: str) -> dict[str, str]:
    """What travels to the agent's phone: the call's data and, as channel variables, the caller,
    the IVR's keys and fields, the queue and why this agent."""
    it = call.it
    out = {
        **call_data(call, Queue=queue),
        "LIANLUO_ANI": it.ani,
        "LIANLUO_DNIS": it.dnis,
        "LIANLUO_IVR_DIGITS": it.digits,
        "LIANLUO_QUEUE": queue,
        "LIANLUO_ROUTE_REASON": reason,
    }
    out.update({f"LIANLUO_DATA_{k.upper()}": v for k, v in it.collected.items()})
    out.update(call.agent_variables)
    return out


async def decline(call: Call, agent_id: str) -> bool:
    """The agent refuses the offer ringing on their phone: that phone stops ringing, and the
    ring loop above counts it as a failed offer (the caller goes on to someone else). False
    when nothing rings for that agent on this call (answered or ended meanwhile)."""
    ringing = call.it.legs.get("ringing") or {}
    channels = [channel for channel, agent in ringing.items() if agent == agent_id]
    if not channels:
        return False
    call.it.record(call.now(), "offer_declined", agent_id=agent_id)
    for channel_id in channels:
        await call.hang_up(channel_id)
    return True


async def ring_agents(
    call: Call,
    desk: Desk,
    decision: Decision,
    queue: str,
    *,
    ring_timeout_s: float,
    hold_caller: bool,
    within_s: float | None = None,
) -> Leg | None:
    """Ring the chosen agent(s); the leg of the one who answered, or None.

    The agent who answers is on this call from then on (the desk is told); the others stop
    ringing. `within_s` cuts the ring short of the queue's ring timeout (the dialer's connect
    window). If the caller leaves meanwhile, every ringing phone stops and its agent is free."""
    it = call.it
    it.offer(call.now(), decision.agent_ids, decision.reason)
    call.save_soon()
    ring_s = ring_timeout_s if within_s is None else within_s
    ringing: dict[str, str] = {}  # channel -> agent
    variables = agent_call_data(call, queue, decision.reason)
    for agent_id in decision.agent_ids:
        channel_id = await place(
            call,
            endpoint=f"PJSIP/{agent_id}",
            kind="agent",
            caller_id=f'"{it.ani}" <{it.ani}>',
            timeout_s=ring_s,
            variables=variables,
        )
        if channel_id is None:
            desk.offer_failed(agent_id, queue, "originate failed", no_answer=False)
            continue
        ringing[channel_id] = agent_id
        desk.ringing(agent_id)
    it.legs["ringing"] = dict(ringing)
    # Saved at once: an app restarted while these phones ring must find them (to stop them and
    # free their agents); the next save would come only when the ringing is over.
    call.save_soon()
    if not ringing:
        it.offer_failed(call.now(), ",".join(decision.agent_ids), "originate failed")
        it.legs.pop("ringing", None)
        call.save_soon()
        return None

    def ring_ended(channel_id: str, reason: str, no_answer: bool) -> None:
        agent_id = ringing.pop(channel_id, None)
        call.unroute(channel_id)
        if agent_id is not None:
            desk.offer_failed(agent_id, queue, reason, no_answer=no_answer)
            it.record(call.now(), "ring_ended", agent_id=agent_id, reason=reason, no_answer=no_answer)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + ring_s + (RING_MARGIN_S if within_s is None else 0)
    # Music while the agent's phone rings, once it has rung a moment: an agent who answers at
    # once costs no start and stop of the music (two requests to the PBX per call).
    music_at = loop.time() + MUSIC_SETTLE_S if hold_caller else math.inf
    winner: str | None = None
    try:
        while ringing and winner is None:
            ev = await call.next_event(max(min(deadline, music_at) - loop.time(), 0.01))
            if ev is None and music_at <= loop.time() < deadline:
                music_at = math.inf
                with contextlib.suppress(PbxError):  # a caller gone meanwhile: its hang-up follows
                    await call.music(True)
                continue
            if ev is None:
                for channel_id in list(ringing):
                    await call.hang_up(channel_id)
                    ring_ended(channel_id, "ring timeout", no_answer=True)
            elif isinstance(ev, StasisStart) and ev.channel.id in ringing:
                winner = ev.channel.id
            elif isinstance(ev, ChannelDestroyed) and ev.channel.id in ringing:
                cause = ev.cause_txt or f"cause {ev.cause}"
                ring_ended(ev.channel.id, cause, ev.cause in NO_ANSWER_CAUSES)
            elif isinstance(ev, PbxLost):  # Asterisk lost the ringing phone: not the agent's doing
                for channel_id in ev.channel_ids & ringing.keys():
                    ring_ended(channel_id, ev.why or "lost by the PBX", no_answer=False)
    except (CallerGone, CallDropped):
        for channel_id in list(ringing):  # the caller left while agents rang
            with contextlib.suppress(PbxError):
                await call.pbx.hangup(channel_id)
            ring_ended(channel_id, "caller hung up", no_answer=False)
        it.legs.pop("ringing", None)
        raise
    it.legs.pop("ringing", None)
    if winner is None:
        it.offer_failed(call.now(), ",".join(decision.agent_ids), "no agent answered")
        call.save_soon()
        return None
    agent_id = ringing.pop(winner)
    answered_at = call.now()
    # The agent has touched this interaction from here on (their wrap-up may be saved on it),
    # whether or not a caller is ever connected (an unreached callback, a preview not answered).
    it.record(answered_at, "agent_answered", agent_id=agent_id)
    waited = (answered_at - (it.queued_at or answered_at)).total_seconds()
    desk.answered(agent_id, queue, waited, it.id, Tier(it.tier or "medium"), first=it.answered_at is None)
    for channel_id in list(ringing):  # ring-all: the others stop ringing
        await call.hang_up(channel_id)
        ring_ended(channel_id, "answered elsewhere", no_answer=False)
    return Leg(winner, agent_id=agent_id, answered_at=answered_at)
