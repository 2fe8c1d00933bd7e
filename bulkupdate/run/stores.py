"""Which checkpoint store a run uses (a SQLite file or `dynamodb://TABLE`), opening one that a
killed run may still hold, and refusing a shard COUNT the job's checkpoints were not made with.

Chooses and opens stores; what a store records is `checkpoint`'s business, where checkpoints
live is `checkpoint.locations`'.
"""

from __future__ import annotations

import structlog

from bulkupdate.checkpoint.locations import dynamodb_table, file_counts
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import (
    DYNAMODB,
    CheckpointBusyError,
    CheckpointError,
    CheckpointStore,
    JobIdentity,
    ResumeState,
)
from bulkupdate.clock import Clock
from bulkupdate.config import RunConfig
from bulkupdate.errors import ConfigError
from bulkupdate.models import parse_shard

log = structlog.get_logger("bulkupdate")
BUSY_RETRY_S = 5.0  # at most, between tries to open a checkpoint another run holds


def open_store(config: RunConfig) -> CheckpointStore:
    """The job's checkpoint: a SQLite file, or `dynamodb://TABLE` shared by every container."""
    if not config.checkpoint.startswith(DYNAMODB):
        return SqliteCheckpointStore(config.checkpoint)
    from bulkupdate.aws.checkpoint_dynamodb import (  # only when used
        WHOLE_JOB,
        DynamoDbCheckpointStore,
    )

    return DynamoDbCheckpointStore(
        dynamodb_table(config.checkpoint),
        config.job_name,
        config.shard or WHOLE_JOB,
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
        return {parse_shard(label).count for label, _ in found}
    return file_counts(checkpoint)
