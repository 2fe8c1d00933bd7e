"""The DynamoDB checkpoint store: the SQLite store's semantics for containers without a disk, one
request per commit. Owns the run lease and the order of writes; reads no input, sends no updates.
The items' format is bulkupdate.checkpoint.dynamodb_items; its table client,
bulkupdate.aws.dynamodb_table.

A commit is one conditional UpdateItem of the meta item (1 WCU while it stays under 1 KB), or,
when its batch has failed rows, one TransactWriteItems of that update plus the batch's pages (2
WCU per KB of each item): all or nothing, so a later row of a case is never recorded without the
earlier one. Costs for whole runs: the README, "Running in AWS: S3, DynamoDB and shards".
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import os
import socket
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

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
    attr_n,
    attr_s,
    claiming_put,
    decode_page,
    empty_meta,
    page_items,
    plan_chunks,
    run_attr,
    versioned_update,
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
# A run stops sending this long before its lease ends, for the difference between its clock
# and a successor's (which judges the lease by its own wall clock).
LEASE_CLOCK_MARGIN_S = 1.0
LEASE_CLOCK_SHARE = 0.1


def _token() -> str:
    return uuid.uuid4().hex[:12]


class DynamoDbCheckpointStore:
    """A `CheckpointStore` in a DynamoDB table; (job, shard) names one checkpoint.

    `open` takes a lease on the meta item (an owner id unique to this instance, and an expiry
    `lease_s` ahead), renewed by every write and by a heartbeat while idle, and given back by
    `close`. A run whose lease lapsed before `finish_run` shows as crashed; the next `open` takes
    over. Every write is conditional on the owner and the version, so a run that lost its lease
    can write nothing more: a container frozen past its lease cannot undo its successor's work.
    A write that failed in a blip of the table is looked into by the next call: a commit may be
    retried with the same batch until the table answers again, unless another run wrote since.
    """

    __slots__ = (
        "_create_table",
        "_heartbeat",
        "_lease_from_s",
        "_lease_s",
        "_lease_written_s",
        "_lock",
        "_meta",
        "_now",
        "_owner",
        "_pk",
        "_refusal",
        "_run_ended",
        "_shard",
        "_table",
        "_unsettled",
    )

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
        self._lease_s = lease_s
        self._now = now
        self._owner = f"{socket.gethostname()} pid {os.getpid()} #{uuid.uuid4().hex[:6]}"
        self._lock = anyio.Lock()  # one write at a time: each one names the version before it
        self._meta: MetaItem | None = None  # as last written, while this instance holds the lease
        self._run_ended = False
        # A write that failed once sent, (its token, what it wrote): the next call looks whether
        # it landed (see _settle), so a commit that failed in a blip can simply be retried.
        self._unsettled: tuple[str, MetaItem] | None = None
        # Why this run may write no more (taken over), or commit no more (its heartbeat failed).
        self._refusal: tuple[CheckpointError, bool] | None = None  # (error, finish_run too)
        self._heartbeat: asyncio.Task[None] | None = None
        self._lease_written_s = 0.0  # time.monotonic() of the last write that renewed the lease
        # time.monotonic() just before the lease that write set was computed: it ends lease_s on.
        self._lease_from_s = -math.inf

    @property
    def location(self) -> str:
        return self._table.location

    def hold_left_s(self) -> float:
        """The lease this run last wrote, less a margin for the clocks of two containers
        (another run compares the stored expiry with its own wall clock)."""
        if self._meta is None:
            return 0.0
        margin_s = max(LEASE_CLOCK_MARGIN_S, LEASE_CLOCK_SHARE * self._lease_s)
        left_s = self._lease_from_s + self._lease_s - margin_s - time.monotonic()
        return max(0.0, left_s)

    async def open(self, job: JobIdentity, *, restart: bool) -> ResumeState:
        if self._meta is not None:
            raise RuntimeError("checkpoint store is already open")
        try:
            async with self._lock:
                await self._table.ensure(create=self._create_table)
                meta = await self._start_run(job, restart)
            # The Protocol has no context to host a task group, so the heartbeat is a plain
            # asyncio task (aiobotocore runs on asyncio only), stopped and awaited by close()
            # and watched by _heartbeat_ended.
            self._heartbeat = asyncio.get_running_loop().create_task(self._renew_while_open())
            self._heartbeat.add_done_callback(self._heartbeat_ended)
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
        async with self._lock:
            meta = await self._running(commit=True)
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
            if unchanged and self.hold_left_s() > self._lease_s / 3:
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
                meta = meta.recorded(chunk.outcomes, point, counted, self._now(), done)
                try:
                    progress = meta.progress()
                except ValueError as error:
                    raise CheckpointError(self.location, f"{error}: lower the read-ahead") from None
                extra = updates if number == 1 else ()
                await self._write(meta, meta.updated_at, progress, chunk.pages, extra)

    async def record_group(self, group: RecordedGroup) -> None:
        async with self._lock:
            meta = await self._running(commit=True)
            now = self._now()
            meta = meta.with_group(group, now)
            await self._write(meta, now, {"groups": meta.progress()["groups"]})

    async def recorded_groups(self) -> list[RecordedGroup]:
        async with self._lock:
            return list((await self._running(commit=False)).groups)

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
        if self._meta is None:
            raise RuntimeError("checkpoint store is not open")
        # Sort keys in write order: a key written twice keeps the first answer when read back.
        order = f"{time.time_ns():020d}{_token()}"
        item = keys_item(self._pk, self._shard, self._meta.gen, order, resolutions)
        await self._table.call("put_item", TableName=self._table.name, Item=item)

    async def resolved_keys(self, field_id: str) -> Mapping[str, tuple[str, ...]]:
        if self._meta is None:
            raise RuntimeError("checkpoint store is not open")
        items = self._table.query(self._pk, keys_prefix(self._shard, self._meta.gen))
        return read_keys([item async for item in items], field_id)

    async def status(self) -> JobStatus:
        return (await self._read_meta()).status(self._now())

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
        key = {"pk": attr_s(self._pk), "sk": attr_s(f"meta#{self._shard}")}
        check = condition_check(self._table.name, key, self._owner, meta.version)
        room = TRANSACT_ITEMS - 1
        for start in range(0, len(updates), room):
            group = list(updates[start : start + room])
            try:
                await self._table.call(
                    "transact_write_items",
                    TransactItems=[check, *group],
                    ClientRequestToken=_token(),
                )
            except ConditionFailedError:
                item = await self._table.get(self._pk, f"meta#{self._shard}")
                raise self._taken_over(item) from None

    async def finish_run(self, end_state: str, summary: Mapping[str, Any]) -> None:
        state = check_end_state(end_state)
        async with self._lock:
            meta = await self._running(commit=False)
            if meta.run is None:
                raise RuntimeError("checkpoint store is not open")
            now = self._now()
            ended = json.loads(summary_json(summary))
            run = replace(meta.run, state=state, ended_at=now, summary=ended)
            await self._write(replace(meta, run=run), now, {"run": run_attr(run)})
            self._run_ended = True

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):  # a cancelled caller must still give the lease back
            heartbeat, self._heartbeat = self._heartbeat, None
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.wait({heartbeat})
            async with self._lock:
                meta, self._meta = self._meta, None
                self._run_ended, self._unsettled, self._refusal = False, None, None
                if meta is not None:
                    await self._release()
                await self._table.close()

    # --- starting a run

    async def _read_meta(self) -> MetaItem:
        item = await self._table.get(self._pk, f"meta#{self._shard}")
        if item is None:
            raise CheckpointError(self.location, "holds no job yet")
        return MetaItem.from_item(item, self.location)

    async def _start_run(self, job: JobIdentity, restart: bool) -> MetaItem:
        for _ in range(3):  # another run may write between our read and our write
            now, from_s = self._now(), time.monotonic()
            item = await self._table.get(self._pk, f"meta#{self._shard}")
            stored = MetaItem.from_item(item, self.location) if item is not None else None
            if stored is not None and stored.leased(now) and stored.lease_owner != self._owner:
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
                lease_owner=self._owner,
                lease_until=now.timestamp() + self._lease_s,
                version=(stored.version if stored else 0) + 1,
                token=_token(),
            )
            claim = meta.to_item(self._pk, f"meta#{self._shard}")
            put = claiming_put(self._table.name, claim, stored, now)
            try:
                await self._table.call("put_item", **put)
            except ConditionFailedError:
                continue
            self._meta, self._run_ended = meta, False
            self._lease_written_s, self._lease_from_s = time.monotonic(), from_s
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

    # --- writing

    async def _running(self, *, commit: bool) -> MetaItem:
        if self._meta is None:
            raise RuntimeError("checkpoint store is not open")
        if self._run_ended:
            raise RuntimeError("run already ended")
        if self._unsettled is not None:
            await self._settle(*self._unsettled, known=self._meta)
        if self._refusal is not None and (commit or self._refusal[1]):
            error = self._refusal[0]
            raise type(error)(error.location, error.message)
        return self._meta

    async def _settle(self, token: str, written: MetaItem, *, known: MetaItem) -> None:
        """A write failed once sent, so it may have landed: look at the meta item before going on.
        Landed (its token): go on from what it wrote. Not landed and still this run's at the
        version it knew: go on from that version, and the caller's kept batch is simply written
        again. Anything else means another run wrote in between: refuse, as on a failed
        condition. A failed look leaves the write unsettled for the next call."""
        item = await self._table.get(self._pk, f"meta#{self._shard}")
        self._unsettled = None
        if item is not None and item.get("token") == attr_s(token):
            self._meta = written
        elif item is None or not self._still_ours(item, known.version):
            self._taken_over(item)

    def _still_ours(self, item: Mapping[str, Any], version: int) -> bool:
        owner = item.get("lease_owner", {}).get("S")
        return owner == self._owner and int(float(item["version"]["N"])) == version

    async def _write(
        self,
        meta: MetaItem,
        now: datetime,
        values: Mapping[str, Any],
        pages: Sequence[tuple[int, bytes]] = (),
        extra: Sequence[Any] = (),
    ) -> None:
        """Write the next version: one conditional request, which also renews the lease;
        `extra` transaction items (before-images) go with it."""
        from_s = time.monotonic()  # `now` was read just before this, with no wait in between
        before = self._meta
        assert before is not None
        meta = replace(
            meta,
            version=before.version + 1,
            token=_token(),
            lease_until=now.timestamp() + self._lease_s,
        )
        sets = {**values, "version": attr_n(meta.version), "token": attr_s(meta.token)}
        sets["lease_until"] = attr_n(meta.lease_until)
        key = {"pk": attr_s(self._pk), "sk": attr_s(f"meta#{self._shard}")}
        update = versioned_update(self._table.name, key, sets, self._owner, before.version)
        try:
            if not pages and not extra:
                await self._table.call("update_item", **update)
            else:
                puts = [
                    {"Put": {"TableName": self._table.name, "Item": item}}
                    for item in page_items(self._pk, self._shard, meta.gen, pages)
                ]
                await self._table.call(
                    "transact_write_items",
                    TransactItems=[{"Update": update}, *puts, *extra],
                    ClientRequestToken=meta.token,  # botocore resends it: applied once
                )
        except ConditionFailedError:
            await self._settle_conflict(meta.token)
        except BaseException:
            self._unsettled = (meta.token, meta)  # sent, maybe applied: look before going on
            raise
        self._meta = meta
        self._lease_written_s, self._lease_from_s = time.monotonic(), from_s

    async def _settle_conflict(self, token: str) -> None:
        """A write's condition failed: an earlier attempt of it landed, or someone else wrote."""
        item = await self._table.get(self._pk, f"meta#{self._shard}")
        if item is not None and item.get("token") == attr_s(token):
            return  # botocore resent a write whose first answer was lost
        raise self._taken_over(item)

    def _taken_over(self, item: Mapping[str, Any] | None) -> CheckpointError:
        """Why this run may write nothing more, now that someone else wrote the meta `item`
        (None: deleted); kept as the refusal of every later call."""
        error = CheckpointError(self.location, "was changed by someone else during the run")
        owner = item.get("lease_owner", {}).get("S") if item is not None else None
        if item is None:
            error = CheckpointError(self.location, "its meta item was deleted during the run")
        elif owner != self._owner:
            error = CheckpointBusyError(
                self.location,
                f"{_successor(item, owner)} took it over after this run's lease lapsed; this "
                "run stops so that no row is sent twice",
            )
        self._refusal = error, True
        return error

    # --- the lease

    async def _renew_while_open(self) -> None:
        interval_s = self._lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            async with self._lock:
                meta = self._meta
                if meta is None:
                    return
                if time.monotonic() - self._lease_written_s < interval_s:
                    continue  # a commit renewed it
                until, from_s = self._now().timestamp() + self._lease_s, time.monotonic()
                try:
                    await self._table.call(
                        "update_item",
                        TableName=self._table.name,
                        Key={"pk": attr_s(self._pk), "sk": attr_s(f"meta#{self._shard}")},
                        UpdateExpression="SET lease_until = :until",
                        ConditionExpression="lease_owner = :me",
                        ExpressionAttributeValues={
                            ":until": attr_n(until),
                            ":me": attr_s(self._owner),
                        },
                    )
                except ConditionFailedError:
                    log.error("checkpoint_lease_lost", checkpoint=self.location)
                    self._lease_from_s = -math.inf  # send nothing more
                    return  # the next write stops the run
                except CheckpointError as error:
                    log.warning("checkpoint_lease_renewal_failed", error=error.message)
                    continue
                self._meta = replace(meta, lease_until=until)
                self._lease_written_s, self._lease_from_s = time.monotonic(), from_s

    def _heartbeat_ended(self, task: asyncio.Task[None]) -> None:
        """A heartbeat that died of an error lets the lease lapse while the run goes on, and a
        successor could then send the same rows: say why, and refuse further commits, so the
        run stops resumably instead."""
        if task.cancelled() or (error := task.exception()) is None:
            return
        reason = f"{type(error).__name__}: {error}"
        log.error("checkpoint_heartbeat_failed", checkpoint=self.location, error=reason)
        if self._refusal is None:
            message = f"its lease heartbeat failed ({reason}); stop and resume"
            self._refusal = CheckpointError(self.location, message), False

    async def _release(self) -> None:
        try:
            await self._table.call(
                "update_item",
                TableName=self._table.name,
                Key={"pk": attr_s(self._pk), "sk": attr_s(f"meta#{self._shard}")},
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues={":me": attr_s(self._owner)},
            )
        except ConditionFailedError:
            pass  # taken over already
        except CheckpointError as error:  # it lapses by itself
            log.warning("checkpoint_lease_release_failed", error=error.message)


def _successor(item: Mapping[str, Any], owner: str | None) -> str:
    """The run that took a checkpoint over, as far as its meta item tells: its lease holder
    while it runs; once it has given its lease back, its run record."""
    if owner:
        return f"another run ({owner})"
    try:
        run = MetaItem.from_item(item, "").run
    except (CheckpointError, KeyError, ValueError):
        run = None
    if run is None:
        return "another run, which has since released it,"
    ended = f", ended {run.ended_at.isoformat()}" if run.ended_at else ""
    started = run.started_at.isoformat()
    about = f"run {run.number}, pid {run.pid}, started {started}{ended}"
    return f"another run ({about}), which has since released it,"


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
