"""The engine with working fakes (FakeCasesApi, MemoryCheckpointStore): retries, ordering of
local outcomes, systemic abort and late stop requests. No sockets, no real service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio

from bulkupdate.checkpoint.store import JobIdentity
from bulkupdate.clock import MonotonicClock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.schema import Schema
from bulkupdate.input.framing import Record
from bulkupdate.models import Field, FieldType, Outcome, ResumePoint, RowStatus
from bulkupdate.run.engine import Engine, EngineSettings, RunEnd, RunResult
from tests.fakes.cases import FakeCasesApi
from tests.fakes.checkpoint import MemoryCheckpointStore

FIELDS = [Field("vip", "VIP", FieldType.BOOLEAN), Field("total", "Total", FieldType.NUMBER)]
THROTTLED = CallError(ErrorKind.THROTTLED, "ThrottlingException", "Rate exceeded")
SERVER_ERROR = CallError(ErrorKind.TRANSIENT, "InternalServerException", "oops", retry_after_s=0)
DENIED = CallError(ErrorKind.SYSTEMIC, "AccessDeniedException", "no")


def records(rows: Sequence[dict[str, Any]]) -> list[Record]:
    return [
        Record(line=i + 2, offset=i * 10, end_offset=i * 10 + 10, raw=b"x\n", values=dict(r))
        for i, r in enumerate(rows)
    ]


class RecordingStore(MemoryCheckpointStore):
    """Keeps every committed batch, in commit order."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Outcome]] = []

    async def commit(self, outcomes: Sequence[Outcome], *args: Any, **kwargs: Any) -> None:
        self.batches.append(list(outcomes))
        await super().commit(outcomes, *args, **kwargs)


class SlowFake(FakeCasesApi):
    """Each update takes `delay_s` of real time, so calls overlap."""

    def __init__(self, *args: Any, delay_s: float = 0.02, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    async def update_case(self, *args: Any, **kwargs: Any) -> None:
        await anyio.sleep(self.delay_s)
        await super().update_case(*args, **kwargs)


async def run_engine(
    api: FakeCasesApi, rows: Sequence[dict[str, Any]], *, max_attempts: int = 8, **extra: Any
) -> tuple[Engine, RecordingStore, Any]:
    store = RecordingStore()
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    settings = EngineSettings(
        concurrency=4,
        rate_per_s=10_000,
        burst=100,
        max_attempts=max_attempts,
        grace_period_s=1,
        flush_interval_s=0.01,
        **extra,
    )
    engine = Engine(
        settings,
        api=api,
        store=store,
        clock=MonotonicClock(),
        columns=Schema(FIELDS, None).column_map(),
        records=iter(records(rows)),
        resume_point=ResumePoint(0, 2),
    )
    with anyio.fail_after(10):
        result = await engine.run()
    return engine, store, result


async def test_throttles_never_use_up_the_attempts_for_server_errors() -> None:
    api = FakeCasesApi(FIELDS, ["C-1"])
    api.script = [THROTTLED] * 12 + [SERVER_ERROR, None]
    _, store, result = await run_engine(api, [{"case_id": "C-1", "vip": "yes"}], max_attempts=2)
    assert result.end is RunEnd.FINISHED
    assert api.cases["C-1"] == {"vip": {"booleanValue": True}}
    assert result.stats.throttles == 12
    assert (await store.status()).totals[RowStatus.DONE] == 1


async def test_server_errors_past_max_attempts_fail_the_row_as_retries_exhausted() -> None:
    api = FakeCasesApi(FIELDS, ["C-1"])
    api.script = [SERVER_ERROR] * 3
    _, store, result = await run_engine(api, [{"case_id": "C-1", "vip": "yes"}], max_attempts=3)
    failed = [o async for o in store.failed_rows()]
    assert [(o.error_code, o.attempts) for o in failed] == [("retries_exhausted", 3)]
    assert api.applied == []
    assert result.end is RunEnd.FINISHED


async def test_a_local_outcome_waits_behind_the_earlier_row_of_its_case() -> None:
    api = SlowFake(FIELDS, ["C-1"], delay_s=0.05)
    rows = [
        {"case_id": "C-1", "vip": "yes"},
        {"case_id": "C-1", "vip": ""},  # nothing to send: resolved locally
        {"case_id": "C-1", "total": "abc"},  # rejected locally
    ]
    _, store, _ = await run_engine(api, rows)
    order = [o.offset for batch in store.batches for o in batch]
    assert order == [0, 10, 20], "a later row of a case is never recorded before an earlier one"


async def test_a_systemic_error_stops_dispatch_and_leaves_unsent_rows_pending() -> None:
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(50)])
    api.script = [None, None, DENIED]
    rows = [{"case_id": f"C-{i}", "vip": "yes"} for i in range(50)]
    engine, store, result = await run_engine(api, rows)
    assert result.end is RunEnd.ABORTED
    assert result.abort is not None
    assert result.abort.code == "AccessDeniedException"
    status = await store.status()
    assert status.totals.get(RowStatus.FAILED, 0) == 0, "an abort fails no row"
    assert status.totals[RowStatus.DONE] == len(api.applied) < 50
    # A stop request after the run has finished changes nothing and raises nothing.
    engine.request_stop(RunEnd.INTERRUPTED)
    engine.force_stop()
    assert engine.stopping


