"""The DynamoDB checkpoint store: the SQLite store's semantics for containers without a disk, one
request per commit: what a commit, the run's end and the queries write and read. Reads no input,
sends no updates. The items' format is bulkupdate.checkpoint.dynamodb_items; the lease and the
order of writes, bulkupdate.aws.dynamodb_lease; the table client, bulkupdate.aws.dynamodb_table.

A commit is one conditional UpdateItem of the meta item (1 WCU while it stays under 1 KB), or,
when its batch has failed rows, one TransactWriteItems of that update plus the batch's pages (2
WCU per KB of each item): all or nothing, so a later row of a case is never recorded without the
earlier one. Costs for whole runs: the README, "Running in AWS: S3, DynamoDB and shards".
"""

from __future__ import annotations

import heapq
import json
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from bulkupdate.aws.dynamodb_lease import MetaLease, new_token
from bulkupdate.aws.dynamodb_table import ConditionFailedError, DynamoDbTable
from bulkupdate.checkpoint.dynamodb_images import (
    condition_check,
    fits_with,
    image_from_item,
    image_prefix,
    image_updates,
)
from bulkupdate.checkpoint.dynamodb_items import (
    TRANSACT_ITEMS,
    MetaItem,
    attr_s,
    claiming_put,
    decode_page,
    empty_meta,
    plan_chunks,
    run_attr,
)
from bulkupdate.checkpoint.dynamodb_keys import keys_item, keys_prefix, read_keys
from bulkupdate.checkpoint.images import FieldImage, ImageChange
from bulkupdate.checkpoint.store import (
    DYNAMODB,
    CheckpointBusyError,
    CheckpointError,
    FingerprintMismatchError,
    JobIdentity,
    JobStatus,
    RecordedGroup,
    ResumeState,
    RunRecord,
    RunState,
    check_end_state,
    check_resume_point,
    fresh_outcomes,
    summary_json,
    utc_now,
)
from bulkupdate.models import KeyResolution, Outcome, ResumePoint, Shard, parse_shard

__all__ = ["DYNAMODB", "DynamoDbCheckpointStore", "shard_statuses"]

log = structlog.get_logger("bulkupdate")
WHOLE_JOB = Shard(0, 1)  # the one shard of an unsharded job


