"""The engine with working fakes (FakeCasesApi, MemoryCheckpointStore): retries, ordering of
local outcomes, systemic abort and late stop requests. No sockets, no real service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio

from bulkupdate.checkpoint.store import JobIdentity
from bulkupdate.clock import MonotonicClock
from bulkupdate.config import FailureBudget
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.schema import Schema
from bulkupdate.input.framing import Record
from bulkupdate.models import Field, FieldType, Outcome, ResumePoint, RowStatus
from bulkupdate.pacing.outage import OutageRule
from bulkupdate.run.engine import Engine, RunEnd, RunResult
from bulkupdate.run.settings import EngineSettings
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


UNKNOWN = CallError(ErrorKind.TRANSIENT, "ReadTimeoutError", "no answer", outcome_unknown=True)
FAST_OUTAGES = OutageRule(quiet_s=0.2, window=6, probe_interval_s=0.05)


class TimedFake(FakeCasesApi):
    """Notes when each call was made, and for which case."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[float, str]] = []

    async def update_case(self, case_id: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((anyio.current_time(), case_id))
        await super().update_case(case_id, *args, **kwargs)


async def run_engine(
    api: FakeCasesApi,
    rows: Sequence[dict[str, Any]],
    *,
    max_attempts: int = 8,
    events: list[str] | None = None,
    **extra: Any,
) -> tuple[Engine, RecordingStore, Any]:
    store = RecordingStore()
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    options: dict[str, Any] = {"concurrency": 4, **extra}
    settings = EngineSettings(
        rate_per_s=10_000,
        burst=100,
        max_attempts=max_attempts,
        grace_period_s=1,
        flush_interval_s=0.01,
        **options,
    )
    engine = Engine(
        settings,
        api=api,
        store=store,
        clock=MonotonicClock(),
        columns=Schema(FIELDS, None).column_map(),
        records=iter(records(rows)),
        resume_point=ResumePoint(0, 2),
        on_event=(lambda name, data: events.append(name)) if events is not None else None,
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


class CaseFake(TimedFake):
    """Answers each case's calls from its own list of (delay_s, error or None); then accepts."""

    def __init__(self, answers: dict[str, list[tuple[float, CallError | None]]]) -> None:
        super().__init__(FIELDS, [*answers, "C-ok"])
        self.answers = answers

    async def update_case(self, case_id: str, *args: Any, **kwargs: Any) -> None:
        delay_s, error = (self.answers.get(case_id) or [(0.0, None)]).pop(0)
        if error is not None:
            self.calls.append((anyio.current_time(), case_id))  # when it was sent
            await anyio.sleep(delay_s)
            raise error
        await anyio.sleep(delay_s)
        await super().update_case(case_id, *args, **kwargs)


async def test_server_errors_past_max_attempts_fail_the_row_as_retries_exhausted() -> None:
    # Another case's calls succeed meanwhile: the service is up, so the row is at fault.
    api = CaseFake({"C-1": [(0.0, SERVER_ERROR)] * 3})
    rows = [{"case_id": "C-1", "vip": "yes"}] + [{"case_id": "C-ok", "total": n} for n in "12345"]
    _, store, result = await run_engine(api, rows, max_attempts=3, concurrency=2)
    failed = [o async for o in store.failed_rows()]
    assert [(o.error_code, o.attempts) for o in failed] == [("retries_exhausted", 3)]
    assert [case for case, _ in api.applied] == ["C-ok"] * 5
    assert result.end is RunEnd.FINISHED


async def test_a_row_failing_while_nothing_else_succeeds_is_not_failed_for_it() -> None:
    api = FakeCasesApi(FIELDS, ["C-1"])
    api.script = [SERVER_ERROR] * 3  # no other call succeeds meanwhile: maybe an outage
    rows = [{"case_id": "C-1", "vip": "yes"}]
    _, store, result = await run_engine(api, rows, max_attempts=2, outage_rule=FAST_OUTAGES)
    assert result.end is RunEnd.FINISHED
    assert [o async for o in store.failed_rows()] == []
    assert api.cases["C-1"] == {"vip": {"booleanValue": True}}


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


async def run_on(
    store: FlakyStore, rows: int, *, patience_s: float = 0.0
) -> tuple[RunResult, list[str]]:
    api = SlowFake(FIELDS, [f"C-{i}" for i in range(rows)], delay_s=0.01)
    await store.open(JobIdentity("t", "in.csv", "fp", "csv"), restart=False)
    engine = build_engine(api, store, rows, commit_patience_s=patience_s)
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


async def test_commits_failing_for_less_than_the_patience_are_ridden_out() -> None:
    store = FlakyStore(lambda number: 3 <= number <= 12)  # ten in a row, about 0.1 s
    result, events = await run_on(store, 100, patience_s=5.0)
    assert result.end is RunEnd.FINISHED
    assert events.count("checkpoint_commit_failed") >= 10
    assert sum((await store.status()).totals.values()) == 100


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


async def test_a_call_whose_outcome_is_unknown_holds_its_case_and_no_other_case() -> None:
    api = TimedFake(FIELDS, ["C-1", "C-2"])
    api.script = [UNKNOWN]  # the first call, row 1 of C-1, never answers
    rows = [{"case_id": "C-1", "total": "1"}, {"case_id": "C-1", "total": "2"}]
    rows += [{"case_id": "C-2", "total": str(n)} for n in range(3)]
    _, store, result = await run_engine(api, rows, concurrency=1, settle_period_s=0.5)
    first_s = api.calls[0][0]
    later_c1 = [t - first_s for t, case in api.calls[1:] if case == "C-1"]
    c2 = [t - first_s for t, case in api.calls if case == "C-2"]
    assert len(later_c1) == 2
    assert min(later_c1) >= 0.5, "its retry and its case's next row waited"
    assert len(c2) == 3
    assert max(c2) < 0.5, "the held row took no worker from other cases"
    assert api.cases["C-1"] == {"total": {"doubleValue": 2.0}}
    assert result.end is RunEnd.FINISHED
    assert (await store.status()).totals[RowStatus.DONE] == 5


async def test_a_row_that_gives_up_on_an_unknown_outcome_still_holds_its_case_first() -> None:
    api = CaseFake({"C-1": [(0.1, UNKNOWN)]})  # C-ok succeeds while it waits: service up
    rows = [{"case_id": "C-1", "total": "1"}, {"case_id": "C-ok", "total": "1"}]
    rows.append({"case_id": "C-1", "total": "2"})
    _, store, _ = await run_engine(api, rows, max_attempts=1, concurrency=2, settle_period_s=0.4)
    c1 = [t for t, case in api.calls if case == "C-1"]
    assert len(c1) == 2, "row 1 gave up after one attempt; row 3 was sent"
    assert c1[1] - c1[0] >= 0.35, "row 3 waited until row 1's call had settled (0.4 s)"
    failed = [o async for o in store.failed_rows()]
    assert [(o.line, o.error_code) for o in failed] == [(2, "retries_exhausted")]


async def test_an_outage_fails_no_row_and_the_run_goes_on_once_the_service_answers() -> None:
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(10)])
    api.script = [SERVER_ERROR] * 30  # every call fails for a while, more than max attempts
    rows = [{"case_id": f"C-{i}", "vip": "yes"} for i in range(10)]
    events: list[str] = []
    _, store, result = await run_engine(
        api, rows, max_attempts=2, outage_rule=FAST_OUTAGES, events=events
    )
    assert result.end is RunEnd.FINISHED
    assert (await store.status()).totals.get(RowStatus.FAILED, 0) == 0
    assert len(api.applied) == 10
    assert "outage_started" in events
    assert "outage_ended" in events


