"""`bulkupdate status`: what a job's runs did and what is left, read from its checkpoint.

Read-only: opens the checkpoint without starting a run.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path
from typing import Any

from bulkupdate.checkpoint import DYNAMODB, CheckpointError, JobStatus
from bulkupdate.checkpoint_sqlite import SqliteCheckpointStore
from bulkupdate.errors import ConfigError
from bulkupdate.models import RowStatus


def _size(path: str) -> int | None:
    return os.path.getsize(path) if path != "-" and os.path.isfile(path) else None


def _exists(path: str) -> bool:
    return Path(path).is_file()


async def describe(checkpoint: str) -> dict[str, Any]:
    if not _exists(checkpoint):
        raise ConfigError("--checkpoint", f"no checkpoint at {checkpoint}")
    store = SqliteCheckpointStore(checkpoint)
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
        "resume_offset": status.resume_point.offset,
        "resume_line": status.resume_point.line,
        "input_bytes": size,
        "input_bytes_left": left,
        "updated_at": status.updated_at.isoformat(),
    }


_SHARD = re.compile(r"\.shard-(\d+)-of-(\d+)(?=\.|$)")


def shard_files(checkpoint: str) -> list[tuple[str, str]]:
    """(shard label, path) of every shard's checkpoint beside `checkpoint`, which may be one
    of them or the job's unsharded name; empty when the job is not sharded. Refuses a folder
    holding the shards of two different COUNTs: their totals would not add up to one job."""
    files = _shard_candidates(checkpoint)
    counts = sorted({count for count, _, _ in files})
    if len(counts) > 1:
        stem = Path(_SHARD.sub("", checkpoint, count=1)).name.partition(".")[0]
        message = (
            f"holds shards of {' and '.join(map(str, counts))}-shard runs of one job; "
            "remove the checkpoints of the COUNT no longer used"
        )
        raise ConfigError("--checkpoint", f"{Path(checkpoint).parent}/{stem}.shard-*: {message}")
    return [(f"shard-{index}-of-{count}", str(p)) for count, index, p in sorted(files)]


def _shard_candidates(checkpoint: str) -> list[tuple[int, int, Path]]:
    """(count, index, path) of the shard checkpoints beside `checkpoint` (see shard_files)."""
    path = Path(checkpoint)
    found = _SHARD.search(path.name)
    if found:
        stem, rest = path.name[: found.start()], path.name[found.end() :]
    else:
        dot = path.name.find(".")
        stem, rest = (path.name, "") if dot < 0 else (path.name[:dot], path.name[dot:])
    pattern = re.compile(re.escape(stem) + _SHARD.pattern + re.escape(rest) + "$")
    files = []
    for candidate in path.parent.glob(glob.escape(stem) + ".shard-*"):
        match = pattern.fullmatch(candidate.name)
        if match and (not found or match.group(2) == found.group(2)):
            files.append((int(match.group(2)), int(match.group(1)), candidate))
    return files


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

        table = checkpoint.removeprefix(DYNAMODB)
        found = await shard_statuses(table, job, region=region, profile=profile)
        if not found:
            raise ConfigError("--job", f"no checkpoint of job {job!r} in table {table}")
        counts = sorted({label.split("/")[1] for label, _ in found})
        if len(counts) > 1:
            message = f"holds shards of {' and '.join(counts)}-shard runs of job {job!r}"
            raise ConfigError("--checkpoint", f"{checkpoint}: {message}")
        described = [
            {"shard": "shard-{}-of-{}".format(*label.split("/")), **_info(status)}
            for label, status in found
        ]
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
    lines = [
        f"job {info['job']} ({info['format']}) from {info['input']}",
        f"runs: {info['runs']}, last: {last.get('state', '-')} at {last.get('ended_at') or '-'}",
        f"applied: {info['applied']}, failed: {info['failed']}",
        f"resume at line {info['resume_line']} (byte {info['resume_offset']})"
        + (f", {left} bytes left" if left is not None else ""),
    ]
    if last.get("summary", {}).get("abort"):
        lines.append(f"aborted: {last['summary']['abort']}")
    return "\n".join(lines)


async def shard_counts(
    checkpoint: str, job: str, *, region: str | None = None, profile: str | None = None
) -> set[int]:
    """How many shards the job's existing checkpoints were made with (1: unsharded); empty
    when it has none yet. A run with another COUNT would split the cases differently."""
    if checkpoint.startswith(DYNAMODB):
        from bulkupdate.aws.checkpoint_dynamodb import shard_statuses  # only when used

        try:
            found = await shard_statuses(
                checkpoint.removeprefix(DYNAMODB), job, region=region, profile=profile
            )
        except CheckpointError:  # no table yet, or unreachable: opening the store says which
            return set()
        return {int(label.split("/")[1]) for label, _ in found}
    base = _SHARD.sub("", checkpoint, count=1)
    counts = {count for count, _, _ in _shard_candidates(base)}
    return counts | ({1} if _exists(base) else set())
