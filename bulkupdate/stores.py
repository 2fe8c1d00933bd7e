"""Which checkpoint a run uses: a SQLite file or `dynamodb://TABLE`, where a job's shards keep
theirs, and opening one that a killed run may still hold.

Chooses and locates stores; what a store records is `checkpoint`'s business.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import structlog

from bulkupdate.checkpoint import (
    DYNAMODB,
    CheckpointBusyError,
    CheckpointError,
    CheckpointStore,
    JobIdentity,
    ResumeState,
)
from bulkupdate.checkpoint_sqlite import SqliteCheckpointStore
from bulkupdate.clock import Clock
from bulkupdate.config import RunConfig
from bulkupdate.errors import ConfigError

log = structlog.get_logger("bulkupdate")
BUSY_RETRY_S = 5.0  # at most, between tries to open a checkpoint another run holds


def dynamodb_table(checkpoint: str) -> str:
    """`dynamodb://TABLE` -> TABLE; ConfigError for anything else after the scheme."""
    table = checkpoint.removeprefix(DYNAMODB)
    if not table or "/" in table:
        raise ConfigError("--checkpoint", f"must be dynamodb://TABLE, not {checkpoint!r}")
    return table


def open_store(config: RunConfig) -> CheckpointStore:
    """The job's checkpoint: a SQLite file, or `dynamodb://TABLE` shared by every container."""
    if not config.checkpoint.startswith(DYNAMODB):
        return SqliteCheckpointStore(config.checkpoint)
    from bulkupdate.aws.checkpoint_dynamodb import DynamoDbCheckpointStore  # only when used

    shard = config.shard
    return DynamoDbCheckpointStore(
        dynamodb_table(config.checkpoint),
        config.job_name,
        f"{shard.index}/{shard.count}" if shard is not None else "0/1",
        create_table=config.create_table,
        region=config.region,
        profile=config.profile,
        lease_s=config.checkpoint_lease,
    )


async def open_waiting(
    store: CheckpointStore, identity: JobIdentity, config: RunConfig, clock: Clock
) -> ResumeState:
    """Open the checkpoint. A shared one may still be leased by a container that was killed
    (its lease is no longer renewed): wait for it to lapse rather than fail the retry."""
    wait_s = config.checkpoint_lease if config.checkpoint.startswith(DYNAMODB) else 0.0
    retry_s = min(BUSY_RETRY_S, config.checkpoint_lease / 3)
    deadline_s = clock.now_s() + wait_s + retry_s
    while True:
        try:
            return await store.open(identity, restart=config.restart)
        except CheckpointBusyError:
            if clock.now_s() >= deadline_s:
                raise
            log.warning("checkpoint_busy_waiting", checkpoint=config.checkpoint, retry_s=retry_s)
            await clock.sleep(retry_s)


async def check_shard_count(config: RunConfig) -> None:
    """Refuse a COUNT other than the one the job's checkpoints were made with: it would hand
    cases to other shards, replaying rows and losing their order. Once a --restart has made
    checkpoints with this COUNT, the job runs with it."""
    mine = config.shard.count if config.shard is not None else 1
    found = await shard_counts(
        config.checkpoint, config.job_name, region=config.region, profile=config.profile
    )
    if found and mine not in found:
        (other,) = sorted(found - {mine})[:1]
        raise ConfigError(
            "--shard",
            f"job {config.job_name!r} has checkpoints of a {other}-shard run, not {mine}: "
            f"keep COUNT {other} until the job is done, or pass --restart to start it over",
        )


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


async def shard_counts(
    checkpoint: str, job: str, *, region: str | None = None, profile: str | None = None
) -> set[int]:
    """How many shards the job's existing checkpoints were made with (1: unsharded); empty
    when it has none yet. A run with another COUNT would split the cases differently."""
    if checkpoint.startswith(DYNAMODB):
        from bulkupdate.aws.checkpoint_dynamodb import shard_statuses  # only when used

        try:
            found = await shard_statuses(
                dynamodb_table(checkpoint), job, region=region, profile=profile
            )
        except CheckpointError:  # no table yet, or unreachable: opening the store says which
            return set()
        return {int(label.split("/")[1]) for label, _ in found}
    return _file_counts(checkpoint)


def _file_counts(checkpoint: str) -> set[int]:
    base = _SHARD.sub("", checkpoint, count=1)
    counts = {count for count, _, _ in _shard_candidates(base)}
    return counts | ({1} if Path(base).is_file() else set())
