"""The clock seam: reading monotonic time and sleeping.

Everything that waits goes through a `Clock`, so tests and simulations run on fake time
(`tests/fakes/clock.py`). No I/O.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "MonotonicClock"]


class Clock(Protocol):
    def now_s(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Wait `delay_s` seconds (at least a checkpoint when `delay_s <= 0`)."""
        ...


class MonotonicClock:
    """The event loop's clock (asyncio's loop time is time.monotonic)."""

    __slots__ = ()

    def now_s(self) -> float:
        # time.monotonic directly: anyio.current_time() costs ~8x more, several times a row.
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await anyio.sleep(max(0.0, delay_s))
