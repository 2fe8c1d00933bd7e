"""Rows whose case must wait before its next call: a call whose outcome is unknown (the client
gave up on it, or a run ended with it in flight) may still be applied by the service, so no
further call for that case, the retry included, goes until it surely cannot land any more.

Holds those rows off the workers and hands each back when its time has come. Sleeps only
through the injected Clock; knows nothing of calls or checkpoints.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import anyio

from bulkupdate.checkpoint.store import END_STATES, JobStatus
from bulkupdate.clock import Clock
from bulkupdate.fields.rows import Row
from bulkupdate.pacing.gate import SLOT_CHECK_S


@dataclass(frozen=True, slots=True)
class ResumeHold:
    """What a run inherits from one that may have left calls unsettled: its unresolved rows
    below `before_offset` may have been sent, so their cases (all, or only `cases`) wait until
    `until_s` (the Clock's time)."""

    before_offset: int
    until_s: float
    cases: frozenset[str] | None = None  # None: every case of those rows

    def holds(self, offset: int, case_id: str) -> bool:
        return offset < self.before_offset and (self.cases is None or case_id in self.cases)


class SettleHolds:
    """Rows on hold, earliest release first. Other cases go on meanwhile: a held row takes no
    worker, and its case's later rows wait behind it in their lane."""

    __slots__ = ("_added", "_clock", "_heap", "_seq", "held")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Row]] = []
        self._seq = 0  # ties leave in the order they came
        self._added = anyio.Event()
        self.held = 0  # rows on hold or being handed back

    def hold(self, row: Row, until_s: float) -> None:
        heapq.heappush(self._heap, (until_s, self._seq, row))
        self._seq += 1
        self.held += 1
        self._added.set()

    def latest_s(self) -> float | None:
        """When the last hold ends, or None when nothing is held."""
        return max((until_s for until_s, _, _ in self._heap), default=None)

    def held_cases(self) -> list[str]:
        return sorted({row.case_id for _, _, row in self._heap})

    async def release(
        self, send: Callable[[Row], Awaitable[None]], stopped: Callable[[], bool]
    ) -> None:
        """Runs for the whole run: hands each row to `send` once its hold has passed. After
        `stopped()` it hands out nothing more: those rows stay pending for the next run."""
        heap = self._heap
        while not stopped():
            if not heap:
                self._added = anyio.Event()
                await self._added.wait()
                continue
            now_s = self._clock.now_s()
            if heap[0][0] > now_s:
                # Steps of SLOT_CHECK_S: a stop is seen soon, an earlier new hold in time.
                await self._clock.sleep(min(heap[0][0] - now_s, SLOT_CHECK_S))
                continue
            _, _, row = heapq.heappop(heap)
            await send(row)
            self.held -= 1


def resume_hold(
    previous: JobStatus | None,
    *,
    settle_period_s: float,
    dispatched_key: str,
    now_s: float,
    now: datetime,
) -> ResumeHold | None:
    """What the last run leaves this one to wait out, from the checkpoint as it left it.

    A run that ended without saying so (killed) may have had a call in flight for any row it
    had recorded as sendable: those cases wait a whole settle period from now, since it may
    have sent until it died. A run that ended and named calls that may still land (abandoned
    in flight, or held) left their cases and the time they settle. `now_s` is the Clock's
    time and `now` the wall clock's, read together."""
    if previous is None or previous.last_run is None:
        return None
    before_offset = previous.counters.get(dispatched_key)
    if before_offset is None:  # a checkpoint from before the rule: nothing recorded
        return None
    last = previous.last_run
    if last.state not in END_STATES:
        return ResumeHold(before_offset, now_s + settle_period_s, None)
    until = last.summary.get("settle_until")
    cases = last.summary.get("unsettled_cases")
    if not until or not cases:
        return None
    left_s = (datetime.fromisoformat(until) - now).total_seconds()
    if left_s <= 0:
        return None
    return ResumeHold(before_offset, now_s + left_s, frozenset(cases))
