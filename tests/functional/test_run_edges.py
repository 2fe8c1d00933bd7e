"""The edges of a `bulkupdate run`, as a real subprocess against the in-process emulator: a signal
before the run has started or while the process exits, an input that changes under a run or
between runs, a checkpoint that lost its WAL, a checkpoint an older bulkupdate made, and an
output that would overwrite the input.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import JobIdentity
from bulkupdate.emulator import Emulator, FaultConfig
from bulkupdate.exits import EXIT_ABORTED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from bulkupdate.models import ResumePoint
from tests.functional.test_run_resume import (
    Job,
    applied_rows,
    child,
    emulator,
    in_flight,
    make_rows,
    run,
    status,
    update_calls,
    wait_until,
    write_csv,
)

MIB = 1 << 20


def list_fields_calls(emu: Emulator) -> int:
    return sum(emu.counters["ListFields"].values())


# --- signals before the run and while the process exits -------------------------------------------


async def test_a_sigterm_while_the_command_reads_its_job_file_ends_the_run_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    # The job file is a FIFO: the command blocks reading it, before the run has begun, until the
    # test writes it. The signal comes in that window.
    job_file = tmp_path / "orders.toml"
    os.mkfifo(job_file)
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=30))
        argv = job.argv()
        argv.insert(argv.index("run") + 1, str(job_file))
        async with child(argv, job.environment(), tmp_path) as process:
            writer = -1

            def reader_waiting() -> bool:
                nonlocal writer
                try:  # succeeds once the command has the FIFO open for reading
                    writer = os.open(job_file, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as error:
                    if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                        raise
                return writer >= 0 or not process.running

            await wait_until(reader_waiting, "the command to open its job file")
            process.send(signal.SIGTERM)
            os.write(writer, b"rate = 200\n")
            os.close(writer)
            stopped = await process.wait()
        assert stopped.returncode == EXIT_INTERRUPTED, (stopped.returncode, stopped.stderr)
        assert "interrupted:" in stopped.stderr
        assert "nothing was sent" in stopped.stderr
        assert any(e.get("event") == "stop_requested" for e in stopped.events())
        assert (update_calls(emu), list_fields_calls(emu)) == (0, 0), "it ends at once"
        assert not job.checkpoint.exists()
        assert job.read_summary()["end"] == "interrupted"


def test_the_command_module_holds_signals_before_it_imports_any_dependency() -> None:
    # Interpreter start-up and this import are all that runs before SIGTERM is held.
    probe = (
        "import sys, bulkupdate.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'anyio', 'aiohttp', 'aiobotocore', 'botocore', 'structlog', 'asyncio', 'tqdm'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout


# The real entry point, with one atexit hook registered before it: the process stays in its
# exit (after the run, its handlers and main()) until the test creates the file $HOLD_GO.
HELD_EXIT = """
import atexit, os, sys, time
def hold_exit():
    open(os.environ["HOLD_MARK"], "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.environ["HOLD_GO"]) and time.monotonic() < deadline:
        time.sleep(0.01)
atexit.register(hold_exit)
from bulkupdate.cli import main
raise SystemExit(main())
"""


async def test_a_sigterm_while_the_process_exits_keeps_the_runs_exit_code(tmp_path: Path) -> None:
    mark, go = tmp_path / "exiting", tmp_path / "go"
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=31))
        argv = [sys.executable, "-c", HELD_EXIT, *job.argv()[3:], "--rate", "200"]
        env = {**job.environment(), "HOLD_MARK": str(mark), "HOLD_GO": str(go)}
        async with child(argv, env, tmp_path) as process:
            await wait_until(lambda: mark.exists() or not process.running, "the process to exit")
            process.send(signal.SIGTERM)
            go.touch()
            finished = await process.wait()
        assert finished.returncode == EXIT_OK, (finished.returncode, finished.stderr)
        assert job.read_summary()["end"] == "finished"
        assert len(emu.service.updates) == 20


# --- the input changes under a run, or between runs -----------------------------------------------


@pytest.mark.parametrize("change", ["truncated", "same size, other content"])
async def test_an_input_changed_during_the_run_aborts_it_and_only_a_restart_goes_on(
    tmp_path: Path, change: str
) -> None:
    # One row per case and as many workers: every call is in flight for 3 s at once, time
    # enough to change the file before the run reads to its end and finishes.
    rows = make_rows(4, 4, seed=32)
    slow = FaultConfig(slow_probability=1.0, slow_s=3.0)
    async with emulator(4, faults=slow) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "200", "--burst", "8", "--concurrency", "4")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: emu.update_calls > 0, "the first call")
            if change == "truncated":
                job.rows = rows[:2]
            else:  # the last row's value, as many digits
                last = rows[-1]
                job.rows = [*rows[:-1], dataclasses.replace(last, order_total=last.order_total + 5)]
            size = job.input.stat().st_size
            write_csv(job.input, job.rows)
            assert (job.input.stat().st_size == size) == (change != "truncated")
            aborted = await process.wait()
        emu.set_faults(FaultConfig())
        assert aborted.returncode == EXIT_ABORTED, (aborted.returncode, aborted.stderr)
        assert f"{job.input} changed during the run" in aborted.stderr
        assert "--restart" in aborted.stderr
        assert "then run the same command to resume" not in aborted.stderr
        summary = job.read_summary()
        assert (summary["end"], summary["resumable"]) == ("aborted", False)
        assert (await status(job))["last_run"]["state"] == "aborted"
        event = next(e for e in aborted.events() if e["event"] == "input_changed")
        assert event["input"] == str(job.input)

        calls = update_calls(emu)
        refused = await run(job, *flags)
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert "--restart" in refused.stderr
        assert update_calls(emu) == calls, "a refused run sends nothing"
        restarted = await run(job, *flags, "--restart")
        assert restarted.returncode == EXIT_OK, restarted.stderr
        assert update_calls(emu) == calls + len(job.rows)


def write_notes_csv(path: Path, rows: int) -> None:
    """Rows of about 3.9 KB (a multi-line Text value), so the file passes 1 MiB in 300 rows."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["case_id", "order_total", "notes"])
        for index in range(rows):
            writer.writerow([f"case-{index % 5 + 1:07d}", 1000 + index, "n" * 3900])


async def test_a_same_size_edit_past_the_first_mib_between_runs_is_refused_unless_restart(
    tmp_path: Path,
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, [])
        write_notes_csv(job.input, 300)
        data = bytearray(job.input.read_bytes())
        assert len(data) > MIB + (64 << 10)
        first = await run(job, "--rate", "1000", "--burst", "100")
        assert first.returncode == EXIT_OK, first.stderr
        calls = update_calls(emu)
        assert calls == 300

        at = data.rindex(b"nnnn")  # in the last row's notes, past the first MiB
        data[at] = ord("m")
        job.input.write_bytes(bytes(data))
        refused = await run(job, "--rate", "1000", "--burst", "100")
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert "input fingerprint differs" in refused.stderr
        assert "--restart" in refused.stderr
        assert update_calls(emu) == calls, "a refused run sends nothing"


async def test_a_checkpoint_made_with_the_size_and_first_mib_fingerprint_resumes_its_job(
    tmp_path: Path,
) -> None:
    rows = make_rows(30, 5, seed=33)
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, rows)
        data = job.input.read_bytes()
        # What an older bulkupdate left after applying the first 10 rows: its fingerprint was
        # the size and the first MiB's hash; the resume point is row 10's byte offset.
        legacy = f"size={len(data)};head={hashlib.sha256(data[:MIB]).hexdigest()[:32]}"
        offset = sum(len(line) for line in data.splitlines(keepends=True)[:11])
        store = SqliteCheckpointStore(job.checkpoint)
        await store.open(JobIdentity("orders", str(job.input), legacy, "csv"), restart=False)
        await store.commit([], ResumePoint(offset, 12), {})
        await store.finish_run("interrupted", {})
        await store.close()

        resumed = await run(job, "--rate", "200", "--burst", "8")
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert sorted(applied_rows(emu)) == list(range(10, 30)), "resumed at row 10"
        assert any(e["event"] == "checkpoint_legacy_fingerprint" for e in resumed.events())


