"""SIGKILL a real process while it commits batches to a SQLite checkpoint: every reopening finds the
state after a whole number of batches, exactly, and the next run carries on from there."""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import JobIdentity, JobStatus, RunState
from bulkupdate.models import Outcome, ResumePoint, RowStatus

JOB = JobIdentity("crash-rehearsal", "rehearsal.csv", "sha256:c0ffee", "csv")
RECORD_BYTES = 64
BLOCK_RECORDS = 200  # each commit resolves about one block of records
KILLS = 10


# --- the child's workload, shared with the parent's model via inspect.getsource


def fails(index: int) -> bool:
    return index % 17 == 3


def outcome_for(index: int) -> Outcome:
    if fails(index):
        return Outcome(
            offset=index * RECORD_BYTES,
            line=index + 2,
            case_id=f"case-{index % 977}",
            status=RowStatus.FAILED,
            error_code="ValidationException",
            error_message=f"row {index}: order_total is not a number",
            raw=f"case-{index % 977},{index}x,\xe9\n".encode(),
            attempts=index % 3,
        )
    return Outcome(index * RECORD_BYTES, index + 2, f"case-{index % 977}", RowStatus.DONE, None)


def resolved_early(block: int) -> list[int]:
    """The records of `block` that resolve in its own batch; the rest straggle into the next."""
    rng = random.Random(block)
    first = block * BLOCK_RECORDS
    return [i for i in range(first, first + BLOCK_RECORDS) if rng.random() < 0.7]


def batch(number: int) -> tuple[list[Outcome], ResumePoint]:
    """Commit `number` (from 1) as an engine makes it: block number-1 resolves out of order,
    block number-2's stragglers finish, and a few resolved records come again, some behind the
    resume point, some still held above it and some twice in this batch: none may count twice.
    Computed from `number` alone, so a restarted child starts at once."""
    block = number - 1
    early = resolved_early(block)
    previous = resolved_early(block - 1) if block else []
    previous_block = range((block - 1) * BLOCK_RECORDS, block * BLOCK_RECORDS) if block else []
    stragglers = sorted(set(previous_block) - set(previous))
    rng = random.Random(-number)
    picks = stragglers + early + rng.sample(previous, min(5, len(previous))) + rng.sample(early, 5)
    rng.shuffle(picks)
    block_end = (block + 1) * BLOCK_RECORDS
    lowest_open = min(set(range(block * BLOCK_RECORDS, block_end)) - set(early), default=block_end)
    return [outcome_for(i) for i in picks], ResumePoint(lowest_open * RECORD_BYTES, lowest_open + 2)


async def run_child(path: str, last_batch: int, watch_batch: int, kill_statement: int) -> None:
    """Open, report what was found, then commit batches, saying so before and after each.

    While committing batch `watch_batch` it counts the store's SQL statements and SIGKILLs
    itself as statement number `kill_statement` begins (0: it only reports the count)."""
    statements = -1  # -1: not watching

    def on_statement(sql: str) -> None:
        nonlocal statements
        if statements >= 0:
            statements += 1
            if statements == kill_statement:
                print(f"killed at {sql.split()[0]}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    unwatched_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = unwatched_connect(*args, **kwargs)
        conn.set_trace_callback(on_statement)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment] # the store looks it up at each call
    store = SqliteCheckpointStore(path)
    state = await store.open(JOB, restart=False)
    committed = state.counters.get("batch", 0)
    found = {
        "batch": committed,
        "resume_point": [state.resume_point.offset, state.resume_point.line],
        "resolved": sorted(state.resolved_offsets),
        "totals": {status.value: rows for status, rows in state.totals.items()},
        "runs": state.runs,
    }
    print(json.dumps(found), flush=True)
    for number in range(committed + 1, last_batch + 1):
        outcomes, resume_point = batch(number)
        print(f"begin {number}", flush=True)
        statements = 0 if number == watch_batch else -1
        await store.commit(outcomes, resume_point, {"batch": number})
        if number == watch_batch:
            print(f"statements {statements}", flush=True)
        statements = -1
        print(f"end {number}", flush=True)
    await store.finish_run("finished", {"batches": last_batch})
    await store.close()


CHILD_SCRIPT = "\n".join(
    [
        "from __future__ import annotations",
        "import json, os, random, signal, sqlite3, sys",
        "from typing import Any",
        "import anyio",
        "from bulkupdate.checkpoint.store import JobIdentity",
        "from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore",
        "from bulkupdate.models import Outcome, ResumePoint, RowStatus",
        f"JOB = {JOB!r}",
        f"RECORD_BYTES, BLOCK_RECORDS = {RECORD_BYTES}, {BLOCK_RECORDS}",
        *(inspect.getsource(f) for f in (fails, outcome_for, resolved_early, batch, run_child)),
        "anyio.run(run_child, sys.argv[1], *map(int, sys.argv[2:]))",
    ]
)


# --- the parent's model of "the state after k whole batches"


@dataclass(frozen=True)
class Expected:
    resume_point: ResumePoint
    resolved_ahead: frozenset[int]
    totals: dict[str, int]
    failed: list[Outcome]


def expected_after(count: int) -> Expected:
    """Batches 1..count resolve every record of blocks before count-1, and block count-1's early
    ones; the resume point is the last batch's."""
    if count == 0:
        return Expected(ResumePoint(), frozenset(), {"done": 0, "failed": 0}, [])
    resume_point = batch(count)[1]
    first_open = (count - 1) * BLOCK_RECORDS  # every record before it is resolved
    resolved = [*range(first_open), *resolved_early(count - 1)]
    failed = [outcome_for(i) for i in resolved if fails(i)]
    ahead = [i * RECORD_BYTES for i in resolved if i >= first_open]
    return Expected(
        resume_point=resume_point,
        resolved_ahead=frozenset(o for o in ahead if o >= resume_point.offset),
        totals={"done": len(resolved) - len(failed), "failed": len(failed)},
        failed=failed,
    )


