"""Fake time for tests and simulations: a `Clock` whose time moves only when told."""

from __future__ import annotations

import heapq
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


class _Sleeper:
    __slots__ = ("alive", "deadline_s", "event", "seq")

    def __init__(self, deadline_s: float, seq: int) -> None:
        self.deadline_s = deadline_s
        self.seq = seq  # ties wake in the order the sleeps began
        self.event = anyio.Event()
        self.alive = True

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.deadline_s, self.seq) < (other.deadline_s, other.seq)


class FakeClock:
    """Time that moves only when told: `await advance(delay_s)`, or alone in `auto_advance()`."""

    __slots__ = ("_added", "_now_s", "_seq", "_sleepers")

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s
        self._seq = 0
        self._sleepers: list[_Sleeper] = []  # a heap; cancelled sleepers are dropped lazily
        self._added: anyio.Event | None = None  # set when a sleep begins, for auto_advance

    def now_s(self) -> float:
        return self._now_s

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in `sleep` now."""
        return sum(1 for sleeper in self._sleepers if sleeper.alive)

    def next_deadline_s(self) -> float | None:
        """When the earliest sleeper is due, or None when nobody sleeps."""
        self._drop_dead()
        return self._sleepers[0].deadline_s if self._sleepers else None

    async def sleep(self, delay_s: float) -> None:
        if delay_s <= 0.0 or math.isnan(delay_s):
            await anyio.lowlevel.checkpoint()
            return
        self._seq += 1
        sleeper = _Sleeper(self._now_s + delay_s, self._seq)
        heapq.heappush(self._sleepers, sleeper)
        if self._added is not None:
            self._added.set()
        try:
            await sleeper.event.wait()
        finally:
            sleeper.alive = False  # cancelled or woken: either way no longer sleeping

    async def advance(self, delay_s: float) -> None:
        """Move time forward by `delay_s`, stopping at each deadline on the way.

        Each due sleeper wakes with `now_s()` at its own deadline and gets to run before time
        moves on, so wake-ups happen in deadline order (ties in the order the sleeps began).
        """
        if delay_s < 0.0:
            raise ValueError(f"time cannot go back: advance({delay_s})")
        target_s = self._now_s + delay_s
        sleepers = self._sleepers
        while sleepers and sleepers[0].deadline_s <= target_s:
            sleeper = heapq.heappop(sleepers)
            if not sleeper.alive:
                continue
            self._now_s = max(self._now_s, sleeper.deadline_s)
            sleeper.event.set()
            await anyio.lowlevel.checkpoint()  # the woken task runs before time moves on
        self._now_s = target_s

    @asynccontextmanager
    async def auto_advance(self) -> AsyncIterator[None]:
        """Jump time to the next deadline whenever every other task is blocked.

        For simulations: sleeping costs no real time. "Blocked" is anyio's
        `wait_all_tasks_blocked`, so a task waiting on real I/O also counts as blocked.
        """
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def _drive(self) -> None:
        while True:
            deadline_s = self.next_deadline_s()
            if deadline_s is None:
                self._added = anyio.Event()
                await self._added.wait()
                self._added = None
                continue
            # Let woken tasks run their next steps first; the check below is the real guard.
            for _ in range(4):
                await anyio.lowlevel.checkpoint()
            await anyio.wait_all_tasks_blocked()
            deadline_s = self.next_deadline_s()
            if deadline_s is not None:
                await self.advance(max(0.0, deadline_s - self._now_s))

    def _drop_dead(self) -> None:
        sleepers = self._sleepers
        while sleepers and not sleepers[0].alive:
            heapq.heappop(sleepers)
