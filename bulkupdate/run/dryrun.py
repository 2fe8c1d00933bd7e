"""`bulkupdate run --dry-run`: validate every row a run would send against the domain's schema,
write the failures file the run would write, estimate the run time, and send no update.

Counts what the next run would do: rows the job's checkpoint has resolved (applied or failed)
are passed over, as a resume passes over them. Reads the domain (ListFields, ListFieldOptions,
GetCase) and the checkpoint; never calls UpdateCase nor writes to a checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

import anyio
import structlog

from bulkupdate.aws.s3 import is_s3
from bulkupdate.checkpoint.store import DYNAMODB, CheckpointError, FingerprintMismatchError
from bulkupdate.config import FailureBudget, RunConfig
from bulkupdate.errors import CallError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_OK
from bulkupdate.fields.rows import Row, prepare
from bulkupdate.input.sources import Record
from bulkupdate.models import Outcome
from bulkupdate.report.failures import write_failures
from bulkupdate.report.figures import duration_text
from bulkupdate.report.outputs import published
from bulkupdate.run.batch.grouping import CallCount
from bulkupdate.run.matching import dry_run_keys
from bulkupdate.run.startup import Job, RemoteInput, fingerprint_input, open_input, peek
from bulkupdate.run.stores import job_identity, legacy_identity, open_store

log = structlog.get_logger("bulkupdate")


@dataclass(frozen=True, slots=True)
class Resolved:
    """The records a resume passes over: all below the checkpoint's resume point, and the few
    resolved above it. Empty for a job with no checkpoint yet, or with --restart."""

    below_offset: int = 0
    above: frozenset[int] = frozenset()

    def __contains__(self, offset: object) -> bool:
        return isinstance(offset, int) and (offset < self.below_offset or offset in self.above)


def dry_run_path(failures: str) -> str:
    """`x.failures.csv` -> `x.failures.dry-run.csv` (s3:// URLs too)."""
    folder, slash, name = failures.rpartition("/")
    path = PurePath(name)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    return f"{folder}{slash}{name.removesuffix(suffix)}.dry-run{suffix}"


async def dry_run(job: Job) -> int:
    config = job.config
    if job.s3 is not None and is_s3(config.input):
        job.remote = await anyio.to_thread.run_sync(RemoteInput.head, job.s3, config.input)
    resolved, stream = await _resolved(job)
    source = open_input(config, stream=stream, remote=job.remote)
    failed: list[Outcome] = []
    to_send = unchanged = passed_over = 0
    count = CallCount(config.batch_size if config.batch == "auto" else 1)
    budget, stop_line = config.max_failures, None  # where the budget would stop a run
    keys_text = ""
    with source:
        head, records = peek(iter(source))
        try:
            async with job.connect(source, head) as (api, columns):
                if job.match is not None:  # --match-field: search the keys (reads only)
                    skipped = [0]
                    unresolved = _unresolved(records, resolved, skipped)
                    keys = await dry_run_keys(job, job.match, api, columns, unresolved, count)
                    failed, to_send, unchanged = keys.failed, keys.to_send, keys.unchanged
                    passed_over, keys_text, records = skipped[0], keys.text(), iter(())
                    stop_line = _budget_line(config.max_failures, failed, to_send + unchanged)
        except CallError as error:
            log.error("dry_run_aborted", code=error.code, message=error.message)
            return EXIT_ABORTED
        for record in records:
            if record.offset in resolved:
                passed_over += 1
                continue
            item = prepare(record, columns)
            if isinstance(item, Row):
                if item.fields:
                    to_send += 1
                    count.add(item.fields)
                else:
                    unchanged += 1
            else:
                failed.append(item)
                resolved_so_far = to_send + unchanged + len(failed) + passed_over
                if budget and stop_line is None and budget.exceeded(len(failed), resolved_so_far):
                    stop_line = item.line
    # Beside the real failures file, never over it: that one belongs to the job's real runs.
    failures = dry_run_path(config.failures)
    async with published(failures, job.s3) as local:
        await write_failures(
            local,
            source.fmt,
            failed,
            header=source.header,
            delimiter=config.delimiter,
            encoding=config.encoding,
        )
    counts = f"{to_send} rows to send, {len(failed)} would fail (see {failures}), "
    counts += f"{unchanged} with nothing to change{keys_text}"
    if passed_over:
        counts += f", {passed_over} applied or failed by earlier runs (a resume skips them)"
    if budget is not None:
        counts += (
            f"; the failure budget (--max-failures {budget}) would stop the run at line "
            f"{stop_line} on the local failures alone"
            if stop_line is not None
            else f"; the local failures alone stay within --max-failures {budget}"
        )
    print(f"dry run: {counts}; {_estimate(config, count)}. Nothing was sent.", file=sys.stderr)
    return EXIT_FAILED_ROWS if failed else EXIT_OK


def _budget_line(budget: FailureBudget | None, failed: list[Outcome], others: int) -> int | None:
    """Where the budget would stop a run, for failures counted apart from the rows around them
    (with --match-field): exact for a number of rows, at most that late for a percentage."""
    resolved = others + len(failed)
    for count, outcome in enumerate(failed, start=1):
        if budget is not None and budget.exceeded(count, resolved):
            return outcome.line
    return None


def _unresolved(
    records: Iterator[Record], resolved: Resolved, skipped: list[int]
) -> Iterator[Record]:
    """The records a run would read, counting those a resume passes over in `skipped[0]`."""
    for record in records:
        if record.offset in resolved:
            skipped[0] += 1
        else:
            yield record


def _estimate(config: RunConfig, count: CallCount) -> str:
    """How long sending takes at the configured pace (the burst goes at once), ungrouped and,
    with --batch auto, grouped: UpdateCase and BatchUpdateCase calls go side by side."""
    # The job sends at most --rate (and --batch-rate) less the headroom it leaves to agents.
    keep = 1.0 - config.headroom / 100
    share_per_s, batch_share_per_s = config.rate * keep, config.batch_rate * keep
    ungrouped_s = _send_s(count.rows, config.burst, share_per_s)
    pace = f"{share_per_s:g}/s burst {config.burst}"
    if config.headroom:
        pace += f" (--rate {config.rate:g} less {config.headroom:g}% headroom)"
    if config.batch != "auto":
        return f"{_took(ungrouped_s)} at {pace} ({count.rows} UpdateCase calls)"
    batches, singles = count.grouped()
    grouped_s = max(
        _send_s(singles, config.burst, share_per_s),
        _send_s(batches, config.batch_burst, batch_share_per_s),
    )
    return (
        f"grouped (--batch auto) {batches + singles} calls ({batches} BatchUpdateCase at "
        f"{batch_share_per_s:g}/s burst {config.batch_burst}, {singles} UpdateCase), "
        f"{_took(grouped_s)}; ungrouped (--batch off) {count.rows} UpdateCase calls; "
        f"{_took(ungrouped_s)} at {pace}"
    )


def _send_s(calls: int, burst: int, rate_per_s: float) -> float:
    return max(0.0, calls - burst) / rate_per_s


def _took(estimate_s: float) -> str:
    return "under 1 s" if estimate_s < 1 else f"about {duration_text(estimate_s)}"


async def _resolved(job: Job) -> tuple[Resolved, BinaryIO | None]:
    """What the job's checkpoint has resolved, read without starting a run; and stdin's replay
    stream (stdin is fingerprinted as it is read). A checkpoint of another input is refused
    as a run refuses it; --restart would discard the checkpoint, so nothing counts as resolved."""
    config = job.config
    remote = config.checkpoint.startswith(DYNAMODB)
    look = not config.restart and (remote or await anyio.Path(config.checkpoint).exists())
    if not look and config.input != "-":
        return Resolved(), None  # a file's fingerprint reads every byte: only when needed
    fingerprint, fmt, stream = await anyio.to_thread.run_sync(fingerprint_input, config, job.remote)
    if not look:
        return Resolved(), stream
    store = open_store(config)
    try:
        status = await store.status()
    except CheckpointError as error:
        if not remote:
            raise  # a file that is no checkpoint, or holds no job: the run refuses it too
        log.warning("dry_run_checkpoint_not_read", checkpoint=config.checkpoint, error=str(error))
        return Resolved(), stream  # no job in the table yet, or the table cannot be read
    finally:
        await store.close()
    identity = job_identity(config, fingerprint, fmt)
    if status.job != identity:
        refused = FingerprintMismatchError(config.checkpoint, status.job, identity)
        if await legacy_identity(refused, identity, config) is None:
            raise refused
    return Resolved(status.resume_point.offset, status.resolved_offsets), stream
