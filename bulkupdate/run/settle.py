"""Rows whose case must wait before its next call: a call whose outcome is unknown (the client
gave up on it, or a run ended with it in flight) may still be applied by the service, so no
further call for that case, the retry included, goes until it surely cannot land any more.

Holds those rows off the workers and hands each back when its time has come. Sleeps only
through the injected Clock; knows nothing of calls or checkpoints.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import anyio
from anyio.streams.memory import MemoryObjectSendStream

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

    __slots__ = ("_abandoned", "_added", "_clock", "_heap", "_inherited", "_seq", "held")

    def __init__(self, clock: Clock, inherited: ResumeHold | None = None) -> None:
        self._clock = clock
        self._inherited = inherited  # what the last run left to wait out
        self._heap: list[tuple[float, int, Row]] = []
        self._seq = 0  # ties leave in the order they came
        self._added = anyio.Event()
        self._abandoned: list[tuple[str, float]] = []  # (case, settled by) of cancelled calls
        self.held = 0  # rows on hold or being handed back

    def held_over(self, row: Row) -> bool:
        """Hold `row` if the last run may have sent it without its answer arriving: its case
        waits until that call surely cannot land any more. False when it may go now."""
        inherited = self._inherited
        if inherited is None or not inherited.holds(row.offset, row.case_id):
            return False
        if self._clock.now_s() >= inherited.until_s:
            self._inherited = None  # the last run's calls have all settled
            return False
        self.hold(row, inherited.until_s)
        return True

    def abandoned(self, case_id: str, settled_by_s: float) -> None:
        """A call cancelled in flight (the run is ending): the service may still apply it."""
        self._abandoned.append((case_id, settled_by_s))

    def unsettled(self) -> tuple[tuple[str, ...], float | None]:
        """Cases whose last call may still land after this run (held, or abandoned in
        flight), and until when: what the next run must wait out."""
        cases = {case for case, _ in self._abandoned} | {row.case_id for _, _, row in self._heap}
        untils = [until_s for _, until_s in self._abandoned]
        untils += [until_s for until_s, _, _ in self._heap]
        return tuple(sorted(cases)), max(untils, default=None)

    def hold(self, row: Row, until_s: float) -> None:
        heapq.heappush(self._heap, (until_s, self._seq, row))
        self._seq += 1
        self.held += 1
        self._added.set()

    async def release(self, send: MemoryObjectSendStream[Row], stopped: Callable[[], bool]) -> None:
        """Runs for the whole run: hands each row back to the workers' queue once its hold has
        passed, its case's lane still taken. After `stopped()` it hands out nothing more: those
        rows stay pending for the next run."""
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
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await send.send(row)  # closed only when stopping: it stays pending
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
