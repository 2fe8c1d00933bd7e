"""The lookup stage: reads chunks ahead of the writers, searches their keys (SearchCases, paced
by its own adaptive gate) and hands the chunks on in input order with each row's case found,
or the row failed: `case_not_found_by_key`, `ambiguous_key` (naming the cases; none is
touched), `key_search_failed`. What it finds goes to the checkpoint as it is found.

Sleeps only through the injected Clock; the decisions live in `plan`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from bulkupdate.clock import Clock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.coerce import ValueRejected
from bulkupdate.fields.rows import Row, rejected
from bulkupdate.input.sources import Record
from bulkupdate.lookup.keys import MatchField
from bulkupdate.lookup.plan import BATCH_KEYS, LookupPlan
from bulkupdate.models import CasePage, FoundCase, KeyResolution, Outcome, WireValue
from bulkupdate.pacing.gate import SLOT_CHECK_S, RateGate
from bulkupdate.pacing.retry import GiveUp, RetryPolicy

Item = Any  # Row | Outcome | the reader's Skip markers, passed through untouched
Chunk = list[tuple[Record, Item]]
PAGE_SIZE = 100  # SearchCases' largest page
SHOWN_CASES = 10  # case ids an ambiguous key's message names, at most
AHEAD_CHUNKS = 8  # chunks read ahead of the writers (8 x 256 records)
SEARCHES_IN_FLIGHT = 4


class CaseSearch(Protocol):
    async def search_cases(
        self,
        field_id: str,
        values: Sequence[WireValue],
        *,
        next_token: str | None = None,
        max_results: int = 100,
    ) -> CasePage: ...


class KeyRecorder(Protocol):
    async def record_keys(self, resolutions: Sequence[KeyResolution]) -> None: ...


@dataclass(slots=True)
class LookupStats:
    searches: int = 0  # SearchCases calls, pages included
    search_throttles: int = 0
    keys_found: int = 0
    keys_not_found: int = 0
    keys_ambiguous: int = 0
    keys_known: int = 0  # settled by an earlier run: not searched again

    def counters(self) -> dict[str, int]:
        return {
            "searches": self.searches,
            "search_throttles": self.search_throttles,
            "keys_found": self.keys_found,
            "keys_not_found": self.keys_not_found,
            "keys_ambiguous": self.keys_ambiguous,
        }

    def count(self, resolutions: Sequence[KeyResolution]) -> None:
        for resolution in resolutions:
            found = len(resolution.case_ids)
            if found == 1:
                self.keys_found += 1
            elif found:
                self.keys_ambiguous += 1
            else:
                self.keys_not_found += 1


@dataclass(slots=True)
class _Held:
    """A chunk read ahead: each row's key (None: no search needed), and how much of it has
    been handed on."""

    chunk: Chunk
    keys: list[str | None]
    handed: int = 0

    def ready(self, plan: LookupPlan) -> int:
        """Where the records whose keys are all settled end, from the first not handed on."""
        end, keys = self.handed, self.keys
        while end < len(keys):
            key = keys[end]
            if key is not None and not plan.final(key):
                break
            end += 1
        return end


class Resolver:
    """Between the reader and the lanes. `run` (a task for the whole run) reads and searches;
    the engine takes the chunks from `next_chunk`."""

    def __init__(
        self,
        *,
        search: CaseSearch,
        match: MatchField,
        plan: LookupPlan,
        gate: RateGate,
        clock: Clock,
        recorder: KeyRecorder | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self._search = search
        self._match = match
        self.plan = plan
        self.gate = gate
        self._clock = clock
        self._recorder = recorder
        self._policy = policy or RetryPolicy()
        self._random = rng or random.Random()
        self._on_event = on_event or (lambda event, data: None)
        self.stats = LookupStats(keys_known=len(plan.known))
        self._ahead: deque[_Held] = deque()
        self._eof = False
        self._consumer_waiting = False
        self._changed = anyio.Event()
        self._unsaved: list[KeyResolution] = []
        self._read: Callable[[], Awaitable[Chunk]] | None = None
        self._fail: Callable[[str, str], None] = lambda code, message: None
        self._stopped: Callable[[], bool] = lambda: False

    def attach(
        self,
        read: Callable[[], Awaitable[Chunk]],
        *,
        stopped: Callable[[], bool],
        fail: Callable[[str, str], None],
    ) -> None:
        """Where chunks come from, whether the run is stopping, and how to stop it."""
        self._read, self._stopped, self._fail = read, stopped, fail

    def route(self, raw: str) -> str:
        """What shards route a row by: its key's canonical text, so every spelling of a key
        ("42", "42.0") goes to one shard. Pure; called off the event loop."""
        try:
            return self._match.key(raw).text
        except ValueRejected:
            return raw

    # -- the engine's side -----------------------------------------------------------------

    async def next_chunk(self) -> Chunk:
        """The next records in input order, each row's case found: as many as are settled
        (a chunk read ahead is handed on in parts, so the writers start on its first rows
        while its last keys are still searched); [] at the end."""
        while True:
            if self._ahead:
                head = self._ahead[0]
                end = head.ready(self.plan)
                if end == len(head.chunk):
                    self._ahead.popleft()
                    self._wake()  # room to read ahead
                if end > head.handed:
                    start, head.handed = head.handed, end
                    return self._settled(head, start, end)
            elif self._eof:
                return []
            self._consumer_waiting = True
            self._wake()  # a partial batch may go now
            await self._wait()
            self._consumer_waiting = False

    def _settled(self, held: _Held, start: int, end: int) -> Chunk:
        part = held.chunk[start:end]
        for index, key in enumerate(held.keys[start:end]):
            if key is not None:
                record, row = part[index]
                part[index] = (record, self._decided(record, row, key))
        return part

    def _decided(self, record: Record, row: Row, key: str) -> Row | Outcome:
        plan, field_id = self.plan, self._match.field_id
        shown = f"line {row.line}: {field_id} = {row.case_id!r}"
        error = plan.errors.get(key)
        if error is not None:
            return rejected(record, row.case_id, "key_search_failed", f"{shown}: {error}")
        case_ids = plan.known[key]
        if len(case_ids) == 1:
            row.key, row.case_id = row.case_id, case_ids[0]
            return row
        if not case_ids:
            message = f"{shown} matches no case"
            return rejected(record, row.case_id, "case_not_found_by_key", message)
        named = ", ".join(case_ids[:SHOWN_CASES])
        if len(case_ids) > SHOWN_CASES:
            named += f" and {len(case_ids) - SHOWN_CASES} more"
        message = f"{shown} matches {len(case_ids)} cases ({named}); none was updated"
        return rejected(record, row.case_id, "ambiguous_key", message)

    # -- reading ahead ---------------------------------------------------------------------

    async def run(self) -> None:
        """Read ahead and search until the input is read and every key settled, or the run
        stops (the engine cancels this task at its end)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._read_ahead)
            for _ in range(SEARCHES_IN_FLIGHT):
                group.start_soon(self._searcher)

    async def _read_ahead(self) -> None:
        assert self._read is not None, "attach() first"
        while not self._stopped():
            if len(self._ahead) >= AHEAD_CHUNKS:
                await self._wait()
                continue
            chunk = await self._read()
            if not chunk:
                break
            self._ahead.append(self._held(chunk))
            self._wake()
        self._eof = True
        self._wake()

    def _held(self, chunk: Chunk) -> _Held:
        plan, match = self.plan, self._match
        held = _Held(chunk, [None] * len(chunk))
        for index, (record, item) in enumerate(chunk):
            if not isinstance(item, Row):
                continue
            try:
                key = match.key(item.case_id)
            except ValueRejected as error:
                message = f"line {item.line}: {match.field_id} key: {error.message}"
                chunk[index] = (record, rejected(record, item.case_id, error.reason_code, message))
                continue
            held.keys[index] = key.text
            plan.want(key.text, key.value)
        return held

    # -- searching ---------------------------------------------------------------------------

    async def _searcher(self) -> None:
        plan, clock = self.plan, self._clock
        while not self._stopped():
            partial = self._eof or self._consumer_waiting or len(self._ahead) >= AHEAD_CHUNKS
            batch = plan.next_batch(clock.now_s(), partial=partial)
            if not batch:
                due_s = plan.next_due_s()
                if due_s is None:
                    await self._wait()
                else:
                    await clock.sleep(max(0.0, min(due_s - clock.now_s(), SLOT_CHECK_S)))
                continue
            keys = [key for key, _ in batch]
            cases = await self._fetch(keys, [value for _, value in batch])
            if cases is None:
                plan.again(keys)
                continue
            settled = plan.found(keys, cases, clock.now_s())
            self.stats.count(settled)
            self._settle(keys)
            await self._record(settled)

    async def _fetch(self, keys: list[str], values: list[WireValue]) -> list[FoundCase] | None:
        """Every case of the keys, all pages; None when the run stops first (or must)."""
        found: list[FoundCase] = []
        token: str | None = None
        failures = 0
        while True:
            sent_s = await self.gate.pass_(self._stopped)
            if sent_s is None:
                return None
            self.stats.searches += 1
            try:
                page = await self._search.search_cases(
                    self._match.field_id, values, next_token=token, max_results=PAGE_SIZE
                )
            except CallError as error:
                failures += 1
                delay_s = self._after(keys, error, sent_s, failures)
                if delay_s is None:
                    return None  # stopping, or refused for good (its keys failed)
                await self._clock.sleep(delay_s)
                continue
            self.gate.accepted(sent_s)
            found.extend(page.cases)
            token = page.next_token
            if not token:
                return found

    def _after(
        self, keys: list[str], error: CallError, sent_s: float, failures: int
    ) -> float | None:
        """The delay before the search goes again; None when it does not (refused for good:
        its keys fail; systemic: the run stops)."""
        if error.kind is ErrorKind.THROTTLED:
            self.stats.search_throttles += 1
            self.gate.throttled(sent_s)
        if error.kind is ErrorKind.SYSTEMIC:
            self._fail(error.code, f"SearchCases: {error.message}")
            return None
        decision = self._policy.decide(
            error.kind, failures, error.retry_after_s, self._random.random()
        )
        if isinstance(decision, GiveUp):
            self.plan.refused(keys, f"SearchCases {error.code}: {error.message}")
            self._settle(keys)
            return None
        return decision.delay_s

    def _settle(self, keys: Sequence[str]) -> None:
        if any(self.plan.final(key) for key in keys):
            self._wake()

    async def _record(self, settled: list[KeyResolution]) -> None:
        """Into the checkpoint, so a resumed run does not search them again. A write that
        fails is tried again with the next: losing it costs only a search."""
        if self._recorder is None or not (settled or self._unsaved):
            return
        batch, self._unsaved = [*self._unsaved, *settled], []
        try:
            await self._recorder.record_keys(batch)
        except Exception as error:  # noqa: BLE001 - a resumed run searches them again
            self._unsaved = batch
            self._on_event("keys_not_recorded", {"keys": len(batch), "error": str(error)})

    # -- waking ----------------------------------------------------------------------------

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait(self) -> None:
        await self._changed.wait()


async def cases_of_keys(
    search: CaseSearch, match: MatchField, raw_keys: Sequence[str]
) -> list[str]:
    """The cases of the first (up to 10) distinct keys, in one search: start-up reads that need
    some of the job's case ids (DateTime detection) before the resolver runs."""
    keys: dict[str, WireValue] = {}
    for raw in raw_keys:
        try:
            key = match.key(raw)
        except ValueRejected:
            continue
        keys.setdefault(key.text, key.value)
        if len(keys) == BATCH_KEYS:
            break
    if not keys:
        return []
    page = await search.search_cases(match.field_id, list(keys.values()), max_results=PAGE_SIZE)
    return [case.case_id for case in page.cases]
