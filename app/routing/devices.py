"""Agents' phones back in service after Asterisk (re)starts.

A restarted Asterisk knows the phones that registered with it before, but holds them
unreachable until it has qualified them (an OPTIONS each), which it spreads over
qualify_frequency (30 s). Agents would sit Ready with nothing ringing meanwhile, so the app asks
for those qualifies at once, and again for any phone still out: one OPTIONS lost, or answered
late by a busy phone, would otherwise cost its agent the next 30 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

TRIES = 10  # rounds of qualifies for the phones still out: about 20 s in all
PAUSE_S = 2.0  # between rounds: an OPTIONS answered late counts (qualify_timeout is 3 s)


class Qualifier(Protocol):
    """What is asked of AMI (app/adapters/ami.py)."""

    async def ping(self, timeout: float = 2.0) -> bool: ...
    async def qualify(self, endpoint: str, timeout: float = 2.0) -> bool: ...


async def bring_back(
    ami: Qualifier,
    agent_ids: Sequence[str],
    still_out: Callable[[str], bool],
    *,
    tries: int = TRIES,
    pause_s: float = PAUSE_S,
) -> list[str]:
    """Qualify the phones of `agent_ids` until none is `still_out` (their endpoint events say
    when one is back) or the tries are spent; the agents whose phones stayed out."""
    # AMI may still be reconnecting to an Asterisk that has just restarted.
    for _ in range(20):
        if await ami.ping(timeout=1.0):
            break
        await asyncio.sleep(0.5)
    out = list(agent_ids)
    for _ in range(tries):
        for agent_id in out:
            await ami.qualify(agent_id)
        await asyncio.sleep(pause_s)
        out = [a for a in out if still_out(a)]
        if not out:
            break
    return out