def build_engine(api: FakeCasesApi, store: RecordingStore, rows: int, **settings: Any) -> Engine:
    options: dict[str, Any] = {
        "concurrency": 4,
        "rate_per_s": 10_000,
        "burst": 100,
        "max_attempts": 8,
        "grace_period_s": 5,
        "flush_interval_s": 0.01,
    }
    options.update(settings)
    return Engine(
        EngineSettings(**options),
        api=api,
        store=store,
        clock=MonotonicClock(),
        columns=Schema(FIELDS, None).column_map(),
        records=iter(records([{"case_id": f"C-{i}", "vip": "yes"} for i in range(rows)])),
        resume_point=ResumePoint(0, 2),
    )


async def open_store() -> RecordingStore:
    store = RecordingStore()
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    return store


async def run_then(engine: Engine, after_s: float, action: Callable[[], None]) -> RunResult:
    """Run the engine and call `action` (a stop) `after_s` into the run."""
    async with anyio.create_task_group() as group:

        async def act_later() -> None:
            await anyio.sleep(after_s)
            action()

        group.start_soon(act_later)
        with anyio.fail_after(5):
            result = await engine.run()
    return result


async def test_a_stop_wakes_workers_waiting_for_the_gate_and_sends_nothing_more() -> None:
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(20)])
    store = await open_store()
    engine = build_engine(api, store, 20, rate_per_s=1.0, burst=1)
    started_s = anyio.current_time()
    result = await run_then(engine, 0.3, engine.request_stop)
    assert result.end is RunEnd.INTERRUPTED
    assert anyio.current_time() - started_s < 1.0, "waiters re-check the stop flag"
    assert len(api.applied) == 1  # the burst of one; the others were still waiting
    assert (await store.status()).totals[RowStatus.DONE] == 1


async def test_calls_in_flight_finish_after_a_stop_and_are_recorded_done() -> None:
    api = SlowFake(FIELDS, [f"C-{i}" for i in range(20)], delay_s=0.3)
    store = await open_store()
    engine = build_engine(api, store, 20)
    result = await run_then(engine, 0.1, engine.request_stop)
    assert result.end is RunEnd.INTERRUPTED
    assert len(api.applied) == 4  # one call per worker was in flight
    assert (await store.status()).totals[RowStatus.DONE] == 4


async def test_a_forced_stop_abandons_calls_in_flight_and_leaves_their_rows_pending() -> None:
    api = SlowFake(FIELDS, [f"C-{i}" for i in range(20)], delay_s=0.3)
    store = await open_store()
    engine = build_engine(api, store, 20)
    result = await run_then(engine, 0.1, engine.force_stop)
    assert result.end is RunEnd.INTERRUPTED
    assert api.applied == []
    assert (await store.status()).totals.get(RowStatus.DONE, 0) == 0
    assert result.resume_point.offset == 0


class FlakyStore(RecordingStore):
    """Commits numbered in `failing` fail (a network blip on a remote store); others succeed."""

    def __init__(self, failing: Callable[[int], bool]) -> None:
        super().__init__()
        self.commits = 0
        self.failing = failing

    async def commit(self, outcomes: Sequence[Outcome], *args: Any, **kwargs: Any) -> None:
        self.commits += 1
        if self.failing(self.commits):
            raise OSError("checkpoint unreachable")
        await super().commit(outcomes, *args, **kwargs)


