"""A row's turn with a worker: its before-image read (--before-images), its UpdateCase calls
through the shared gate, and what follows a refused or unanswered call (retry, hold, give up).

Orchestration for the engine: never imports the engine; sleeps only through the injected Clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bulkupdate.clock import Clock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.rows import Row
from bulkupdate.models import Outcome, RowStatus
from bulkupdate.pacing.gate import SLOT_CHECK_S, RateGate
from bulkupdate.pacing.outage import OutageWatch
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.report.stats import RunStats
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.images import BeforeImages, Read
from bulkupdate.run.settings import EngineSettings
from bulkupdate.run.settle import SettleHolds

__all__ = ["Next", "Sending", "SendingHooks"]


class Next(Enum):
    """What becomes of a row after a failed call, or after its turn with a worker."""

    RETRY = "retry"  # sleep the delay, then pass the gate again
    RESOLVED = "resolved"  # the row is done or failed for good; its case's next row may go
    STOP = "stop"  # the run is stopping: the row stays pending
    HOLD = "hold"  # its last call may still land: it waits off the workers, its case too


@dataclass(frozen=True, slots=True)
class SendingHooks:
    """What sending asks of the engine."""

    resolve: Callable[[Outcome], None]  # a row's final word (to the checkpoint)
    stop_for: Callable[[CallError], None]  # a systemic error: the run stops
    stopped: Callable[[], bool]
    may_send: Callable[[], bool]  # outcomes can be recorded and the checkpoint is held
    tell: Callable[[str, Mapping[str, Any]], None]


class Sending:
    """Sends rows until each is resolved, put on hold, or the run stops; counts in `stats`."""

    __slots__ = (
        "_api",
        "_clock",
        "_fail_after_hold",
        "_failing_since",
        "_holds",
        "_hooks",
        "_outage",
        "_policy",
        "_prepared",
        "_random",
        "_settings",
        "gate",
        "images",
        "in_flight",
        "stats",
    )

    def __init__(
        self,
        settings: EngineSettings,
        hooks: SendingHooks,
        *,
        api: CasesApi,
        clock: Clock,
        gate: RateGate,
        outage: OutageWatch,
        holds: SettleHolds,
        stats: RunStats,
        rng: random.Random,
        images: BeforeImages | None,
    ) -> None:
        self._settings = settings
        self._hooks = hooks
        self._api = api
        self._clock = clock
        self.gate = gate
        self._outage = outage
        self._holds = holds
        self.stats = stats
        self._random = rng
        self._policy = RetryPolicy(max_attempts=settings.max_attempts)
        self.images = images
        self.in_flight = 0
        self._fail_after_hold: dict[int, Outcome] = {}  # offset -> its failure, once settled
        self._failing_since: dict[int, float] = {}  # offset -> send time of its first 5xx
        self._prepared: set[int] = set()  # offsets read before joining the planner

    def forget(self, offset: int) -> None:
        """The row at `offset` is resolved."""
        if self._failing_since:
            self._failing_since.pop(offset, None)
        if self.images is not None:
            self.images.forget(offset)
            self._prepared.discard(offset)

    async def process(self, row: Row) -> Next:
        """Send until the row is resolved, put on hold, or the run stops first."""
        settled = self._fail_after_hold.pop(row.offset, None)
        if settled is not None:  # it gave up; its last call has surely landed or died now
            self._hooks.resolve(settled)
            return Next.RESOLVED
        if self.images is not None and row.offset not in self._prepared:
            step = await self.read_first(row)
            if step is not None:
                return step
        self._prepared.discard(row.offset)
        outage, may_send, stopped = self._outage, self._hooks.may_send, self._hooks.stopped
        while not stopped():
            if not may_send() or not outage.may_send(self._clock.now_s()):
                await self._clock.sleep(SLOT_CHECK_S)
                continue
            sent_s = await self.gate.pass_(stopped)
            if sent_s is None or not may_send():
                outage.not_sent()
                if sent_s is None:
                    return Next.STOP
                continue  # that changed while it waited for its slot: the slot is spent
            answer = await self._send(row, sent_s)
            if answer is None:
                return Next.RESOLVED
            step, delay_s = self._after_failure(row, answer, sent_s)
            if step is not Next.RETRY:
                return step
            await self._pause(delay_s)
        return Next.STOP

    async def read_first(self, row: Row) -> Next | None:
        """--before-images: read the row's fields first. None when some are left to send."""
        assert self.images is not None
        read = await self.images.prepare(row, self._hooks.stopped)
        if read is Read.SEND:
            return None
        if read is Read.STOP:
            return Next.STOP
        if isinstance(read, CallError):  # systemic: GetCase refused as UpdateCase would be
            self._hooks.stop_for(read)
            return Next.STOP
        self._hooks.resolve(read)
        return Next.RESOLVED

    async def prepare(self, row: Row) -> Next | None:
        """--before-images with --batch auto: read the row before it joins the planner. None
        when it goes (its fields cut to what differs), else what became of it."""
        step = await self.read_first(row)
        if step is None:
            self._prepared.add(row.offset)
        return step

    async def _pause(self, delay_s: float) -> None:
        """Sleep a retry delay, waking early enough to see a stop."""
        until_s = self._clock.now_s() + delay_s
        while not self._hooks.stopped():
            left_s = until_s - self._clock.now_s()
            if left_s <= 0:
                return
            await self._clock.sleep(min(left_s, SLOT_CHECK_S))

    async def _send(self, row: Row, sent_s: float) -> CallError | None:
        """One UpdateCase call: None when accepted (the row is resolved), else the refusal.

        A stop lets it finish within the grace period; a forced stop cancels it, so the service
        may or may not have applied it and the row stays pending (its case held next run).
        """
        stats = self.stats
        row.attempts += 1
        stats.calls += 1
        if row.attempts > 1:
            stats.retried += 1
        self.in_flight += 1
        try:
            await self._api.update_case(row.case_id, row.fields, self._settings.performed_by)
        except CallError as error:
            stats.record_latency(self._clock.now_s() - sent_s)
            return error
        except BaseException:  # cancelled in flight: the service may still apply it
            self._holds.abandoned(row.case_id, sent_s + self._settings.settle_period_s)
            raise
        finally:
            self.in_flight -= 1
        now_s = self._clock.now_s()
        stats.record_latency(now_s - sent_s)
        stats.record_accept(now_s)
        self.gate.accepted(sent_s)
        self._outage.up(now_s)
        if self.images is not None:
            self.images.accepted(row)  # with the outcome, in one commit
        self._hooks.resolve(row.outcome(RowStatus.DONE))
        return None

    def _after_failure(self, row: Row, error: CallError, sent_s: float) -> tuple[Next, float]:
        kind = error.kind
        now_s = self._clock.now_s()
        if kind is not ErrorKind.TRANSIENT:
            self._outage.up(now_s)  # it answered
        if kind is ErrorKind.SYSTEMIC:
            self._hooks.stop_for(error)
            return Next.STOP, 0.0
        if kind is ErrorKind.THROTTLED:
            # Throttles never count against --max-attempts: only 5xx/timeouts do.
            self.stats.throttles += 1
            row.throttles += 1
            self.gate.throttled(sent_s)
            attempt = row.throttles
        elif kind is ErrorKind.TRANSIENT:
            failing_since_s = self._failing_since.setdefault(row.offset, sent_s)
            if self._outage.failed(now_s):
                row.transient_failures = 0  # an outage is not the row's fault: no attempt used
                return self._after_unknown(row, error, sent_s) or (Next.RETRY, 0.0)
            row.transient_failures += 1
            attempt = row.transient_failures
            if attempt >= self._policy.max_attempts and not self._outage.up_since(failing_since_s):
                # Nothing has succeeded since this row began failing: that is no sign of a
                # bad row but of a service going down. Keep it; the outage rule takes over.
                attempt = row.transient_failures = self._policy.max_attempts - 1
        else:
            attempt = 1
        decision = self._policy.decide(kind, attempt, error.retry_after_s, self._random.random())
        if isinstance(decision, GiveUp):
            code = decision.reason if kind is ErrorKind.TRANSIENT else error.code
            failed = row.outcome(RowStatus.FAILED, code, f"{error.code}: {error.message}")
            if error.outcome_unknown:  # its case's next row waits until this call settled
                self._fail_after_hold[row.offset] = failed
                self._holds.hold(row, sent_s + self._settings.settle_period_s)
                return Next.HOLD, 0.0
            self._hooks.resolve(failed)
            return Next.RESOLVED, 0.0
        return self._after_unknown(row, error, sent_s) or (Next.RETRY, decision.delay_s)

    def _after_unknown(
        self, row: Row, error: CallError, sent_s: float
    ) -> tuple[Next, float] | None:
        """A call that may still land: the retry, and every later row of the case, waits until
        it surely cannot (the settle period from its send)."""
        if not error.outcome_unknown:
            return None
        until_s = sent_s + self._settings.settle_period_s
        self._hooks.tell(
            "call_outcome_unknown",
            {
                "case_id": row.case_id,
                "row": row.line,
                "code": error.code,
                "hold_s": until_s - self._clock.now_s(),
            },
        )
        self._holds.hold(row, until_s)
        return Next.HOLD, 0.0
