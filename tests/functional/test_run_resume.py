"""`bulkupdate run` as a real subprocess against the in-process emulator: killed with SIGKILL and
resumed, drained on SIGTERM, aborted on a systemic error, throttled, failing transiently, refused
a changed input, and losing connections. Every test checks the service's own log of applied
updates, so order, loss and duplicates are measured where they happen, not where they are logged.

Each input row sets `order_total` to a number unique to that row and increasing with the line, so
a logged value names its row and the per-case log shows the order rows were applied in.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import (
    Emulator,
    EmulatorConfig,
    FaultConfig,
    Quota,
    no_quotas,
    running_emulator,
)
from bulkupdate.exits import (
    EXIT_ABORTED,
    EXIT_FAILED_ROWS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.faultproxy import FaultProxy
from tests.functional.runner import cli_env, run_cli

FLUSH_INTERVAL_S = 0.25  # RunConfig.flush_interval's default: the spec's "at least every 250 ms"
RUN_TIMEOUT_S = 30.0  # no run in this file needs more than a few seconds
FIRST_VALUE = 1000  # order_total of the first row; row i sets FIRST_VALUE + i


# --- the job: a generated input and the command that applies it -----------------------------------


@dataclass(frozen=True)
class Row:
    index: int  # 0-based position in the input
    case_id: str
    order_total: int
    cell: str | None = None  # what the CSV holds instead of order_total (a row meant to fail)

    @property
    def valid(self) -> bool:
        return self.cell is None and not self.case_id.startswith("missing-")


def rows_after(rows: Sequence[Row], row: Row) -> list[Row]:
    """The rows of `row`'s case that come after it in the input."""
    return [r for r in rows if r.case_id == row.case_id and r.index > row.index]


def make_rows(rows: int, cases: int, seed: int) -> list[Row]:
    """Rows spread over cases at random (every case gets rows), order_total unique and rising."""
    rng = random.Random(seed)
    case_ids = [f"case-{number:07d}" for number in range(1, cases + 1)]
    owners = case_ids + [rng.choice(case_ids) for _ in range(rows - cases)]
    rng.shuffle(owners)
    return [Row(i, case_id, FIRST_VALUE + i) for i, case_id in enumerate(owners)]


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["case_id", "order_total"])
        writer.writerows([row.case_id, row.cell or row.order_total] for row in rows)


@dataclass
class Job:
    folder: Path
    url: str
    rows: list[Row]
    domain_id: str = "demo"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input = self.folder / "orders.csv"
        self.checkpoint = self.folder / "orders.checkpoint.sqlite"
        self.failures = self.folder / "orders.failures.csv"
        self.summary = self.folder / "orders.summary.json"
        write_csv(self.input, self.rows)

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bulkupdate",
            "run",
            "--input",
            str(self.input),
            "--domain-id",
            self.domain_id,
            "--endpoint-url",
            self.url,
            "--checkpoint",
            str(self.checkpoint),
            "--failures",
            str(self.failures),
            "--summary",
            str(self.summary),
            "--no-progress",
            "--log-format",
            "json",
            *extra,
        ]

    def environment(self) -> dict[str, str]:
        """The emulator's credentials, no AWS_*/BULKUPDATE_* from outside, plus `env`."""
        return cli_env(self.env)

    def read_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = json.loads(self.summary.read_text(encoding="utf-8"))
        return summary

    def failed_rows(self) -> list[dict[str, str]]:
        with self.failures.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def last_rows(self) -> dict[str, Row]:
        """The last row of each case that the service can apply."""
        last: dict[str, Row] = {}
        for row in self.rows:
            if row.valid:
                last[row.case_id] = row
        return last


# --- processes: launched, awaited with a deadline, never left behind ------------------------------


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        """The log: JSON lines on stdout, every line of it (the summary line is on stderr)."""
        return [json.loads(line) for line in self.stdout.splitlines()]