async def run_on(store: FlakyStore, rows: int) -> tuple[RunResult, list[str]]:
    api = SlowFake(FIELDS, [f"C-{i}" for i in range(rows)], delay_s=0.01)
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    engine = build_engine(api, store, rows)
    events: list[str] = []
    engine._on_event = lambda name, data: events.append(name)
    with anyio.fail_after(10):
        result = await engine.run()
    return result, events


def assert_nothing_lost(store: FlakyStore, rows: int, resume_offset: int) -> None:
    recorded = {o.offset for batch in store.batches for o in batch}
    below = {i * 10 for i in range(rows) if i * 10 < resume_offset}
    assert below <= recorded, "the resume point passed rows no checkpoint holds"


async def test_a_failed_commit_keeps_its_outcomes_for_the_next_one() -> None:
    store = FlakyStore(lambda number: number == 2)
    result, events = await run_on(store, 40)
    assert result.end is RunEnd.FINISHED
    assert "checkpoint_commit_failed" in events
    assert_nothing_lost(store, 40, result.resume_point.offset)
    assert sum((await store.status()).totals.values()) == 40


async def test_commits_that_keep_failing_abort_the_run_with_nothing_lost() -> None:
    store = FlakyStore(lambda number: number >= 2)
    result, events = await run_on(store, 400)
    assert result.end is RunEnd.ABORTED
    assert result.abort is not None
    assert result.abort.code == "CheckpointUnavailable"
    assert events.count("checkpoint_commit_failed") >= 4
    status = await store.status()
    assert_nothing_lost(store, 400, status.resume_point.offset)


class WatchedStore(FlakyStore):
    """Knows whether its last commit failed, and whether its hold has lapsed."""

    def __init__(self, failing: Callable[[int], bool]) -> None:
        super().__init__(failing)
        self.failing_now = False
        self.hold_s = float("inf")

    async def commit(self, outcomes: Sequence[Outcome], *args: Any, **kwargs: Any) -> None:
        try:
            await super().commit(outcomes, *args, **kwargs)
        except OSError:
            self.failing_now = True
            raise
        self.failing_now = False

    def hold_left_s(self) -> float:
        return self.hold_s if super().hold_left_s() > 0 else 0.0


class NotingFake(FakeCasesApi):
    """Counts the calls sent while the store could not record or had lost its hold."""

    def __init__(self, cases: Sequence[str], store: WatchedStore) -> None:
        super().__init__(FIELDS, cases)
        self.store = store
        self.sent_while_failing = 0
        self.sent_without_hold = 0

    async def update_case(self, *args: Any, **kwargs: Any) -> None:
        self.sent_while_failing += self.store.failing_now
        self.sent_without_hold += self.store.hold_left_s() <= 0
        await super().update_case(*args, **kwargs)


async def test_workers_waiting_for_the_gate_send_nothing_once_a_commit_has_failed() -> None:
    store = WatchedStore(lambda number: 4 <= number <= 6)  # three in a row: no abort yet
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    api = NotingFake([f"C-{i}" for i in range(40)], store)
    engine = build_engine(api, store, 40, rate_per_s=20.0, burst=1, flush_interval_s=0.1)
    with anyio.fail_after(20):
        result = await engine.run()
    assert result.end is RunEnd.FINISHED
    assert store.commits >= 7, "the failing commits happened during the run"
    assert api.sent_while_failing == 0
    assert len(api.applied) == 40


async def test_nothing_is_sent_while_the_checkpoint_hold_may_have_lapsed() -> None:
    store = WatchedStore(lambda number: False)
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    api = NotingFake([f"C-{i}" for i in range(30)], store)
    engine = build_engine(api, store, 30, rate_per_s=40.0, burst=1)

    async def lapse_then_renew() -> None:
        await anyio.sleep(0.2)
        store.hold_s = 0.0  # e.g. a container frozen past its lease
        await anyio.sleep(0.5)
        sent = len(api.applied)
        store.hold_s = 30.0  # renewed
        assert sent == len(api.applied)

    async with anyio.create_task_group() as group:
        group.start_soon(lapse_then_renew)
        with anyio.fail_after(20):
            result = await engine.run()
    assert result.end is RunEnd.FINISHED
    assert api.sent_without_hold == 0
    assert len(api.applied) == 30
