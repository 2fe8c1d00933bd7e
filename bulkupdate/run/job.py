"""One `bulkupdate run`, end to end: checkpoint, input, domain schema, the engine under signal
handling, then the failures file, the summary and the exit code for the whole job.

Wires the stages together; each stage's rules live in its own module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from anyio.abc import TaskStatus

from bulkupdate.aws.s3 import is_s3, open_s3
from bulkupdate.checkpoint.store import (
    DYNAMODB,
    CheckpointError,
    CheckpointStore,
    JobStatus,
    ResumeState,
    RunState,
)
from bulkupdate.config import RunConfig
from bulkupdate.errors import CallError, ConfigError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK
from bulkupdate.fields.schema import ColumnMap
from bulkupdate.input.sources import Record, Source
from bulkupdate.models import RowStatus
from bulkupdate.report.logs import bind_run, redact_text
from bulkupdate.report.outputs import publish_summary
from bulkupdate.report.progress import ProgressSink, RowTotal, RunView
from bulkupdate.report.stats import RunStats
from bulkupdate.report.summary import summary_line
from bulkupdate.run import signals
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.commits import DISPATCHED_TO
from bulkupdate.run.dryrun import dry_run
from bulkupdate.run.engine import Engine, RunEnd, RunResult
from bulkupdate.run.failures_file import write_failures_file
from bulkupdate.run.images import pending_images
from bulkupdate.run.matching import run_resolver
from bulkupdate.run.paths import refuse_overwrites, refuse_unwritable
from bulkupdate.run.settle import ResumeHold, resume_hold
from bulkupdate.run.startup import (
    SAME_COMMAND,
    START,
    Job,
    RemoteInput,
    fingerprint_input,
    input_changed,
    open_input,
    peek,
    record_counter,
)
from bulkupdate.run.stores import check_shard_count, job_identity, open_store, open_waiting

if TYPE_CHECKING:
    from bulkupdate.report.metrics import MetricsServer

log = structlog.get_logger("bulkupdate")
INPUT_CHANGED_FIX = (
    "run the same command with --restart: the job must start over since its input changed "
    "(every row is sent again)"
)


class SignalRelay:
    """SIGINT/SIGTERM for the whole run. During a start-up step a signal cancels the step (the
    run ends interrupted); once the engine runs the first one drains, a second stops at once.
    One that came before the run (the command holds them from its first line, see `signals`)
    counts as having come during start-up; after the engine, none changes how the run ended."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.requested = False  # a signal came while no engine was running
        self._startup: anyio.CancelScope | None = None  # the start-up step under way

    @contextmanager
    def startup(self) -> Iterator[anyio.CancelScope]:
        """A start-up step that a signal cancels; `cancelled_caught` on the scope says whether
        one did. A signal that came before the step cancels it at once."""
        scope = anyio.CancelScope()
        if self.requested:
            scope.cancel()
        self._startup = scope
        try:
            with scope:
                yield scope
        finally:
            self._startup = None

    def attach(self, engine: Engine) -> None:
        self.engine = engine
        if self.requested:  # arrived between start-up and now: honour it
            engine.request_stop(RunEnd.INTERRUPTED)

    def detach(self) -> None:
        """The engine has finished: a late signal can no longer change how the run ended."""
        self.engine = None

    async def watch(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Started with `TaskGroup.start`: signals that came before the run are taken in
        before start-up begins."""
        with signals.received() as received:
            task_status.started()
            async for signum in received:
                name = signum.name
                engine = self.engine
                if engine is None:
                    log.warning("stop_requested", signal=name, during="start-up or wrap-up")
                    self.requested = True
                    if self._startup is not None:
                        self._startup.cancel()
                elif engine.stopping:
                    log.warning("stop_forced", signal=name)
                    engine.force_stop()
                else:
                    log.warning("stop_requested", signal=name, grace_period_s=engine.grace_period_s)
                    engine.request_stop(RunEnd.INTERRUPTED)


async def run(config: RunConfig, *, progress: ProgressSink, resume: str | None = None) -> int:
    """The run's exit code; `resume` replaces what an interrupted run says to do next."""
    refuse_overwrites(config)
    refuse_unwritable(config)
    job = Job(config)
    job.resume = resume or job.resume
    shard = {"shard": config.shard.label} if config.shard is not None else {}
    bind_run(config.job_name, job.run_id, **shard)
    with ExitStack() as resources:
        if any(is_s3(where) for where in (config.input, config.failures, config.summary)):
            job.s3 = resources.enter_context(open_s3(region=config.region, profile=config.profile))
        if config.dry_run:
            return await dry_run(job)
        return await _run(job, progress)


async def _run(job: Job, progress: ProgressSink) -> int:
    config = job.config
    metrics = _serve_metrics(config, job.run_id)
    store = open_store(config)
    relay = SignalRelay()
    failure: Exception | None = None
    code = EXIT_ABORTED
    try:
        async with anyio.create_task_group() as group:
            await group.start(relay.watch)
            try:
                code = await _run_with_store(job, store, progress, relay, metrics)
            except Exception as error:  # noqa: BLE001 - re-raised below, unwrapped
                failure = error
            group.cancel_scope.cancel()
    finally:
        await store.close()
        if metrics is not None:
            metrics.close()
    if failure is not None:
        while isinstance(failure, ExceptionGroup) and len(failure.exceptions) == 1:
            failure = failure.exceptions[0]
        raise failure
    return code


def _serve_metrics(config: RunConfig, run_id: str) -> MetricsServer | None:
    if config.metrics_port is None:
        return None
    from bulkupdate.report.metrics import MetricsServer  # prometheus-client only when asked for

    try:
        return MetricsServer(config.metrics_port, config.job_name, run_id)
    except OSError as error:
        raise ConfigError("--metrics-port", f"cannot serve on it: {error.strerror}") from None


@dataclass(frozen=True, slots=True)
class _Ready:
    """What start-up has open before the checkpoint is: the input (its first records peeked)
    and the domain's client and columns."""

    fingerprint: str
    fmt: str
    probe: Source
    records: Iterator[Record]
    api: CasesApi
    columns: ColumnMap


async def _run_with_store(
    job: Job,
    store: CheckpointStore,
    progress: ProgressSink,
    relay: SignalRelay,
    metrics: MetricsServer | None,
) -> int:
    """Validate everything that can be validated (input header, domain, columns) before the
    checkpoint is opened, so a bad run neither sends nor records anything (--restart included)."""
    config = job.config
    started_s = job.clock.now_s()
    log.info("run_starting", input=config.input, domain_id=config.domain_id)
    async with AsyncExitStack() as stack:
        try:
            ready = await _start_up(job, stack, relay)
        except CallError as error:  # the domain could not be read: nothing was sent
            summary = _startup_summary(job, started_s, RunState.ABORTED, error)
            log.error("run_aborted", code=error.code, message=error.message, fix=summary["fix"])
            await _report(job, summary)
            return EXIT_ABORTED
        opened = None if ready is None else await _open_checkpoint(job, store, relay, ready)
        if ready is None or opened is None:
            await _report(job, _startup_summary(job, started_s, RunState.INTERRUPTED, None))
            return EXIT_INTERRUPTED
        state, hold = opened
        source, records = ready.probe, ready.records
        point = state.resume_point
        if point.offset > 0 and source.seekable:  # jump straight to the first pending record
            source = stack.enter_context(open_input(config, point, None, job.remote))
            records = iter(source)
        end_state, summary = RunState.ABORTED, {}
        try:
            result = await _run_engine(
                job, store, progress, relay, metrics, ready, state, hold, records
            )
            end_state = RunState(result.end.value)
            changed = None
            if result.end is RunEnd.FINISHED:  # read to the end: of the input it started with?
                changed = await anyio.to_thread.run_sync(input_changed, config, ready.fingerprint)
                end_state = end_state if changed is None else RunState.ABORTED
            return await _wrap_up(job, store, result, source, summary, changed)
        finally:
            try:
                await store.finish_run(end_state.value, summary)
            except Exception as error:  # noqa: BLE001 - the next run sees this one as crashed
                log.error("run_end_not_recorded", error=str(error))


async def _start_up(job: Job, stack: AsyncExitStack, relay: SignalRelay) -> _Ready | None:
    """Fingerprint and open the input, read the domain, resolve the columns. None when a
    signal stopped it. Raises CallError when the domain cannot be read."""
    config = job.config
    with relay.startup():
        if job.s3 is not None and is_s3(config.input):
            job.remote = await anyio.to_thread.run_sync(RemoteInput.head, job.s3, config.input)
        fingerprint, fmt, stream = await anyio.to_thread.run_sync(
            fingerprint_input, config, job.remote
        )
        probe = stack.enter_context(open_input(config, START, stream, job.remote))
        head, records = peek(iter(probe))
        api, columns = await stack.enter_async_context(job.connect(probe, head))
        return _Ready(fingerprint, fmt, probe, records, api, columns)
    return None  # a signal cancelled the step


async def _open_checkpoint(
    job: Job, store: CheckpointStore, relay: SignalRelay, ready: _Ready
) -> tuple[ResumeState, ResumeHold | None] | None:
    """Open the job's checkpoint (waiting out a killed run's lease), with what the last run
    left to wait out; None when a signal came."""
    config = job.config
    identity = job_identity(config, ready.fingerprint, ready.fmt)
    if not config.restart:
        await check_shard_count(config)
    with relay.startup():
        previous = await _as_left(store)
        state = await open_waiting(store, identity, config, job.clock)
        hold = resume_hold(
            previous,
            settle_period_s=config.settle_period,
            dispatched_key=DISPATCHED_TO,
            now_s=job.clock.now_s(),
            now=datetime.now(UTC),
        )
        if hold is not None:
            log.warning(
                "cases_held_from_last_run",
                below_offset=hold.before_offset,
                cases=len(hold.cases) if hold.cases is not None else "all sent",
                hold_s=round(hold.until_s - job.clock.now_s(), 3),
            )
        return state, hold
    return None  # a signal cancelled the wait


async def _as_left(store: CheckpointStore) -> JobStatus | None:
    """The checkpoint as the last run left it (read before this run opens it); None when
    there is none yet."""
    try:
        return await store.status()
    except CheckpointError:
        return None


async def _run_engine(
    job: Job,
    store: CheckpointStore,
    progress: ProgressSink,
    relay: SignalRelay,
    metrics: MetricsServer | None,
    ready: _Ready,
    state: ResumeState,
    hold: ResumeHold | None,
    records: Iterator[Record],
) -> RunResult:
    config = job.config
    point = state.resume_point
    log.info(
        "run_started",
        input=config.input,
        checkpoint=config.checkpoint,
        run=state.runs,
        resume_offset=point.offset,
        resume_line=point.line,
    )
    lookup = None
    if job.match is not None:  # --match-field: each row's case is found between reader and lanes
        lookup = await run_resolver(job, job.match, ready.api, store, progress.event)
        job.lookup_stats = lookup.stats
    engine = Engine(
        job.settings(),
        api=ready.api,
        store=store,
        clock=job.clock,
        columns=ready.columns,
        records=records,
        resume_point=point,
        resolved_offsets=state.resolved_offsets,
        on_event=progress.event,
        resume_hold=hold,
        totals_before=state.totals,
        pending_images=await pending_images(store) if config.before_images else None,
        lookup=lookup,
    )
    relay.attach(engine)
    # A shard's part of the input is not known without hashing every row: no total.
    total = RowTotal(record_counter(config) if config.shard is None else None)
    view = RunView(engine, resolved_before=sum(state.totals.values()), total=total)
    progress.start(view)
    if metrics is not None:
        metrics.collector.view = view
    try:
        return await engine.run()
    finally:
        relay.detach()
        progress.close()


async def _wrap_up(
    job: Job,
    store: CheckpointStore,
    result: RunResult,
    source: Source,
    summary: dict[str, Any],
    input_change: str | None = None,
) -> int:
    """The failures file, the summary (filled into `summary`, which the run's end records) and
    the exit code of a run whose engine has ended. A run whose input changed under it aborts:
    its checkpoint is the old input's, so the job can only start over (--restart)."""
    config = job.config
    totals = await _totals(store)
    summary.update(_summary(result, totals, RunState(result.end.value)))
    if job.lookup_stats is not None:
        summary.update(job.lookup_stats.counters())
    if result.unsettled_cases and result.settle_until_s is not None:
        # For the next run: these cases' last calls may land until then.
        left_s = result.settle_until_s - job.clock.now_s()
        summary["settle_until"] = (datetime.now(UTC) + timedelta(seconds=left_s)).isoformat()
        summary["unsettled_cases"] = list(result.unsettled_cases)
    if input_change is not None:
        summary.update(end=RunState.ABORTED.value, resumable=False)
        summary.update(abort=input_change, fix=INPUT_CHANGED_FIX)
        log.error("input_changed", input=config.input, message=input_change, fix=INPUT_CHANGED_FIX)
    if result.abort is not None:
        summary["abort"] = f"{result.abort.code}: {result.abort.message}"
        summary.update(_fix(result.abort))
        log.error(
            "run_aborted",
            code=result.abort.code,
            message=result.abort.message,
            fix=summary["fix"],
            pending=summary["pending"],
        )
    written = await write_failures_file(job, store, result, source)
    await _report(job, summary, checkpoint=True, failures=written)
    return EXIT_ABORTED if input_change is not None else _exit_code(result.end, totals)


async def _totals(store: CheckpointStore) -> Mapping[RowStatus, int] | None:
    """The job's rows per status, or None when the checkpoint cannot be read now."""
    try:
        return (await store.status()).totals
    except Exception as error:  # noqa: BLE001 - the run already ended; report what it knows
        log.error("checkpoint_status_failed", error=str(error))
        return None


async def _report(
    job: Job, summary: dict[str, Any], *, checkpoint: bool = False, failures: bool = False
) -> None:
    """Write the summary and print its line. It names the checkpoint and the failures file
    when this run opened or wrote them (`checkpoint`, `failures`), or when an earlier run's
    are there: never a file that does not exist."""
    config = job.config
    if checkpoint or _local_file(config.checkpoint):
        summary["checkpoint"] = config.checkpoint
    if failures or _local_file(config.failures):
        summary["failures_file"] = config.failures
    if summary.get("end") == RunState.INTERRUPTED.value:
        summary.setdefault("resume", job.resume)
    if config.summary:
        summary["summary_file"] = config.summary
        try:
            await publish_summary(config.summary, summary, job.s3)
        except Exception as error:  # noqa: BLE001 - the run's outcome stands; say so
            log.error("summary_not_written", path=config.summary, error=str(error))
    log.info("run_finished", **summary)
    line = summary_line(summary)
    print(redact_text(line) if config.redact else line, file=sys.stderr)


def _local_file(location: str) -> bool:
    """A file on this host that exists (an earlier run's); S3 and DynamoDB are not looked at."""
    return not (is_s3(location) or location.startswith(DYNAMODB)) and os.path.isfile(location)


def _startup_summary(
    job: Job, started_s: float, end: RunState, error: CallError | None
) -> dict[str, Any]:
    """The summary of a run that ended before its engine started: nothing read, nothing sent,
    so no count of rows pending (the input was not counted)."""
    summary = RunStats().summary(job.clock.now_s() - started_s)
    summary.update(end=end.value, note="nothing was sent", retried=job.reads.retried)
    if end is RunState.INTERRUPTED:  # the checkpoint was not opened: nothing to leave out
        summary["resume"] = SAME_COMMAND
    if error is not None:
        summary["abort"] = f"{error.code}: {error.message}"
        summary.update(_fix(error))
    return summary


def _summary(
    result: RunResult, totals: Mapping[RowStatus, int] | None, end: RunState
) -> dict[str, Any]:
    summary = result.stats.summary(result.elapsed_s)
    summary.update(
        end=end.value,
        pending=summary["read"] - summary["applied"] - summary["failed"] - summary["unchanged"],
        job_applied=totals.get(RowStatus.DONE, 0) if totals is not None else None,
        job_failed=totals.get(RowStatus.FAILED, 0) if totals is not None else None,
        resume_offset=result.resume_point.offset,
    )
    return summary


def _exit_code(end: RunEnd, totals: Mapping[RowStatus, int] | None) -> int:
    if end is RunEnd.ABORTED or totals is None:  # unknown totals: a rerun tells the truth
        return EXIT_ABORTED
    if end is RunEnd.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_ROWS if totals.get(RowStatus.FAILED, 0) else EXIT_OK


def _fix(error: CallError) -> dict[str, str]:
    """The summary's `fix` (what to change) and, when running the same command again would
    not help, its `next_step`."""
    if error.code == "ResourceNotFoundException":  # the domain: a setting of the command
        return {
            "fix": "check --domain-id and --region: the domain does not exist in that Region",
            "next_step": "run the command again with them corrected",
        }
    return {"fix": _fix_hint(error)}


def _fix_hint(error: CallError) -> str:
    code = error.code
    if code == "AccessDeniedException":
        return "grant cases:UpdateCase (and connect:DescribeUser for --performed-by) on the domain"
    if code == "FailureBudgetExceeded":  # the summary line adds: then run the same command
        return (
            "fix what made the rows fail (the failures file says why), or let the job go on as "
            "it is with a higher --max-failures"
        )
    if code in (
        "NoCredentials",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
    ):
        return "provide valid, unexpired AWS credentials (profile, environment or role)"
    return "remove the cause the error above names"
