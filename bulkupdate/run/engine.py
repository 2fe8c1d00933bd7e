"""The run: records flow from the source through per-case lanes to a pool of workers that pass
the shared rate gate, call UpdateCase and resolve each row; outcomes reach the checkpoint in
ordered batches. Stops cleanly on interrupt or on a systemic error.

Orchestration only: never imports aiobotocore; time and sleep come from the injected Clock.
"""

from __future__ import annotations

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
from bulkupdate.fields.rows import Row, case_id_of, prepare
from bulkupdate.fields.schema import ColumnMap
from bulkupdate.input.sources import Record
from bulkupdate.models import Outcome, ResumePoint, RowStatus, Shard
from bulkupdate.pacing.gate import SLOT_CHECK_S, RateGate
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.report.stats import RunStats
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.ordering import CaseLanes, Frontier

READ_CHUNK = 256  # records parsed per trip to the reader thread
# Checkpoint commits failing this many times in a row stop the run: sending on without
# recording would only grow what a crash re-sends.
MAX_FAILED_COMMITS = 4


class RunEnd(StrEnum):
    FINISHED = "finished"  # the input is exhausted and every row resolved
    INTERRUPTED = "interrupted"  # SIGTERM/SIGINT: unfinished rows stay pending
    ABORTED = "aborted"  # a systemic error: unfinished rows stay pending


@dataclass(frozen=True, slots=True)
class EngineSettings:
    concurrency: int
    rate_per_s: float
    burst: int
    max_attempts: int
    grace_period_s: float
    flush_interval_s: float
    performed_by: dict[str, str] | None = None
    max_pending_rows: int = 0  # read-ahead cap; 0 = derived from concurrency
    shard: Shard | None = None  # apply only the rows of this shard's cases


class _Skip(Enum):
    """Why a chunk passes over a record instead of handing it on as a row."""

    RESOLVED_BEFORE = "resolved by an earlier run"
    OTHER_SHARD = "a case another shard applies"


class _Next(Enum):
    """What a worker does after a failed call."""

    RETRY = "retry"  # sleep the delay, then pass the gate again
    RESOLVED = "resolved"  # the row failed for good; its case's next row may go
    STOP = "stop"  # the run is stopping: the row stays pending


