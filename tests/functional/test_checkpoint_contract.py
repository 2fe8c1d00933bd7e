"""The checkpoint contract, run against every store alike: the in-memory stand-in, the SQLite file
and the DynamoDB table (a real moto server on a loopback port, so this suite lives here)."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkupdate.aws.checkpoint_dynamodb import DynamoDbCheckpointStore
from bulkupdate.checkpoint import sqlite as checkpoint_sqlite
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import (
    CheckpointError,
    CheckpointStore,
    FingerprintMismatchError,
    GroupMember,
    JobIdentity,
    RecordedGroup,
    ResumeState,
    RunState,
)
from bulkupdate.errors import BulkUpdateError
from bulkupdate.models import KeyResolution, Outcome, ResumePoint, RowStatus
from tests.fakes.checkpoint import MemoryCheckpointStore, Outage
from tests.faultproxy import Fault, FaultProxy
from tests.motoserver import use_moto
from tests.unit.test_checkpoint import (
    JOB,
    RECORD_BYTES,
    FakeClock,
    failed_rows,
    outcome,
    point,
    query,
)

DONE, FAILED = RowStatus.DONE, RowStatus.FAILED
KINDS = ["memory", "sqlite", "dynamodb"]


def make_store(kind: str, directory: Path, clock: FakeClock | None = None) -> CheckpointStore:
    now = clock or FakeClock()
    if kind == "memory":
        return MemoryCheckpointStore(now=now)
    if kind == "dynamodb":  # a table of its own, created by the store on first use
        return DynamoDbCheckpointStore(f"checkpoints-{uuid.uuid4().hex[:12]}", JOB.name, now=now)
    return SqliteCheckpointStore(directory / "checkpoints" / "job.sqlite", now=now)


@pytest.fixture
def dynamodb(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS configured through the environment, as users do, pointing at the moto server."""
    use_moto(monkeypatch, moto_url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=KINDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[CheckpointStore]:
    if request.param == "dynamodb":
        request.getfixturevalue("dynamodb")  # only these tests start the moto server
    store = make_store(request.param, tmp_path, clock)
    yield store
    await store.close()


async def reopen(store: CheckpointStore, job: JobIdentity = JOB, **kw: bool) -> ResumeState:
    await store.close()
    return await store.open(job, restart=kw.get("restart", False))


# --- opening, resuming, job identity


async def test_a_fresh_store_starts_at_the_beginning_with_nothing_resolved(
    store: CheckpointStore,
) -> None:
    state = await store.open(JOB, restart=False)

    assert state.resume_point == ResumePoint(0, 1)
    assert state.resolved_offsets == frozenset()
    assert state.totals == {DONE: 0, FAILED: 0}
    assert state.counters == {}
    assert state.runs == 1


async def test_reopening_resumes_at_the_resume_point_with_the_records_resolved_beyond_it(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    # Records 0-4 resolved in order, 7 and 9 out of order; 5, 6 and 8 still in flight.
    batch = [outcome(i) for i in (0, 1, 2, 9, 4)] + [outcome(3, FAILED), outcome(7, FAILED)]
    await store.commit(batch, point(5), {"attempts": 8})

    state = await reopen(store)

    assert state.resume_point == point(5)
    assert state.resolved_offsets == {7 * RECORD_BYTES, 9 * RECORD_BYTES}
    assert state.totals == {DONE: 5, FAILED: 2}
    assert state.counters == {"attempts": 8}
    assert state.runs == 2


async def test_status_shows_what_a_reopen_would_pass_over_without_starting_a_run(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    batch = [outcome(i) for i in (0, 1, 2, 9, 4)] + [outcome(3, FAILED), outcome(7, FAILED)]
    await store.commit(batch, point(5), {})

    status = await store.status()

    assert status.resume_point == point(5)
    assert status.resolved_offsets == {7 * RECORD_BYTES, 9 * RECORD_BYTES}
    assert status.runs == 1


async def test_counters_are_kept_as_last_committed_and_untouched_names_keep_their_value(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([], point(0), {"attempts": 3, "throttled": 1})
    await store.commit([], point(0), {"attempts": 5})

    assert (await reopen(store)).counters == {"attempts": 5, "throttled": 1}


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (JobIdentity("tier-fix", JOB.input_path, JOB.fingerprint, JOB.format), "job name"),
        (JobIdentity(JOB.name, JOB.input_path, "sha256:beef", JOB.format), "input fingerprint"),
        (JobIdentity(JOB.name, JOB.input_path, JOB.fingerprint, "jsonl"), "input format"),
        (JobIdentity(JOB.name, JOB.input_path, JOB.fingerprint, JOB.format, "cp1252"), "encoding"),
    ],
)
async def test_a_store_holding_another_job_is_refused_naming_what_differs(
    store: CheckpointStore, other: JobIdentity, named: str
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0)], point(1), {})
    await store.close()

    with pytest.raises(FingerprintMismatchError) as caught:
        await store.open(other, restart=False)

    assert isinstance(caught.value, BulkUpdateError)
    assert len(caught.value.differences) == 1
    assert named in str(caught.value)
    assert "--restart" in str(caught.value)
    assert (await store.status()).resume_point == point(1)  # refused means untouched


