"""`bulkupdate status`: what a job's runs did and what is left, read from its checkpoint.

Read-only: opens the checkpoint without starting a run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bulkupdate.checkpoint.locations import dynamodb_table, shard_files
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import DYNAMODB, JobStatus
from bulkupdate.errors import ConfigError
from bulkupdate.models import RowStatus, parse_shard


def _size(path: str) -> int | None:
    return os.path.getsize(path) if path != "-" and os.path.isfile(path) else None


def _exists(path: str) -> bool:
    return Path(path).is_file()


async def describe(checkpoint: str) -> dict[str, Any]:
    if not _exists(checkpoint):
        raise ConfigError("--checkpoint", f"no checkpoint at {checkpoint}")
    store = SqliteCheckpointStore(checkpoint, read_only=True)  # a read-only volume too
    try:
        status = await store.status()
    finally:
        await store.close()
    return _info(status)


def _info(status: JobStatus) -> dict[str, Any]:
    input_path = status.job.input_path
    size = _size(input_path)
    left = size - status.resume_point.offset if size is not None else None
    last = status.last_run
    return {
        "job": status.job.name,
        "input": input_path,
        "format": status.job.format,
        "encoding": status.job.encoding,
        "runs": status.runs,
        "last_run": {
            "state": last.state.value,
            "started_at": last.started_at.isoformat(),
            "ended_at": last.ended_at.isoformat() if last.ended_at else None,
            "summary": dict(last.summary),
        }
        if last
        else None,
        "applied": status.totals.get(RowStatus.DONE, 0),
        "failed": status.totals.get(RowStatus.FAILED, 0),
        # Rows found holding their values (--before-images), counted in `applied`. The
        # checkpoint keeps each run's counters, not their sum: this is the latest run's.
        "unchanged_last_run": status.counters.get("unchanged", 0),
        "resume_offset": status.resume_point.offset,
        "resume_line": status.resume_point.line,
        "input_bytes": size,
        "input_bytes_left": left,
        "updated_at": status.updated_at.isoformat(),
    }


async def describe_job(
    checkpoint: str,
    job: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """One checkpoint's description, or every shard's with their totals."""
    if checkpoint.startswith(DYNAMODB):
        if not job:
            raise ConfigError("--job", "is required with a dynamodb:// checkpoint")
        from bulkupdate.aws.checkpoint_dynamodb import shard_statuses  # only when used

        table = dynamodb_table(checkpoint)
        found = await shard_statuses(table, job, region=region, profile=profile)
        if not found:
            raise ConfigError("--job", f"no checkpoint of job {job!r} in table {table}")
        statuses = [(parse_shard(label), status) for label, status in found]
        counts = sorted({shard.count for shard, _ in statuses})
        if len(counts) > 1:
            message = f"holds shards of {' and '.join(map(str, counts))}-shard runs of job {job!r}"
            raise ConfigError("--checkpoint", f"{checkpoint}: {message}")
        described = [{"shard": shard.label, **_info(status)} for shard, status in statuses]
        if len(described) == 1 and described[0]["shard"] == "shard-0-of-1":
            del described[0]["shard"]
            return described[0]
    else:
        shards = shard_files(checkpoint)
        if not shards:
            return await describe(checkpoint)
        described = [{"shard": label, **(await describe(path))} for label, path in shards]
    return {
        "job": described[0]["job"].partition("#")[0],
        "shards": described,
        "applied": sum(d["applied"] for d in described),
        "failed": sum(d["failed"] for d in described),
    }


async def show(
    checkpoint: str,
    as_json: bool,
    job: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
) -> str:
    info = await describe_job(checkpoint, job, region=region, profile=profile)
    if as_json:
        return json.dumps(info, indent=2)
    if "shards" not in info:
        return _text(info)
    head = f"job {info['job']}: {len(info['shards'])} shards, applied: {info['applied']}, "
    head += f"failed: {info['failed']}"
    blocks = [f"[{shard['shard']}]\n{_text(shard)}" for shard in info["shards"]]
    return "\n\n".join([head, *blocks])


def _text(info: dict[str, Any]) -> str:
    last = info["last_run"] or {}
    left = info["input_bytes_left"]
    counts = f"applied: {info['applied']}, failed: {info['failed']}"
    if info["unchanged_last_run"]:
        counts += f" (the last run found {info['unchanged_last_run']} already holding their values)"
    lines = [
        f"job {info['job']} ({info['format']}) from {info['input']}",
        f"runs: {info['runs']}, last: {last.get('state', '-')} at {last.get('ended_at') or '-'}",
        counts,
        f"resume at line {info['resume_line']} (byte {info['resume_offset']})"
        + (f", {left} bytes left" if left is not None else ""),
    ]
    if last.get("summary", {}).get("abort"):
        lines.append(f"aborted: {last['summary']['abort']}")
    return "\n".join(lines)