class DynamoDbCheckpointStore:
    """A `CheckpointStore` in a DynamoDB table; (job, shard) names one checkpoint.

    `open` takes a lease on the meta item (bulkupdate.aws.dynamodb_lease: an owner id unique to
    this instance, and an expiry `lease_s` ahead), renewed by every write and by a heartbeat
    while idle, and given back by `close`. A run whose lease lapsed before `finish_run` shows as
    crashed; the next `open` takes over.
    """

    __slots__ = ("_create_table", "_lease", "_pk", "_shard", "_table")

    def __init__(
        self,
        table: str,
        job: str,
        shard: Shard = WHOLE_JOB,
        *,
        create_table: bool = True,
        region: str | None = None,
        profile: str | None = None,
        lease_s: float = 60.0,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        if not job:
            raise ValueError("job name must not be empty")
        self._shard = f"{shard.index}/{shard.count}"  # the sort keys' INDEX/COUNT
        location = f"dynamodb://{table} (job {job!r}, shard {self._shard})"
        self._table = DynamoDbTable(table, location, region, profile)
        self._pk = job
        self._create_table = create_table
        self._lease = MetaLease(self._table, job, self._shard, lease_s=lease_s, now=now)

    @property
    def location(self) -> str:
        return self._table.location

    def hold_left_s(self) -> float:
        return self._lease.hold_left_s()

    async def open(self, job: JobIdentity, *, restart: bool) -> ResumeState:
        if self._lease.meta is not None:
            raise RuntimeError("checkpoint store is already open")
        try:
            async with self._lease.lock:
                await self._table.ensure(create=self._create_table)
                meta = await self._start_run(job, restart)
            self._lease.start_heartbeat()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        return ResumeState(meta.resume_point, meta.resolved, meta.totals, meta.counters, meta.runs)

    async def commit(
        self,
        outcomes: Sequence[Outcome],
        resume_point: ResumePoint,
        counters: Mapping[str, int],
        images: Sequence[ImageChange] = (),
        *,
        groups_done: Sequence[str] = (),
    ) -> None:
        lease = self._lease
        async with lease.lock:
            meta = await lease.running(commit=True)
            check_resume_point(meta.resume_point, resume_point)
            fresh = [
                outcome
                for outcome in fresh_outcomes(outcomes, meta.resume_point.offset)
                if outcome.offset not in meta.resolved
            ]
            merged = {**meta.counters, **counters}
            forget = [g.token for g in meta.groups if g.token in set(groups_done)]
            unchanged = not fresh and resume_point == meta.resume_point and merged == meta.counters
            unchanged = unchanged and not images and not forget
            if unchanged and lease.hold_left_s() > lease.lease_s / 3:
                return  # nothing new: no write, no cost (the heartbeat keeps the lease)
            # A lease about to lapse is renewed here too, or found lost: a run frozen past it
            # learns at its next commit that it may send no more.
            chunks = plan_chunks(fresh)
            for cut in (cut for chunk in chunks for cut in chunk.truncated):
                log.warning("checkpoint_row_truncated", **asdict(cut))
            updates = self._image_updates(meta, images)
            if updates and not fits_with(chunks[0].pages, updates):
                await self._write_images_ahead(meta, updates)  # before any outcome they go with
                updates = []
            for number, chunk in enumerate(chunks, start=1):
                last = number == len(chunks)
                point = resume_point if last else meta.resume_point
                counted = merged if last else meta.counters
                done = forget if last else ()  # with the last chunk: after every outcome
                meta = meta.recorded(chunk.outcomes, point, counted, lease.now(), done)
                try:
                    progress = meta.progress()
                except ValueError as error:
                    raise CheckpointError(self.location, f"{error}: lower the read-ahead") from None
                extra = updates if number == 1 else ()
                await lease.write(meta, meta.updated_at, progress, chunk.pages, extra)

    async def record_group(self, group: RecordedGroup) -> None:
        lease = self._lease
        async with lease.lock:
            meta = await lease.running(commit=True)
            now = lease.now()
            meta = meta.with_group(group, now)
            await lease.write(meta, now, {"groups": meta.progress()["groups"]})

    async def recorded_groups(self) -> list[RecordedGroup]:
        async with self._lease.lock:
            return list((await self._lease.running(commit=False)).groups)

    async def failed_rows(self) -> AsyncIterator[Outcome]:
        meta = await self._read_meta()
        prefix = f"fail#{self._shard}#{meta.gen}#"
        # Pages come in order of their first offset and hold no row below it, so a row below
        # the next page's first offset can go: memory holds only pages that overlap.
        waiting: list[tuple[int, Outcome]] = []
        async for item in self._table.query(self._pk, prefix):
            first = int(item["sk"]["S"].removeprefix(prefix))
            while waiting and waiting[0][0] < first:
                yield heapq.heappop(waiting)[1]
            try:
                rows = decode_page(bytes(item["rows"]["B"]))
            except (KeyError, ValueError, IndexError, zlib.error) as error:
                raise CheckpointError(
                    self.location, f"damaged {item['sk']['S']}: {error}"
                ) from None
            for row in rows:
                heapq.heappush(waiting, (row.offset, row))
        while waiting:
            yield heapq.heappop(waiting)[1]

    async def record_keys(self, resolutions: Sequence[KeyResolution]) -> None:
        """One PutItem of its own (no lease condition: a key's answer is the same whoever
        writes it); items of an older generation are never read."""
        meta = self._lease.meta
        if meta is None:
            raise RuntimeError("checkpoint store is not open")
        # Sort keys in write order: a key written twice keeps the first answer when read back.
        order = f"{time.time_ns():020d}{new_token()}"
        item = keys_item(self._pk, self._shard, meta.gen, order, resolutions)
        await self._table.call("put_item", TableName=self._table.name, Item=item)

    async def resolved_keys(self, field_id: str) -> Mapping[str, tuple[str, ...]]:
        meta = self._lease.meta
        if meta is None:
            raise RuntimeError("checkpoint store is not open")
        items = self._table.query(self._pk, keys_prefix(self._shard, meta.gen))
        return read_keys([item async for item in items], field_id)

    async def status(self) -> JobStatus:
        return (await self._read_meta()).status(self._lease.now())

    async def images(self) -> AsyncIterator[FieldImage]:
        meta = await self._read_meta()
        async for item in self._table.query(self._pk, image_prefix(self._shard, meta.gen)):
            yield image_from_item(item)

    def _image_updates(self, meta: MetaItem, images: Sequence[ImageChange]) -> list[Any]:
        return image_updates(self._table.name, self._pk, self._shard, meta.gen, images)

    async def _write_images_ahead(self, meta: MetaItem, updates: Sequence[Any]) -> None:
        """Image writes too many for the commit's transaction, each transaction checking that
        this run still holds the checkpoint. They may land without the commit: a resumed row
        then finds its values on the case, and its image already records them."""
        check = condition_check(self._table.name, self._lease.key, self._lease.owner, meta.version)
        room = TRANSACT_ITEMS - 1
        for start in range(0, len(updates), room):
            group = list(updates[start : start + room])
            try:
                await self._table.call(
                    "transact_write_items",
                    TransactItems=[check, *group],
                    ClientRequestToken=new_token(),
                )
            except ConditionFailedError:
                item = await self._table.get(self._pk, f"meta#{self._shard}")
                raise self._lease.taken_over(item) from None

    async def finish_run(self, end_state: str, summary: Mapping[str, Any]) -> None:
        state = check_end_state(end_state)
        lease = self._lease
        async with lease.lock:
            meta = await lease.running(commit=False)
            if meta.run is None:
                raise RuntimeError("checkpoint store is not open")
            now = lease.now()
            ended = json.loads(summary_json(summary))
            run = replace(meta.run, state=state, ended_at=now, summary=ended)
            await lease.write(replace(meta, run=run), now, {"run": run_attr(run)})
            lease.run_ended = True

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):  # a cancelled caller must still give the lease back
            await self._lease.stop()
            async with self._lease.lock:
                await self._table.close()

    # --- starting a run

    async def _read_meta(self) -> MetaItem:
        item = await self._table.get(self._pk, f"meta#{self._shard}")
        if item is None:
            raise CheckpointError(self.location, "holds no job yet")
        return MetaItem.from_item(item, self.location)

    async def _start_run(self, job: JobIdentity, restart: bool) -> MetaItem:
        owner, lease_s = self._lease.owner, self._lease.lease_s
        for _ in range(3):  # another run may write between our read and our write
            now, from_s = self._lease.now(), time.monotonic()
            item = await self._table.get(self._pk, f"meta#{self._shard}")
            stored = MetaItem.from_item(item, self.location) if item is not None else None
            if stored is not None and stored.leased(now) and stored.lease_owner != owner:
                until = datetime.fromtimestamp(stored.lease_until, UTC).isoformat()
                raise CheckpointBusyError(
                    self.location,
                    f"another run ({stored.lease_owner}) holds its lease until {until}; wait "
                    "for it to end (a run that died lets its lease lapse by then)",
                )
            if stored is not None and stored.job != job and not restart:
                raise FingerprintMismatchError(self.location, stored.job, job)
            fresh = stored is None or restart
            base = empty_meta(job, now) if fresh or stored is None else stored
            meta = replace(
                base,
                runs=base.runs + 1,
                run=RunRecord(base.runs + 1, RunState.RUNNING, os.getpid(), now, None, {}),
                lease_owner=owner,
                lease_until=now.timestamp() + lease_s,
                version=(stored.version if stored else 0) + 1,
                token=new_token(),
            )
            claim = meta.to_item(self._pk, f"meta#{self._shard}")
            put = claiming_put(self._table.name, claim, stored, now)
            try:
                await self._table.call("put_item", **put)
            except ConditionFailedError:
                continue
            self._lease.claimed(meta, from_s)
            if fresh:
                await self._forget_other_generations(meta.gen)
            return meta
        raise CheckpointBusyError(self.location, "another run is starting on it at the same time")

    async def _forget_other_generations(self, gen: str) -> None:
        """Delete failure pages of a wiped or vanished checkpoint. They are unreachable already
        (the meta item names another generation): this only stops paying for their storage."""
        for prefix in (f"fail#{self._shard}#", f"img#{self._shard}#", keys_prefix(self._shard)):
            stale = [
                {"pk": attr_s(self._pk), "sk": item["sk"]}
                async for item in self._table.query(self._pk, prefix, ProjectionExpression="sk")
                if not item["sk"]["S"].startswith(f"{prefix}{gen}#")
            ]
            await self._table.delete(stale)


async def shard_statuses(
    table: str,
    job: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    now: Callable[[], datetime] = utc_now,
) -> list[tuple[str, JobStatus]]:
    """Every shard of `job` checkpointed in `table`, by shard; empty if it has none."""
    location = f"dynamodb://{table} (job {job!r})"
    reader = DynamoDbTable(table, location, region, profile)
    try:
        items = [item async for item in reader.query(job, "meta#")]
    finally:
        await reader.close()
    statuses = [
        (item["sk"]["S"].removeprefix("meta#"), MetaItem.from_item(item, location).status(now()))
        for item in items
    ]

    def by_count_then_index(pair: tuple[str, JobStatus]) -> tuple[int, int]:
        shard = parse_shard(pair[0])
        return shard.count, shard.index

    return sorted(statuses, key=by_count_then_index)
