"""--before-images in the run: before a row is sent, GetCase reads the fields it sets, paced by a
gate of its own at GetCase's quota. Fields already holding the row's value are left out; a row
with nothing left resolves with no UpdateCase. Each field sent is recorded in the checkpoint
before the send (its value before, the value going out) and again with the row's outcome.

Orchestration for the engine: sends no update; time and sleep come from the injected Clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bulkupdate.checkpoint.images import EMPTY, ImageChange
from bulkupdate.checkpoint.store import CheckpointStore
from bulkupdate.clock import Clock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.compare import holds
from bulkupdate.fields.rows import Row
from bulkupdate.fields.schema import ColumnMap, FieldUpdate
from bulkupdate.models import FieldType, Outcome, RowStatus, WireValue
from bulkupdate.report.stats import RunStats
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.commits import Commits
from bulkupdate.run.reads import PacedReads
from bulkupdate.run.settings import EngineSettings

__all__ = ["BeforeImages", "Pending", "Read"]

# (case id, field id) -> a value an earlier run sent whose answer no commit recorded.
Pending = Mapping[tuple[str, str], WireValue]


async def pending_images(store: CheckpointStore) -> dict[tuple[str, str], WireValue]:
    """The writes earlier runs sent whose answers no commit recorded (the run died first)."""
    return {
        (image.case_id, image.field_id): image.pending
        async for image in store.images()
        if image.pending is not None
    }


class Read(Enum):
    SEND = "send"  # row.fields now holds what is left to send; it is recorded as going out
    STOP = "stop"  # the run stops before the row could be read (or recorded): it stays pending


@dataclass(slots=True)
class _Reading:
    """A row between its first read and its outcome."""

    fields: list[FieldUpdate]  # everything the row sets, as the input said
    before: dict[str, WireValue]  # each field as the row's first read found it
    sent: set[str] = field(default_factory=set)  # fields recorded as going out


class BeforeImages:
    """Reads, compares and records the before-images of the rows one engine sends."""

    __slots__ = (
        "_columns",
        "_commits",
        "_flush_s",
        "_later",
        "_pending",
        "_readings",
        "_stats",
        "_types",
        "reader",
    )

    def __init__(
        self,
        settings: EngineSettings,
        *,
        api: CasesApi,
        clock: Clock,
        commits: Commits,
        stats: RunStats,
        columns: ColumnMap,
        pending: Pending,
        rng: random.Random,
        on_event: Callable[[str, Mapping[str, Any]], None],
        later: Callable[[str], Sequence[object]] = lambda case_id: (),
    ) -> None:
        self._later = later  # the case's rows read and waiting behind the one at hand
        self._commits = commits
        self._stats = stats
        self.reader = PacedReads(
            api,
            clock,
            rate_per_s=settings.read_rate_per_s,
            burst=settings.read_burst,
            headroom=settings.headroom,
            max_attempts=settings.max_attempts,
            rng=rng,
            on_event=on_event,
        )
        self._columns = columns
        self._types: dict[str, FieldType] = {}  # field id -> type, as columns are bound
        self._pending = dict(pending)
        self._flush_s = settings.flush_interval_s
        self._readings: dict[int, _Reading] = {}

    async def prepare(self, row: Row, stopped: Callable[[], bool]) -> Read | Outcome | CallError:
        """Read the row's fields. SEND with row.fields cut to what differs (recorded as going
        out before this returns); the row's Outcome when nothing differs or the read failed it;
        a systemic CallError (the run stops); or STOP."""
        reading = self._readings.get(row.offset)
        fields = reading.fields if reading is not None else list(row.fields)
        current = await self.reader.read(row.case_id, [u["id"] for u in fields], stopped)
        self._stats.reads, self._stats.read_throttles = self.reader.reads, self.reader.throttles
        if current is None:
            return Read.STOP
        if isinstance(current, CallError):
            return self._read_failed(row, current)
        if reading is None:
            before = {u["id"]: current.get(u["id"]) or EMPTY for u in fields}
            reading = self._readings[row.offset] = _Reading(fields, before)
        case_id = row.case_id
        final = self._final_values(case_id, current)
        left = [u for u in fields if u["id"] not in final and not self._holds(u, current)]
        # A field holding what this row (or a run before this one) sent: that write landed.
        landed = [
            ImageChange(case_id, u["id"], reading.before[u["id"]], u["value"], applied=True)
            for u in fields
            if self._holds(u, current) and self._sent(reading, case_id, u)
        ]
        going = [
            ImageChange(case_id, u["id"], reading.before[u["id"]], u["value"], applied=False)
            for u in left
        ]
        for change in landed:
            self._pending.pop((case_id, change.field_id), None)
        if not left:
            self._commits.add_images(landed)
            del self._readings[row.offset]
            if row.attempts:
                self._stats.applied += 1  # a call of this run that seemed lost had landed
            return row.outcome(RowStatus.DONE)
        if not await self._commits.write_ahead([*landed, *going], self._flush_s, stopped):
            return Read.STOP
        reading.sent.update(u["id"] for u in left)
        row.fields = left
        return Read.SEND

    def accepted(self, row: Row) -> None:
        """The row's call was accepted: its fields' images get the values written, in the same
        commit as its outcome (call before resolving it)."""
        reading = self._readings.pop(row.offset, None)
        if reading is None:
            return
        self._commits.add_images(
            [
                ImageChange(row.case_id, u["id"], reading.before[u["id"]], u["value"], True)
                for u in row.fields
            ]
        )

    def progress(self) -> dict[str, Any]:
        return {"read_rate_per_s": round(self.reader.gate.rate_per_s, 3)}

    def forget(self, offset: int) -> None:
        """The row resolved otherwise (failed): nothing more to record for it."""
        self._readings.pop(offset, None)

    def _holds(self, update: FieldUpdate, current: Mapping[str, WireValue]) -> bool:
        return holds(self._type(update["id"]), current.get(update["id"]), update["value"])

    def _final_values(self, case_id: str, current: Mapping[str, WireValue]) -> set[str]:
        """Fields that a later row of the case, already read, sets to what the case holds: left
        out of this row too, or a re-run would change them only to change them back."""
        last: dict[str, FieldUpdate] = {}
        for waiting in self._later(case_id):
            if isinstance(waiting, Row):
                last.update((u["id"], u) for u in waiting.fields)
        return {field_id for field_id, u in last.items() if self._holds(u, current)}

    def _sent(self, reading: _Reading, case_id: str, update: FieldUpdate) -> bool:
        if update["id"] in reading.sent:
            return True
        earlier = self._pending.get((case_id, update["id"]))
        return earlier is not None and holds(self._type(update["id"]), earlier, update["value"])

    def _type(self, field_id: str) -> FieldType | None:
        """The field's type (DateTimes compare as instants); None for one not bound yet."""
        found = self._types.get(field_id)
        if found is None:
            for bound in self._columns.fields.values():
                self._types[bound.field_id] = bound.type
            found = self._types.get(field_id)
        return found

    def _read_failed(self, row: Row, error: CallError) -> Outcome | CallError:
        self._readings.pop(row.offset, None)
        if error.kind is ErrorKind.SYSTEMIC:
            return error
        code = "retries_exhausted" if error.kind is ErrorKind.TRANSIENT else error.code
        return row.outcome(RowStatus.FAILED, code, f"GetCase: {error.code}: {error.message}")