# --- a checkpoint that holds no job ---------------------------------------------------------------


async def test_a_checkpoint_whose_wal_was_deleted_is_refused_and_restart_starts_over(
    tmp_path: Path,
) -> None:
    rows = make_rows(300, 20, seed=34)
    async with emulator(20, faults=FaultConfig(latency_median_ms=5)) as emu:
        job = Job(tmp_path, emu.url, rows)
        flags = ("--rate", "200", "--burst", "8", "--concurrency", "8")
        async with child(job.argv(*flags), job.environment(), tmp_path) as process:
            await wait_until(lambda: len(emu.service.updates) >= 60, "60 applied updates")
            process.send(signal.SIGKILL)
            await process.wait()
        await wait_until(lambda: in_flight(emu) == 0, "calls in flight to land", 5)
        wal = Path(f"{job.checkpoint}-wal")
        assert wal.stat().st_size > 0, "the killed run's commits are in the WAL"
        wal.unlink()
        Path(f"{job.checkpoint}-shm").unlink(missing_ok=True)
        left = job.checkpoint.read_bytes()
        calls = update_calls(emu)

        refused = await run(job, *flags)
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert f"checkpoint {job.checkpoint}: exists but holds no job" in refused.stderr
        assert "--restart" in refused.stderr
        assert update_calls(emu) == calls, "a refused run sends nothing"
        assert job.checkpoint.read_bytes() == left, "nor writes"

        restarted = await run(job, *flags, "--restart")
        assert restarted.returncode == EXIT_OK, restarted.stderr
        assert update_calls(emu) == calls + len(rows)
        assert (await status(job))["applied"] == len(rows)


# --- outputs that would overwrite the input -------------------------------------------------------


async def test_a_failures_file_that_is_the_input_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=35))
        before = job.input.read_bytes()
        job.failures = tmp_path / "sub" / ".." / job.input.name
        refused = await run(job, "--rate", "200")
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert "--failures:" in refused.stderr
        assert "is the input" in refused.stderr
        assert (update_calls(emu), list_fields_calls(emu)) == (0, 0)
        assert job.input.read_bytes() == before
        assert not job.checkpoint.exists()


async def test_a_job_files_checkpoint_that_is_its_input_is_refused_naming_the_flag(
    tmp_path: Path,
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=36))
        job_file = tmp_path / "jobs" / "orders.toml"
        job_file.parent.mkdir()
        settings = {"input": "../orders.csv", "checkpoint": "./../orders.csv", "domain_id": "demo"}
        job_file.write_text("".join(f"{key} = {json.dumps(v)}\n" for key, v in settings.items()))
        before = job.input.read_bytes()
        argv = [sys.executable, "-m", "bulkupdate", "run", str(job_file)]
        argv += ["--endpoint-url", emu.url, "--no-progress", "--log-format", "json"]
        async with child(argv, job.environment(), tmp_path) as process:
            refused = await process.wait()
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert "--checkpoint: the checkpoint" in refused.stderr
        assert "is the input" in refused.stderr
        assert (update_calls(emu), list_fields_calls(emu)) == (0, 0)
        assert job.input.read_bytes() == before
        assert not Path(f"{job.input}.lock").exists()
