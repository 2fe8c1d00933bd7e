"""The job's failures file at the end of a run: every failed row from the checkpoint, in the
input's format, with the cells that later applied rows of its case overwrote left out, so that
feeding the file back never moves a case behind a row the job has already applied.

Reads the input again (a file or S3 object) to find those later rows; stdin cannot be read
again, so its failed rows are written as they stand, with a warning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import structlog

from bulkupdate.checkpoint.store import CheckpointStore
from bulkupdate.config import Blank
from bulkupdate.input.sources import Source
from bulkupdate.models import Outcome
from bulkupdate.report.failures import write_failures
from bulkupdate.report.outputs import published
from bulkupdate.report.overtaken import Overtaken, find_overtaken, rewrite
from bulkupdate.run.engine import RunResult
from bulkupdate.run.startup import START, Job, open_input

log = structlog.get_logger("bulkupdate")


async def write_failures_file(
    job: Job, store: CheckpointStore, result: RunResult, source: Source
) -> bool:
    """Write it (locally or to S3); False when it could not be: that is logged, and the
    checkpoint keeps it all."""
    config = job.config
    try:
        overtaken = await _overtaken(job, store, result)
        async with published(config.failures, job.s3) as path:
            await write_failures(
                path,
                source.fmt,
                _rewritten(store, overtaken, source, job),
                header=source.header,
                delimiter=config.delimiter,
                encoding=config.encoding,
            )
    except Exception as error:  # noqa: BLE001 - the checkpoint still holds every row
        log.error("failures_file_not_written", path=config.failures, error=str(error))
        return False
    return True


async def _overtaken(job: Job, store: CheckpointStore, result: RunResult) -> dict[int, Overtaken]:
    config = job.config
    failed = [(outcome.offset, outcome.case_id) async for outcome in store.failed_rows()]
    if not failed:
        return {}
    if config.input == "-":
        log.warning(
            "failures_not_checked_against_later_rows",
            reason="stdin cannot be read again: a failed row re-run may undo a later row",
        )
        return {}
    failed_offsets = {offset for offset, _ in failed}
    resume_offset, resolved_above = result.resume_point.offset, result.resolved_above

    def applied(offset: int) -> bool:
        resolved = offset < resume_offset or offset in resolved_above
        return resolved and offset not in failed_offsets

    def scan() -> dict[int, Overtaken]:
        with open_input(config, START, None, job.remote) as again:
            return find_overtaken(
                again,
                failed,
                applied=applied,
                case_id_column=config.case_id_column,
                ignored=frozenset(config.mapping.ignored),
                blank_clears=config.blank is Blank.CLEAR,
            )

    return await anyio.to_thread.run_sync(scan)


async def _rewritten(
    store: CheckpointStore, overtaken: dict[int, Overtaken], source: Source, job: Job
) -> AsyncIterator[Outcome]:
    config = job.config
    async for outcome in store.failed_rows():
        later = overtaken.get(outcome.offset)
        if later is not None:
            outcome = rewrite(
                outcome,
                later,
                fmt=source.fmt,
                header=source.header,
                delimiter=config.delimiter,
                blank_clears=config.blank is Blank.CLEAR,
                encoding=config.encoding,
            )
        yield outcome