@dataclass(frozen=True, slots=True)
class RunResult:
    end: RunEnd
    stats: RunStats
    elapsed_s: float
    resume_point: ResumePoint
    abort: CallError | None = None


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
    ) -> None:
        self._settings = settings
        self._api = api
        self._store = store
        self._clock = clock
        self._columns = columns
        self._records = records
        self._resolved_before = resolved_offsets
        self._on_event = on_event or (lambda event, data: None)
        self._random = rng or random.Random()
        self._policy = RetryPolicy(max_attempts=settings.max_attempts)
        self.gate = RateGate(settings.rate_per_s, settings.burst, clock)
        self.stats = RunStats()
        self._lanes: CaseLanes[Row | Outcome] = CaseLanes()
        # Records before this offset were resolved by earlier runs (a re-read stream).
        self._skip_before = resume_point.offset
        self._frontier = Frontier(resume_point)
        self._batch: list[Outcome] = []
        self._flush_lock = anyio.Lock()
        self._room = anyio.Event()
        self._max_pending = settings.max_pending_rows or max(1000, 64 * settings.concurrency)
        self._end = RunEnd.FINISHED
        self._abort: CallError | None = None
        self._stopping = False
        self._finished = False  # run() has returned or is flushing for the last time
        self._in_flight = 0
        self._commit_failing = False  # the last checkpoint commit failed: send nothing new
        self._reading: anyio.CancelScope | None = None  # cancelled by any stop
        self._working: anyio.CancelScope | None = None  # cancelled only by a forced stop
        self._outer: TaskGroup | None = None

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
        try:
            async with anyio.create_task_group() as outer:
                self._outer = outer
                outer.start_soon(self._flush_every_interval)
                send, receive = anyio.create_memory_object_stream[Row](self._settings.concurrency)
                async with anyio.create_task_group() as workers:
                    self._working = workers.cancel_scope
                    workers.start_soon(self._read_until_stopped, send)
                    for _ in range(self._settings.concurrency):
                        workers.start_soon(self._worker, receive.clone())
                    receive.close()
                outer.cancel_scope.cancel()
        finally:
            # Whatever ended the run, what the service acknowledged reaches the checkpoint.
            self._finished = True
            self._outer = None
            self._lanes.drain()  # parked rows stay unresolved: pending for the next run
            with anyio.CancelScope(shield=True):
                try:
                    await self._flush()
                except Exception as error:  # noqa: BLE001 - reported as the run's abort
                    self._end = RunEnd.ABORTED
                    if self._abort is None:
                        code = type(error).__name__
                        self._abort = CallError(ErrorKind.SYSTEMIC, code, str(error))
        return RunResult(
            self._end,
            self.stats,
            self._clock.now_s() - started_s,
            self._frontier.resume_point(),
            self._abort,
        )

    async def _read_until_stopped(self, send: MemoryObjectSendStream[Row]) -> None:
        with anyio.CancelScope() as reading:
            self._reading = reading
            if self._stopping:
                reading.cancel()
            try:
                await self._read(send)
            except BulkUpdateError as error:  # the input failed mid-run (S3, a truncated .gz)
                self._fail(type(error).__name__, str(error))

    def _fail(self, code: str, message: str) -> None:
        """Stop as on a systemic error: calls in flight finish, unfinished rows stay pending."""
        self._abort = CallError(ErrorKind.SYSTEMIC, code, message)
        self._on_event("run_aborting", {"code": code, "message": message})
        self.request_stop(RunEnd.ABORTED)

    async def _read(self, send: MemoryObjectSendStream[Row]) -> None:
        frontier, stats = self._frontier, self.stats
        async with send:  # closing it ends the workers' receive loops
            while True:
                while frontier.pending >= self._max_pending:
                    self._room = anyio.Event()
                    await self._room.wait()
                chunk = await anyio.to_thread.run_sync(self._next_chunk, abandon_on_cancel=True)
                if not chunk or self._stopping:  # a stop while the thread parsed: drop it
                    return
                for record, item in chunk:
                    end = ResumePoint(record.end_offset, record.next_line)
                    if item is _Skip.RESOLVED_BEFORE:
                        frontier.skip(end)
                        stats.skipped += 1
                        continue
                    if item is _Skip.OTHER_SHARD:
                        frontier.skip(end)
                        stats.other_shards += 1
                        continue
                    stats.read += 1
                    frontier.read(record.offset, record.line, end)
                    if isinstance(item, Outcome) and not item.case_id:
                        self._resolve(item)  # no case: no order to keep
                    elif self._lanes.admit(item.case_id, item):
                        if isinstance(item, Row):
                            try:
                                send.send_nowait(item)  # no scheduling round trip when room
                            except anyio.WouldBlock:
                                await send.send(item)
                        else:  # resolved locally; its case was idle, so nothing waits on it
                            self._resolve(item)
                            self._lanes.release(item.case_id)

    def _next_chunk(self) -> list[tuple[Record, Row | Outcome | _Skip]]:
        """In a worker thread: parse and coerce up to READ_CHUNK records, or say why one is
        passed over.

        Touches no shared state; the event loop does the bookkeeping when the chunk returns.
        """
        chunk: list[tuple[Record, Row | Outcome | _Skip]] = []
        resolved_before, columns = self._resolved_before, self._columns
        skip_before, shard = self._skip_before, self._settings.shard
        for record in self._records:
            if self._stopping:
                break
            if record.offset < skip_before:
                continue  # before the resume point of a re-read stream: resolved earlier
            if record.offset in resolved_before:
                chunk.append((record, _Skip.RESOLVED_BEFORE))
                continue
            if shard is not None:  # decided before coercion: each shard coerces its rows only
                case_id = case_id_of(record.values, columns.case_id_column)
                if not (shard.owns(case_id) if case_id else shard.owns_caseless()):
                    chunk.append((record, _Skip.OTHER_SHARD))
                    continue
            item = prepare(record, columns)
            if isinstance(item, Row) and not item.fields:
                item = item.outcome(RowStatus.DONE)  # every cell blank: nothing to change
            chunk.append((record, item))
            if len(chunk) >= READ_CHUNK:
                break
        return chunk

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
                        if not await self._process(item):
                            return  # stopping: the row stays pending
                    else:  # resolved locally, parked behind an earlier row of its case
                        self._resolve(item)
                    item = self._lanes.release(item.case_id)

    async def _process(self, row: Row) -> bool:
        """Send until the row is resolved (True) or the run stops first (False)."""
        while not self._stopping:
            if not self._may_send():
                await self._clock.sleep(SLOT_CHECK_S)
                continue
            sent_s = await self.gate.pass_(self._stopped)
            if sent_s is None:
                return False
            if not self._may_send():
                continue  # that changed while it waited for its slot: the slot is spent
            answer = await self._send(row, sent_s)
            if answer is None:
                return True
            step, delay_s = self._after_failure(row, answer, sent_s)
            if step is _Next.RESOLVED:
                return True
            if step is _Next.STOP:
                return False
            await self._pause(delay_s)
        return False

    def _stopped(self) -> bool:
        return self._stopping

    def _may_send(self) -> bool:
        """Whether a call may go now. Not while outcomes cannot be recorded (a new send would
        only grow what a crash sends twice: wait for the next commit, or the abort after
        MAX_FAILED_COMMITS), nor while this run's hold on the checkpoint may have lapsed
        (another run may have taken the job over)."""
        return not self._commit_failing and self._store.hold_left_s() > 0.0

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
        may or may not have applied it and the row stays pending.
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
        finally:
            self._in_flight -= 1
        now_s = self._clock.now_s()
        stats.record_latency(now_s - sent_s)
        stats.record_accept(now_s)
        self.gate.accepted(sent_s)
        self._resolve(row.outcome(RowStatus.DONE))
        return None

    def _after_failure(self, row: Row, error: CallError, sent_s: float) -> tuple[_Next, float]:
        kind = error.kind
        if kind is ErrorKind.SYSTEMIC:
            self._fail(error.code, error.message)
            self._abort = error
            return _Next.STOP, 0.0
        if kind is ErrorKind.THROTTLED:
            # Throttles never count against --max-attempts: only 5xx/timeouts do.
            self.stats.throttles += 1
            row.throttles += 1
            self.gate.throttled(sent_s)
            attempt = row.throttles
        elif kind is ErrorKind.TRANSIENT:
            row.transient_failures += 1
            attempt = row.transient_failures
        else:
            attempt = 1
        decision = self._policy.decide(kind, attempt, error.retry_after_s, self._random.random())
        if isinstance(decision, GiveUp):
            code = decision.reason if kind is ErrorKind.TRANSIENT else error.code
            self._resolve(row.outcome(RowStatus.FAILED, code, f"{error.code}: {error.message}"))
            return _Next.RESOLVED, 0.0
        return _Next.RETRY, decision.delay_s

    def _resolve(self, outcome: Outcome) -> None:
        self._batch.append(outcome)
        self._frontier.resolve(outcome.offset)
        if outcome.status is RowStatus.FAILED:
            self.stats.failed += 1
            if outcome.attempts == 0:
                self.stats.rejected_locally += 1
        elif outcome.attempts == 0:
            self.stats.unchanged += 1
        self._room.set()

    # -- checkpoint ----------------------------------------------------------------------

    async def _flush_every_interval(self) -> None:
        failed = 0
        while True:
            await self._clock.sleep(self._settings.flush_interval_s)
            try:
                await self._flush()
            except Exception as error:  # noqa: BLE001 - the batch is kept for the next try
                self._commit_failing = True
                failed += 1
                message = f"{type(error).__name__}: {error}"
                self._on_event("checkpoint_commit_failed", {"attempt": failed, "error": message})
                if failed >= MAX_FAILED_COMMITS and not self._stopping:
                    self._fail("CheckpointUnavailable", message)
                continue
            failed = 0
            self._commit_failing = False
            self._on_event("progress", self.progress())

    async def _flush(self) -> None:
        async with self._flush_lock:
            # Taken together, with no await between: every record before the resume point has
            # its outcome in this batch or an earlier one, so a crash never skips a row.
            batch, self._batch = self._batch, []
            point = self._frontier.resume_point()
            try:
                with anyio.CancelScope(shield=True):
                    await self._store.commit(batch, point, self.stats.counters())
            except BaseException:
                # Not recorded: keep the outcomes for the final flush, or the next resume point
                # would pass rows that no checkpoint holds.
                self._batch[:0] = batch
                raise

    def progress(self) -> dict[str, Any]:
        return {
            **self.stats.counters(),
            "pending": self._frontier.pending,
            "in_flight": self._in_flight,
            "rate_per_s": round(self.gate.rate_per_s, 3),
            "resume_offset": self._frontier.resume_point().offset,
        }
