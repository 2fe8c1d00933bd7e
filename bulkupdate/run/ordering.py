"""Per-case ordering and the resume frontier: which rows may run now, and from where a later
run must read so that nothing unresolved is skipped.

Pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from bulkupdate.models import ResumePoint

Item = TypeVar("Item")


class CaseLanes(Generic[Item]):
    """At most one row per case in flight; the case's later rows wait in input order.

    Different cases never wait for each other, so one slow case cannot stall the run.
    """

    __slots__ = ("_lanes", "waiting")

    def __init__(self) -> None:
        # case -> rows waiting behind the one in flight; a key present means "case busy".
        self._lanes: dict[Hashable, deque[Item]] = {}
        self.waiting = 0

    def admit(self, case_id: Hashable, item: Item) -> bool:
        """True if `item` may start now; otherwise it is parked behind its case's current row."""
        lane = self._lanes.get(case_id)
        if lane is None:
            self._lanes[case_id] = deque()
            return True
        lane.append(item)
        self.waiting += 1
        return False

    def release(self, case_id: Hashable) -> Item | None:
        """The case's row in flight is resolved: hand back its next row (now in flight), if any."""
        lane = self._lanes[case_id]
        if lane:
            self.waiting -= 1
            return lane.popleft()
        del self._lanes[case_id]
        return None

    def waiting_behind(self, case_id: Hashable) -> tuple[Item, ...]:
        """The case's rows parked behind its row in flight, in input order."""
        return tuple(self._lanes.get(case_id, ()))

    def drain(self) -> list[Item]:
        """Remove and return every parked row (when stopping: they stay pending for next run)."""
        parked = [item for lane in self._lanes.values() for item in lane]
        self._lanes.clear()
        self.waiting = 0
        return parked


class Frontier:
    """Lowest unresolved record: every record before the resume point is resolved.

    Records are read in increasing offset order, so a deque plus a set of resolved offsets
    gives O(1) amortised updates whatever order rows resolve in.
    """

    __slots__ = ("_head", "_resolved", "_unresolved")

    def __init__(self, start: ResumePoint) -> None:
        self._unresolved: deque[tuple[int, int]] = deque()  # (offset, line), read order
        self._resolved: set[int] = set()
        self._head = start  # just after the last record read

    def read(self, offset: int, line: int, end: ResumePoint) -> None:
        self._unresolved.append((offset, line))
        self._head = end

    def skip(self, end: ResumePoint) -> None:
        """A record resolved by an earlier run was passed over: the head moves on."""
        self._head = end

    def resolve(self, offset: int) -> None:
        self._resolved.add(offset)
        unresolved, resolved = self._unresolved, self._resolved
        while unresolved and unresolved[0][0] in resolved:
            resolved.discard(unresolved.popleft()[0])

    def resolved_above(self) -> frozenset[int]:
        """Offsets resolved beyond the resume point (read after a record still unresolved)."""
        return frozenset(self._resolved)

    @property
    def pending(self) -> int:
        return len(self._unresolved) - len(self._resolved)

    def resume_point(self) -> ResumePoint:
        if self._unresolved:
            offset, line = self._unresolved[0]
            return ResumePoint(offset, line)
        return self._head