async def test_a_job_read_in_another_encoding_resumes_only_in_it_and_the_refusal_says_so(
    store: CheckpointStore,
) -> None:
    latin = JobIdentity(JOB.name, JOB.input_path, JOB.fingerprint, JOB.format, "cp1252")
    await store.open(latin, restart=False)
    await store.commit([outcome(0)], point(1), {})
    await store.close()

    with pytest.raises(FingerprintMismatchError) as caught:
        await store.open(JOB, restart=False)
    assert "input encoding differs ('cp1252', now 'utf-8')" in str(caught.value)
    assert "run it with --encoding cp1252" in str(caught.value)
    assert (await reopen(store, latin)).resume_point == point(1)
    assert (await store.status()).job == latin


async def test_a_job_of_the_same_name_over_other_data_is_refused_saying_what_to_do(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0)], point(1), {})
    await store.close()
    other = JobIdentity(JOB.name, JOB.input_path, "stream;head=beef", JOB.format)

    with pytest.raises(FingerprintMismatchError) as caught:
        await store.open(other, restart=False)

    message = str(caught.value)
    assert f"holds job {JOB.name!r} for {JOB.input_path} with other data" in message
    assert "but this run is job" not in message
    assert "give it its own checkpoint" in message
    assert "--restart" in message


async def test_the_same_input_at_another_path_resumes_the_job(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0)], point(1), {})
    moved = JobIdentity(JOB.name, "/mnt/archive/crm.csv", JOB.fingerprint, JOB.format)

    assert (await reopen(store, moved)).resume_point == point(1)


async def test_restart_wipes_the_old_job_and_starts_the_new_one_from_the_beginning(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0), outcome(1, FAILED)], point(2), {"attempts": 2})
    other = JobIdentity(JOB.name, "exports/crm-v2.csv", "sha256:beef", "csv")

    state = await reopen(store, other, restart=True)

    assert state == ResumeState(ResumePoint(0, 1), frozenset(), {DONE: 0, FAILED: 0}, {}, 1)
    assert await failed_rows(store) == []
    assert (await store.status()).job.input_path == "exports/crm-v2.csv"


async def test_restart_wipes_even_when_the_job_is_the_same(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0, FAILED)], point(1), {})

    state = await reopen(store, restart=True)

    assert (state.resume_point, state.totals[FAILED], state.runs) == (ResumePoint(0, 1), 0, 1)


# --- recorded BatchUpdateCase groups


def group(token: str, *records: int) -> RecordedGroup:
    members = tuple(GroupMember(i * RECORD_BYTES, i + 2, f"case-{i}") for i in records)
    call = {
        "case_ids": [m.case_id for m in members],
        "fields": [{"id": "priority", "value": {"stringValue": "high"}}],
        "status": "closed",
        "performed_by": None,
    }
    return RecordedGroup(token, call, members)