def committed_range(lines: list[str], before: int) -> set[int]:
    """Which batch counts the file may hold, from the child's last word before it died."""
    said = [line.split() for line in lines if line.startswith(("begin ", "end "))]
    if not said:
        return {before}
    word, number = said[-1][0], int(said[-1][1])
    return {number} if word == "end" else {number - 1, number}


async def look(path: Path) -> tuple[JobStatus, list[Outcome]]:
    store = SqliteCheckpointStore(path)
    try:
        return await store.status(), [row async for row in store.failed_rows()]
    finally:
        await store.close()


def assert_found(found: dict[str, Any], batch_count: int, runs: int) -> None:
    want = expected_after(batch_count)
    assert found["batch"] == batch_count
    assert found["resume_point"] == [want.resume_point.offset, want.resume_point.line]
    assert set(found["resolved"]) == want.resolved_ahead
    assert found["totals"] == want.totals
    assert found["runs"] == runs


def assert_holds(db_path: Path, batch_count: int, context: str) -> JobStatus:
    """The checkpoint holds exactly the state after `batch_count` whole batches."""
    status, failed = anyio.run(look, db_path)
    want = expected_after(batch_count)
    assert status.counters.get("batch", 0) == batch_count, context
    assert status.resume_point == want.resume_point, context
    assert {s.value: rows for s, rows in status.totals.items()} == want.totals, context
    assert failed == want.failed, context
    return status


def spawn(
    script: Path, db_path: Path, last_batch: int, watch_batch: int = 0, kill_statement: int = 0
) -> subprocess.Popen[str]:
    arguments = [str(n) for n in (last_batch, watch_batch, kill_statement)]
    return subprocess.Popen(
        [sys.executable, str(script), str(db_path), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(60)
def test_a_killed_run_leaves_exactly_the_batches_it_committed_and_the_next_run_resumes(
    tmp_path: Path,
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    db_path = tmp_path / "job.sqlite"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    committed, runs = 0, 0

    for kill_no in range(KILLS):
        context = f"seed {seed}, kill {kill_no}"
        child = spawn(script, db_path, last_batch=10**6)
        # Odd kills count from the child's start, so some land in start-up or inside open();
        # even ones from the moment it has opened (the first must, so the file holds a job).
        first_line = ""
        if kill_no % 2 == 0:
            assert child.stdout is not None
            first_line = child.stdout.readline()
            assert first_line, f"{context}: child died before opening: {child.communicate()}"
        time.sleep(rng.uniform(0.02, 0.2))
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL, f"{context}: {errors}"
        lines = (first_line + rest).splitlines()
        if lines:  # it opened: what it found is exactly what the previous kill left
            assert_found(json.loads(lines[0]), committed, runs + 1)

        possible = committed_range(lines, before=committed)
        committed = anyio.run(look, db_path)[0].counters.get("batch", 0)
        assert committed in possible, f"{context}: holds batch {committed}, not one of {possible}"
        status = assert_holds(db_path, committed, context)
        # A kill inside open() either started the run or did not; never half of it.
        assert status.runs in ({runs + 1} if lines else {runs, runs + 1}), context
        runs = status.runs
        assert status.last_run is not None  # its run lock died with it, so status can tell
        assert status.last_run.state is RunState.CRASHED, context

    # A last run carries on to a fixed batch and finishes cleanly.
    final = spawn(script, db_path, last_batch=committed + 5)
    out, errors = final.communicate(timeout=20)
    assert final.returncode == 0, errors
    assert_found(json.loads(out.splitlines()[0]), committed, runs + 1)
    status = assert_holds(db_path, committed + 5, f"seed {seed}, final run")
    assert status.last_run is not None
    assert status.last_run.state is RunState.FINISHED
    assert committed > 0, f"seed {seed}: no kill left a committed batch; the test proved little"


def run_to_end(script: Path, db_path: Path, last_batch: int, watch_batch: int = 0) -> list[str]:
    child = spawn(script, db_path, last_batch, watch_batch)
    out, errors = child.communicate(timeout=20)
    assert child.returncode == 0, errors
    return out.splitlines()


@pytest.mark.timeout(60)
def test_a_run_killed_as_any_statement_of_a_commit_begins_keeps_none_of_that_batch(
    tmp_path: Path,
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    db_path = tmp_path / "job.sqlite"
    run_to_end(script, db_path, last_batch=2)
    # How many statements batch 3 takes, counted on a copy (closed cleanly: no WAL beside it).
    shutil.copy(db_path, tmp_path / "probe.sqlite")
    said = run_to_end(script, tmp_path / "probe.sqlite", last_batch=3, watch_batch=3)
    (count,) = [int(line.split()[1]) for line in said if line.startswith("statements ")]
    killed_at: list[str] = []

    for kill_statement in sorted({1, 2, 3, count // 2, *range(count - 6, count + 1)}):
        context = f"statement {kill_statement} of {count}"
        child = spawn(script, db_path, 3, watch_batch=3, kill_statement=kill_statement)
        out, errors = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL, f"{context}: {errors}"
        killed_at.append(out.splitlines()[-1].removeprefix("killed at "))
        assert_holds(db_path, 2, context)

    assert killed_at[0] == "BEGIN"
    assert killed_at[-1] == "COMMIT"
    run_to_end(script, db_path, last_batch=3)
    assert_holds(db_path, 3, "after the kills")
