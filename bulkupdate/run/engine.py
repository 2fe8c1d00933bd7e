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
from enum import Enum, StrEnum
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
from bulkupdate.pacing.gate import SLOT_CHECK_S, RateGate
from bulkupdate.pacing.outage import OutageWatch
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.report.stats import RunStats
from bulkupdate.run.batch.batcher import Batcher, Hooks
from bulkupdate.run.batch.replay import Replayed, replay
from bulkupdate.run.batch.sender import batching
from bulkupdate.run.budget import BudgetWatch
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.chunks import Chunk, Chunks, Skip
from bulkupdate.run.commits import Commits
from bulkupdate.run.images import BeforeImages, Pending, Read
from bulkupdate.run.ordering import CaseLanes, Frontier
from bulkupdate.run.settings import EngineSettings
from bulkupdate.run.settle import ResumeHold, SettleHolds


class RunEnd(StrEnum):
    FINISHED = "finished"  # the input is exhausted and every row resolved
    INTERRUPTED = "interrupted"  # SIGTERM/SIGINT: unfinished rows stay pending
    ABORTED = "aborted"  # a systemic error: unfinished rows stay pending


class _Next(Enum):
    """What becomes of a row after a failed call, or after its turn with a worker."""

    RETRY = "retry"  # sleep the delay, then pass the gate again
    RESOLVED = "resolved"  # the row is done or failed for good; its case's next row may go
    STOP = "stop"  # the run is stopping: the row stays pending
    HOLD = "hold"  # its last call may still land: it waits off the workers, its case too


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
        self._policy = RetryPolicy(max_attempts=settings.max_attempts)
        self.gate = RateGate(
            settings.rate_per_s,
            settings.burst,
            clock,
            headroom=settings.headroom,
            tell=lambda name, data: self._on_event(name, data),
        )
        self.stats = RunStats()
        self._lanes: CaseLanes[Row | Outcome] = CaseLanes()
        self._chunks = Chunks(
            records,
            columns,
            skip_before=resume_point.offset,  # before it: resolved by earlier runs
            resolved_before=resolved_offsets,
            shard=settings.shard,
            stopped=self._stopped,
            route=lookup.route if lookup is not None else None,
        )
        self._lookup = lookup  # --match-field: finds each row's case between reader and lanes
        if lookup is not None:
            lookup.attach(self._read_chunk, stopped=self._stopped, fail=self._fail)
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
        self._room = anyio.Event()
        self._max_pending = settings.max_pending_rows or max(1000, 64 * settings.concurrency)
        self._end = RunEnd.FINISHED
        self._abort: CallError | None = None
        self._stopping = False
        self._finished = False  # run() has returned or is flushing for the last time
        self._in_flight = 0
        self._holds = SettleHolds(clock, resume_hold)
        self._fail_after_hold: dict[int, Outcome] = {}  # offset -> its failure, once settled
        self._failing_since: dict[int, float] = {}  # offset -> send time of its first 5xx
        self._budget = BudgetWatch(settings.failure_budget, totals_before)
        self._outage = OutageWatch(
            clock.now_s(), settings.outage_rule, lambda name, data: self._on_event(name, data)
        )
        self._reading: anyio.CancelScope | None = None  # cancelled by any stop
        self._working: anyio.CancelScope | None = None  # cancelled only by a forced stop
        self._outer: TaskGroup | None = None
        self._images: BeforeImages | None = None
        if settings.before_images:
            self._images = BeforeImages(
                settings,
                api=api,
                clock=clock,
                commits=self._commits,
                stats=self.stats,
                columns=columns,
                pending=pending_images or {},
                rng=self._random,
                on_event=lambda name, data: self._on_event(name, data),
                later=self._lanes.waiting_behind,
            )
        self._prepared: set[int] = set()  # offsets read before joining the planner
        self._batcher = self._batching() if settings.batch is not None else None
        self._replayed = Replayed()
        self._streams: (
            tuple[MemoryObjectSendStream[Row], MemoryObjectReceiveStream[Row]] | tuple[()]
        ) = ()

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
        earlier = (o for o in self._chunks.resolved_before if o >= point.offset)
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
                await self._read(send)
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

    async def _read(self, send: MemoryObjectSendStream[Row]) -> None:
        frontier, stats, holds = self._frontier, self.stats, self._holds
        async with send:  # closing it ends the workers' receive loops
            while True:
                # Held rows wait off the read-ahead: other cases go on meanwhile.
                while frontier.pending - holds.held >= self._max_pending:
                    self._room = anyio.Event()
                    await self._room.wait()
                lookup = self._lookup
                chunk = await (self._read_chunk() if lookup is None else lookup.next_chunk())
                if not chunk or self._stopping:  # a stop while the thread parsed: drop it
                    break
                if not await self._may_dispatch(chunk):
                    return
                for record, item in chunk:
                    end = ResumePoint(record.end_offset, record.next_line)
                    if item is Skip.RESOLVED_BEFORE:
                        frontier.skip(end)
                        stats.skipped += 1
                        continue
                    if item is Skip.OTHER_SHARD:
                        frontier.skip(end)
                        stats.other_shards += 1
                        continue
                    stats.read += 1
                    frontier.read(record.offset, record.line, end)
                    item = self._replayed.sort(item)
                    if isinstance(item, Outcome) and not item.case_id:
                        self._resolve(item)  # no case: no order to keep
                    elif self._lanes.admit(item.case_id, item):
                        if isinstance(item, Row):
                            if self._holds.held_over(item):
                                continue
                            if self._batcher is not None:
                                self._batcher.admit(item)
                                continue
                            try:
                                send.send_nowait(item)  # no scheduling round trip when room
                            except anyio.WouldBlock:
                                await send.send(item)
                        else:  # resolved locally; its case was idle, so nothing waits on it
                            self._resolve(item)
                            self._lanes.release(item.case_id)
            # The input is read. Rows in flight may still go on hold and come back: the
            # workers need the stream until every row read is resolved (or the run stops).
            while frontier.pending and not self._stopping:
                self._room = anyio.Event()
                await self._room.wait()

    async def _read_chunk(self) -> Chunk:
        return await anyio.to_thread.run_sync(self._chunks.next, abandon_on_cancel=True)

    async def _may_dispatch(self, chunk: Chunk) -> bool:
        """Record that the chunk's rows may be sent before any of them is (see DISPATCHED_TO).
        False when the run stops first."""
        if not any(isinstance(item, Row) for _, item in chunk):
            return True
        end_offset = chunk[-1][0].end_offset
        retry_s = self._settings.flush_interval_s
        return await self._commits.allow_dispatch(
            end_offset, retry_s=retry_s, stopped=self._stopped
        )

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
                        step = await self._process(item)
                        if step is _Next.STOP:
                            return  # stopping: the row stays pending
                        if step is _Next.HOLD:
                            break  # held: its case's lane stays taken until it comes back
                    else:  # resolved locally, parked behind an earlier row of its case
                        self._resolve(item)
                    item = self._lanes.release(item.case_id)
                    if isinstance(item, Row) and self._batcher is not None:
                        self._batcher.admit(item)  # it may find company
                        break

    async def _process(self, row: Row) -> _Next:
        """Send until the row is resolved, put on hold, or the run stops first."""
        settled = self._fail_after_hold.pop(row.offset, None)
        if settled is not None:  # it gave up; its last call has surely landed or died now
            self._resolve(settled)
            return _Next.RESOLVED
        if self._images is not None and row.offset not in self._prepared:
            step = await self._read_first(row)
            if step is not None:
                return step
        self._prepared.discard(row.offset)
        outage = self._outage
        while not self._stopping:
            if not self._may_send() or not outage.may_send(self._clock.now_s()):
                await self._clock.sleep(SLOT_CHECK_S)
                continue
            sent_s = await self.gate.pass_(self._stopped)
            if sent_s is None or not self._may_send():
                outage.not_sent()
                if sent_s is None:
                    return _Next.STOP
                continue  # that changed while it waited for its slot: the slot is spent
            answer = await self._send(row, sent_s)
            if answer is None:
                return _Next.RESOLVED
            step, delay_s = self._after_failure(row, answer, sent_s)
            if step is not _Next.RETRY:
                return step
            await self._pause(delay_s)
        return _Next.STOP

    def _stopped(self) -> bool:
        return self._stopping

    async def _read_first(self, row: Row) -> _Next | None:
        """--before-images: read the row's fields first. None when some are left to send."""
        assert self._images is not None
        read = await self._images.prepare(row, self._stopped)
        if read is Read.SEND:
            return None
        if read is Read.STOP:
            return _Next.STOP
        if isinstance(read, CallError):  # systemic: GetCase refused as UpdateCase would be
            self._fail(read.code, read.message)
            self._abort = read
            return _Next.STOP
        self._resolve(read)
        return _Next.RESOLVED

    async def _prepare_grouped(self, row: Row) -> bool:
        """--before-images with --batch auto: the row is read before it joins the planner, so
        groups form from what is left to send. True when it goes; else it resolved (its case's
        next row is admitted) or the run stops (it stays pending)."""
        step = await self._read_first(row)
        if step is None:
            self._prepared.add(row.offset)
            return True
        if step is _Next.RESOLVED and self._batcher is not None:
            self._batcher.advance(row.case_id)
        return False

    def _may_send(self) -> bool:
        """Whether a call may go now. Not while outcomes cannot be recorded (a new send would
        only grow what a crash sends twice: wait for the next commit, or the abort after
        MAX_FAILED_COMMITS), nor while this run's hold on the checkpoint may have lapsed
        (another run may have taken the job over)."""
        return not self._commits.failing and self._store.hold_left_s() > 0.0

    async def _pause(self, delay_s: float) -> None:
        """Sleep a retry delay, waking early enough to see a stop."""
        until_s = self._clock.now_s() + delay_s
        while not self._stopping:
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
        self._in_flight += 1
        try:
            await self._api.update_case(row.case_id, row.fields, self._settings.performed_by)
        except CallError as error:
            stats.record_latency(self._clock.now_s() - sent_s)
            return error
        except BaseException:  # cancelled in flight: the service may still apply it
            self._holds.abandoned(row.case_id, sent_s + self._settings.settle_period_s)
            raise
        finally:
            self._in_flight -= 1
        now_s = self._clock.now_s()
        stats.record_latency(now_s - sent_s)
        stats.record_accept(now_s)
        self.gate.accepted(sent_s)
        self._outage.up(now_s)
        if self._images is not None:
            self._images.accepted(row)  # with the outcome, in one commit
        self._resolve(row.outcome(RowStatus.DONE))
        return None

    def _after_failure(self, row: Row, error: CallError, sent_s: float) -> tuple[_Next, float]:
        kind = error.kind
        now_s = self._clock.now_s()
        if kind is not ErrorKind.TRANSIENT:
            self._outage.up(now_s)  # it answered
        if kind is ErrorKind.SYSTEMIC:
            self._stop_for(error)
            return _Next.STOP, 0.0
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
                return self._after_unknown(row, error, sent_s) or (_Next.RETRY, 0.0)
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
                return _Next.HOLD, 0.0
            self._resolve(failed)
            return _Next.RESOLVED, 0.0
        return self._after_unknown(row, error, sent_s) or (_Next.RETRY, decision.delay_s)

    def _after_unknown(
        self, row: Row, error: CallError, sent_s: float
    ) -> tuple[_Next, float] | None:
        """A call that may still land: the retry, and every later row of the case, waits until
        it surely cannot (the settle period from its send)."""
        if not error.outcome_unknown:
            return None
        until_s = sent_s + self._settings.settle_period_s
        self._on_event(
            "call_outcome_unknown",
            {
                "case_id": row.case_id,
                "row": row.line,
                "code": error.code,
                "hold_s": until_s - self._clock.now_s(),
            },
        )
        self._holds.hold(row, until_s)
        return _Next.HOLD, 0.0

    def _resolve(self, outcome: Outcome) -> None:
        if self._failing_since:
            self._failing_since.pop(outcome.offset, None)
        if self._images is not None:
            self._images.forget(outcome.offset)
            self._prepared.discard(outcome.offset)
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
        self._room.set()

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
            "in_flight": self._in_flight,
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
