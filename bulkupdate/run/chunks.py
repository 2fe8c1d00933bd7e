"""Records to rows, a chunk at a time, off the event loop: each record parsed and coerced into a
row to send or a local outcome, or passed over (resolved by an earlier run, another shard's
case), so the loop only does the bookkeeping.

Runs in a worker thread: touches nothing the event loop owns, sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import Enum

from bulkupdate.fields.rows import Row, case_id_of, prepare
from bulkupdate.fields.schema import ColumnMap
from bulkupdate.input.sources import Record
from bulkupdate.models import Outcome, RowStatus, Shard

READ_CHUNK = 256  # records parsed per trip to the reader thread


class Skip(Enum):
    """Why a chunk passes over a record instead of handing it on as a row."""

    RESOLVED_BEFORE = "resolved by an earlier run"
    OTHER_SHARD = "a case another shard applies"


Chunk = list[tuple[Record, Row | Outcome | Skip]]


class Chunks:
    """The input as chunks of at most READ_CHUNK prepared records; an empty chunk at its end."""

    __slots__ = (
        "_columns",
        "_records",
        "_route",
        "_shard",
        "_skip_before",
        "_stopped",
        "resolved_before",
    )

    def __init__(
        self,
        records: Iterator[Record],
        columns: ColumnMap,
        *,
        skip_before: int,
        resolved_before: frozenset[int],
        shard: Shard | None,
        stopped: Callable[[], bool],
        route: Callable[[str], str] | None = None,
    ) -> None:
        self._records = records
        self._route = route  # the case id column's text -> what shards route by (a match key)
        self._columns = columns
        self._skip_before = skip_before  # a re-read stream's records before the resume point
        self.resolved_before = resolved_before  # by earlier runs, beyond the resume point
        self._shard = shard
        self._stopped = stopped

    def next(self) -> Chunk:
        chunk: Chunk = []
        resolved_before, columns = self.resolved_before, self._columns
        skip_before, shard = self._skip_before, self._shard
        for record in self._records:
            if self._stopped():
                break
            if record.offset < skip_before:
                continue  # before the resume point of a re-read stream: resolved earlier
            if record.offset in resolved_before:
                chunk.append((record, Skip.RESOLVED_BEFORE))
                continue
            if shard is not None:  # decided before coercion: each shard coerces its rows only
                case_id = case_id_of(record.values, columns.case_id_column)
                if case_id and self._route is not None:
                    case_id = self._route(case_id)
                if not (shard.owns(case_id) if case_id else shard.owns_caseless()):
                    chunk.append((record, Skip.OTHER_SHARD))
                    continue
            item = prepare(record, columns)
            if isinstance(item, Row) and not item.fields:
                item = item.outcome(RowStatus.DONE)  # every cell blank: nothing to change
            chunk.append((record, item))
            if len(chunk) >= READ_CHUNK:
                break
        return chunk
