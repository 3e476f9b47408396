"""The one path by which interactions reach PostgreSQL: written behind the calls, in batches,
in order, and retried until the database takes them.

A call never waits for the database: `create` and `save` take a snapshot of the interaction
and its new events and return at once. One task writes what has piled up, many interactions
in one transaction; several saves of one interaction that wait together become one row update
with all their events, in order. When PostgreSQL is down (restarting, unreachable), the writes
wait in memory and go out when it is back; nothing is dropped and no call is held up. What is
written is announced on the bus (`InteractionSaved`) for the panel and anyone else listening.

Why here and not in each call: on the path from a key press to the agent's phone ringing, each
awaited write cost about a millisecond of the event loop, and a burst of calls spent about 40% of
the loop on PostgreSQL round trips (issue "call runtime", benchmark profile). A batch costs one
round trip for many calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
from dataclasses import dataclass, field

from app.bus import Bus, InteractionSaved
from app.calls.ports import InteractionStore
from app.domain.interaction import Interaction, InteractionEvent
from app.errors import BadRecord

log = logging.getLogger(__name__)

MAX_BATCH = 500  # interactions per transaction
# Writes wait this long for others to join their batch: at 40 calls a second a call's dozen
# saves each went out in a transaction of their own. A step that waits for its row on disk
# (`flush`) cuts the wait short.
BATCH_WINDOW_S = 0.1
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


@dataclass
class _Pending:
    snapshot: Interaction
    create: bool
    events: list[InteractionEvent] = field(default_factory=list)
    seq: int = 0

    def merge_newer(self, newer: _Pending) -> _Pending:
        """This (older, not written) and a newer write of the same interaction, as one."""
        return _Pending(newer.snapshot, self.create or newer.create, self.events + newer.events, newer.seq)


def snapshot(it: Interaction) -> Interaction:
    """A copy the call can go on changing behind (events drained separately)."""
    return dataclasses.replace(
        it,
        pending=[],
        collected=dict(it.collected),
        skills=dict(it.skills),
        legs=copy.deepcopy(it.legs),
    )


class InteractionWriter:
    def __init__(self, store: InteractionStore, bus: Bus, batch_window_s: float = BATCH_WINDOW_S) -> None:
        self.store = store
        self.bus = bus
        self.batch_window_s = batch_window_s
        self._pending: dict[str, _Pending] = {}  # insertion-ordered: oldest write first
        self._seq = 0
        self._queued: dict[str, int] = {}  # interaction id -> seq of its latest write
        self._done: dict[str, int] = {}  # interaction id -> seq of its latest write on disk
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # someone waits for a write: no batch window
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self.failing_since: float | None = None  # loop time of the first failure of an outage
        self.written = 0  # interactions written (a write of one may cover several saves)
        self.dropped = 0  # writes the database refused for what they hold (logged, never retried)

    # -- the calls' side --------------------------------------------------------

    def create(self, it: Interaction) -> None:
        self._queue(it, create=True)

    def save(self, it: Interaction) -> None:
        self._queue(it, create=False)

    def _queue(self, it: Interaction, create: bool) -> None:
        self._seq += 1
        item = _Pending(snapshot(it), create, it.drain(), self._seq)
        older = self._pending.pop(it.id, None)
        # Re-inserted at the end: a merged write keeps its place after anything older.
        self._pending[it.id] = older.merge_newer(item) if older is not None else item
        self._queued[it.id] = self._seq
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def flush(self, interaction_id: str | None = None, timeout: float | None = None) -> bool:
        """Wait until what was queued so far for one interaction (or everything) is written.
        False on timeout (the writes still go out later)."""
        target = self._seq if interaction_id is None else self._queued.get(interaction_id)
        if target is None:
            return True

        def written() -> bool:
            if interaction_id is None:  # everything, including what arrives meanwhile
                return not self._pending and self._in_flight == 0
            return interaction_id not in self._queued or self._done.get(interaction_id, 0) >= target

        self._hurry.set()
        try:
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(written)
        except TimeoutError:
            return False
        return True

    # -- the writing task ---------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="interaction-writer")

    async def stop(self, timeout: float = 10.0) -> int:
        """Write what is left (up to `timeout`), then stop. Returns the interactions not written."""
        await self.flush(timeout=timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = len(self._pending)
        if left:
            log.error("%d interaction write(s) could not be saved before stopping", left)
        return left

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = RETRY_FIRST_S
        while True:
            await self._wake.wait()
            # At least one loop turn later: the step that asked for the write sends its own
            # requests (e.g. the originate after a key press) first.
            await asyncio.sleep(0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.batch_window_s):
                    await self._hurry.wait()
            self._wake.clear()
            self._hurry.clear()
            while self._pending:
                ids = list(self._pending)[:MAX_BATCH]
                batch = [self._pending.pop(i) for i in ids]
                self._in_flight = len(batch)
                try:
                    try:
                        await self.store.write_interactions([(p.snapshot, p.create, p.events) for p in batch])
                    except BadRecord as exc:
                        # One record the database will never take must not hold back the rest.
                        ids, batch = await self._one_by_one(ids, batch, exc)
                except Exception as exc:
                    self._in_flight = 0
                    self._put_back(ids, batch)
                    if self.failing_since is None:
                        self.failing_since = loop.time()
                        log.warning(
                            "cannot write interactions (%s); %d wait in memory, retrying",
                            exc,
                            len(self._pending),
                        )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                self._in_flight = 0
                if self.failing_since is not None:
                    log.warning(
                        "interactions are being written again after %.1f s",
                        loop.time() - self.failing_since,
                    )
                    self.failing_since = None
                backoff = RETRY_FIRST_S
                self.written += len(batch)
                await self._written(ids, batch)

    async def _one_by_one(
        self, ids: list[str], batch: list[_Pending], exc: BadRecord
    ) -> tuple[list[str], list[_Pending]]:
        """Write each of a refused batch alone; drop (loudly) the ones refused for what they hold.
        The written and the dropped come back as done (nobody waits forever for a dropped one);
        an outage meanwhile raises with `ids` and `batch` cut to what is left, which the caller
        puts back to be tried again as usual."""
        done: list[tuple[str, _Pending]] = []
        for n, (i, p) in enumerate(zip(ids, batch, strict=True)):
            try:
                await self.store.write_interactions([(p.snapshot, p.create, p.events)])
            except BadRecord as bad:
                self.dropped += 1
                self._settle(i, p)
                log.error(
                    "interaction %s dropped: the database refuses it (%s); %d event(s) lost: %s",
                    i,
                    bad,
                    len(p.events),
                    ", ".join(e.kind for e in p.events),
                )
            except Exception:
                if done:
                    await self._written([d[0] for d in done], [d[1] for d in done])
                # The caller puts back what is left (these very lists): not what is behind us.
                del ids[:n]
                del batch[:n]
                raise
            done.append((i, p))
        if len(batch) > 1:
            log.warning("a batch of %d interactions was refused (%s); written one by one", len(batch), exc)
        return [d[0] for d in done], [d[1] for d in done]

    def _put_back(self, ids: list[str], batch: list[_Pending]) -> None:
        """A failed batch goes back in front of anything queued since, merged per interaction."""
        newer = self._pending
        self._pending = {}
        for i, p in zip(ids, batch, strict=True):
            self._pending[i] = p
        for i, p in newer.items():
            self._pending[i] = self._pending.pop(i).merge_newer(p) if i in self._pending else p

    def _settle(self, i: str, p: _Pending) -> None:
        """This write is behind us (on disk, or dropped): waiters on it may go on."""
        self._done[i] = max(self._done.get(i, 0), p.seq)
        if self._done[i] >= self._queued.get(i, 0):
            self._queued.pop(i, None)
            self._done.pop(i, None)

    async def _written(self, ids: list[str], batch: list[_Pending]) -> None:
        for i, p in zip(ids, batch, strict=True):
            self._settle(i, p)
            if p.events:
                self.bus.publish(InteractionSaved(i, tuple(p.events)))
        async with self._progress:
            self._progress.notify_all()