async def test_recorded_groups_survive_a_crash_in_the_order_they_were_recorded(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    first, second = group("token-b", 0, 1, 2), group("token-a", 3, 4)
    await store.record_group(first)
    await store.record_group(second)

    await reopen(store)  # no finish_run: as after a SIGKILL

    assert await store.recorded_groups() == [first, second]


async def test_a_commit_forgets_the_groups_it_names_with_its_outcomes_in_one_write(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.record_group(group("token-1", 0, 1))
    await store.record_group(group("token-2", 2, 3))

    await store.commit([outcome(0), outcome(1)], point(2), {}, groups_done=["token-1", "other"])
    state = await reopen(store)

    assert [g.token for g in await store.recorded_groups()] == ["token-2"]
    assert state.totals[DONE] == 2


async def test_restart_forgets_every_recorded_group(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    await store.record_group(group("token-1", 0, 1))

    await reopen(store, restart=True)

    assert await store.recorded_groups() == []


# --- commits


async def test_a_recommitted_offset_is_never_counted_twice(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    # The same offset twice in one batch, and record 5 again later while it is above the
    # resume point and once more after the resume point has passed (and forgotten) it.
    await store.commit([outcome(0), outcome(0), outcome(5)], point(1), {})
    await store.commit([outcome(5), outcome(0), outcome(1)], point(2), {})
    await store.commit([outcome(2), outcome(3), outcome(4)], point(6), {})
    await store.commit([outcome(5), outcome(3, FAILED)], point(6), {})

    assert (await reopen(store)).totals == {DONE: 6, FAILED: 0}


async def test_the_first_committed_outcome_of_an_offset_is_final(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(3, FAILED), outcome(3, DONE)], point(0), {})
    await store.commit([outcome(4, DONE)], point(0), {})
    await store.commit([outcome(4, FAILED)], point(0), {})

    assert (await reopen(store)).totals == {DONE: 1, FAILED: 1}
    assert [row.offset for row in await failed_rows(store)] == [3 * RECORD_BYTES]


async def test_failed_rows_keep_raw_bytes_code_and_message_in_offset_order(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    late = outcome(8, FAILED, code="retries_exhausted")
    await store.commit([late, outcome(2, FAILED), outcome(0)], point(1), {})
    await store.commit([outcome(1), outcome(5, FAILED)], point(3), {})
    await store.commit([outcome(i) for i in (3, 4, 6, 7)], point(9), {})  # passes all of them
    await reopen(store)

    assert await failed_rows(store) == [outcome(2, FAILED), outcome(5, FAILED), late]


async def test_many_failed_rows_all_come_back_in_order(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    count = 2 * checkpoint_sqlite.FAILED_PAGE_ROWS + 7  # several pages
    await store.commit([outcome(i, FAILED) for i in reversed(range(count))], point(count), {})

    rows = await failed_rows(store)

    assert [row.offset for row in rows] == [i * RECORD_BYTES for i in range(count)]
    assert rows[-1] == outcome(count - 1, FAILED)


async def test_done_rows_below_the_resume_point_are_forgotten_but_counted(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(i) for i in range(0, 10, 2)], point(0), {})
    await store.commit([outcome(i) for i in range(1, 10, 2)], point(7), {})

    state = await reopen(store)

    assert state.resolved_offsets == {i * RECORD_BYTES for i in (7, 8, 9)}
    assert state.totals[DONE] == 10


async def test_the_resume_point_may_not_move_backwards(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0), outcome(1)], point(2), {})

    with pytest.raises(ValueError, match="backwards"):
        await store.commit([outcome(5)], point(1), {})

    state = await reopen(store)
    assert (state.resume_point, state.resolved_offsets) == (point(2), frozenset())


async def test_commit_needs_an_open_run(store: CheckpointStore) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await store.commit([outcome(0)], point(1), {})
    await store.open(JOB, restart=False)
    await store.finish_run(RunState.FINISHED, {})
    with pytest.raises(RuntimeError, match="already ended"):
        await store.commit([outcome(0)], point(1), {})


# --- commits that fail


class CommitFault(Protocol):
    """A real fault between a store and its storage, switched on and off by the test."""

    def begin(self, *, lands: bool) -> None:
        """Commits fail from now on; with `lands`, after they were recorded."""
        ...

    def end(self) -> None: ...


class MemoryFault:
    def __init__(self, store: MemoryCheckpointStore) -> None:
        self.store = store

    def begin(self, *, lands: bool) -> None:
        self.store.outage = Outage.UNANSWERED if lands else Outage.UNSENT

    def end(self) -> None:
        self.store.outage = None


class SqliteFault:
    """Another connection holds the database's write lock past the store's busy timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.holder: sqlite3.Connection | None = None

    def begin(self, *, lands: bool) -> None:
        if lands:
            pytest.skip("a local transaction's outcome is never unknown to its caller")
        self.holder = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        self.holder.execute("BEGIN IMMEDIATE")

    def end(self) -> None:
        holder, self.holder = self.holder, None
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()


class ProxyFault:
    """A TCP proxy between the store and moto loses each request, or each answer."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def begin(self, *, lands: bool) -> None:
        self.proxy.fault = Fault.LOSE_ANSWERS if lands else Fault.LOSE_REQUESTS

    def end(self) -> None:
        self.proxy.fault = Fault.NONE


@pytest.fixture
async def fault(
    request: pytest.FixtureRequest, store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CommitFault]:
    """A fault for `store`, set up before it opens; the store is closed before the fault goes."""
    if isinstance(store, MemoryCheckpointStore):
        yield MemoryFault(store)
    elif isinstance(store, SqliteCheckpointStore):
        monkeypatch.setattr(checkpoint_sqlite, "BUSY_TIMEOUT_S", 0.2)  # read when it connects
        sqlite_fault = SqliteFault(store.path)
        try:
            yield sqlite_fault
        finally:
            sqlite_fault.end()
    else:
        async with FaultProxy(request.getfixturevalue("moto_url")) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)  # read when it connects
            try:
                yield ProxyFault(proxy)
            finally:
                proxy.fault = Fault.NONE
                await store.close()  # its lease goes back through the proxy


@pytest.mark.parametrize("lands", [False, True], ids=["request-lost", "answer-lost"])
async def test_a_failed_commit_retried_with_its_batch_and_later_outcomes_records_it_once(
    store: CheckpointStore, fault: CommitFault, lands: bool
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0), outcome(1, FAILED)], point(2), {"batch": 1})
    kept = [outcome(2), outcome(4, FAILED), outcome(5)]

    fault.begin(lands=lands)
    with pytest.raises(CheckpointError):
        await store.commit(kept, point(3), {"batch": 2})
    kept += [outcome(3)]  # resolved meanwhile: the caller appends it and tries again
    with pytest.raises(CheckpointError):
        await store.commit(kept, point(6), {"batch": 3})
    fault.end()
    await store.commit([*kept, outcome(6, FAILED)], point(7), {"batch": 4})
    await store.commit([outcome(i) for i in (7, 8)], point(9), {"batch": 5})  # and on it goes
    state = await reopen(store)

    assert state.resume_point == point(9)
    assert state.resolved_offsets == frozenset()
    assert state.totals == {DONE: 6, FAILED: 3}
    assert state.counters == {"batch": 5}
    assert await failed_rows(store) == [outcome(i, FAILED) for i in (1, 4, 6)]


