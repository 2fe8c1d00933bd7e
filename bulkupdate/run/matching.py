"""What a run with `--match-field` adds: the lookup stage set up from the configuration and the
checkpoint (keys an earlier run settled are not searched again), and the dry run's look at
the keys (reads only).

Wiring only: the rules live in `bulkupdate.lookup`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from bulkupdate.checkpoint.store import CheckpointStore
from bulkupdate.config import RunConfig
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.rows import Row, prepare
from bulkupdate.fields.schema import ColumnMap
from bulkupdate.input.sources import Record
from bulkupdate.lookup.keys import MatchField
from bulkupdate.lookup.plan import LookupPlan
from bulkupdate.lookup.resolver import Chunk, Resolver
from bulkupdate.models import Outcome, RowStatus
from bulkupdate.pacing.gate import RateGate
from bulkupdate.pacing.retry import RetryPolicy
from bulkupdate.run.batch.grouping import CallCount
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.startup import Job

log = structlog.get_logger("bulkupdate")
Tell = Any  # (event name, data) -> None
DRY_RUN_CHUNK = 256


def search_pace(config: RunConfig) -> tuple[float, int]:
    """SearchCases' rate and burst for this process: shards share them, as they share --rate."""
    if config.shard is not None:
        return config.shard.rate_share(config.search_rate, config.search_burst)
    return config.search_rate, config.search_burst


def resolver(
    job: Job,
    match: MatchField,
    api: CasesApi,
    known: Mapping[str, tuple[str, ...]],
    *,
    store: CheckpointStore | None,
    on_event: Tell,
) -> Resolver:
    config = job.config
    rate_per_s, burst = search_pace(config)

    def tell(name: str, data: Mapping[str, Any]) -> None:  # the gate's own pacing events
        on_event(name, {**data, "operation": "SearchCases"})

    gate = RateGate(rate_per_s, burst, job.clock, headroom=config.headroom / 100, tell=tell)
    return Resolver(
        search=api,
        match=match,
        plan=LookupPlan(match.field_id, known, retry_after_s=config.match_retry_s),
        gate=gate,
        clock=job.clock,
        recorder=store,
        policy=RetryPolicy(max_attempts=config.max_attempts),
        rng=job.rng,
        on_event=on_event,
    )


async def run_resolver(
    job: Job, match: MatchField, api: CasesApi, store: CheckpointStore, on_event: Tell
) -> Resolver:
    """The lookup stage of a run, with what the job's checkpoint already knows."""
    known = await store.resolved_keys(match.field_id)
    log.info("lookup_started", match_field=match.field_id, keys_known=len(known))
    return resolver(job, match, api, known, store=store, on_event=on_event)


@dataclass(slots=True)
class DryRunKeys:
    """What a dry run's look at the keys found: rows by what a run would do with them."""

    count: CallCount  # the calls the rows to send would take, grouped and not
    failed: list[Outcome] = field(default_factory=list)  # bad cells, unmatched, ambiguous
    to_send: int = 0
    unchanged: int = 0
    not_found: int = 0  # keys
    ambiguous: int = 0  # keys

    def text(self) -> str:
        return (
            f"; of their keys, {self.not_found} match no case and {self.ambiguous} match "
            "several (their rows are in the failures file)"
        )


async def dry_run_keys(
    job: Job,
    match: MatchField,
    api: CasesApi,
    columns: ColumnMap,
    records: Iterator[Record],
    count: CallCount,
) -> DryRunKeys:
    """Every record prepared and its key searched (SearchCases only, nothing recorded); the
    rows to send are also added to `count` (the calls they would take)."""
    stage = resolver(job, match, api, {}, store=None, on_event=lambda name, data: None)
    stopped: list[CallError] = []
    scope = anyio.CancelScope()

    async def read() -> Chunk:
        return await anyio.to_thread.run_sync(_prepare, records, columns)

    def fail(code: str, message: str) -> None:  # SearchCases refused us (access): stop
        stopped.append(CallError(ErrorKind.SYSTEMIC, code, message))
        scope.cancel()

    stage.attach(read, stopped=lambda: bool(stopped), fail=fail)
    found = DryRunKeys(count=count)
    with scope:
        await _resolve_all(stage, found)
    if stopped:
        raise stopped[0]
    found.not_found, found.ambiguous = stage.stats.keys_not_found, stage.stats.keys_ambiguous
    return found


async def _resolve_all(stage: Resolver, found: DryRunKeys) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(stage.run)
        while chunk := await stage.next_chunk():
            for _, item in chunk:
                if isinstance(item, Row):
                    found.to_send += 1
                    found.count.add(item.fields)
                elif item.status is RowStatus.FAILED:
                    found.failed.append(item)
                else:
                    found.unchanged += 1
        group.cancel_scope.cancel()


def _prepare(records: Iterator[Record], columns: ColumnMap) -> Chunk:
    chunk: Chunk = []
    for record in records:
        item = prepare(record, columns)
        if isinstance(item, Row) and not item.fields:
            item = item.outcome(RowStatus.DONE)
        chunk.append((record, item))
        if len(chunk) >= DRY_RUN_CHUNK:
            break
    return chunk
