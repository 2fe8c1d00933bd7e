"""The engine with --batch auto and working fakes (FakeCasesApi, MemoryCheckpointStore): rows with
the same patch go as BatchUpdateCase calls, per-case answers resolve, retry or stop, a refused
group is split, and recorded groups are sent again first with their tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from bulkupdate.checkpoint.store import JobIdentity
from bulkupdate.clock import MonotonicClock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.schema import Schema
from bulkupdate.models import Field, FieldOption, FieldType, RowStatus
from bulkupdate.run.batch.calls import group_call, recorded
from bulkupdate.run.engine import Engine, RunEnd, RunResult
from bulkupdate.run.settings import BatchSettings, EngineSettings
from tests.fakes.cases import FakeCasesApi
from tests.fakes.checkpoint import MemoryCheckpointStore
from tests.unit.test_engine import records

STATUS = Field(
    "status",
    "Status",
    FieldType.SINGLE_SELECT,
    "System",
    options=(FieldOption("Open", "open"), FieldOption("Closed", "closed")),
)
FIELDS = [Field("vip", "VIP", FieldType.BOOLEAN), Field("total", "Total", FieldType.NUMBER), STATUS]
JOB = JobIdentity("t", "in.csv", "fp", "csv")
INVALID = CallError(ErrorKind.ROW, "ValidationException", "bad request")


async def run_batched(
    api: FakeCasesApi,
    rows: Sequence[dict[str, Any]],
    *,
    store: MemoryCheckpointStore | None = None,
    size: int = 100,
    events: list[tuple[str, dict[str, Any]]] | None = None,
) -> tuple[MemoryCheckpointStore, RunResult]:
    if store is None:
        store = MemoryCheckpointStore()
    state = await store.open(JOB, restart=False)
    settings = EngineSettings(
        concurrency=4,
        rate_per_s=10_000,
        burst=100,
        max_attempts=3,
        grace_period_s=1,
        flush_interval_s=0.01,
        batch=BatchSettings(size, 10_000, 100),
    )
    engine = Engine(
        settings,
        api=api,
        store=store,
        clock=MonotonicClock(),
        columns=Schema(FIELDS, None).column_map(),
        records=iter(records(rows)),
        resume_point=state.resume_point,
        resolved_offsets=state.resolved_offsets,
        on_event=(lambda name, data: events.append((name, dict(data))))
        if events is not None
        else None,
    )
    with anyio.fail_after(10):
        result = await engine.run()
    return store, result


def cases(count: int) -> list[str]:
    return [f"C-{i}" for i in range(count)]


async def test_a_uniform_correction_goes_in_full_groups_with_status_top_level() -> None:
    api = FakeCasesApi(FIELDS, cases(250))
    rows = [{"case_id": c, "status": "closed", "vip": "yes"} for c in cases(250)]

    store, result = await run_batched(api, rows)

    assert result.end is RunEnd.FINISHED
    assert [len(call.case_ids) for call in api.batches] == [100, 100, 50]
    assert all(call.top_level == {"status": "closed"} for call in api.batches)
    assert all([f["id"] for f in call.fields] == ["vip"] for call in api.batches)
    assert api.cases["C-7"] == {"status": {"stringValue": "closed"}, "vip": {"booleanValue": True}}
    assert (await store.status()).totals[RowStatus.DONE] == 250
    assert await store.recorded_groups() == []
    assert (result.stats.batch_calls, result.stats.calls) == (3, 0)


async def test_a_case_is_never_in_two_calls_and_its_rows_apply_in_input_order() -> None:
    api = FakeCasesApi(FIELDS, cases(10))
    rows = [{"case_id": c, "total": str(n)} for n in range(3) for c in cases(10)]

    _, result = await run_batched(api, rows)

    assert result.end is RunEnd.FINISHED
    for call in api.batches:
        assert len(set(call.case_ids)) == len(call.case_ids)
    assert all(values["total"] == {"doubleValue": 2.0} for values in api.cases.values())
    order = [
        fields[0]["value"]["doubleValue"] for case_id, fields in api.applied if case_id == "C-3"
    ]
    assert order == [0.0, 1.0, 2.0]


async def test_per_case_answers_fail_retry_or_apply_only_their_own_row() -> None:
    api = FakeCasesApi(FIELDS, cases(6))
    api.case_script = {
        "C-1": ["THROTTLED", "THROTTLED"],
        "C-2": ["CONFLICT"],
        "C-3": ["VALIDATION_ERROR"],
    }
    rows = [{"case_id": c, "vip": "yes"} for c in [*cases(6), "missing"]]

    store, result = await run_batched(api, rows)

    assert result.end is RunEnd.FINISHED
    failed = {o.case_id: o.error_code async for o in store.failed_rows()}
    assert failed == {"C-3": "VALIDATION_ERROR", "missing": "CASE_NOT_FOUND"}
    assert all(api.cases[c] == {"vip": {"booleanValue": True}} for c in cases(6) if c != "C-3")
    assert result.stats.case_throttles >= 1
    assert result.stats.case_retries == 1
    assert result.stats.failed == 2  # throttles and conflicts are never failures


async def test_a_group_refused_as_a_whole_is_split_until_its_bad_row_goes_alone() -> None:
    api = FakeCasesApi(FIELDS, cases(8))
    api.batch_script = [INVALID]
    rows = [{"case_id": c, "vip": "yes"} for c in cases(8)]

    store, result = await run_batched(api, rows)

    assert result.end is RunEnd.FINISHED
    assert (await store.status()).totals[RowStatus.DONE] == 8
    assert result.stats.groups_split == 1
    assert sorted(len(call.case_ids) for call in api.batches) == [4, 4]


async def test_a_systemic_answer_for_a_case_stops_the_run_with_its_rows_pending() -> None:
    api = FakeCasesApi(FIELDS, cases(5))
    api.case_script = {"C-2": ["ACCESS_DENIED"]}
    rows = [{"case_id": c, "vip": "yes"} for c in cases(5)]

    _, result = await run_batched(api, rows)

    assert result.end is RunEnd.ABORTED
    assert result.abort is not None
    assert result.abort.code == "ACCESS_DENIED"


async def test_a_recorded_group_is_sent_again_first_with_its_token_and_applied_once() -> None:
    api = FakeCasesApi(FIELDS, cases(4))
    rows = [{"case_id": c, "vip": "yes"} for c in cases(4)]
    store = MemoryCheckpointStore()
    await store.open(JOB, restart=False)
    # A killed run recorded and sent a group of the first three rows, then died.
    prepared = [records(rows)[i] for i in range(3)]
    from bulkupdate.fields.rows import prepare

    members = [prepare(r, Schema(FIELDS, None).column_map()) for r in prepared]
    call = group_call(members, None)  # type: ignore[arg-type]
    await store.record_group(recorded("tok-1", call, members))  # type: ignore[arg-type]
    await call.send(api, "tok-1")
    await store.close()

    _, result = await run_batched(api, rows, store=store)

    assert result.end is RunEnd.FINISHED
    assert [c for c, _ in api.applied].count("C-0") == 1
    assert [c for c, _ in api.applied] == ["C-0", "C-1", "C-2", "C-3"]
    assert api.batches[1].replayed
    assert api.batches[1].client_token == "tok-1"
    assert await store.recorded_groups() == []
