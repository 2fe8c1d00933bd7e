"""Which checkpoint store a run uses (a SQLite file or `dynamodb://TABLE`), opening one that a
killed run may still hold or that an older bulkupdate fingerprinted the input for, and refusing
a shard COUNT the job's checkpoints were not made with.

Chooses and opens stores; what a store records is `checkpoint`'s business, where checkpoints
live is `checkpoint.locations`'.
"""

from __future__ import annotations

from dataclasses import replace

import anyio
import structlog

from bulkupdate.aws.s3 import is_s3
from bulkupdate.checkpoint.locations import dynamodb_table, file_counts
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import (
    DYNAMODB,
    CheckpointBusyError,
    CheckpointError,
    CheckpointStore,
    FingerprintMismatchError,
    JobIdentity,
    ResumeState,
)
from bulkupdate.clock import Clock
from bulkupdate.config import RunConfig
from bulkupdate.errors import ConfigError
from bulkupdate.input.fingerprint import is_legacy_file_fingerprint, legacy_fingerprint_file
from bulkupdate.models import parse_shard

log = structlog.get_logger("bulkupdate")
BUSY_RETRY_S = 5.0  # at most, between tries to open a checkpoint another run holds


def job_identity(config: RunConfig, fingerprint: str, fmt: str) -> JobIdentity:
    """The job a run of `config` opens its checkpoint as (a shard's name carries its shard)."""
    name = config.job_name
    if config.shard is not None and config.shard.count > 1:
        name = f"{name}#{config.shard.label}"
    return JobIdentity(name, config.input, fingerprint, fmt, config.encoding)


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
    (its lease is no longer renewed): wait for it to lapse rather than fail the retry. Not with
    --restart: the holder may be a live run, whose progress a restart would throw away the
    moment it got in, so it is refused at once. One that an older bulkupdate made identifies
    the input its own way: see `legacy_identity`."""
    wait_s = config.checkpoint_lease if config.checkpoint.startswith(DYNAMODB) else 0.0
    retry_s = min(BUSY_RETRY_S, config.checkpoint_lease / 3)
    deadline_s = clock.now_s() + wait_s + retry_s
    legacy_tried = False
    while True:
        try:
            return await store.open(identity, restart=config.restart)
        except CheckpointBusyError as error:
            if config.restart:
                raise CheckpointBusyError(error.location, restart_refused(error)) from None
            if clock.now_s() >= deadline_s:
                raise
            log.warning("checkpoint_busy_waiting", checkpoint=config.checkpoint, retry_s=retry_s)
            await clock.sleep(retry_s)
        except FingerprintMismatchError as error:
            legacy = None if legacy_tried else await legacy_identity(error, identity, config)
            if legacy is None:
                raise
            identity, legacy_tried = legacy, True


def restart_refused(error: CheckpointBusyError) -> str:
    return (
        f"{error.message}. --restart does not wait: it would start the job over under a run "
        "that may still be sending, throwing away that run's progress. Stop that run or let "
        "it end (a killed run's lease lapses by itself), then pass --restart again"
    )


async def legacy_identity(
    error: FingerprintMismatchError, identity: JobIdentity, config: RunConfig
) -> JobIdentity | None:
    """The job under the size-and-first-MiB fingerprint that checkpoints made before the
    whole-file hash hold, when the refused checkpoint holds one and the input file still has
    it; else None. Such a job keeps that weaker check until it is restarted."""
    stored = error.stored
    if config.input == "-" or is_s3(config.input):
        return None  # their fingerprints did not change
    if not is_legacy_file_fingerprint(stored.fingerprint):
        return None
    legacy = replace(identity, fingerprint=stored.fingerprint)
    if legacy != stored:  # another job name or format: refused for that
        return None
    try:
        now = await anyio.to_thread.run_sync(legacy_fingerprint_file, config.input)
    except OSError:
        return None
    if now != stored.fingerprint:
        return None
    log.warning(
        "checkpoint_legacy_fingerprint",
        checkpoint=config.checkpoint,
        detail="made by an older bulkupdate that knows the input by its size and first MiB: "
        "the job resumes, checked that way until it is restarted",
    )
    return legacy


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
