"""The Clock seam: what time it is and how to wait. Real time for runs, a fake for tests.

The only place the engine's waiting comes from; pure modules take the time as an argument.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

import anyio


class Clock(Protocol):
    def now_s(self) -> float: ...

    async def sleep(self, delay_s: float) -> None: ...


class MonotonicClock:
    """The event loop's monotonic clock."""

    def now_s(self) -> float:
        return anyio.current_time()

    async def sleep(self, delay_s: float) -> None:
        await anyio.sleep(delay_s)


class FakeClock:
    """Time that moves only when a test says so; sleepers wake in deadline order."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now_s(self) -> float:
        return self._now_s

    async def sleep(self, delay_s: float) -> None:
        if delay_s <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self._now_s + delay_s, next(self._order), wake))
        await wake.wait()

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)

    async def advance(self, delay_s: float) -> None:
        """Move time forward, waking each sleeper whose deadline passes, in order."""
        target_s = self._now_s + delay_s
        while self._sleepers and self._sleepers[0][0] <= target_s:
            deadline_s, _, wake = heapq.heappop(self._sleepers)
            self._now_s = max(self._now_s, deadline_s)
            wake.set()
            await anyio.lowlevel.checkpoint()
        self._now_s = target_s
