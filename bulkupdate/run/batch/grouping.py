"""The group planner: rows waiting for a call, bucketed by patch, handed out as groups of up to
`size` cases (full, or once the oldest has waited the window) or as lone rows for UpdateCase.

Pure: no I/O, no asyncio; the caller passes the time. Holds at most one row per case.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from bulkupdate.fields.rows import Row
from bulkupdate.fields.schema import FieldUpdate

# A lone row waits for company at most this long, and never longer than one UpdateCase slot
# (1/--rate): at a fast rate a row that finds no company goes at once.
MAX_WINDOW_S = 0.5
MIN_WINDOW_S = 0.005  # at over 200 UpdateCase calls/s: rows read together still find company

PatchKey = tuple[tuple[str, str], ...]

# System fields BatchUpdateCase takes top-level, never in `fields`: field id -> request member.
TOP_LEVEL = {"status": "status", "title": "title", "customer_id": "customerId"}


def patch_key(fields: Sequence[FieldUpdate]) -> PatchKey | None:
    """What a row sets, as a key equal for equal patches (field order aside); None when the row
    cannot go in a BatchUpdateCase: it clears or sets a top-level field with no string."""
    for update in fields:
        if update["id"] in TOP_LEVEL and not isinstance(update["value"].get("stringValue"), str):
            return None
    return tuple(
        sorted(
            (u["id"], json.dumps(u["value"], sort_keys=True, separators=(",", ":"))) for u in fields
        )
    )


def window_s(update_rate_per_s: float) -> float:
    """How long a lone row waits for company before it goes as UpdateCase: none below
    MIN_WINDOW_S, where a timer per row would cost more than the wait could win."""
    window = min(MAX_WINDOW_S, 1.0 / update_rate_per_s)
    return 0.0 if window < MIN_WINDOW_S else window


@dataclass(slots=True)
class _Waiting:
    row: Row
    since_s: float
    key: PatchKey


class Planner:
    """Rows ready to go (each the head of its case's lane), by patch, oldest first.

    Indexed so that each call costs about the rows it hands out, not the rows waiting: the
    buckets with company (`_pairs`) and the rows alone in theirs (`_alone`) are kept apart.
    """

    __slots__ = ("_alone", "_buckets", "_full", "_order", "_pairs", "_solo", "size", "window_s")

    def __init__(self, size: int, window_s: float) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.window_s = window_s
        self._buckets: dict[PatchKey, deque[_Waiting]] = {}
        self._order: dict[str, _Waiting] = {}  # case -> its row waiting in a bucket
        self._full: dict[PatchKey, None] = {}  # buckets holding `size` rows or more, in order
        self._pairs: dict[PatchKey, None] = {}  # buckets holding two rows or more
        # Rows alone in their bucket, by arrival (one left over by a group goes to the end).
        self._alone: dict[str, _Waiting] = {}
        self._solo: dict[str, Row] = {}  # rows that cannot be batched: they go at once

    def __len__(self) -> int:
        return len(self._order) + len(self._solo)

    def __contains__(self, case_id: str) -> bool:
        return case_id in self._order or case_id in self._solo

    def add(self, row: Row, now_s: float, *, alone: bool = False) -> None:
        """A row whose case has nothing in flight; `alone`: it goes as UpdateCase at once.
        Raises ValueError if its case has a row waiting already."""
        if row.case_id in self:
            raise ValueError(f"case {row.case_id!r} already has a row waiting")
        key = None if alone or self.size == 1 else patch_key(row.fields)
        if key is None:
            self._solo[row.case_id] = row
            return
        waiting = _Waiting(row, now_s, key)
        self._order[row.case_id] = waiting
        bucket = self._buckets.setdefault(key, deque())
        bucket.append(waiting)
        if len(bucket) == 1:
            self._alone[row.case_id] = waiting
        elif len(bucket) == 2:
            del self._alone[bucket[0].row.case_id]
            self._pairs[key] = None
        if len(bucket) >= self.size:
            self._full[key] = None

    def take_group(self, now_s: float) -> list[Row] | None:
        """Up to `size` rows of one patch (two or more), oldest first: a full bucket, else the
        one whose oldest row has waited the window longest. None when no group is due."""
        key = next(iter(self._full), None)
        if key is None:
            due = [
                (self._buckets[key][0].since_s, key)
                for key in self._pairs
                if self._buckets[key][0].since_s + self.window_s <= now_s
            ]
            if not due:
                return None
            key = min(due)[1]
        bucket = self._buckets[key]
        taken = [bucket.popleft() for _ in range(min(self.size, len(bucket)))]
        for waiting in taken:
            del self._order[waiting.row.case_id]
        self._settle_bucket(key)
        return [waiting.row for waiting in taken]

    def take_single(self, now_s: float) -> Row | None:
        """The oldest row that goes alone: one that cannot be batched, or alone in its bucket
        once it has waited the window. None when there is none yet."""
        if self._solo:
            return self._solo.pop(next(iter(self._solo)))
        for case_id, waiting in self._alone.items():
            if waiting.since_s + self.window_s > now_s:
                return None  # by arrival: the rows after it are younger (or as good as)
            del self._alone[case_id]
            del self._buckets[waiting.key]
            del self._order[case_id]
            return waiting.row
        return None

    def single_due_s(self) -> float | None:
        """When `take_single` may next hand out a row; None while no row is alone."""
        if self._solo:
            return -math.inf
        first = next(iter(self._alone.values()), None)
        return None if first is None else first.since_s + self.window_s

    def group_due_s(self) -> float | None:
        """When `take_group` may next hand out a group; None while no patch has two rows."""
        if self._full:
            return -math.inf
        starts = [self._buckets[key][0].since_s for key in self._pairs]
        return min(starts) + self.window_s if starts else None

    def drain(self) -> list[Row]:
        """Every waiting row (the run is stopping: they stay pending)."""
        rows = [*self._solo.values(), *(waiting.row for waiting in self._order.values())]
        for index in (self._solo, self._order, self._buckets, self._full, self._pairs):
            index.clear()
        self._alone.clear()
        return rows

    def _settle_bucket(self, key: PatchKey) -> None:
        """Re-index a bucket a group was taken from."""
        bucket = self._buckets[key]
        if len(bucket) < self.size:
            self._full.pop(key, None)
        if len(bucket) < 2:
            self._pairs.pop(key, None)
        if len(bucket) == 1:
            self._alone[bucket[0].row.case_id] = bucket[0]
        elif not bucket:
            del self._buckets[key]


class CallCount:
    """How many calls rows would take grouped (BatchUpdateCase + UpdateCase) and ungrouped, for
    the dry run. Counts patches by a hash of their key; ignores that a case listed twice waits
    for itself (a slight undercount for jobs that repeat cases)."""

    __slots__ = ("_patches", "rows", "size", "solo")

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows = 0
        self.solo = 0  # rows that cannot be batched
        self._patches: dict[int, int] = {}

    def add(self, fields: Sequence[FieldUpdate]) -> None:
        self.rows += 1
        key = patch_key(fields) if self.size > 1 else None
        if key is None:
            self.solo += 1
        else:
            digest = hash(key)
            self._patches[digest] = self._patches.get(digest, 0) + 1

    def grouped(self) -> tuple[int, int]:
        """(BatchUpdateCase calls, UpdateCase calls): a patch of one row goes as UpdateCase."""
        alone = sum(1 for rows in self._patches.values() if rows == 1)
        batches = sum(-(-rows // self.size) for rows in self._patches.values() if rows > 1)
        return batches, alone + self.solo
