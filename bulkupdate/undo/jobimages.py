"""A finished (or stopped) job's before-images, every shard's, for `undo` and `verify`: where they
are (a SQLite checkpoint and the shard files beside it, or every shard in a DynamoDB table), and
the connection to the domain the job wrote to.

Reads checkpoints without starting a run; writes nothing.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bulkupdate.aws.client import open_cases
from bulkupdate.checkpoint.images import FieldImage
from bulkupdate.checkpoint.locations import dynamodb_table, shard_files
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import DYNAMODB, CheckpointStore
from bulkupdate.clock import Clock, MonotonicClock
from bulkupdate.errors import ConfigError
from bulkupdate.models import FieldType, parse_shard
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.reads import PacedReads

__all__ = ["Target", "cases_of", "connect"]


@dataclass(frozen=True, slots=True)
class Target:
    """Which job's images, and how to reach its domain (the flags of `undo` and `verify`)."""

    checkpoint: str
    domain_id: str
    job: str | None = None  # required with dynamodb://
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    read_rate: float = 4.0
    read_burst: int = 10
    headroom: float = 20.0  # percent, as --headroom
    max_attempts: int = 8


def _sqlite_stores(checkpoint: str) -> list[CheckpointStore]:
    """The job's checkpoint, or every shard's beside it."""
    paths = [path for _, path in shard_files(checkpoint)] or [checkpoint]
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError("--checkpoint", f"no checkpoint at {path}")
    return [SqliteCheckpointStore(path, read_only=True) for path in paths]


async def _shard_labels(target: Target) -> list[str]:
    from bulkupdate.aws.checkpoint_dynamodb import shard_statuses  # only when used

    assert target.job is not None
    table = dynamodb_table(target.checkpoint)
    found = await shard_statuses(table, target.job, region=target.region, profile=target.profile)
    if not found:
        raise ConfigError("--job", f"no checkpoint of job {target.job!r} in table {table}")
    return [label for label, _ in found]


async def cases_of(target: Target) -> AsyncGenerator[tuple[str, list[FieldImage]]]:
    """(case id, its images) for every case the job changed, shard after shard."""
    labels = None
    if target.checkpoint.startswith(DYNAMODB):
        if not target.job:
            raise ConfigError("--job", "is required with a dynamodb:// checkpoint")
        labels = await _shard_labels(target)
    for store in _open_stores(target, labels):
        try:
            async for case in _by_case(store):
                yield case
        finally:
            await store.close()


def _open_stores(target: Target, labels: list[str] | None) -> list[CheckpointStore]:
    if labels is None:
        return _sqlite_stores(target.checkpoint)
    from bulkupdate.aws.checkpoint_dynamodb import DynamoDbCheckpointStore  # only when used

    assert target.job is not None
    table = dynamodb_table(target.checkpoint)
    return [
        DynamoDbCheckpointStore(
            table,
            target.job,
            parse_shard(label),
            create_table=False,
            region=target.region,
            profile=target.profile,
        )
        for label in labels
    ]


async def _by_case(store: CheckpointStore) -> AsyncIterator[tuple[str, list[FieldImage]]]:
    """The store's images grouped by case (they come ordered by case)."""
    case_id, group = "", list[FieldImage]()
    async for image in store.images():
        if group and image.case_id != case_id:
            yield case_id, group
            group = []
        case_id = image.case_id
        group.append(image)
    if group:
        yield case_id, group


@dataclass(slots=True)
class Connection:
    api: CasesApi
    reads: PacedReads
    types: dict[str, FieldType]


@asynccontextmanager
async def connect(target: Target, clock: Clock | None = None) -> AsyncIterator[Connection]:
    """The domain's client, its field types, and GetCase paced at --read-rate."""
    clock = clock or MonotonicClock()
    async with open_cases(
        domain_id=target.domain_id,
        endpoint_url=target.endpoint_url,
        region=target.region,
        profile=target.profile,
    ) as api:
        fields = await api.list_fields()
        reads = PacedReads(
            api,
            clock,
            rate_per_s=target.read_rate,
            burst=target.read_burst,
            headroom=target.headroom / 100,
            max_attempts=target.max_attempts,
            rng=random.Random(),
        )
        yield Connection(api, reads, {field.field_id: field.type for field in fields})
