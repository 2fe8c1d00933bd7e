"""`bulkupdate run --dry-run`: validate every row against the domain's schema, write the
failures file the run would write, estimate the run time, and send no update.

Reads the domain (ListFields, ListFieldOptions, GetCase); never calls UpdateCase or a checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import PurePath

import anyio
import structlog

from bulkupdate.aws.s3 import is_s3
from bulkupdate.errors import CallError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_OK
from bulkupdate.fields.rows import Row, prepare
from bulkupdate.models import Outcome
from bulkupdate.report.failures import write_failures
from bulkupdate.report.outputs import published
from bulkupdate.run.startup import Job, RemoteInput, fingerprint_input, open_input, peek

log = structlog.get_logger("bulkupdate")


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
    # Only stdin needs its fingerprint's replay stream; a file's fingerprint reads every byte.
    stream = fingerprint_input(config, job.remote)[2] if config.input == "-" else None
    source = open_input(config, stream=stream, remote=job.remote)
    failed: list[Outcome] = []
    to_send = unchanged = 0
    with source:
        head, records = peek(iter(source))
        try:
            async with job.connect(source, head) as (_, columns):
                pass  # only the schema is needed: no update is ever sent
        except CallError as error:
            log.error("dry_run_aborted", code=error.code, message=error.message)
            return EXIT_ABORTED
        for record in records:
            item = prepare(record, columns)
            if isinstance(item, Row):
                if item.fields:
                    to_send += 1
                else:
                    unchanged += 1
            else:
                failed.append(item)
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
    # The job sends at most --rate less the headroom it leaves to agents.
    share_per_s = config.rate * (1.0 - config.headroom / 100)
    estimate_s = max(0.0, to_send - config.burst) / share_per_s
    pace = f"{share_per_s:g}/s"
    if config.headroom:
        pace += f" (--rate {config.rate:g} less {config.headroom:g}% headroom)"
    print(
        f"dry run: {to_send} rows to send, {len(failed)} would fail (see {failures}), "
        f"{unchanged} with nothing to change; about {estimate_s / 60:.1f} min at "
        f"{pace}, burst {config.burst}. Nothing was sent.",
        file=sys.stderr,
    )
    return EXIT_FAILED_ROWS if failed else EXIT_OK
