"""The reader side of a run: chunks of the input (straight, or through the lookup) admitted into
per-case lanes and handed to the workers or the batcher, the read-ahead bounded.

Orchestration for the engine: never imports the engine; sends no call itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkupdate.fields.rows import Row
from bulkupdate.fields.schema import ColumnMap
from bulkupdate.input.sources import Record
from bulkupdate.models import Outcome, ResumePoint
from bulkupdate.report.stats import RunStats
from bulkupdate.run.batch.batcher import Batcher
from bulkupdate.run.batch.replay import Replayed
from bulkupdate.run.chunks import Chunk, Chunks, Skip
from bulkupdate.run.commits import Commits
from bulkupdate.run.ordering import CaseLanes, Frontier
from bulkupdate.run.settings import EngineSettings
from bulkupdate.run.settle import SettleHolds

__all__ = ["Reading"]


class Reading:
    """Reads until the input ends and every row read is resolved, or the run stops."""

    __slots__ = (
        "_commits",
        "_frontier",
        "_holds",
        "_lanes",
        "_max_pending",
        "_resolve",
        "_room",
        "_settings",
        "_stats",
        "_stopped",
        "chunks",
    )

    def __init__(
        self,
        settings: EngineSettings,
        *,
        records: Iterator[Record],
        columns: ColumnMap,
        resume_point: ResumePoint,
        resolved_offsets: frozenset[int],
        route: Callable[[str], str] | None,
        lanes: CaseLanes[Row | Outcome],
        frontier: Frontier,
        holds: SettleHolds,
        commits: Commits,
        stats: RunStats,
        resolve: Callable[[Outcome], None],
        stopped: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self.chunks = Chunks(
            records,
            columns,
            skip_before=resume_point.offset,  # before it: resolved by earlier runs
            resolved_before=resolved_offsets,
            shard=settings.shard,
            stopped=stopped,
            route=route,
        )
        self._lanes = lanes
        self._frontier = frontier
        self._holds = holds
        self._commits = commits
        self._stats = stats
        self._resolve = resolve
        self._stopped = stopped
        self._room = anyio.Event()
        self._max_pending = settings.max_pending_rows or max(1000, 64 * settings.concurrency)

    def wake(self) -> None:
        """A row resolved: the read-ahead may have room again."""
        self._room.set()

    async def read_chunk(self) -> Chunk:
        return await anyio.to_thread.run_sync(self.chunks.next, abandon_on_cancel=True)

    async def read(
        self,
        send: MemoryObjectSendStream[Row],
        *,
        next_chunk: Callable[[], Awaitable[Chunk]],
        batcher: Batcher | None,
        replayed: Replayed,
    ) -> None:
        frontier, stats, holds = self._frontier, self._stats, self._holds
        async with send:  # closing it ends the workers' receive loops
            while True:
                # Held rows wait off the read-ahead: other cases go on meanwhile.
                while frontier.pending - holds.held >= self._max_pending:
                    self._room = anyio.Event()
                    await self._room.wait()
                chunk = await next_chunk()
                if not chunk or self._stopped():  # a stop while the thread parsed: drop it
                    break
                if not await self._may_dispatch(chunk):
                    return
                for record, item in chunk:
                    end = ResumePoint(record.end_offset, record.next_line)
                    if item is Skip.RESOLVED_BEFORE:
                        frontier.skip(end)
                        stats.skipped += 1
                        continue
                    if item is Skip.OTHER_SHARD:
                        frontier.skip(end)
                        stats.other_shards += 1
                        continue
                    stats.read += 1
                    frontier.read(record.offset, record.line, end)
                    await self._admit(replayed.sort(item), send, batcher)
            # The input is read. Rows in flight may still go on hold and come back: the
            # workers need the stream until every row read is resolved (or the run stops).
            while frontier.pending and not self._stopped():
                self._room = anyio.Event()
                await self._room.wait()

    async def _admit(
        self, item: Row | Outcome, send: MemoryObjectSendStream[Row], batcher: Batcher | None
    ) -> None:
        """Into its case's lane, and on to a worker (or the batcher) when the case is idle."""
        if isinstance(item, Outcome) and not item.case_id:
            self._resolve(item)  # no case: no order to keep
        elif self._lanes.admit(item.case_id, item):
            if isinstance(item, Row):
                if self._holds.held_over(item):
                    return
                if batcher is not None:
                    batcher.admit(item)
                    return
                try:
                    send.send_nowait(item)  # no scheduling round trip when room
                except anyio.WouldBlock:
                    await send.send(item)
            else:  # resolved locally; its case was idle, so nothing waits on it
                self._resolve(item)
                self._lanes.release(item.case_id)

    async def _may_dispatch(self, chunk: Chunk) -> bool:
        """Record that the chunk's rows may be sent before any of them is (see DISPATCHED_TO).
        False when the run stops first."""
        if not any(isinstance(item, Row) for _, item in chunk):
            return True
        end_offset = chunk[-1][0].end_offset
        retry_s = self._settings.flush_interval_s
        return await self._commits.allow_dispatch(
            end_offset, retry_s=retry_s, stopped=self._stopped
        )
