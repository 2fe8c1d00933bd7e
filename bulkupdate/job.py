"""One `bulkupdate run`, end to end: checkpoint, input, domain schema, the engine under signal
handling, then the failures file, the summary and the exit code for the whole job.

Wires the stages together; each stage's rules live in its own module.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import Any

import anyio
import structlog

from bulkupdate.checkpoint import CheckpointStore, JobIdentity, RunState
from bulkupdate.checkpoint_sqlite import SqliteCheckpointStore
from bulkupdate.config import RunConfig
from bulkupdate.dryrun import dry_run
from bulkupdate.engine import Engine, RunEnd, RunResult
from bulkupdate.errors import CallError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK
from bulkupdate.models import RowStatus
from bulkupdate.progress import ProgressSink
from bulkupdate.report import summary_line, write_failures, write_summary
from bulkupdate.startup import Job, fingerprint_input, open_input, peek

log = structlog.get_logger("bulkupdate")


async def run_engine_with_signals(engine: Engine) -> RunResult:
    """First SIGINT/SIGTERM drains (grace period), a second one stops at once."""
    result: RunResult | None = None
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if engine.stopping:
                        log.warning("stop_forced", signal=signal.Signals(signum).name)
                        engine.force_stop()
                    else:
                        log.warning(
                            "stop_requested",
                            signal=signal.Signals(signum).name,
                            grace_period_s=engine.grace_period_s,
                        )
                        engine.request_stop(RunEnd.INTERRUPTED)

        group.start_soon(watch_signals)
        result = await engine.run()
        group.cancel_scope.cancel()
    assert result is not None
    return result


async def run(config: RunConfig, *, progress: ProgressSink) -> int:
    job = Job(config)
    structlog.contextvars.bind_contextvars(job=config.job_name, run_id=job.run_id)
    if config.dry_run:
        return await dry_run(job)
    store: CheckpointStore = SqliteCheckpointStore(config.checkpoint)
    try:
        return await _run_with_store(job, store, progress)
    finally:
        await store.close()


async def _run_with_store(job: Job, store: CheckpointStore, progress: ProgressSink) -> int:
    config = job.config
    fingerprint, fmt, stream = fingerprint_input(config)
    identity = JobIdentity(config.job_name, config.input, fingerprint, fmt)
    state = await store.open(identity, restart=config.restart)
    point = state.resume_point
    log.info(
        "run_started",
        input=config.input,
        checkpoint=config.checkpoint,
        run=state.runs,
        resume_offset=point.offset,
        resume_line=point.line,
    )
    end_state, summary = RunState.ABORTED, {}
    try:
        source = open_input(config, point, stream)
        with source:
            head, records = peek(iter(source))
            try:
                async with job.connect(source, head) as (api, columns):
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
                    progress.start(total_bytes=source.size_bytes, done_bytes=point.offset)
                    result = await run_engine_with_signals(engine)
                    progress.close()
            except CallError as error:  # the domain could not be read: nothing was sent
                summary = {"abort": f"{error.code}: {error.message}"}
                log.error(
                    "run_aborted", code=error.code, message=error.message, fix=_fix_hint(error)
                )
                return EXIT_ABORTED
        end_state = RunState(result.end.value)
        status = await store.status()
        summary = _summary(result, status.totals, end_state)
        if result.abort is not None:
            summary["abort"] = f"{result.abort.code}: {result.abort.message}"
            log.error(
                "run_aborted",
                code=result.abort.code,
                message=result.abort.message,
                fix=_fix_hint(result.abort),
                pending=summary["pending"],
            )
        failed = [o async for o in store.failed_rows()]
        write_failures(
            config.failures, source.fmt, failed, header=source.header, delimiter=config.delimiter
        )
        summary.update(failures_file=config.failures, checkpoint=config.checkpoint)
        if config.summary:
            write_summary(config.summary, summary)
        print(summary_line(summary), file=sys.stderr)
        return _exit_code(result.end, status.totals)
    finally:
        await store.finish_run(end_state.value, summary)


def _summary(result: RunResult, totals: Mapping[RowStatus, int], end: RunState) -> dict[str, Any]:
    summary = result.stats.summary(result.elapsed_s)
    summary.update(
        end=end.value,
        pending=summary["read"] - summary["applied"] - summary["failed"] - summary["unchanged"],
        job_applied=totals.get(RowStatus.DONE, 0),
        job_failed=totals.get(RowStatus.FAILED, 0),
        resume_offset=result.resume_point.offset,
    )
    return summary


def _exit_code(end: RunEnd, totals: Mapping[RowStatus, int]) -> int:
    if end is RunEnd.ABORTED:
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
