"""One `bulkupdate run`, end to end: checkpoint, input, domain schema, the engine under signal
handling, then the failures file, the summary and the exit code for the whole job.

Wires the stages together; each stage's rules live in its own module.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack, ExitStack
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from bulkupdate.aws.s3 import is_s3, open_s3
from bulkupdate.checkpoint import (
    CheckpointStore,
    JobIdentity,
    RunState,
)
from bulkupdate.config import RunConfig
from bulkupdate.dryrun import dry_run
from bulkupdate.engine import Engine, RunEnd, RunResult
from bulkupdate.errors import CallError, ConfigError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK
from bulkupdate.logs import bind_run, redact_text
from bulkupdate.models import RowStatus
from bulkupdate.outputs import publish_summary, published
from bulkupdate.progress import ProgressSink, RowTotal, RunView
from bulkupdate.report import summary_line, write_failures
from bulkupdate.startup import (
    START,
    Job,
    RemoteInput,
    fingerprint_input,
    open_input,
    peek,
    record_counter,
)
from bulkupdate.stats import RunStats
from bulkupdate.stores import check_shard_count, open_store, open_waiting

if TYPE_CHECKING:
    from bulkupdate.metrics import MetricsServer

log = structlog.get_logger("bulkupdate")


class SignalRelay:
    """SIGINT/SIGTERM for the whole run. Before the engine exists a signal cancels start-up
    (the run ends interrupted); then the first one drains, a second one stops at once."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.startup = anyio.CancelScope()
        self.requested = False  # a signal came before the engine existed

    def attach(self, engine: Engine) -> None:
        self.engine = engine
        if self.requested:  # arrived between start-up and now: honour it
            engine.request_stop(RunEnd.INTERRUPTED)

    def detach(self) -> None:
        """The engine has finished: a late signal can no longer change how the run ended."""
        self.engine = None
        self.startup = anyio.CancelScope()
        self.startup.cancel()

    async def watch(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                engine = self.engine
                if engine is None:
                    log.warning("stop_requested", signal=name, during="start-up or wrap-up")
                    self.requested = True
                    self.startup.cancel()
                elif engine.stopping:
                    log.warning("stop_forced", signal=name)
                    engine.force_stop()
                else:
                    log.warning("stop_requested", signal=name, grace_period_s=engine.grace_period_s)
                    engine.request_stop(RunEnd.INTERRUPTED)


async def run(config: RunConfig, *, progress: ProgressSink) -> int:
    job = Job(config)
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
            group.start_soon(relay.watch)
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
    from bulkupdate.metrics import MetricsServer  # prometheus-client only when asked for

    try:
        return MetricsServer(config.metrics_port, config.job_name, run_id)
    except OSError as error:
        raise ConfigError("--metrics-port", f"cannot serve on it: {error.strerror}") from None


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
    end_state, summary = RunState.ABORTED, {}
    log.info("run_starting", input=config.input, domain_id=config.domain_id)
    async with AsyncExitStack() as stack:
        try:
            with relay.startup:
                if job.s3 is not None and is_s3(config.input):
                    job.remote = await anyio.to_thread.run_sync(
                        RemoteInput.head, job.s3, config.input
                    )
                fingerprint, fmt, stream = await anyio.to_thread.run_sync(
                    fingerprint_input, config, job.remote
                )
                probe = stack.enter_context(open_input(config, START, stream, job.remote))
                head, records = peek(iter(probe))
                api, columns = await stack.enter_async_context(job.connect(probe, head))
        except CallError as error:  # the domain could not be read: nothing was sent
            summary = _startup_summary(job, started_s, RunState.ABORTED, error)
            log.error("run_aborted", code=error.code, message=error.message, fix=_fix_hint(error))
            await _report(job, summary)
            return EXIT_ABORTED
        if relay.startup.cancelled_caught:
            await _report(job, _startup_summary(job, started_s, RunState.INTERRUPTED, None))
            return EXIT_INTERRUPTED
        name = config.job_name
        if config.shard is not None and config.shard.count > 1:
            name = f"{name}#{config.shard.label}"
        identity = JobIdentity(name, config.input, fingerprint, fmt)
        if not config.restart:
            await check_shard_count(config)
        relay.startup = anyio.CancelScope()  # a signal while waiting for a leased checkpoint
        if relay.requested:
            relay.startup.cancel()
        with relay.startup:
            state = await open_waiting(store, identity, config, job.clock)
        if relay.startup.cancelled_caught:
            await _report(job, _startup_summary(job, started_s, RunState.INTERRUPTED, None))
            return EXIT_INTERRUPTED
        point = state.resume_point
        source = probe
        if point.offset > 0 and probe.seekable:  # jump straight to the first pending record
            source = stack.enter_context(open_input(config, point, None, job.remote))
            records = iter(source)
        log.info(
            "run_started",
            input=config.input,
            checkpoint=config.checkpoint,
            run=state.runs,
            resume_offset=point.offset,
            resume_line=point.line,
        )
        try:
            engine = Engine(
                job.settings(),
                api=api,
                store=store,
                clock=job.clock,
                columns=columns,
                records=records,
                resume_point=point,
                resolved_offsets=state.resolved_offsets,
                on_event=progress.event,
            )
            relay.attach(engine)
            # A shard's part of the input is not known without hashing every row: no total.
            total = RowTotal(record_counter(config) if config.shard is None else None)
            view = RunView(engine, resolved_before=sum(state.totals.values()), total=total)
            progress.start(view)
            if metrics is not None:
                metrics.collector.view = view
            try:
                result = await engine.run()
            finally:
                relay.detach()
                progress.close()
            end_state = RunState(result.end.value)
            totals = await _totals(store)
            summary = _summary(result, totals, end_state)
            if result.abort is not None:
                summary["abort"] = f"{result.abort.code}: {result.abort.message}"
                summary["fix"] = _fix_hint(result.abort)
                log.error(
                    "run_aborted",
                    code=result.abort.code,
                    message=result.abort.message,
                    fix=_fix_hint(result.abort),
                    pending=summary["pending"],
                )
            try:
                async with published(config.failures, job.s3) as failures_path:
                    await write_failures(
                        failures_path,
                        source.fmt,
                        store.failed_rows(),
                        header=source.header,
                        delimiter=config.delimiter,
                    )
            except Exception as error:  # noqa: BLE001 - the checkpoint still holds every row
                log.error("failures_file_not_written", path=config.failures, error=str(error))
            await _report(job, summary)
            return _exit_code(result.end, totals)
        finally:
            try:
                await store.finish_run(end_state.value, summary)
            except Exception as error:  # noqa: BLE001 - the next run sees this one as crashed
                log.error("run_end_not_recorded", error=str(error))


async def _totals(store: CheckpointStore) -> Mapping[RowStatus, int] | None:
    """The job's rows per status, or None when the checkpoint cannot be read now."""
    try:
        return (await store.status()).totals
    except Exception as error:  # noqa: BLE001 - the run already ended; report what it knows
        log.error("checkpoint_status_failed", error=str(error))
        return None


async def _report(job: Job, summary: dict[str, Any]) -> None:
    config = job.config
    summary.update(failures_file=config.failures, checkpoint=config.checkpoint)
    if config.summary:
        summary["summary_file"] = config.summary
        try:
            await publish_summary(config.summary, summary, job.s3)
        except Exception as error:  # noqa: BLE001 - the run's outcome stands; say so
            log.error("summary_not_written", path=config.summary, error=str(error))
    log.info("run_finished", **summary)
    line = summary_line(summary)
    print(redact_text(line) if config.redact else line, file=sys.stderr)


def _startup_summary(
    job: Job, started_s: float, end: RunState, error: CallError | None
) -> dict[str, Any]:
    """The summary of a run that ended before its engine started: nothing read, nothing sent."""
    summary = RunStats().summary(job.clock.now_s() - started_s)
    summary.update(end=end.value, pending=None)
    if error is not None:
        summary["abort"] = f"{error.code}: {error.message}"
        summary["fix"] = _fix_hint(error)
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


def _fix_hint(error: CallError) -> str:
    code = error.code
    if code == "AccessDeniedException":
        return "grant cases:UpdateCase (and connect:DescribeUser for --performed-by) on the domain"
    if code == "ResourceNotFoundException":
        return "check --domain-id and the Region: the domain does not exist there"
    if code in (
        "NoCredentials",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
    ):
        return "provide valid, unexpired AWS credentials (profile, environment or role)"
    return "fix the cause, then run the same command again to resume"
