"""The SQLite store's own promises about its file, and the helpers the checkpoint contract suite
(tests/functional/test_checkpoint_contract.py, which runs every store) shares with them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from bulkupdate.checkpoint import sqlite as checkpoint_sqlite
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import (
    CheckpointBusyError,
    CheckpointError,
    CheckpointStore,
    JobIdentity,
    JobStatus,
    RunState,
)
from bulkupdate.models import Outcome, ResumePoint, RowStatus

DONE, FAILED = RowStatus.DONE, RowStatus.FAILED
JOB = JobIdentity("tier-migration", "exports/crm.csv", "sha256:1f0c", "csv")
RECORD_BYTES = 100  # records sit at offsets 0, 100, 200, ...; record i starts on line i + 2


class FakeClock:
    """One second later at every call, so every timestamp is distinct and predictable."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def outcome(index: int, status: RowStatus = DONE, *, code: str = "ValidationException") -> Outcome:
    if status is DONE:
        return Outcome(index * RECORD_BYTES, index + 2, f"case-{index}", DONE, attempts=1)
    return Outcome(
        offset=index * RECORD_BYTES,
        line=index + 2,
        case_id=f"case-{index}",
        status=FAILED,
        error_code=code,
        error_message=f"row {index}: priority 'legacy' is not an active option",
        raw=f'case-{index},"legacy",\xe9\n'.encode(),
        attempts=index % 4,
    )


def point(index: int) -> ResumePoint:
    return ResumePoint(index * RECORD_BYTES, index + 2)


async def failed_rows(store: CheckpointStore) -> list[Outcome]:
    return [row async for row in store.failed_rows()]


# --- the SQLite file


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "job.sqlite"


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()  # the context manager commits but does not close
    return rows


async def test_a_new_store_object_on_the_same_file_resumes_the_job(db_path: Path) -> None:
    first = SqliteCheckpointStore(db_path)
    await first.open(JOB, restart=False)
    await first.commit([outcome(0), outcome(3, FAILED)], point(1), {"attempts": 2})
    await first.close()

    second = SqliteCheckpointStore(db_path)
    try:
        state = await second.open(JOB, restart=False)
        assert (state.resume_point, state.resolved_offsets) == (
            point(1),
            frozenset({3 * RECORD_BYTES}),
        )
        assert await failed_rows(second) == [outcome(3, FAILED)]
    finally:
        await second.close()


async def test_the_outcomes_table_holds_only_failed_rows_and_done_rows_ahead(
    db_path: Path,
) -> None:
    store = SqliteCheckpointStore(db_path)
    await store.open(JOB, restart=False)
    statuses = [FAILED if i % 100 == 0 else DONE for i in range(1000)]
    await store.commit([outcome(i, s) for i, s in enumerate(statuses)], point(990), {})
    await store.close()

    assert query(db_path, "SELECT status, count(*) FROM outcomes GROUP BY status") == [
        ("done", 10),
        ("failed", 10),
    ]
    assert query(db_path, "SELECT status, row_count FROM totals ORDER BY status") == [
        ("done", 990),
        ("failed", 10),
    ]


async def test_the_file_is_in_wal_mode_with_a_schema_version(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path)
    await store.open(JOB, restart=False)
    await store.close()

    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert query(db_path, "SELECT version FROM schema_version") == [(1,)]


@pytest.mark.parametrize("restart", [False, True])
async def test_a_file_that_is_not_a_checkpoint_is_refused_and_left_untouched(
    db_path: Path, restart: bool
) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    text_path = db_path.with_name("notes.txt")
    text_path.write_bytes(b"case_id,priority\nc1,high\n" * 100)
    before = {path: path.read_bytes() for path in (db_path, text_path)}

    for path in before:
        store = SqliteCheckpointStore(path)
        with pytest.raises(CheckpointError, match="not a bulkupdate checkpoint"):
            await store.open(JOB, restart=restart)
        await store.close()

    assert {path: path.read_bytes() for path in before} == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["job.sqlite", "notes.txt"]


async def test_a_checkpoint_from_a_newer_bulkupdate_is_refused(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path)
    await store.open(JOB, restart=False)
    await store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (2, 'later')")
    conn.close()

    with pytest.raises(CheckpointError, match="newer bulkupdate"):
        await store.open(JOB, restart=True)
    await store.close()


async def header_only_copy(db_path: Path) -> bytes:
    """The checkpoint file of a job as it is on disk while its commits are still in the WAL:
    what is left when the -wal file is deleted or the checkpoint copied without it."""
    live = SqliteCheckpointStore(db_path.with_name("live.sqlite"))
    await live.open(JOB, restart=False)
    await live.commit([outcome(0)], point(1), {})
    data = db_path.with_name("live.sqlite").read_bytes()
    await live.close()
    return data


@pytest.mark.parametrize("left", ["header only (its WAL deleted)", "empty"])
async def test_a_checkpoint_file_that_holds_no_job_is_refused_unless_restart(
    db_path: Path, left: str
) -> None:
    data = await header_only_copy(db_path) if left.startswith("header") else b""
    db_path.write_bytes(data)
    store = SqliteCheckpointStore(db_path)

    with pytest.raises(CheckpointError) as refused:
        await store.open(JOB, restart=False)
    await store.close()

    assert str(db_path) in str(refused.value)
    assert "holds no job" in str(refused.value)
    assert "--restart" in str(refused.value)
    assert db_path.read_bytes() == data, "refused means untouched"
    assert not db_path.with_name("job.sqlite.lock").exists(), "not even a lock file beside it"
    state = await store.open(JOB, restart=True)
    assert (state.resume_point, state.runs) == (ResumePoint(0, 1), 1)
    await store.close()


async def test_looking_at_a_missing_checkpoint_does_not_create_it(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path)

    with pytest.raises(CheckpointError, match="does not exist"):
        await store.status()
    await store.close()

    assert not await anyio.Path(db_path).exists()


async def test_a_second_run_of_the_job_is_refused_while_the_first_is_live(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_sqlite, "LOCK_WAIT_S", 0.1)
    first, second = SqliteCheckpointStore(db_path), SqliteCheckpointStore(db_path)
    await first.open(JOB, restart=False)
    try:
        with pytest.raises(CheckpointBusyError, match="another run"):
            await second.open(JOB, restart=False)
        status = await second.status()  # looking is always allowed
        assert status.last_run is not None
        assert status.last_run.state is RunState.RUNNING
    finally:
        await first.close()
        await second.close()

    dead = await _status_after_close(db_path)
    assert dead.last_run is not None
    assert dead.last_run.state is RunState.CRASHED


async def _status_after_close(path: Path) -> JobStatus:
    store = SqliteCheckpointStore(path)
    try:
        return await store.status()
    finally:
        await store.close()
