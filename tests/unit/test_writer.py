"""The interaction writer: calls never wait for it, writes go out in order and in batches, and a
database outage loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from app.bus import Bus, InteractionSaved
from app.calls.writer import InteractionWriter
from app.domain.interaction import Interaction, InteractionEvent, Outcome
from app.errors import BadRecord


class SlowStore:
    """Takes a batch only when the test lets it, and can be down."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, bool, list[str]]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False

    async def write_interactions(
        self, batch: Sequence[tuple[Interaction, bool, Sequence[InteractionEvent]]]
    ) -> None:
        await self.gate.wait()
        if self.down:
            raise ConnectionError("database down")
        self.batches.append([(it.id, create, [e.kind for e in events]) for it, create, events in batch])

    async def open_interactions(self) -> list[Interaction]:
        return []


def interaction(iid: str) -> Interaction:
    return Interaction(iid, f"ch-{iid}", "13800000001", "7000", datetime.now(UTC))


async def test_saves_that_wait_together_go_out_as_one_row_write_with_every_event_in_order() -> None:
    store, bus = SlowStore(), Bus()
    saved: list[InteractionSaved] = []
    bus.subscribe(InteractionSaved, saved.append)
    writer = InteractionWriter(store, bus, batch_window_s=0)
    writer.start()
    store.gate.clear()  # the database is slow: writes pile up behind the first
    a, b = interaction("a"), interaction("b")
    a.record(a.arrived_at, "arrived")
    writer.create(a)
    await asyncio.sleep(0.01)  # the first batch is now in flight
    a.record(a.arrived_at, "answered_by_ivr")
    writer.save(a)
    b.record(b.arrived_at, "arrived")
    writer.create(b)
    a.end(a.arrived_at, Outcome.HUNG_UP_IN_IVR)
    writer.save(a)
    assert writer.backlog == 2  # a's two saves became one; b waits beside it
    store.gate.set()
    assert await writer.flush(timeout=2)
    first, second = store.batches  # one transaction for what piled up, whatever its size
    assert first == [("a", True, ["arrived"])]
    assert sorted(second) == [("a", False, ["answered_by_ivr", "ended"]), ("b", True, ["arrived"])]
    told = {n.interaction_id: [e.kind for e in n.events] for n in saved[1:]}
    assert told == {"a": ["answered_by_ivr", "ended"], "b": ["arrived"]}
    await writer.stop()


async def test_an_outage_keeps_every_write_and_flush_waits_for_the_database() -> None:
    store = SlowStore()
    writer = InteractionWriter(store, Bus())
    writer.start()
    store.down = True
    it = interaction("c")
    it.record(it.arrived_at, "arrived")
    writer.create(it)
    assert not await writer.flush("c", timeout=0.3)  # not written yet: the call did not wait
    assert writer.failing_since is not None
    it.record(it.arrived_at, "answered_by_ivr")
    writer.save(it)
    store.down = False
    assert await writer.flush("c", timeout=8)
    assert store.batches == [[("c", True, ["arrived", "answered_by_ivr"])]]
    assert writer.failing_since is None
    await writer.stop()


async def test_saves_within_the_batch_window_go_out_in_one_transaction_and_flush_does_not_wait_for_it() -> (
    None
):
    store = SlowStore()
    writer = InteractionWriter(store, Bus(), batch_window_s=5.0)
    writer.start()
    a, b = interaction("a"), interaction("b")
    a.record(a.arrived_at, "arrived")
    writer.create(a)
    await asyncio.sleep(0.05)
    b.record(b.arrived_at, "arrived")
    writer.create(b)
    await asyncio.sleep(0.05)
    assert store.batches == []  # still gathering
    # A step that needs its row on disk does not wait for the window to close.
    assert await writer.flush("b", timeout=1)
    assert store.batches == [[("a", True, ["arrived"]), ("b", True, ["arrived"])]]
    await writer.stop()


class PickyStore(SlowStore):
    """Refuses any batch holding a "poison" interaction (as PostgreSQL refuses a NUL), and goes
    down once, on demand, in the middle of the one-by-one writes."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_once_on: str | None = None

    async def write_interactions(
        self, batch: Sequence[tuple[Interaction, bool, Sequence[InteractionEvent]]]
    ) -> None:
        if any(it.id.startswith("poison") for it, _, _ in batch):
            raise BadRecord("text cannot hold NUL")
        if len(batch) == 1 and batch[0][0].id == self.fail_once_on:
            self.fail_once_on = None
            raise ConnectionError("database down")
        await super().write_interactions(batch)


async def test_a_refused_record_is_dropped_alone_and_an_outage_meanwhile_writes_nothing_twice() -> None:
    store = PickyStore()
    writer = InteractionWriter(store, Bus(), batch_window_s=0.01)
    its = [interaction(i) for i in ("a", "poison", "b", "c")]
    for it in its:
        it.record(it.arrived_at, "arrived")
        writer.create(it)
    # "a" is written alone, the poison dropped, then the database is down as "b" is tried: "b"
    # and "c" wait and go out later, and "a" is not written again.
    store.fail_once_on = "b"
    writer.start()
    assert await writer.flush(timeout=5)
    await writer.stop(timeout=1)
    written = [row for batch in store.batches for row in batch]
    assert sorted(iid for iid, _, _ in written) == ["a", "b", "c"], "each once, the poison dropped"
    assert all(kinds == ["arrived"] for _, _, kinds in written)
    assert writer.dropped == 1
