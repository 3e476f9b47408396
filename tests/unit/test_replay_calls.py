"""A replayed call on the fake PBX (app/replay/, the center's side): a genuine marker stops the
call where its flow hands it on, without ringing anyone; a forged or reused one is an ordinary
call."""

from __future__ import annotations

import time
import uuid

from app.domain.interaction import Outcome
from app.domain.replay import sign
from tests.unit.test_call_scripts import Center, center

SECRET = "the-centers-api-token"


def marker(ani: str, nonce: str = "ab12", secret: str = SECRET) -> str:
    return sign(secret, uuid.uuid4().hex, ani, "7000", int(time.time()) + 600, nonce)


async def test_a_replay_stops_at_the_queue_node_and_rings_nobody() -> None:
    async with center(agents=("1001",), replay_secret=SECRET) as c:
        caller = c.pbx.caller_arrives("13800000001", replay=marker("13800000001"))
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.press(caller, "1")
        assert await c.outcome(it.id) is Outcome.REPLAYED
        kinds = c.store.kinds(it.id)
        assert kinds[:2] == ["arrived", "replay"], kinds
        assert "queued" not in kinds and "offered" not in kinds
        assert c.pbx.originated() == [], "a replay rang an agent"
        assert caller not in c.pbx.legs, "the center hung the replay up"
        stop = c.store.events[it.id][-1]
        assert (stop.kind, stop.data["stopped_at"], stop.data["queue"]) == ("ended", "queue", "general")


async def test_a_forged_or_reused_marker_is_an_ordinary_call() -> None:
    async with center(agents=("1001", "1002"), replay_secret=SECRET) as c:
        once = marker("13800000002", nonce="cd34")
        first = c.pbx.caller_arrives("13800000002", replay=once)
        it = await c.until(lambda: c.interaction_of(first), "the first interaction")
        await c.until(lambda: "replay" in c.store.kinds(it.id), "the replay marked")
        forged = marker("13800000003", secret="not-the-center")
        for ani, token in (("13800000003", forged), ("13800000002", once)):
            await ordinary_call(c, ani, token)


async def ordinary_call(c: Center, ani: str, token: str) -> None:
    caller = c.pbx.caller_arrives(ani, replay=token)
    it = await c.until(lambda: c.interaction_of(caller), "the interaction")
    await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
    assert "replay" not in c.store.kinds(it.id)
    c.pbx.press(caller, "1")
    await c.until(lambda: "queued" in c.store.kinds(it.id), "queued like any caller")
