"""The batching stage of a run: rows ready to go wait in the planner; one task hands lone rows
to the UpdateCase workers when one is free, another hands groups out as BatchUpdateCase slots
come (its own rate gate and adaptive controller), and each group is sent by `sender`.

Orchestration: sleeps only through the injected Clock; never imports the engine.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bulkupdate.clock import Clock
from bulkupdate.errors import CallError
from bulkupdate.fields.rows import Row
from bulkupdate.models import Outcome
from bulkupdate.pacing.gate import SLOT_CHECK_S, RateGate
from bulkupdate.run.batch.grouping import Planner, window_s
from bulkupdate.run.settings import BatchSettings, EngineSettings

OPERATION = "BatchUpdateCase"


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the batching stage asks of the engine."""

    resolve: Callable[[Outcome], None]  # a row's final word (to the checkpoint)
    next_of: Callable[[str], Row | None]  # the case's row is resolved: its next row, if any
    stop_for: Callable[[CallError], None]  # a systemic error: the run stops
    stopped: Callable[[], bool]
    may_send: Callable[[], bool]  # outcomes can be recorded and the checkpoint is held
    group_done: Callable[[str], None]  # forget the recorded group with the next commit
    tell: Callable[[str, Mapping[str, Any]], None]
    # --before-images: read a row before it joins the planner (True: it goes, its fields cut
    # to what differs); and record what an accepted call wrote, before its row resolves.
    prepare: Callable[[Row], Awaitable[bool]] | None = None
    accepted: Callable[[Row], None] = lambda row: None


class Batcher:
    """The planner and its two feeders. `add` takes a row whose case has nothing in flight."""

    __slots__ = (
        "_closed",
        "_group",
        "_preparing",
        "_preparing_count",
        "_to_prepare",
        "_waiters",
        "clock",
        "gate",
        "hooks",
        "planner",
        "sender",
    )

    def __init__(self, settings: EngineSettings, batch: BatchSettings, clock: Clock, hooks: Hooks):
        self.clock = clock
        self.hooks = hooks
        self._group: TaskGroup | None = None
        self.planner = Planner(batch.size, window_s(settings.rate_per_s))
        self.gate = RateGate(
            batch.rate_per_s,
            batch.burst,
            clock,
            headroom=settings.headroom,
            tell=lambda name, data: hooks.tell(name, {**data, "operation": OPERATION}),
        )
        self._waiters: list[anyio.Event] = []
        self._closed = False
        # Rows new to the planner wait here for their read (--before-images), at most
        # `concurrency` at a time; the reads' own gate paces them.
        self._to_prepare: MemoryObjectSendStream[Row] | None = None
        self._preparing: MemoryObjectReceiveStream[Row] | None = None
        if hooks.prepare is not None:
            self._to_prepare, self._preparing = anyio.create_memory_object_stream[Row](math.inf)
        self._preparing_count = settings.concurrency
        self.sender: Any = None  # set by the engine: a sender.GroupSender

    def add(self, row: Row, *, alone: bool = False) -> None:
        """A row (already read, with --before-images) joins the planner."""
        self.planner.add(row, self.clock.now_s(), alone=alone)
        self._wake()

    def admit(self, row: Row) -> None:
        """A row at the head of its case's lane, new to the planner or back from a hold: read
        first with --before-images, then added."""
        if self._to_prepare is None:
            self.add(row)
            return
        with contextlib.suppress(anyio.ClosedResourceError):  # ending: the row stays pending
            self._to_prepare.send_nowait(row)

    def advance(self, case_id: str) -> None:
        """The case's row is resolved: its next row joins the planner, if it has one."""
        row = self.hooks.next_of(case_id)
        if row is not None:
            self.admit(row)

    def close(self) -> None:
        """Every row read is resolved, or the run stops: the feeders end."""
        self._closed = True
        self._wake()

    def unsupported(self) -> None:
        """The endpoint does not know BatchUpdateCase: every row goes as UpdateCase from now."""
        self.planner.size = 1
        for row in self.planner.drain():
            self.planner.add(row, self.clock.now_s(), alone=True)
        self._wake()

    async def run(
        self, to_workers: MemoryObjectSendStream[Row], held: MemoryObjectReceiveStream[Row]
    ) -> None:
        """Feed until closed: lone rows to the workers, groups to the sender; rows coming back
        from a hold (`held`) join the planner."""
        preparing = self._preparing
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self._take_back, held)
                group.start_soon(self._feed_groups, group)
                if preparing is not None:
                    for _ in range(self._preparing_count):
                        group.start_soon(self._prepare, preparing.clone())
                await self._feed_singles(to_workers)
                group.cancel_scope.cancel()
        finally:
            if preparing is not None and self._to_prepare is not None:
                preparing.close()
                self._to_prepare.close()

    def sender_task(self, task: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        """Run `task(*args)` beside the feeders (a retry's wait, half of a refused group)."""
        assert self._group is not None
        self._group.start_soon(task, *args)

    def _done(self) -> bool:
        return self._closed or self.hooks.stopped()

    async def _take_back(self, held: MemoryObjectReceiveStream[Row]) -> None:
        async with held:
            async for row in held:
                self.admit(row)  # its last call's fate unknown: read again first

    async def _prepare(self, rows: MemoryObjectReceiveStream[Row]) -> None:
        prepare = self.hooks.prepare
        assert prepare is not None
        async with rows:
            async for row in rows:
                if await prepare(row):
                    self.add(row)

    async def _feed_singles(self, to_workers: MemoryObjectSendStream[Row]) -> None:
        planner, clock = self.planner, self.clock
        while not self._done():
            row = planner.take_single(clock.now_s())
            if row is None:
                await self._wait(planner.single_due_s())
                continue
            try:
                to_workers.send_nowait(row)  # a worker is waiting: no scheduling round trip
            except anyio.WouldBlock:
                try:
                    await to_workers.send(row)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # the run is ending: the row stays pending
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return

    async def _feed_groups(self, group: TaskGroup) -> None:
        planner, clock = self.planner, self.clock
        while not self._done():
            if not self.hooks.may_send():
                await clock.sleep(SLOT_CHECK_S)
                continue
            due_s = planner.group_due_s()
            if due_s is None or due_s > clock.now_s():
                await self._wait(due_s)
                continue
            sent_s = await self.gate.pass_(self._done)
            if sent_s is None:
                return
            rows = planner.take_group(clock.now_s())  # fuller now, maybe: it waited its slot
            if rows is not None:
                group.start_soon(self.sender.send, rows, sent_s)

    async def _wait(self, due_s: float | None) -> None:
        """Until a row is added or `due_s` (the Clock's time) comes; a stop is seen within
        SLOT_CHECK_S. (A timed wait on an event: the loop's clock measures it, not the Clock.)"""
        wait_s = SLOT_CHECK_S if due_s is None else min(due_s - self.clock.now_s(), SLOT_CHECK_S)
        if wait_s <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        self._waiters.append(event)
        with anyio.move_on_after(wait_s):
            await event.wait()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for event in waiters:
            event.set()