# --- runs and status


# --- match keys (--match-field)


async def test_match_keys_recorded_come_back_after_a_reopen_first_answer_kept(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.record_keys(
        [
            KeyResolution("legacy", "T-1", ("c1",)),
            KeyResolution("legacy", "T-2", ()),
            KeyResolution("legacy", "T-3", ("c3", "c4")),
            KeyResolution("other", "T-1", ("c9",)),
        ]
    )
    await store.record_keys([KeyResolution("legacy", "T-1", ("c7",))])  # again: the first counts

    await reopen(store)

    assert await store.resolved_keys("legacy") == {
        "T-1": ("c1",),
        "T-2": (),
        "T-3": ("c3", "c4"),
    }
    assert await store.resolved_keys("other") == {"T-1": ("c9",)}
    assert await store.resolved_keys("none") == {}


async def test_restart_forgets_the_match_keys(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)
    await store.record_keys([KeyResolution("legacy", "T-1", ("c1",))])

    await reopen(store, restart=True)

    assert await store.resolved_keys("legacy") == {}


async def test_status_reports_runs_how_the_last_one_ended_and_when(
    store: CheckpointStore, clock: FakeClock
) -> None:
    await store.open(JOB, restart=False)
    await store.commit([outcome(0), outcome(1, FAILED)], point(2), {"attempts": 3})
    committed_at = clock.now
    running = await store.status()
    await store.finish_run("interrupted", {"signal": "SIGINT", "at": committed_at})
    interrupted = await store.status()
    await reopen(store)
    await store.close()  # closed without finish_run: the process died, as far as anyone knows
    crashed = await store.status()

    assert running.job == JOB
    assert (running.resume_point, running.totals) == (point(2), {DONE: 1, FAILED: 1})
    assert running.counters == {"attempts": 3}
    assert running.updated_at == committed_at > running.created_at
    assert running.last_run is not None
    assert running.last_run.state is RunState.RUNNING
    assert interrupted.last_run is not None
    assert interrupted.last_run.state is RunState.INTERRUPTED
    assert interrupted.last_run.summary == {"signal": "SIGINT", "at": str(committed_at)}
    assert interrupted.last_run.ended_at is not None
    assert interrupted.last_run.ended_at > interrupted.last_run.started_at
    assert crashed.runs == 2
    assert crashed.last_run is not None
    assert crashed.last_run.state is RunState.CRASHED


async def test_reopening_after_a_crash_records_the_crash_and_starts_the_next_run(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)
    await store.close()
    await store.open(JOB, restart=False)
    await store.finish_run("aborted", {"error": "AccessDeniedException"})
    await store.close()
    state = await store.open(JOB, restart=False)
    status = await store.status()

    assert state.runs == status.runs == 3
    assert status.last_run is not None
    assert (status.last_run.number, status.last_run.state) == (3, RunState.RUNNING)


async def test_finish_run_accepts_only_end_states(store: CheckpointStore) -> None:
    await store.open(JOB, restart=False)

    for bad in ("running", "crashed", "done"):
        with pytest.raises(ValueError, match="end state"):
            await store.finish_run(bad, {})


async def test_looking_into_a_store_that_never_held_a_job_is_an_error(
    store: CheckpointStore,
) -> None:
    with pytest.raises(CheckpointError):
        await store.status()
    with pytest.raises(CheckpointError):
        await failed_rows(store)


async def test_opening_an_open_store_again_is_a_programming_error(
    store: CheckpointStore,
) -> None:
    await store.open(JOB, restart=False)

    with pytest.raises(RuntimeError, match="already open"):
        await store.open(JOB, restart=False)


# --- random histories against a model


@dataclass
class Model:
    """The contract in a dozen lines: first outcome per offset wins, below the stored resume
    point nothing counts, done rows behind the resume point are forgotten."""

    resume_point: ResumePoint = field(default_factory=ResumePoint)
    kept: dict[int, Outcome] = field(default_factory=dict)
    totals: Counter[RowStatus] = field(default_factory=Counter)
    counters: dict[str, int] = field(default_factory=dict)
    runs: int = 1

    def commit(self, batch: list[Outcome], resume_point: ResumePoint, batch_no: int) -> None:
        for row in batch:
            if row.offset >= self.resume_point.offset and row.offset not in self.kept:
                self.kept[row.offset] = row
                self.totals[row.status] += 1
        self.resume_point = resume_point
        self.kept = {
            offset: row
            for offset, row in self.kept.items()
            if row.status is FAILED or offset >= resume_point.offset
        }
        self.counters["batch"] = batch_no

    def state(self) -> ResumeState:
        ahead = frozenset(o for o in self.kept if o >= self.resume_point.offset)
        totals = {DONE: self.totals[DONE], FAILED: self.totals[FAILED]}
        return ResumeState(self.resume_point, ahead, totals, dict(self.counters), self.runs)

    def failed(self) -> list[Outcome]:
        return sorted((r for r in self.kept.values() if r.status is FAILED), key=lambda r: r.offset)


Batch = tuple[list[Outcome], ResumePoint, bool]  # outcomes, resume point, reopen afterwards


@st.composite
def histories(draw: st.DrawFn) -> list[Batch]:
    records = draw(st.integers(1, 25))
    resolved: set[int] = set()
    lowest_open = 0
    batches: list[Batch] = []
    for _ in range(draw(st.integers(0, 8))):
        # Any records, resolved or not, repeated or not, with either status.
        picks = draw(st.lists(st.tuples(st.integers(0, records - 1), st.booleans()), max_size=12))
        batch = [outcome(i, FAILED if failed else DONE) for i, failed in picks]
        resolved.update(i for i, _ in picks)
        highest = next(i for i in range(records + 1) if i not in resolved)
        lowest_open = draw(st.integers(lowest_open, highest))  # monotone, never past a gap
        batches.append((batch, point(lowest_open), draw(st.booleans())))
    return batches


async def replay(store: CheckpointStore, history: list[Batch]) -> None:
    model = Model()
    assert await store.open(JOB, restart=False) == model.state()
    for batch_no, (batch, resume_point, then_reopen) in enumerate(history, start=1):
        await store.commit(batch, resume_point, {"batch": batch_no})
        model.commit(batch, resume_point, batch_no)
        if then_reopen:
            model.runs += 1
            assert await reopen(store) == model.state()
    model.runs += 1
    assert await reopen(store) == model.state()
    assert await failed_rows(store) == model.failed()
    assert (await store.status()).totals == model.state().totals
    if isinstance(store, SqliteCheckpointStore):
        (kept,) = query(store.path, "SELECT count(*) FROM outcomes")
        assert kept == (len(model.kept),)


def check_history(kind: str, directory: Path, history: list[Batch]) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as inner:
        store = make_store(kind, Path(inner))

        async def run() -> None:
            try:
                await replay(store, history)
            finally:
                await store.close()

        anyio.run(run)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories())
def test_any_history_of_commits_reopens_to_the_models_state(
    kind: str, tmp_path: Path, history: list[Batch]
) -> None:
    check_history(kind, tmp_path, history)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories())
def test_any_history_of_commits_reopens_to_the_models_state_in_dynamodb(
    dynamodb: None, tmp_path: Path, history: list[Batch]
) -> None:
    check_history("dynamodb", tmp_path, history)
