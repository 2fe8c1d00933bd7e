"""The SQLite checkpoint store: one file per job in WAL mode, one transaction per commit.

Owns the connection, its transactions and the run lock beside it; the tables' SQL lives in the
`sqlite_*` modules beside it. Blocking calls run in a worker thread, one at a time. Never reads
the input, never touches the network.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from bulkupdate.checkpoint import (
    sqlite_groups,
    sqlite_images,
    sqlite_keys,
    sqlite_schema,
    sqlite_status,
)
from bulkupdate.checkpoint.images import FieldImage, ImageChange
from bulkupdate.checkpoint.lock import RunLock
from bulkupdate.checkpoint.sqlite_files import (
    connect,
    connect_read_only,
    file_uri,
    writable,
)
from bulkupdate.checkpoint.store import (
    CheckpointBusyError,
    CheckpointError,
    FingerprintMismatchError,
    JobIdentity,
    JobStatus,
    RecordedGroup,
    ResumeState,
    RunState,
    check_end_state,
    check_resume_point,
    fresh_outcomes,
    summary_json,
    utc_now,
)
from bulkupdate.models import KeyResolution, Outcome, ResumePoint, RowStatus

__all__ = ["SqliteCheckpointStore"]

T = TypeVar("T")

BUSY_TIMEOUT_S = 5.0  # `status` from another process may hold a read snapshot briefly
LOCK_WAIT_S = 1.0  # a `status` probe holds the run lock for microseconds; do not fail on it
LOCK_RETRY_S = 0.05
FAILED_PAGE_ROWS = 500  # failures are paged so rebuilding a large failures file stays bounded

_OUTCOME_COLUMNS = "byte_offset, line, case_id, status, error_code, error_message, raw, attempts"
_INSERT_OUTCOME = f"INSERT OR IGNORE INTO outcomes ({_OUTCOME_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
_ADD_TOTAL = (
    "INSERT INTO totals (status, row_count) VALUES (?, ?) "
    "ON CONFLICT (status) DO UPDATE SET row_count = row_count + excluded.row_count"
)
_FORGET_DONE = (
    "DELETE FROM outcomes WHERE byte_offset >= ? AND byte_offset < ? "
    f"AND status = '{RowStatus.DONE.value}'"
)
_SET_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)


class SqliteCheckpointStore:
    """A `CheckpointStore` in one SQLite file. WAL with synchronous=NORMAL: a committed batch
    survives a killed process (a power cut may lose the last batches, never half of one).

    `open` takes an exclusive lock on `<path>.lock` for the run; the kernel drops it when the
    process dies, which is how `status` tells a crashed run from a live one. A `read_only` store
    (`bulkupdate status`) also reads a checkpoint on a read-only volume.
    """

    __slots__ = (
        "_conn",
        "_lock",
        "_now",
        "_path",
        "_read_only",
        "_resume_point",
        "_run_ended",
        "_run_lock",
        "_run_number",
        "_verified",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        now: Callable[[], datetime] = utc_now,
        read_only: bool = False,
    ):
        self._path = Path(path)
        self._now = now
        self._read_only = read_only  # for looking only: `open` and the writes are refused
        self._lock = anyio.Lock()  # one connection, one call at a time
        self._conn: sqlite3.Connection | None = None
        self._verified = False  # the connected file has been identified as a checkpoint
        self._run_lock = RunLock(self._path.with_name(self._path.name + ".lock"))
        self._run_number: int | None = None
        self._run_ended = False
        self._resume_point = ResumePoint()

    @property
    def path(self) -> Path:
        return self._path

    def hold_left_s(self) -> float:
        """The run lock is the kernel's for as long as this process lives."""
        return math.inf if self._run_lock.held else 0.0

    async def open(self, job: JobIdentity, *, restart: bool) -> ResumeState:
        if self._run_lock.held or self._read_only:
            raise RuntimeError("checkpoint store is already open, or read-only")
        try:  # a failed open leaves the store closed, whatever it had opened on the way
            # Before a lock file appears beside it.
            await self._call(partial(self._refuse_unusable_file, restart))
            deadline_s = anyio.current_time() + LOCK_WAIT_S
            while not await self._call(self._run_lock.try_acquire):
                if anyio.current_time() >= deadline_s:
                    holder = self._run_lock.holder()
                    raise CheckpointBusyError(
                        str(self._path),
                        f"another run (pid {holder}) is using it; wait for it to end",
                    )
                await anyio.sleep(LOCK_RETRY_S)
            return await self._call(partial(self._open_sync, job, restart))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise

    async def commit(
        self,
        outcomes: Sequence[Outcome],
        resume_point: ResumePoint,
        counters: Mapping[str, int],
        images: Sequence[ImageChange] = (),
        *,
        groups_done: Sequence[str] = (),
    ) -> None:
        self._check_running()
        work = partial(
            self._commit_sync,
            list(outcomes),
            resume_point,
            dict(counters),
            list(images),
            list(groups_done),
        )
        await self._call(work)

    async def record_group(self, group: RecordedGroup) -> None:
        self._check_running()
        body = sqlite_groups.encode(group)
        await self._call(partial(self._record_group_sync, group.token, body))

    async def recorded_groups(self) -> list[RecordedGroup]:
        self._check_running()
        return await self._call(self._recorded_groups_sync)

    async def failed_rows(self) -> AsyncIterator[Outcome]:
        after_offset = -1
        while True:  # keyset pages, each its own call: no lock or snapshot held across a yield
            page = await self._call(partial(self._failed_page, after_offset))
            for outcome in page:
                yield outcome
            if len(page) < FAILED_PAGE_ROWS:
                return
            after_offset = page[-1].offset

    async def record_keys(self, resolutions: Sequence[KeyResolution]) -> None:
        self._check_running()
        await self._call(partial(self._keys_sync, list(resolutions)))

    async def resolved_keys(self, field_id: str) -> Mapping[str, tuple[str, ...]]:
        self._check_running()
        return await self._call(lambda: sqlite_keys.read(self._connect(create=False), field_id))

    def _keys_sync(self, resolutions: list[KeyResolution]) -> None:
        conn = self._connect(create=False)
        with _transaction(conn):
            sqlite_keys.record(conn, resolutions)

    async def status(self) -> JobStatus:
        return await self._call(self._status_sync)

    async def images(self) -> AsyncIterator[FieldImage]:
        after: tuple[str, str] = ("", "")
        while True:  # keyset pages, as failed_rows
            page = await self._call(partial(self._images_page, after))
            for image in page:
                yield image
            if len(page) < sqlite_images.PAGE_ROWS:
                return
            after = (page[-1].case_id, page[-1].field_id)

    async def finish_run(self, end_state: str, summary: Mapping[str, Any]) -> None:
        state = check_end_state(end_state)
        self._check_running()
        await self._call(partial(self._finish_sync, state, summary_json(summary)))

    async def close(self) -> None:
        async with self._lock:
            with anyio.CancelScope(shield=True):  # a cancelled caller must not leak the file
                await anyio.to_thread.run_sync(self._close_sync)

    # --- worker-thread side

    async def _call(self, work: Callable[[], T]) -> T:
        async with self._lock:
            try:
                return await anyio.to_thread.run_sync(work)
            except (sqlite3.Error, OSError) as exc:
                raise CheckpointError(str(self._path), str(exc)) from exc

    def _check_running(self) -> None:
        if self._run_number is None:
            raise RuntimeError("checkpoint store is not open")
        if self._run_ended:
            raise RuntimeError("run already ended")

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        if self._conn is None:
            if create:
                target, uri = str(self._path), False
            elif not self._path.exists():
                raise CheckpointError(str(self._path), "does not exist")
            elif self._read_only and not writable(self._path):
                self._conn = connect_read_only(self._path, timeout_s=BUSY_TIMEOUT_S)
                self._verified = False
                return self._conn
            else:  # mode=rw: looking at a checkpoint must never create one
                target, uri = f"{file_uri(self._path)}?mode=rw", True
            self._conn = connect(target, uri=uri, timeout_s=BUSY_TIMEOUT_S)
            self._verified = False
        return self._conn

    def _refuse_unusable_file(self, restart: bool) -> None:
        # Identified even with --restart: a file that is not a checkpoint is never written.
        if self._path.exists() and not self._identify(self._connect(create=False)) and not restart:
            raise self._no_job_error()

    def _no_job_error(self) -> CheckpointError:
        """For a checkpoint file that holds no job: starting it afresh would send every row
        again, so only --restart may."""
        return CheckpointError(
            str(self._path),
            "exists but holds no job. Either its -wal file, where SQLite keeps the latest "
            "commits, was deleted (or the checkpoint copied without it) and where the job stood "
            "is lost, or a run was killed while creating it, before it sent anything. Put the "
            "-wal file back beside it to resume, or pass --restart to start the job over "
            "(rows applied before are sent again)",
        )

    def _identify(self, conn: sqlite3.Connection) -> bool:
        """True for a checkpoint of this schema, False for an empty database; else raise.
        Reads only, so a file that is not ours is left exactly as it was."""
        if self._verified:
            return True
        if not sqlite_schema.identify(conn, self._path, read_only=self._read_only):
            return False
        self._verified = True
        return True

    def _open_sync(self, job: JobIdentity, restart: bool) -> ResumeState:
        existed = self._conn is not None or self._path.exists()
        conn = self._connect(create=True)
        initialized = self._identify(conn)
        if existed and not initialized and not restart:
            raise self._no_job_error()  # a header-only file: its WAL is gone
        now = self._now().isoformat()
        if not initialized:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent; cannot change in a transaction
        # Per connection, and only once the file is known to be ours: even a PRAGMA reads it.
        conn.execute("PRAGMA synchronous = NORMAL")
        with _transaction(conn):
            if not initialized:
                sqlite_schema.create(conn, now)
            stored = sqlite_status.read_job(conn)
            if existed and stored is None and not restart:
                raise self._no_job_error()
            if stored is not None and stored[0] != job and not restart:
                raise FingerprintMismatchError(str(self._path), stored[0], job)
            conn.execute(sqlite_groups.CREATE)  # missing in checkpoints made before batching
            conn.execute(sqlite_keys.CREATE)  # missing in checkpoints made before --match-field
            if stored is None or restart:
                conn.execute(sqlite_keys.FORGET)
                conn.execute(sqlite_groups.FORGET)
                for table in ("job", "outcomes", "totals", "counters", "runs"):
                    conn.execute(f"DELETE FROM {table}")
                conn.execute(sqlite_images.FORGET)
                conn.execute(
                    "INSERT INTO job VALUES (1, ?, ?, ?, ?, 0, 1, ?, ?)",
                    (job.name, job.input_path, job.fingerprint, job.stored_format, now, now),
                )
            # We hold the run lock, so a run still marked running lost its process.
            conn.execute(
                "UPDATE runs SET state = ? WHERE state = ?",
                (RunState.CRASHED.value, RunState.RUNNING.value),
            )
            (number,) = conn.execute("SELECT coalesce(max(number), 0) + 1 FROM runs").fetchone()
            conn.execute(
                "INSERT INTO runs (number, state, pid, started_at) VALUES (?, ?, ?, ?)",
                (number, RunState.RUNNING.value, os.getpid(), now),
            )
            resume_point = ResumePoint() if stored is None or restart else stored[1]
            resolved = conn.execute(
                "SELECT byte_offset FROM outcomes WHERE byte_offset >= ?", (resume_point.offset,)
            )
            state = ResumeState(
                resume_point=resume_point,
                resolved_offsets=frozenset(offset for (offset,) in resolved),
                totals=sqlite_status.read_totals(conn),
                counters=dict(conn.execute("SELECT name, value FROM counters").fetchall()),
                runs=number,
            )
        self._resume_point = resume_point
        self._run_number = number
        self._run_ended = False
        return state

    def _commit_sync(
        self,
        outcomes: list[Outcome],
        resume_point: ResumePoint,
        counters: dict[str, int],
        images: list[ImageChange],
        groups_done: list[str],
    ) -> None:
        # Checked here, under the lock, so concurrent commits cannot both pass a stale check.
        floor_offset = self._resume_point.offset
        check_resume_point(self._resume_point, resume_point)
        fresh = fresh_outcomes(outcomes, floor_offset)
        conn = self._connect(create=False)
        with _transaction(conn):
            added: list[tuple[str, int]] = []
            for status in RowStatus:  # one executemany per status, so rowcount counts it
                rows = [_outcome_row(o) for o in fresh if o.status == status]
                if rows:
                    added.append((status.value, conn.executemany(_INSERT_OUTCOME, rows).rowcount))
            conn.executemany(_ADD_TOTAL, added)
            if resume_point.offset > floor_offset:  # each stored row is scanned here once per job
                conn.execute(_FORGET_DONE, (floor_offset, resume_point.offset))
            conn.execute(
                "UPDATE job SET resume_offset = ?, resume_line = ?, updated_at = ?",
                (resume_point.offset, resume_point.line, self._now().isoformat()),
            )
            conn.executemany(_SET_COUNTER, counters.items())
            if images:
                sqlite_images.record(conn, images)
            sqlite_groups.forget(conn, groups_done)
        self._resume_point = resume_point

    def _images_page(self, after: tuple[str, str]) -> list[FieldImage]:
        conn = self._connect(create=False)
        if not self._identify(conn):
            raise CheckpointError(str(self._path), "holds no job yet")
        return sqlite_images.page(conn, after)

    def _record_group_sync(self, token: str, body: str) -> None:
        conn = self._connect(create=False)
        with _transaction(conn):
            sqlite_groups.record(conn, token, body)

    def _recorded_groups_sync(self) -> list[RecordedGroup]:
        conn = self._connect(create=False)
        return sqlite_groups.read(conn)

    def _failed_page(self, after_offset: int) -> list[Outcome]:
        conn = self._connect(create=False)
        if not self._identify(conn):
            raise CheckpointError(str(self._path), "holds no job yet")
        rows = conn.execute(
            f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE status = ? AND byte_offset > ? "
            "ORDER BY byte_offset LIMIT ?",
            (RowStatus.FAILED.value, after_offset, FAILED_PAGE_ROWS),
        )
        return [
            Outcome(offset, line, case_id, RowStatus(status), code, message, raw, attempts)
            for offset, line, case_id, status, code, message, raw, attempts in rows
        ]

    def _status_sync(self) -> JobStatus:
        conn = self._connect(create=False)
        if not self._identify(conn):
            raise CheckpointError(str(self._path), "holds no job yet")
        with _transaction(conn, "DEFERRED"):  # one snapshot for every read
            status = sqlite_status.read(conn)
        if status is None:
            raise CheckpointError(str(self._path), "holds no job yet")
        last = status.last_run
        # A run still marked running whose lock nobody holds lost its process.
        if (
            last is not None
            and last.state == RunState.RUNNING
            and not self._run_lock.held_by_anyone()
        ):
            status = replace(status, last_run=replace(last, state=RunState.CRASHED))
        return status

    def _finish_sync(self, state: RunState, summary: str) -> None:
        conn = self._connect(create=False)
        with _transaction(conn):
            conn.execute(
                "UPDATE runs SET state = ?, ended_at = ?, summary = ? WHERE number = ?",
                (state.value, self._now().isoformat(), summary, self._run_number),
            )
        self._run_ended = True

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._run_lock.release()  # after the database is closed, so the next run finds it at rest
        self._run_number = None
        self._verified = False


@contextmanager
def _transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so busy_timeout applies instead of a deadlock.
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _outcome_row(o: Outcome) -> tuple[Any, ...]:
    status = RowStatus(o.status).value
    return (o.offset, o.line, o.case_id, status, o.error_code, o.error_message, o.raw, o.attempts)
