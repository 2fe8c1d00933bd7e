"""The DynamoDB checkpoint's meta item as one run holds it: the lease (renewed by every write and
by a heartbeat while idle, given back at the end) and the run's writes, in order, each conditional
on the owner and the version. Knows no rows, pages or before-images; sends no updates.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
import structlog

from bulkupdate.aws.dynamodb_table import ConditionFailedError, DynamoDbTable
from bulkupdate.checkpoint.dynamodb_items import (
    MetaItem,
    attr_n,
    attr_s,
    page_items,
    versioned_update,
)
from bulkupdate.checkpoint.store import CheckpointBusyError, CheckpointError

__all__ = ["MetaLease", "new_token"]

log = structlog.get_logger("bulkupdate")
# A run stops sending this long before its lease ends, for the difference between its clock
# and a successor's (which judges the lease by its own wall clock).
LEASE_CLOCK_MARGIN_S = 1.0
LEASE_CLOCK_SHARE = 0.1


def new_token() -> str:
    return uuid.uuid4().hex[:12]


class MetaLease:
    """One run's hold on the meta item of (job, shard): an owner id unique to this instance, the
    item as last written (`meta`), and the lease that write set.

    Every write is conditional on the owner and the version, so a run that lost its lease can
    write nothing more: a container frozen past its lease cannot undo its successor's work. A
    write that failed in a blip of the table is looked into by the next call: a commit may be
    retried with the same batch until the table answers again, unless another run wrote since.
    """

    __slots__ = (
        "_heartbeat",
        "_lease_from_s",
        "_lease_written_s",
        "_refusal",
        "_table",
        "_unsettled",
        "key",
        "lease_s",
        "lock",
        "meta",
        "now",
        "owner",
        "pk",
        "run_ended",
        "shard",
    )

    def __init__(
        self,
        table: DynamoDbTable,
        pk: str,
        shard: str,
        *,
        lease_s: float,
        now: Callable[[], datetime],
    ) -> None:
        self._table = table
        self.pk, self.shard = pk, shard  # the job, and the sort keys' INDEX/COUNT
        self.key = {"pk": attr_s(pk), "sk": attr_s(f"meta#{shard}")}
        self.lease_s = lease_s
        self.now = now
        self.owner = f"{socket.gethostname()} pid {os.getpid()} #{uuid.uuid4().hex[:6]}"
        self.lock = anyio.Lock()  # one write at a time: each one names the version before it
        self.meta: MetaItem | None = None  # as last written, while this instance holds the lease
        self.run_ended = False
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
        if self.meta is None:
            return 0.0
        margin_s = max(LEASE_CLOCK_MARGIN_S, LEASE_CLOCK_SHARE * self.lease_s)
        left_s = self._lease_from_s + self.lease_s - margin_s - time.monotonic()
        return max(0.0, left_s)

    def claimed(self, meta: MetaItem, from_s: float) -> None:
        """This run's put of `meta` took the lease; `from_s` was read just before its expiry."""
        self.meta, self.run_ended = meta, False
        self._lease_written_s, self._lease_from_s = time.monotonic(), from_s

    def start_heartbeat(self) -> None:
        # The store's Protocol has no context to host a task group, so the heartbeat is a plain
        # asyncio task (aiobotocore runs on asyncio only), stopped and awaited by `stop` and
        # watched by _heartbeat_ended.
        self._heartbeat = asyncio.get_running_loop().create_task(self._renew_while_open())
        self._heartbeat.add_done_callback(self._heartbeat_ended)

    async def stop(self) -> None:
        """Stop the heartbeat and give the lease back, if this run holds it (call shielded)."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.wait({heartbeat})
        async with self.lock:
            meta, self.meta = self.meta, None
            self.run_ended, self._unsettled, self._refusal = False, None, None
            if meta is not None:
                await self._release()

    async def running(self, *, commit: bool) -> MetaItem:
        """The meta item as this run last wrote it, once an unsettled write is looked into;
        raises when this run may write no more (or, `commit`, commit no more)."""
        if self.meta is None:
            raise RuntimeError("checkpoint store is not open")
        if self.run_ended:
            raise RuntimeError("run already ended")
        if self._unsettled is not None:
            await self._settle(*self._unsettled, known=self.meta)
        if self._refusal is not None and (commit or self._refusal[1]):
            error = self._refusal[0]
            raise type(error)(error.location, error.message)
        return self.meta

    async def write(
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
        before = self.meta
        assert before is not None
        meta = replace(
            meta,
            version=before.version + 1,
            token=new_token(),
            lease_until=now.timestamp() + self.lease_s,
        )
        sets = {**values, "version": attr_n(meta.version), "token": attr_s(meta.token)}
        sets["lease_until"] = attr_n(meta.lease_until)
        update = versioned_update(self._table.name, self.key, sets, self.owner, before.version)
        try:
            if not pages and not extra:
                await self._table.call("update_item", **update)
            else:
                puts = [
                    {"Put": {"TableName": self._table.name, "Item": item}}
                    for item in page_items(self.pk, self.shard, meta.gen, pages)
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
        self.meta = meta
        self._lease_written_s, self._lease_from_s = time.monotonic(), from_s

    async def _settle(self, token: str, written: MetaItem, *, known: MetaItem) -> None:
        """A write failed once sent, so it may have landed: look at the meta item before going on.
        Landed (its token): go on from what it wrote. Not landed and still this run's at the
        version it knew: go on from that version, and the caller's kept batch is simply written
        again. Anything else means another run wrote in between: refuse, as on a failed
        condition. A failed look leaves the write unsettled for the next call."""
        item = await self._table.get(self.pk, f"meta#{self.shard}")
        self._unsettled = None
        if item is not None and item.get("token") == attr_s(token):
            self.meta = written
        elif item is None or not self._still_ours(item, known.version):
            self.taken_over(item)

    def _still_ours(self, item: Mapping[str, Any], version: int) -> bool:
        owner = item.get("lease_owner", {}).get("S")
        return owner == self.owner and int(float(item["version"]["N"])) == version

    async def _settle_conflict(self, token: str) -> None:
        """A write's condition failed: an earlier attempt of it landed, or someone else wrote."""
        item = await self._table.get(self.pk, f"meta#{self.shard}")
        if item is not None and item.get("token") == attr_s(token):
            return  # botocore resent a write whose first answer was lost
        raise self.taken_over(item)

    def taken_over(self, item: Mapping[str, Any] | None) -> CheckpointError:
        """Why this run may write nothing more, now that someone else wrote the meta `item`
        (None: deleted); kept as the refusal of every later call."""
        error = CheckpointError(self.location, "was changed by someone else during the run")
        owner = item.get("lease_owner", {}).get("S") if item is not None else None
        if item is None:
            error = CheckpointError(self.location, "its meta item was deleted during the run")
        elif owner != self.owner:
            error = CheckpointBusyError(
                self.location,
                f"{_successor(item, owner)} took it over after this run's lease lapsed; this "
                "run stops so that no row is sent twice",
            )
        self._refusal = error, True
        return error

    # --- the lease

    async def _renew_while_open(self) -> None:
        interval_s = self.lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            async with self.lock:
                meta = self.meta
                if meta is None:
                    return
                if time.monotonic() - self._lease_written_s < interval_s:
                    continue  # a commit renewed it
                until, from_s = self.now().timestamp() + self.lease_s, time.monotonic()
                try:
                    await self._table.call(
                        "update_item",
                        TableName=self._table.name,
                        Key=self.key,
                        UpdateExpression="SET lease_until = :until",
                        ConditionExpression="lease_owner = :me",
                        ExpressionAttributeValues={
                            ":until": attr_n(until),
                            ":me": attr_s(self.owner),
                        },
                    )
                except ConditionFailedError:
                    log.error("checkpoint_lease_lost", checkpoint=self.location)
                    self._lease_from_s = -math.inf  # send nothing more
                    return  # the next write stops the run
                except CheckpointError as error:
                    log.warning("checkpoint_lease_renewal_failed", error=error.message)
                    continue
                self.meta = replace(meta, lease_until=until)
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
                Key=self.key,
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues={":me": attr_s(self.owner)},
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
