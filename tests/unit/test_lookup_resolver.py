"""The lookup stage over the fake Cases API: rows handed on in input order with their cases,
throttled searches retried under the gate, refused ones failing their keys' rows, a denied one
stopping the run, and what it found recorded for a resume."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from bulkupdate.clock import MonotonicClock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.rows import Row
from bulkupdate.input.sources import Record
from bulkupdate.lookup.keys import MatchField
from bulkupdate.lookup.plan import LookupPlan
from bulkupdate.lookup.resolver import Chunk, Resolver
from bulkupdate.models import Field, FieldType, KeyResolution, Outcome
from bulkupdate.pacing.gate import RateGate
from tests.fakes.cases import FakeCasesApi

LEGACY = Field("legacy_id", "Legacy id", FieldType.TEXT)


class Recorder:
    def __init__(self) -> None:
        self.recorded: list[KeyResolution] = []

    async def record_keys(self, resolutions: Sequence[KeyResolution]) -> None:
        self.recorded.extend(resolutions)


def api_with(owners: dict[str, str]) -> FakeCasesApi:
    """Cases named by their key's owner: case id -> legacy id."""
    api = FakeCasesApi([LEGACY], list(owners))
    for case_id, key in owners.items():
        api.cases[case_id]["legacy_id"] = {"stringValue": key}
    return api


def chunk_of(keys: Sequence[str]) -> Chunk:
    chunk: Chunk = []
    for line, key in enumerate(keys, start=2):
        raw = f"{key}\n".encode()
        record = Record(line, line * 10, line * 10 + len(raw), raw, {"k": key})
        chunk.append(
            (record, Row(record.offset, line, key, [{"id": "x", "value": {}}], record.raw))
        )
    return chunk


async def resolve(
    api: FakeCasesApi, keys: Sequence[str], recorder: Recorder | None = None
) -> tuple[list[Row | Outcome], list[tuple[str, str]]]:
    clock = MonotonicClock()
    stage = Resolver(
        search=api,
        match=MatchField(LEGACY),
        plan=LookupPlan("legacy_id"),
        gate=RateGate(1000.0, 100, clock),
        clock=clock,
        recorder=recorder,
    )
    chunks = [chunk_of(keys), []]
    failed: list[tuple[str, str]] = []
    stopped = False

    async def read() -> Chunk:
        return chunks.pop(0)

    def fail(code: str, message: str) -> None:
        nonlocal stopped
        failed.append((code, message))
        stopped = True
        scope.cancel()

    stage.attach(read, stopped=lambda: stopped, fail=fail)
    items: list[Row | Outcome] = []
    with anyio.CancelScope() as scope, anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(stage.run)
            while part := await stage.next_chunk():
                items += [item for _, item in part]
            group.cancel_scope.cancel()
    return items, failed


async def test_rows_come_back_in_order_with_their_cases_and_bad_keys_failed() -> None:
    api = api_with({"c1": "A", "c2": "B", "c3": "D", "c4": "D"})
    recorder = Recorder()

    items, failed = await resolve(api, ["A", "B", "C", "D", "A"], recorder)

    assert failed == []
    shown = [(i.case_id, "row") if isinstance(i, Row) else (i.case_id, i.error_code) for i in items]
    assert shown == [
        ("c1", "row"),
        ("c2", "row"),
        ("C", "case_not_found_by_key"),
        ("D", "ambiguous_key"),
        ("c1", "row"),
    ]
    assert [i.key for i in items if isinstance(i, Row)] == ["A", "B", "A"]
    assert len(api.searches) == 1
    assert sorted((r.key, r.case_ids) for r in recorder.recorded) == [
        ("A", ("c1",)),
        ("B", ("c2",)),
        ("C", ()),
        ("D", ("c3", "c4")),
    ]


async def test_a_throttled_search_goes_again_and_a_refused_one_fails_its_keys_rows() -> None:
    api = api_with({"c1": "A"})
    throttled = CallError(ErrorKind.THROTTLED, "ThrottlingException", "slow down")
    refused = CallError(ErrorKind.ROW, "ValidationException", "bad filter")
    api.search_script = [throttled, refused]

    items, failed = await resolve(api, ["A"])

    assert failed == []
    assert [
        (i.error_code, "ValidationException" in (i.error_message or ""))
        for i in items
        if isinstance(i, Outcome)
    ] == [("key_search_failed", True)]
    assert len(api.searches) == 2


async def test_a_denied_search_stops_the_run() -> None:
    api = api_with({"c1": "A"})
    api.search_script = [CallError(ErrorKind.SYSTEMIC, "AccessDeniedException", "no")]

    items, failed = await resolve(api, ["A"])

    assert items == []
    assert failed == [("AccessDeniedException", "SearchCases: no")]
