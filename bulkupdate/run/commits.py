"""Outcomes to the checkpoint in whole batches: each commit records a batch, the resume point
and how far rows may be sent (`DISPATCHED_TO`), all at once, so a crash never skips a row and
a later run knows which cases may have had calls in flight.

Counts failed commits in a row and says when to give up; never sends anything itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio

from bulkupdate.checkpoint.images import ImageChange
from bulkupdate.checkpoint.store import CheckpointBusyError, CheckpointStore
from bulkupdate.clock import Clock
from bulkupdate.models import Outcome
from bulkupdate.run.ordering import Frontier

# Commits failing at least this many times in a row, for at least the patience, stop the run:
# sending on without recording would only grow what a crash re-sends.
MAX_FAILED_COMMITS = 4
# The counter that records how far rows may have been sent: every record before this offset.
# A run that follows one that may have left calls unsettled holds those rows' cases.
DISPATCHED_TO = "dispatched_to_offset"


class Commits:
    """The batch not yet recorded and the commits that record it, one at a time."""

    __slots__ = (
        "_batch",
        "_clock",
        "_counters",
        "_failed",
        "_failing_since_s",
        "_frontier",
        "_give_up",
        "_groups_done",
        "_images",
        "_landed",
        "_limit_wanted",
        "_lock",
        "_on_event",
        "_patience_s",
        "_store",
        "_taken",
        "dispatch_limit",
        "failing",
    )

    def __init__(
        self,
        store: CheckpointStore,
        frontier: Frontier,
        clock: Clock,
        *,
        counters: Callable[[], Mapping[str, int]],
        on_event: Callable[[str, Mapping[str, Any]], None],
        give_up: Callable[[str], None],
        patience_s: float,
    ) -> None:
        self._store = store
        self._frontier = frontier
        self._clock = clock
        self._counters = counters
        self._on_event = on_event
        self._give_up = give_up
        self._patience_s = patience_s
        self._batch: list[Outcome] = []
        self._images: list[ImageChange] = []  # before-images, recorded with the batch
        self._taken = 0  # commits begun; each takes the batch and images as they are
        self._landed = (0, anyio.Event())  # the last commit recorded, and a wake-up for waiters
        self._groups_done: list[str] = []  # recorded groups to forget with the next commit
        self._lock = anyio.Lock()
        self._failed = 0  # in a row
        self._failing_since_s = 0.0
        self.failing = False  # the last commit failed: send nothing new
        self.dispatch_limit = 0  # rows below this offset may be sent: a commit recorded it
        self._limit_wanted = 0

    def add(self, outcome: Outcome) -> None:
        self._batch.append(outcome)

    def add_images(self, changes: list[ImageChange]) -> None:
        """Recorded by the next commit, with the outcomes added before it is taken."""
        self._images.extend(changes)

    async def write_ahead(
        self, changes: list[ImageChange], retry_s: float, stopped: Callable[[], bool]
    ) -> bool:
        """Record `changes` before the row they belong to is sent: wait for a commit that takes
        them (those waiting together share one). False when the run stops first."""
        self._images.extend(changes)
        wanted = self._taken + 1  # the next commit to begin takes them
        while self._landed[0] < wanted:
            if stopped():
                return False
            if self._lock.locked():  # a commit that began before them: wait for it to end
                await self._landed[1].wait()
            elif not await self.try_flush():
                await self._clock.sleep(retry_s)
        return True

    def group_done(self, token: str) -> None:
        """A recorded BatchUpdateCase call is answered and its rows' outcomes added: forget it
        in the commit that records them."""
        self._groups_done.append(token)

    async def flush(self) -> None:
        """Record the batch; on failure it is kept whole for the next commit, and re-raised."""
        async with self._lock:
            # Taken together, with no await between: every record before the resume point has
            # its outcome in this batch or an earlier one, so a crash never skips a row.
            batch, self._batch = self._batch, []
            images, self._images = self._images, []
            self._taken += 1
            number = self._taken
            groups_done, self._groups_done = self._groups_done, []
            point = self._frontier.resume_point()
            limit = self._limit_wanted
            counters = {**self._counters(), DISPATCHED_TO: limit}
            try:
                with anyio.CancelScope(shield=True):
                    await self._store.commit(
                        batch, point, counters, images, groups_done=groups_done
                    )
            except BaseException:
                # Not recorded: keep the outcomes for the next commit, or the next resume
                # point would pass rows that no checkpoint holds.
                self._batch[:0] = batch
                self._images[:0] = images
                self._groups_done[:0] = groups_done
                raise
            finally:
                self._landed[1].set()
                self._landed = (self._landed[0], anyio.Event())
            self._landed = (number, self._landed[1])
            self.dispatch_limit = max(self.dispatch_limit, limit)

    async def try_flush(self) -> bool:
        """Commit; False when it failed. Gives up (stops the run) when another run took the
        checkpoint over, or when commits kept failing past the patience."""
        try:
            await self.flush()
        except Exception as error:  # noqa: BLE001 - the batch is kept for the next try
            now_s = self._clock.now_s()
            if not self.failing:
                self.failing, self._failing_since_s = True, now_s
            self._failed += 1
            message = f"{type(error).__name__}: {error}"
            self._on_event("checkpoint_commit_failed", {"attempt": self._failed, "error": message})
            lasted_s = now_s - self._failing_since_s
            if isinstance(error, CheckpointBusyError) or (
                self._failed >= MAX_FAILED_COMMITS and lasted_s >= self._patience_s
            ):
                self._give_up(message)
            return False
        self._failed = 0
        self.failing = False
        return True

    async def allow_dispatch(
        self, end_offset: int, *, retry_s: float, stopped: Callable[[], bool]
    ) -> bool:
        """Record that rows before `end_offset` may be sent, before any of them is. False when
        the run stops first."""
        self._limit_wanted = max(self._limit_wanted, end_offset)
        while self.dispatch_limit < self._limit_wanted:
            if stopped():
                return False
            if not await self.try_flush():
                await self._clock.sleep(retry_s)
        return True