class Child:
    """One subprocess whose output goes to files, so a full pipe can never stall it. Unlike
    runner.run_cli it hands out the process, to be signalled while it runs."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], folder: Path) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.folder = folder
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        number = len(list(self.folder.glob("child-*.out")))
        self._out = self.folder / f"child-{number}.out"
        self._err = self.folder / f"child-{number}.err"
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def send(self, signum: int) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)

    async def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> Finished:
        assert self.process is not None
        try:
            returncode = await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
            pytest.fail(f"{self.argv[3:5]} still running after {timeout_s} s:\n{self.stderr()}")
        return Finished(
            returncode,
            self._out.read_text(encoding="utf-8", errors="replace"),
            self.stderr(),
        )

    def stderr(self) -> str:
        return self._err.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self._out.read_text(encoding="utf-8", errors="replace")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 10)


@asynccontextmanager
async def child(argv: Sequence[str], env: Mapping[str, str], folder: Path) -> AsyncIterator[Child]:
    process = Child(argv, env, folder)
    await process.start()
    try:
        yield process
    finally:
        await process.kill()


async def run(job: Job, *extra: str, timeout_s: float = RUN_TIMEOUT_S) -> Finished:
    async with child(job.argv(*extra), job.environment(), job.folder) as process:
        return await process.wait(timeout_s)


async def status(job: Job) -> dict[str, Any]:
    done = await run_cli("status", "--checkpoint", str(job.checkpoint), "--json", timeout_s=30)
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    return info


async def wait_until(condition: Any, what: str, timeout_s: float = RUN_TIMEOUT_S) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


# --- the emulator and what its update log proves --------------------------------------------------


@asynccontextmanager
async def emulator(
    cases: int,
    *,
    faults: FaultConfig | None = None,
    quotas: Mapping[str, Quota | None] | None = None,
    verify_signatures: bool = False,
) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        port=0,
        quotas=dict(no_quotas() if quotas is None else quotas),
        demo_cases=cases,
        faults=faults or FaultConfig(),
        verify_signatures=verify_signatures,
    )
    async with running_emulator(config) as emu:
        yield emu


def applied_rows(emu: Emulator) -> list[int]:
    """Row indexes of the updates the service applied, in apply order."""
    indexes = []
    for update in emu.service.updates:
        (only,) = update["fields"]
        assert only["id"] == "order_total", update
        indexes.append(round(only["value"]["doubleValue"]) - FIRST_VALUE)
    return indexes


def update_calls(emu: Emulator) -> int:
    """UpdateCase calls the emulator has answered (or dropped), whatever the outcome."""
    return sum(emu.counters["UpdateCase"].values())


def in_flight(emu: Emulator) -> int:
    """UpdateCase calls admitted past the quota and not yet answered. Valid only while
    set_faults has not been called (it restarts emu.update_calls)."""
    answered = update_calls(emu) - emu.counters["UpdateCase"]["ThrottlingException"]
    return emu.update_calls - answered


def assert_final_state_is_last_row_per_case(emu: Emulator, job: Job) -> None:
    cases = emu.service.domains["demo"].cases
    wrong = {
        case_id: (cases[case_id].values.get("order_total"), row.order_total)
        for case_id, row in job.last_rows().items()
        if cases[case_id].values.get("order_total") != {"doubleValue": float(row.order_total)}
    }
    assert not wrong, f"case: (stored, last row of the input): {wrong}"


def assert_applied_in_input_order(
    rows: Sequence[Row],
    log: Sequence[int],
    run_starts: Sequence[int],
    *,
    repeats_in_run: bool = False,
) -> None:
    """Per case, with the case's input rows numbered 0..n-1 and the log read as those numbers:

    - the log starts at row 0 and ends at row n-1 (the last row wins);
    - it never skips ahead: each entry is at most one past the entry before it, so no row is
      applied before every earlier row of its case has been applied;
    - within one run it only ever moves one row forward; it may move back (a re-sent row) only
      at the start of a run after a kill, and then it replays a contiguous suffix of what had
      been applied, rising one row at a time again.

    `run_starts` are positions in `log` where a run began sending. With `repeats_in_run` (a
    connection lost after the service applied the call) a row may also repeat at once in a run.
    """
    position_in_case: dict[int, tuple[str, int]] = {}
    rows_of_case: Counter[str] = Counter()
    for row in rows:
        position_in_case[row.index] = (row.case_id, rows_of_case[row.case_id])
        rows_of_case[row.case_id] += 1
    starts = sorted(run_starts)
    per_case: dict[str, list[tuple[int, int]]] = defaultdict(list)  # case -> (run, position)
    for at, index in enumerate(log):
        case_id, position = position_in_case[index]
        run_number = sum(1 for start in starts if start <= at)
        per_case[case_id].append((run_number, position))
    assert set(per_case) == set(rows_of_case), "some case got no update at all"
    for case_id, entries in per_case.items():
        positions = [position for _, position in entries]
        assert positions[0] == 0, f"{case_id}: first applied row is #{positions[0]}: {positions}"
        assert positions[-1] == rows_of_case[case_id] - 1, f"{case_id}: {positions}"
        for (run_before, before), (run_after, after) in itertools.pairwise(entries):
            assert after <= before + 1, f"{case_id}: skipped from #{before} to #{after}"
            if run_after == run_before:
                allowed = (before, before + 1) if repeats_in_run else (before + 1,)
                assert after in allowed, f"{case_id}: #{before} then #{after} in one run"


# --- 1. SIGKILL at random moments, then resume ----------------------------------------------------


async def test_a_run_killed_at_random_moments_resumes_to_the_exact_final_state_in_input_order(
    tmp_path: Path,
) -> None:
    seed, kills, concurrency, rate_per_s, burst = 20240531, 6, 8, 160, 8
    rng = random.Random(seed)
    rows = make_rows(500, 30, seed)
    async with emulator(30, faults=FaultConfig(latency_median_ms=5, latency_p99_ms=15)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", str(rate_per_s), "--burst", str(burst))
        flags += ("--concurrency", str(concurrency))
        run_starts: list[int] = []  # log position where each run began
        kill_delays_s: list[float] = []
        finished: Finished | None = None
        for attempt in range(kills + 1):
            run_starts.append(len(emu.service.updates))
            async with child(job.argv(*flags), job.environment(), tmp_path) as process:
                if attempt < kills:
                    # A random moment once this run is sending, so every kill lands mid-work:
                    # in flight, between flushes or inside a checkpoint commit.
                    await wait_until(
                        lambda: len(emu.service.updates) > run_starts[-1] or not process.running,
                        "the run to apply an update",
                    )
                    delay_s = rng.uniform(0.0, 0.5)
                    kill_delays_s.append(delay_s)
                    await asyncio.sleep(delay_s)
                    process.send(signal.SIGKILL)
                done = await process.wait()
            # The service still applies what the killed run had in flight; let it land so the
            # log tells one run's updates from the next run's.
            await wait_until(lambda: in_flight(emu) == 0, "calls in flight to land", 5)
            if done.returncode != -signal.SIGKILL:
                finished = done
                break
        assert finished is not None
        assert finished.returncode == EXIT_OK, finished.stderr
        assert len(run_starts) >= 4, f"the run finished after only {len(run_starts) - 1} kills"

        log = applied_rows(emu)
        assert_final_state_is_last_row_per_case(emu, job)
        assert set(log) == {row.index for row in rows}, "a row was never applied"
        assert_applied_in_input_order(rows, log, run_starts)

        # Duplicates per kill: rows a killed run got applied whose outcome it had not yet
        # committed, so a later run applied them again. Those were in flight (at most
        # `concurrency`) or acknowledged since the last committed batch. Batches are taken every
        # flush interval after the previous commit returns; the gate admits at most
        # burst + rate x T calls in any T seconds. 0.1 s of slack covers the commit itself and
        # scheduling delays.
        bound = concurrency + burst + math.ceil(rate_per_s * (FLUSH_INTERVAL_S + 0.1))
        bounds = [*run_starts[1:], len(log)]
        lost_per_kill = []
        for number, (start, stop) in enumerate(zip(run_starts, bounds, strict=True)):
            mine = log[start:stop]
            assert len(mine) == len(set(mine)), f"run {number + 1} applied a row twice"
            later = set(log[stop:])
            lost_per_kill.append(len(set(mine) & later))
        assert lost_per_kill[-1] == 0
        duplicates = len(log) - len(set(log))
        assert sum(lost_per_kill) == duplicates
        print(f"kills after {[round(d, 3) for d in kill_delays_s]} s; re-sent {lost_per_kill}")
        assert max(lost_per_kill) <= bound, (lost_per_kill, bound)

        info = await status(job)
        assert info["applied"] == len(rows) == len(set(log))
        assert info["failed"] == 0
        assert info["last_run"]["state"] == "finished"
        assert info["runs"] == len(run_starts)


async def test_after_kills_every_failed_row_is_in_the_failures_file_once_and_no_applied_row_is(
    tmp_path: Path,
) -> None:
    seed, kills = 77, 3
    rng = random.Random(seed)
    rows = []
    for row in make_rows(300, 20, seed):
        if row.index % 11 == 5:
            row = Row(row.index, row.case_id, row.order_total, cell=f"{row.order_total}x")
        elif row.index % 13 == 7:
            row = Row(row.index, f"missing-{row.index}", row.order_total)
        rows.append(row)
    failing = [row for row in rows if not row.valid]
    async with emulator(20, faults=FaultConfig(latency_median_ms=5)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "160", "--burst", "8", "--concurrency", "8")
        run_starts: list[int] = []
        for attempt in range(kills + 1):
            run_starts.append(len(emu.service.updates))
            async with child(job.argv(*flags), job.environment(), tmp_path) as process:
                if attempt < kills:
                    await wait_until(
                        lambda: len(emu.service.updates) > run_starts[-1] or not process.running,
                        "the run to apply an update",
                    )
                    await asyncio.sleep(rng.uniform(0.0, 0.4))
                    process.send(signal.SIGKILL)
                done = await process.wait()
            await wait_until(lambda: in_flight(emu) == 0, "calls in flight to land", 5)
            if done.returncode != -signal.SIGKILL:
                break
        assert done.returncode == EXIT_FAILED_ROWS, done.stderr

        listed = [(r["case_id"], r["order_total"]) for r in job.failed_rows()]
        # A failed row whose case has a later row (applied) has that cell left blank.
        overtaken = {
            row.index for row in failing if any(later.valid for later in rows_after(rows, row))
        }
        expected = [
            (row.case_id, "" if row.index in overtaken else row.cell or str(row.order_total))
            for row in failing
        ]
        assert sorted(listed) == sorted(expected), "each failed row once, no applied row"
        codes = Counter(r["error_code"] for r in job.failed_rows())
        assert codes["ResourceNotFoundException"] == sum(1 for r in failing if r.cell is None)
        valid = [row for row in rows if row.valid]
        log = applied_rows(emu)
        assert set(log) == {row.index for row in valid}
        assert_applied_in_input_order(valid, log, run_starts)
        assert_final_state_is_last_row_per_case(emu, job)
        info = await status(job)
        assert (info["applied"], info["failed"]) == (len(valid), len(failing))


# --- 2. SIGTERM drains; a second signal stops at once ---------------------------------------------


async def test_sigterm_drains_in_flight_calls_and_the_resumed_run_sends_every_row_exactly_once(
    tmp_path: Path,
) -> None:
    rows = make_rows(300, 30, seed=2)
    async with emulator(30, faults=FaultConfig(latency_median_ms=50, latency_p99_ms=80)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "400", "--burst", "8", "--concurrency", "8", "--grace-period", "10")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: len(emu.service.updates) >= 40, "40 applied updates")
            process.send(signal.SIGTERM)
            signalled_s = time.monotonic()
            interrupted = await process.wait()
            stopped_after_s = time.monotonic() - signalled_s
        assert interrupted.returncode == EXIT_INTERRUPTED, interrupted.stderr
        assert stopped_after_s < 10, "did not stop within the grace period"
        summary = job.read_summary()
        assert summary["end"] == "interrupted"
        assert summary["pending"] > 0, "the signal came too late to interrupt anything"
        assert "interrupted:" in interrupted.stderr
        assert any(e.get("event") == "stop_requested" for e in interrupted.events())
        before_resume = len(emu.service.updates)
        info = await status(job)
        assert info["last_run"]["state"] == "interrupted"
        assert info["applied"] == before_resume, "a drained stop records every acknowledged row"

        resumed = await run(job, *flags)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        log = applied_rows(emu)
        assert sorted(log) == [row.index for row in rows], "a row was lost or sent twice"
        assert_applied_in_input_order(rows, log, [0, before_resume])
        assert_final_state_is_last_row_per_case(emu, job)
        summary = job.read_summary()
        assert summary["applied"] == len(rows) - before_resume
        assert summary["job_applied"] == len(rows)


async def test_a_second_signal_during_the_grace_period_stops_at_once_with_a_consistent_checkpoint(
    tmp_path: Path,
) -> None:
    concurrency = 8
    rows = make_rows(300, 30, seed=3)
    async with emulator(30, faults=FaultConfig(latency_median_ms=5)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "200", "--burst", "8", "--concurrency", str(concurrency))
        flags += ("--grace-period", "30")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: len(emu.service.updates) >= 30, "30 applied updates")
            emu.set_faults(FaultConfig(slow_probability=1.0, slow_s=5.0))
            # Every worker is now inside a 5 s call, so each earlier call has been acknowledged.
            await wait_until(lambda: emu.update_calls >= concurrency, "every worker in a slow call")
            fast_applied = len(emu.service.updates)
            process.send(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert process.running, "the first signal must drain, not stop"
            process.send(signal.SIGTERM)
            signalled_s = time.monotonic()
            stopped = await process.wait()
            stopped_after_s = time.monotonic() - signalled_s
        assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
        assert stopped_after_s < 3, f"the second signal took {stopped_after_s:.1f} s"
        assert any(e.get("event") == "stop_forced" for e in stopped.events())
        info = await status(job)
        assert info["last_run"]["state"] == "interrupted"
        assert info["applied"] == fast_applied, "every acknowledged row is in the checkpoint"
        assert info["failed"] == 0

        # The abandoned calls still land on the service (as they may on AWS); let them, so the
        # resumed run's re-sends come after them, then resume on a healthy service.
        slow_calls = emu.update_calls
        assert slow_calls == concurrency, "no call starts after the stop"
        await wait_until(
            lambda: len(emu.service.updates) == fast_applied + slow_calls, "abandoned calls", 10
        )
        emu.set_faults(FaultConfig())
        resumed = await run(job, *flags)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        log = applied_rows(emu)
        assert set(log) == {row.index for row in rows}
        resent = [index for index, n in Counter(log).items() if n > 1]
        assert len(resent) <= concurrency, "only the abandoned in-flight rows may be re-sent"
        assert not set(resent) & set(log[:fast_applied]), "an acknowledged row was re-sent"
        assert_final_state_is_last_row_per_case(emu, job)
        assert (await status(job))["applied"] == len(rows)


async def test_a_drain_that_outlasts_the_grace_period_abandons_its_calls_and_exits_interrupted(
    tmp_path: Path,
) -> None:
    concurrency = 4
    rows = make_rows(100, 10, seed=14)
    async with emulator(10, faults=FaultConfig(slow_probability=1.0, slow_s=3.0)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "200", "--burst", "8", "--concurrency", str(concurrency))
        async with child(
            job.argv(*flags, "--grace-period", "1"), job.environment(), tmp_path
        ) as process:
            await wait_until(lambda: emu.update_calls >= concurrency, "every worker in a call")
            process.send(signal.SIGTERM)
            signalled_s = time.monotonic()
            stopped = await process.wait()
            stopped_after_s = time.monotonic() - signalled_s
        assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
        assert 0.9 < stopped_after_s < 2.5, "waits out the grace period, not the calls"
        info = await status(job)
        assert info["last_run"]["state"] == "interrupted"
        assert (info["applied"], info["failed"]) == (0, 0), "abandoned calls stay pending"
        assert info["resume_line"] == 2, "resumes at the first row"
        # The service finishes the abandoned calls; wait, so the emulator shuts down cleanly.
        await wait_until(lambda: in_flight(emu) == 0, "abandoned calls", 5)


async def test_sigterm_during_start_up_exits_interrupted(tmp_path: Path) -> None:
    # ListFields answers after 2 s: the signal arrives while the run reads the schema, before
    # any row is sent (a job runner's SIGTERM does not wait for the engine to start).
    slow_schema = FaultConfig(
        slow_probability=1.0, slow_s=2.0, operations=frozenset({"ListFields"})
    )
    async with emulator(5, faults=slow_schema) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=15))
        async with child(job.argv(), job.environment(), tmp_path) as process:
            await wait_until(lambda: "run_starting" in process.stdout(), "the run to start")
            await asyncio.sleep(0.5)
            process.send(signal.SIGTERM)
            stopped = await process.wait()
        # Let the slow ListFields finish, so the emulator stops at once.
        await wait_until(lambda: emu.counters["ListFields"]["ok"] > 0, "ListFields", 5)
        assert stopped.returncode == EXIT_INTERRUPTED, (stopped.returncode, stopped.stderr)
        assert update_calls(emu) == 0
        # Start-up had not validated the job yet, so the checkpoint was never opened.
        assert not job.checkpoint.exists()
        assert "  to resume: run the same command again\n" in stopped.stderr


@pytest.mark.parametrize(
    ("extra", "advice"),
    [
        pytest.param((), "run the same command again", id="resumed"),
        pytest.param(
            ("--restart",),
            "run the same command again, without --restart (with it the job starts over: "
            "every row is sent again)",
            id="restarted",
        ),
    ],
)
async def test_an_interrupted_run_says_how_to_resume(
    tmp_path: Path, extra: tuple[str, ...], advice: str
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(30, 5, seed=16))
        flags = ("--rate", "5", "--burst", "1", "--concurrency", "1", *extra)
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: len(emu.service.updates) >= 2, "2 applied updates")
            process.send(signal.SIGTERM)
            stopped = await process.wait()
        assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
        assert f"\n  to resume: {advice}\n" in stopped.stderr
        assert job.read_summary()["resume"] == advice


# --- 3. Systemic errors abort, leave rows pending, and resume -------------------------------------


async def test_access_denied_mid_run_aborts_leaves_rows_pending_and_resumes_without_resending(
    tmp_path: Path,
) -> None:
    rows = make_rows(200, 20, seed=4)
    faults = FaultConfig(latency_median_ms=5, access_denied_after_calls=60)
    async with emulator(20, faults=faults) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "300", "--burst", "8", "--concurrency", "8")
        aborted = await run(job, *flags)
        assert aborted.returncode == EXIT_ABORTED, aborted.stderr
        assert "AccessDenied" in aborted.stderr
        events = [e for e in aborted.events() if e.get("event") == "run_aborted"]
        assert events, aborted.stderr
        assert "cases:UpdateCase" in events[0]["fix"], "the message says what to fix"
        applied_before = len(emu.service.updates)
        assert 0 < applied_before <= 60
        assert job.read_summary()["end"] == "aborted"

        info = await status(job)
        assert info["last_run"]["state"] == "aborted"
        assert "AccessDenied" in info["last_run"]["summary"]["abort"]
        assert info["applied"] == applied_before, "every acknowledged row is recorded"
        assert info["failed"] == 0, "a systemic error fails no row"
        assert info["resume_offset"] < job.input.stat().st_size, "rows are left pending"

        emu.set_faults(FaultConfig(latency_median_ms=5))
        resumed = await run(job, *flags)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        log = applied_rows(emu)
        assert sorted(log) == [row.index for row in rows], "every row applied exactly once"
        assert_applied_in_input_order(rows, log, [0, applied_before])
        assert_final_state_is_last_row_per_case(emu, job)
        info = await status(job)
        assert (info["applied"], info["failed"]) == (len(rows), 0)


async def test_an_unknown_domain_aborts_at_start_up_without_any_update(tmp_path: Path) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=5), domain_id="no-such-domain")
        aborted = await run(job)
        assert aborted.returncode == EXIT_ABORTED, aborted.stderr
        assert update_calls(emu) == 0
        assert "ResourceNotFoundException" in aborted.stderr
        assert "check --domain-id" in aborted.stderr


async def test_a_run_that_aborts_at_start_up_replaces_the_previous_runs_summary(
    tmp_path: Path,
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=16))
        first = await run(job, "--rate", "200", "--burst", "8")
        assert first.returncode == EXIT_OK, first.stderr
        assert job.read_summary()["end"] == "finished"

        job.domain_id = "no-such-domain"
        aborted = await run(job)
        assert aborted.returncode == EXIT_ABORTED, aborted.stderr
        assert "aborted:" in aborted.stderr, "no summary line"
        summary = job.read_summary()
        assert summary["end"] == "aborted", "the summary still describes the previous run"


async def test_bad_credentials_abort_with_a_message_about_credentials(tmp_path: Path) -> None:
    async with emulator(5, verify_signatures=True) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=6))
        job.env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        aborted = await run(job)
        assert aborted.returncode == EXIT_ABORTED, aborted.stderr
        assert update_calls(emu) == 0
        assert emu.service.updates == []
        assert "InvalidSignatureException" in aborted.stderr
        assert "credentials" in aborted.stderr

        job.env.clear()
        resumed = await run(job, "--rate", "200", "--burst", "8")
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert sorted(applied_rows(emu)) == [row.index for row in job.rows]


# --- 4. Throttling slows the run but never fails a row --------------------------------------------


async def test_throttling_never_fails_a_row(tmp_path: Path) -> None:
    rows = make_rows(70, 10, seed=7)
    async with emulator(10, quotas={**no_quotas(), "UpdateCase": Quota(20, 5)}) as emu:
        job = Job(tmp_path, emu.url, rows)
        done = await run(job, "--rate", "80", "--burst", "8")
        assert done.returncode == EXIT_OK, done.stderr
        summary = job.read_summary()
        assert summary["throttles"] > 0
        assert (summary["applied"], summary["failed"]) == (len(rows), 0)
        log = applied_rows(emu)
        assert sorted(log) == [row.index for row in rows]
        assert_applied_in_input_order(rows, log, [0])
        assert_final_state_is_last_row_per_case(emu, job)


# --- 5. Transient errors are retried, then fail as retries_exhausted ------------------------------


async def test_internal_errors_are_retried_until_every_row_is_applied(tmp_path: Path) -> None:
    rows = make_rows(40, 10, seed=8)
    faults = FaultConfig(internal_error_probability=0.3, retry_after_s=0)
    async with emulator(10, faults=faults) as emu:
        job = Job(tmp_path, emu.url, rows)
        # 20 attempts: at 0.3 a row exhausts them with probability 0.3**20, never in practice.
        done = await run(job, "--rate", "200", "--burst", "8", "--max-attempts", "20")
        assert done.returncode == EXIT_OK, done.stderr
        summary = job.read_summary()
        assert summary["retried"] > 0
        assert (summary["applied"], summary["failed"]) == (len(rows), 0)
        log = applied_rows(emu)
        assert sorted(log) == [row.index for row in rows]
        assert_applied_in_input_order(rows, log, [0])
        assert_final_state_is_last_row_per_case(emu, job)


async def test_a_service_that_answers_only_5xx_fails_no_row_and_the_run_stops_resumably(
    tmp_path: Path,
) -> None:
    rows = make_rows(40, 10, seed=9)
    faults = FaultConfig(internal_error_probability=1.0, retry_after_s=0)
    async with emulator(10, faults=faults) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "200", "--burst", "8", "--max-attempts", "2", "--outage-timeout", "3")
        stopped = await run(job, *flags)
        assert stopped.returncode == EXIT_ABORTED, stopped.stderr
        assert emu.service.updates == []
        summary = job.read_summary()
        assert summary["failed"] == 0, "an outage fails no row"
        assert summary["abort"].startswith("ServiceUnavailable")
        events = [e["event"] for e in stopped.events()]
        assert "outage_started" in events
        assert update_calls(emu) < 40, "during the outage only probes went out"

        emu.set_faults(FaultConfig())
        again = await run(job, *flags)
        assert again.returncode == EXIT_OK, again.stderr
        assert_applied_in_input_order(rows, applied_rows(emu), [0])
        assert_final_state_is_last_row_per_case(emu, job)
        info = await status(job)
        assert (info["applied"], info["failed"]) == (len(rows), 0)


async def test_an_outage_mid_job_fails_no_row_and_the_job_ends_exact(tmp_path: Path) -> None:
    outage_s = float(os.environ.get("BULKUPDATE_TEST_OUTAGE_S", "6"))  # 45 to see the README's
    rows = make_rows(300, 20, seed=45)
    async with emulator(20, faults=FaultConfig(latency_median_ms=2)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "30", "--burst", "4", "--concurrency", "4", "--max-attempts", "3")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: len(emu.service.updates) >= 60, "60 applied updates")
            emu.set_faults(FaultConfig(internal_error_probability=1.0, retry_after_s=0))
            await asyncio.sleep(outage_s)
            emu.set_faults(FaultConfig(latency_median_ms=2))
            done = await process.wait(60 + outage_s)
        assert done.returncode == EXIT_OK, done.stderr
        summary = job.read_summary()
        assert (summary["applied"], summary["failed"]) == (len(rows), 0)
        events = [e["event"] for e in done.events()]
        assert "outage_started" in events
        assert "outage_ended" in events
        assert_applied_in_input_order(rows, applied_rows(emu), [0])
        assert_final_state_is_last_row_per_case(emu, job)


async def test_an_endpoint_refusing_connections_mid_job_fails_no_row(tmp_path: Path) -> None:
    outage_s = float(os.environ.get("BULKUPDATE_TEST_OUTAGE_S", "6"))  # 45 to see the README's
    rows = make_rows(300, 20, seed=46)
    async with emulator(20) as emu, FaultProxy(emu.url) as proxy:
        job = Job(tmp_path, proxy.url, rows)
        flags = ("--rate", "30", "--burst", "4", "--concurrency", "4", "--max-attempts", "3")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: len(emu.service.updates) >= 60, "60 applied updates")
            await proxy.refuse()
            await asyncio.sleep(outage_s)
            await proxy.accept()
            done = await process.wait(60 + outage_s)
        assert done.returncode == EXIT_OK, done.stderr
        summary = job.read_summary()
        assert (summary["applied"], summary["failed"]) == (len(rows), 0)
        assert "outage_started" in [e["event"] for e in done.events()]
        assert_applied_in_input_order(rows, applied_rows(emu), [0], repeats_in_run=True)
        assert_final_state_is_last_row_per_case(emu, job)


# --- 5b. Calls whose answer never came: their case waits until they cannot land any more ------


async def test_a_call_that_outlives_its_timeout_lands_before_its_cases_later_rows(
    tmp_path: Path,
) -> None:
    rows = make_rows(100, 10, seed=31)
    slow = FaultConfig(slow_probability=0.1, slow_s=2.5)  # each slow call lands 2.5 s late
    async with emulator(10, faults=slow) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "100", "--burst", "8", "--call-timeout", "1", "--settle-period", "3")
        done = await run(job, *flags, timeout_s=90)
        assert done.returncode == EXIT_OK, done.stderr
        assert any(e["event"] == "call_outcome_unknown" for e in done.events())
        await wait_until(lambda: in_flight(emu) == 0, "slow calls landed", 10)
        assert_final_state_is_last_row_per_case(emu, job)


@pytest.mark.parametrize("stop", ["sigterm-past-grace", "sigkill"])
async def test_a_run_resumed_at_once_waits_for_the_calls_the_last_one_left_in_flight(
    tmp_path: Path, stop: str
) -> None:
    rows = make_rows(100, 40, seed=32)
    async with emulator(40, faults=FaultConfig(slow_probability=1.0, slow_s=2.0)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "200", "--burst", "8", "--concurrency", "8", "--grace-period", "0.5")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: emu.update_calls >= 8, "every worker in a slow call")
            if stop == "sigkill":
                await process.kill()
            else:
                process.send(signal.SIGTERM)
                stopped = await process.wait()
                assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
        emu.set_faults(FaultConfig())  # at once: the abandoned calls have not landed yet
        resumed = await run(job, *flags)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert any(e["event"] == "cases_held_from_last_run" for e in resumed.events())
        assert_final_state_is_last_row_per_case(emu, job)


# --- 6. A checkpoint belongs to one input ---------------------------------------------------------


async def test_a_different_input_with_the_same_checkpoint_is_refused_unless_restart(
    tmp_path: Path,
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=10))
        first = await run(job, "--rate", "200", "--burst", "8")
        assert first.returncode == EXIT_OK, first.stderr
        calls = update_calls(emu)

        job.rows = make_rows(25, 5, seed=11)
        write_csv(job.input, job.rows)
        refused = await run(job, "--rate", "200", "--burst", "8")
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert "--restart" in refused.stderr
        assert update_calls(emu) == calls, "a refused run sends nothing"

        restarted = await run(job, "--rate", "200", "--burst", "8", "--restart")
        assert restarted.returncode == EXIT_OK, restarted.stderr
        assert update_calls(emu) == calls + 25
        assert_final_state_is_last_row_per_case(emu, job)
        info = await status(job)
        assert (info["applied"], info["runs"]) == (25, 1)


# --- 7. Dropped connections -----------------------------------------------------------------------


async def test_dropped_connections_are_retried_and_every_row_ends_applied(tmp_path: Path) -> None:
    rows = make_rows(40, 10, seed=12)
    async with emulator(10, faults=FaultConfig(drop_probability=0.2)) as emu:
        job = Job(tmp_path, emu.url, rows)
        # A dropped connection leaves the outcome unknown: the case waits the settle period.
        settle = ("--call-timeout", "1", "--settle-period", "1.5")
        done = await run(job, "--rate", "200", "--burst", "8", *settle)
        assert done.returncode == EXIT_OK, done.stderr
        assert emu.counters["UpdateCase"]["dropped"] > 0
        summary = job.read_summary()
        assert summary["retried"] > 0
        assert (summary["applied"], summary["failed"]) == (len(rows), 0)
        log = applied_rows(emu)
        assert sorted(log) == [row.index for row in rows], "a dropped call was never applied"
        assert_applied_in_input_order(rows, log, [0])
        assert_final_state_is_last_row_per_case(emu, job)


async def test_a_connection_dropped_after_the_update_applied_is_resent_in_order(
    tmp_path: Path,
) -> None:
    rows = make_rows(40, 10, seed=13)
    async with emulator(10, faults=FaultConfig(drop_after_apply_probability=0.2)) as emu:
        job = Job(tmp_path, emu.url, rows)
        # A dropped answer leaves the outcome unknown: the case waits the settle period.
        settle = ("--call-timeout", "1", "--settle-period", "1.5")
        done = await run(job, "--rate", "200", "--burst", "8", *settle)
        assert done.returncode == EXIT_OK, done.stderr
        log = applied_rows(emu)
        assert set(log) == {row.index for row in rows}
        assert len(log) - len(rows) == emu.counters["UpdateCase"]["dropped"]
        assert any(e["event"] == "call_outcome_unknown" for e in done.events())
        # A re-sent row repeats at once: its case's next row waits for the answer.
        assert_applied_in_input_order(rows, log, [0], repeats_in_run=True)
        assert_final_state_is_last_row_per_case(emu, job)
        assert (await status(job))["applied"] == len(rows)
