"""The run: records flow from the source through per-case lanes to a pool of workers that pass
the shared rate gate, call UpdateCase and resolve each row; outcomes reach the checkpoint in
ordered batches. Stops cleanly on interrupt or on a systemic error.

Orchestration only: never imports aiobotocore; time and sleep come from the injected Clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bulkupdate.checkpoint.store import CheckpointStore
from bulkupdate.clock import Clock
from bulkupdate.errors import BulkUpdateError, CallError, ErrorKind
from bulkupdate.fields.rows import Row
from bulkupdate.fields.schema import ColumnMap
from bulkupdate.input.sources import Record
from bulkupdate.lookup.resolver import Resolver
from bulkupdate.models import Outcome, ResumePoint, RowStatus
from bulkupdate.pacing.adaptive import Regime
from bulkupdate.pacing.gate import RateGate
from bulkupdate.pacing.outage import OutageWatch
from bulkupdate.report.stats import RunStats
from bulkupdate.run.batch.batcher import Batcher, Hooks
from bulkupdate.run.batch.replay import Replayed, replay
from bulkupdate.run.batch.sender import batching
from bulkupdate.run.budget import BudgetWatch
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.commits import Commits
from bulkupdate.run.images import BeforeImages, Pending
from bulkupdate.run.ordering import CaseLanes, Frontier
from bulkupdate.run.reading import Reading
from bulkupdate.run.sending import Next, Sending, SendingHooks
from bulkupdate.run.settings import EngineSettings
from bulkupdate.run.settle import ResumeHold, SettleHolds


class RunEnd(StrEnum):
    FINISHED = "finished"  # the input is exhausted and every row resolved
    INTERRUPTED = "interrupted"  # SIGTERM/SIGINT: unfinished rows stay pending
    ABORTED = "aborted"  # a systemic error: unfinished rows stay pending


@dataclass(frozen=True, slots=True)
class RunResult:
    end: RunEnd
    stats: RunStats
    elapsed_s: float
    resume_point: ResumePoint
    abort: CallError | None = None
    # Calls that may still land after the run (abandoned in flight, or held rows): their
    # cases, and until when (the Clock's time) a next run must hold them.
    unsettled_cases: tuple[str, ...] = ()
    settle_until_s: float | None = None
    resolved_above: frozenset[int] = frozenset()  # offsets resolved beyond the resume point


Progress = Callable[[str, Mapping[str, Any]], None]


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        *,
        api: CasesApi,
        store: CheckpointStore,
        clock: Clock,
        columns: ColumnMap,
        records: Iterator[Record],
        resume_point: ResumePoint,
        resolved_offsets: frozenset[int] = frozenset(),
        on_event: Progress | None = None,
        rng: random.Random | None = None,
        resume_hold: ResumeHold | None = None,
        totals_before: Mapping[RowStatus, int] | None = None,
        pending_images: Pending | None = None,
        lookup: Resolver | None = None,
    ) -> None:
        self._settings = settings
        self._api = api
        self._store = store
        self._clock = clock
        self._on_event = on_event or (lambda event, data: None)
        self._random = rng or random.Random()
        self.gate = RateGate(
            settings.rate_per_s,
            settings.burst,
            clock,
            headroom=settings.headroom,
            tell=lambda name, data: self._on_event(name, data),
        )
        self.stats = RunStats()
        self._lanes: CaseLanes[Row | Outcome] = CaseLanes()
        self._frontier = Frontier(resume_point)
        self._commits = Commits(
            store,
            self._frontier,
            clock,
            counters=self.stats.counters,
            on_event=lambda name, data: self._on_event(name, data),
            give_up=lambda message: self._fail("CheckpointUnavailable", message),
            patience_s=settings.commit_patience_s,
        )
        self._end = RunEnd.FINISHED
        self._abort: CallError | None = None
        self._stopping = False
        self._finished = False  # run() has returned or is flushing for the last time
        self._holds = SettleHolds(clock, resume_hold)
        self._lookup = lookup  # --match-field: finds each row's case between reader and lanes
        self._reader = self._reading_stage(records, columns, resume_point, resolved_offsets)
        self._budget = BudgetWatch(settings.failure_budget, totals_before)
        self._outage = OutageWatch(
            clock.now_s(), settings.outage_rule, lambda name, data: self._on_event(name, data)
        )
        self._reading: anyio.CancelScope | None = None  # cancelled by any stop
        self._working: anyio.CancelScope | None = None  # cancelled only by a forced stop
        self._outer: TaskGroup | None = None
        self._images = self._before_images(columns, pending_images)
        self._sending = self._sending_stage()
        self._batcher = self._batching() if settings.batch is not None else None
        self._replayed = Replayed()
        self._streams: (
            tuple[MemoryObjectSendStream[Row], MemoryObjectReceiveStream[Row]] | tuple[()]
        ) = ()

    def _reading_stage(
        self,
        records: Iterator[Record],
        columns: ColumnMap,
        resume_point: ResumePoint,
        resolved_offsets: frozenset[int],
    ) -> Reading:
        lookup = self._lookup
        reader = Reading(
            self._settings,
            records=records,
            columns=columns,
            resume_point=resume_point,
            resolved_offsets=resolved_offsets,
            route=lookup.route if lookup is not None else None,
            lanes=self._lanes,
            frontier=self._frontier,
            holds=self._holds,
            commits=self._commits,
            stats=self.stats,
            resolve=self._resolve,
            stopped=self._stopped,
        )
        if lookup is not None:
            lookup.attach(reader.read_chunk, stopped=self._stopped, fail=self._fail)
        return reader

    def _before_images(self, columns: ColumnMap, pending: Pending | None) -> BeforeImages | None:
        """--before-images: the GetCase reads before each send, and what they record."""
        if not self._settings.before_images:
            return None
        return BeforeImages(
            self._settings,
            api=self._api,
            clock=self._clock,
            commits=self._commits,
            stats=self.stats,
            columns=columns,
            pending=pending or {},
            rng=self._random,
            on_event=lambda name, data: self._on_event(name, data),
            later=self._lanes.waiting_behind,
        )

    def _sending_stage(self) -> Sending:
        hooks = SendingHooks(
            resolve=self._resolve,
            stop_for=self._stop_for,
            stopped=self._stopped,
            may_send=self._may_send,
            tell=lambda name, data: self._on_event(name, data),
        )
        return Sending(
            self._settings,
            hooks,
            api=self._api,
            clock=self._clock,
            gate=self.gate,
            outage=self._outage,
            holds=self._holds,
            stats=self.stats,
            rng=self._random,
            images=self._images,
        )

    def _batching(self) -> Batcher:
        hooks = Hooks(
            resolve=self._resolve,
            next_of=self._next_row,
            stop_for=self._stop_for,
            stopped=self._stopped,
            may_send=self._may_send,
            group_done=self._commits.group_done,
            tell=lambda name, data: self._on_event(name, data),
            prepare=self._prepare_grouped if self._images is not None else None,
            accepted=self._images.accepted if self._images is not None else lambda row: None,
        )
        return batching(self._settings, hooks, self._api, self._store, self._clock, self.stats)

    # -- control -------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def grace_period_s(self) -> float:
        return self._settings.grace_period_s

    def request_stop(self, end: RunEnd = RunEnd.INTERRUPTED) -> None:
        """Stop reading and dispatching now; calls in flight get the grace period to finish.

        Workers see the flag before their next call (waits re-check it at least every
        SLOT_CHECK_S), so a stop costs no cancel scope per call on the hot path.
        """
        if self._stopping or self._finished:
            return
        self._stopping = True
        self._end = end
        if self._reading is not None:
            self._reading.cancel()
        if self._outer is not None:
            self._outer.start_soon(self._grace_timer)

    def force_stop(self) -> None:
        """Second signal: abandon calls in flight as well (their rows stay pending)."""
        self.request_stop()
        if self._working is not None:
            self._working.cancel()

    async def _grace_timer(self) -> None:
        await self._clock.sleep(self._settings.grace_period_s)
        if self._working is not None:
            self._working.cancel()

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> RunResult:
        started_s = self._clock.now_s()
        batcher = self._batcher
        try:
            if batcher is not None:
                await self._replay_recorded(batcher)
            async with anyio.create_task_group() as outer:
                self._outer = outer
                outer.start_soon(self._flush_every_interval)
                if self._lookup is not None:
                    outer.start_soon(self._lookup.run)
                # Batching: lone rows go to the workers only when one is free (no buffer), so
                # they can still find company while the UpdateCase workers are busy.
                room = self._settings.concurrency if batcher is None else 0
                send, receive = anyio.create_memory_object_stream[Row](room)
                held, back = send, None
                if batcher is not None:  # rows back from a hold rejoin the planner
                    held, back = anyio.create_memory_object_stream[Row](math.inf)
                if back is not None:
                    self._streams = (held, back)  # closed when the run ends
                outer.start_soon(self._holds.release, held, self._stopped)
                async with anyio.create_task_group() as workers:
                    self._working = workers.cancel_scope
                    workers.start_soon(self._read_until_stopped, send)
                    if batcher is not None and back is not None:
                        workers.start_soon(batcher.run, send, back)
                    for _ in range(self._settings.concurrency):
                        workers.start_soon(self._worker, receive.clone())
                    receive.close()
                outer.cancel_scope.cancel()
        finally:
            # Whatever ended the run, what the service acknowledged reaches the checkpoint.
            self._finished = True
            self._outer = None
            for stream in self._streams:
                stream.close()
            self._lanes.drain()  # parked rows stay unresolved: pending for the next run
            with anyio.CancelScope(shield=True):
                try:
                    await self._commits.flush()
                except Exception as error:  # noqa: BLE001 - reported as the run's abort
                    self._end = RunEnd.ABORTED
                    if self._abort is None:
                        code = type(error).__name__
                        self._abort = CallError(ErrorKind.SYSTEMIC, code, str(error))
        cases, until_s = self._holds.unsettled()
        point = self._frontier.resume_point()
        earlier = (o for o in self._reader.chunks.resolved_before if o >= point.offset)
        return RunResult(
            self._end,
            self.stats,
            self._clock.now_s() - started_s,
            point,
            self._abort,
            cases,
            until_s,
            self._frontier.resolved_above().union(earlier),
        )

    async def _replay_recorded(self, batcher: Batcher) -> None:
        """Groups a killed run recorded go again first, with their tokens (see batch.replay)."""
        self._replayed, error = await replay(
            await self._store.recorded_groups(), batcher, self._api, self.stats
        )
        for token in self._replayed.tokens:
            self._commits.group_done(token)
        if error is not None:
            self._stop_for(error)

    async def _read_until_stopped(self, send: MemoryObjectSendStream[Row]) -> None:
        with anyio.CancelScope() as reading:
            self._reading = reading
            if self._stopping:
                reading.cancel()
            try:
                lookup = self._lookup
                await self._reader.read(
                    send,
                    next_chunk=self._reader.read_chunk if lookup is None else lookup.next_chunk,
                    batcher=self._batcher,
                    replayed=self._replayed,
                )
            except BulkUpdateError as error:  # the input failed mid-run (S3, a truncated .gz)
                self._fail(type(error).__name__, str(error))
            finally:
                if self._batcher is not None:
                    self._batcher.close()

    def _stop_for(self, error: CallError) -> None:
        self._fail(error.code, error.message)
        self._abort = error

    def _next_row(self, case_id: str) -> Row | None:
        """The case's row is resolved: its next row, once the parked outcomes before it are."""
        item = self._lanes.release(case_id)
        while isinstance(item, Outcome):
            self._resolve(item)
            item = self._lanes.release(case_id)
        return item

    def _fail(self, code: str, message: str) -> None:
        """Stop as on a systemic error: calls in flight finish, unfinished rows stay pending."""
        self._abort = CallError(ErrorKind.SYSTEMIC, code, message)
        self._on_event("run_aborting", {"code": code, "message": message})
        self.request_stop(RunEnd.ABORTED)

    async def _worker(self, receive: MemoryObjectReceiveStream[Row]) -> None:
        async with receive:
            while True:
                try:
                    first = receive.receive_nowait()  # no scheduling round trip when queued
                except anyio.WouldBlock:
                    try:
                        first = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                item: Row | Outcome | None = first
                while item is not None:
                    if isinstance(item, Row):
                        step = await self._sending.process(item)
                        if step is Next.STOP:
                            return  # stopping: the row stays pending
                        if step is Next.HOLD:
                            break  # held: its case's lane stays taken until it comes back
                    else:  # resolved locally, parked behind an earlier row of its case
                        self._resolve(item)
                    item = self._lanes.release(item.case_id)
                    if isinstance(item, Row) and self._batcher is not None:
                        self._batcher.admit(item)  # it may find company
                        break

    def _stopped(self) -> bool:
        return self._stopping

    async def _prepare_grouped(self, row: Row) -> bool:
        """--before-images with --batch auto: the row is read before it joins the planner, so
        groups form from what is left to send. True when it goes; else it resolved (its case's
        next row is admitted) or the run stops (it stays pending)."""
        step = await self._sending.prepare(row)
        if step is Next.RESOLVED and self._batcher is not None:
            self._batcher.advance(row.case_id)
        return step is None

    def _may_send(self) -> bool:
        """Whether a call may go now. Not while outcomes cannot be recorded (a new send would
        only grow what a crash sends twice: wait for the next commit, or the abort after
        MAX_FAILED_COMMITS), nor while this run's hold on the checkpoint may have lapsed
        (another run may have taken the job over)."""
        return not self._commits.failing and self._store.hold_left_s() > 0.0

    def _resolve(self, outcome: Outcome) -> None:
        self._sending.forget(outcome.offset)
        self._commits.add(outcome)
        self._frontier.resolve(outcome.offset)
        if outcome.status is RowStatus.FAILED:
            self.stats.failed += 1
            if outcome.attempts == 0:
                self.stats.rejected_locally += 1
            reason = self._budget.failed(outcome.error_code, self.stats)
            if reason is not None and not self._stopping:
                self._fail("FailureBudgetExceeded", reason)
        elif outcome.attempts == 0:
            self.stats.unchanged += 1
        self._reader.wake()

    # -- checkpoint ----------------------------------------------------------------------

    async def _flush_every_interval(self) -> None:
        while True:
            await self._clock.sleep(self._settings.flush_interval_s)
            self._check_outage()
            if await self._commits.try_flush():
                self._on_event("progress", self.progress())

    def _check_outage(self) -> None:
        lasted_s = self._outage.lasted_s(self._clock.now_s())
        if lasted_s > self._settings.outage_timeout_s and not self._stopping:
            self._fail(
                "ServiceUnavailable",
                f"no UpdateCase call has succeeded for {lasted_s:.0f} s (every answer a 5xx, "
                "a timeout or a refused connection); no row was failed for it",
            )

    def progress(self) -> dict[str, Any]:
        return {
            **self.stats.counters(),
            "pending": self._frontier.pending,
            "in_flight": self._sending.in_flight,
            "rate_per_s": round(self.gate.rate_per_s, 3),
            **(self._images.progress() if self._images is not None else {}),
            "batch_rate_per_s": round(self._batcher.gate.rate_per_s, 3) if self._batcher else None,
            "share_per_s": round(self.gate.share_per_s, 3),
            "pacing": self.gate.regime.value,
            "yielding": int(self.gate.regime is Regime.YIELDING),
            "resume_offset": self._frontier.resume_point().offset,
            "held": self._holds.held,
            "outage": self._outage.active,
            **(self._lookup.stats.counters() if self._lookup is not None else {}),
        }