async def test_an_outage_longer_than_its_timeout_stops_the_run_with_rows_pending() -> None:
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(10)])
    api.script = [SERVER_ERROR] * 100_000
    rows = [{"case_id": f"C-{i}", "vip": "yes"} for i in range(10)]
    _, store, result = await run_engine(
        api, rows, max_attempts=2, outage_rule=FAST_OUTAGES, outage_timeout_s=0.5
    )
    assert result.end is RunEnd.ABORTED
    assert result.abort is not None
    assert result.abort.code == "ServiceUnavailable"
    assert (await store.status()).totals.get(RowStatus.FAILED, 0) == 0
    assert result.resume_point.offset == 0


async def test_more_failed_rows_than_the_budget_stop_the_run_with_the_rest_pending() -> None:
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(50)])
    rows = [{"case_id": f"C-{i}", "total": "abc" if i % 2 else "1"} for i in range(50)]
    _, store, result = await run_engine(
        api, rows, concurrency=1, failure_budget=FailureBudget(rows=3)
    )
    assert result.end is RunEnd.ABORTED
    assert result.abort is not None
    assert result.abort.code == "FailureBudgetExceeded"
    assert "4 of" in result.abort.message
    assert "invalid_number (4)" in result.abort.message
    totals = (await store.status()).totals
    assert totals[RowStatus.FAILED] == 4
    assert sum(totals.values()) < 50, "the rows not yet sent stay pending"


async def test_a_percentage_budget_counts_from_a_hundred_rows_and_the_job_before_this_run() -> None:
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(300)])
    rows = [{"case_id": f"C-{i}", "total": "abc" if i % 10 == 0 else "1"} for i in range(300)]
    # 10 % of rows fail: a 5 % budget stops the run once 100 rows are resolved, not before.
    _, _, result = await run_engine(
        api, rows, concurrency=1, failure_budget=FailureBudget(percent=5.0)
    )
    assert result.end is RunEnd.ABORTED
    resolved = result.stats.applied + result.stats.failed
    assert 100 <= resolved < 120
    # The same rows within a 15 % budget go through.
    api = FakeCasesApi(FIELDS, [f"C-{i}" for i in range(300)])
    _, _, result = await run_engine(
        api, rows, concurrency=1, failure_budget=FailureBudget(percent=15.0)
    )
    assert result.end is RunEnd.FINISHED
