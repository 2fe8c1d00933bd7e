"""Resume: time from launching `bulkupdate run` on a 1M-row CSV whose checkpoint stands at row
900,000 to the first UpdateCase the emulator applies, beside a fresh start at row 1 of the same
file, with a breakdown of where the time goes.

    .venv/bin/python -m benchmarks.resume                 # 3 pairs, alternating order

The checkpoint is built with the product's own store (SqliteCheckpointStore: open, one commit
whose resume point is the byte offset of row 900,001, finish_run "interrupted"), as an
interrupted run would leave it. Launch time is time.time() just before the process starts; the
first call's time is the "time" of the first entry of the emulator's /_emulator/updates (same
machine clock). The run is stopped (SIGTERM) once that call is seen. The first applied update
must carry a value of one of the first rows after the resume point, or the run is reported as
not resumed. Prints markdown tables; exits 1 on a failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.emulator_process import EmulatorProcess, emulator_process
from benchmarks.product_process import iso_to_epoch_s, shown, start_unthrottled
from benchmarks.report import environment, table
from benchmarks.workload import RowPosition, row_cells, write_rows_csv
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import JobIdentity
from bulkupdate.input.fingerprint import fingerprint_file
from bulkupdate.input.sources import open_source
from bulkupdate.models import ResumePoint

TARGET_S = 3.0
CHECK_WINDOW_ROWS = 200  # the first applied update must be one of this many rows


@dataclass(frozen=True, slots=True)
class Launch:
    start: str  # "resume" or "fresh"
    to_first_call_s: float
    to_run_started_s: float | None  # launch -> the product's run_started log event
    first_row_ok: bool
    returncode: int
    resume_offset: int | None  # as the product logged it


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def build_checkpoint(csv_path: Path, checkpoint: Path, position: RowPosition) -> None:
    """What an interrupted run leaves when every row before `position` is resolved."""
    for stale in checkpoint.parent.glob(checkpoint.name + "*"):
        stale.unlink()
    stem = csv_path.name.removesuffix(".csv")
    identity = JobIdentity(stem, str(csv_path), fingerprint_file(str(csv_path)), "csv")
    store = SqliteCheckpointStore(checkpoint)
    try:
        await store.open(identity, restart=False)
        await store.commit([], ResumePoint(position.offset, position.line), {})
        await store.finish_run("interrupted", {})
    finally:
        await store.close()


async def first_update(emulator: EmulatorProcess, deadline_s: float) -> dict[str, Any] | None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline_s:
            async with session.get(f"{emulator.url}/_emulator/updates?after=0") as response:
                updates = (await response.json())["updates"]
            if updates:
                first: dict[str, Any] = min(updates, key=lambda u: u["seq"])
                return first
            await asyncio.sleep(0.005)
    return None


async def launch(
    args: argparse.Namespace, start: str, csv_path: Path, first_row: int, tag: str
) -> tuple[Launch, str]:
    checkpoint = args.workdir / f"{tag}.ck"
    if start == "resume":
        await build_checkpoint(csv_path, checkpoint, args.position)
    else:
        for stale in checkpoint.parent.glob(checkpoint.name + "*"):
            stale.unlink()
    expected = {
        float(row_cells(row, args.demo_cases)[2])
        for row in range(first_row, first_row + CHECK_WINDOW_ROWS)
    }
    async with emulator_process(args.emulator_cpu, args.demo_cases) as emulator:
        process = start_unthrottled(
            csv_path,
            emulator.url,
            args.workdir / tag,
            concurrency=args.concurrency,
            cpu=args.client_cpu,
            stderr_path=args.workdir / f"{tag}.stderr",
        )
        command = process.args
        update = await first_update(emulator, time.monotonic() + args.timeout_s)
        process.signal(signal.SIGTERM)
        finished = await process.wait(args.timeout_s)
    if update is None:
        log(f"{start}: no update within {args.timeout_s} s: {finished.stderr_tail[-500:]}")
        return Launch(start, float("nan"), None, False, finished.returncode, None), shown(command)
    order_total = next(
        (f["value"].get("doubleValue") for f in update["fields"] if f["id"] == "order_total"),
        None,
    )
    started = finished.event("run_started")
    to_run_started_s = None
    if started is not None:
        to_run_started_s = iso_to_epoch_s(started["timestamp"]) - finished.started_wall_s
    return (
        Launch(
            start=start,
            to_first_call_s=update["time"] - finished.started_wall_s,
            to_run_started_s=to_run_started_s,
            first_row_ok=order_total in expected,
            returncode=finished.returncode,
            resume_offset=started.get("resume_offset") if started else None,
        ),
        shown(command),
    )


def median_wall_s(command: Sequence[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started_s = time.perf_counter()
        subprocess.run(command, check=True, timeout=60, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started_s)
    return statistics.median(times)


def median_call_s(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started_s = time.perf_counter()
        call()
        times.append(time.perf_counter() - started_s)
    return statistics.median(times)


async def probes(args: argparse.Namespace, csv_path: Path) -> list[tuple[str, str]]:
    """Pieces of the start-up, timed on their own (medians of --probe-repeats)."""
    n = args.probe_repeats
    python = sys.executable
    interpreter_s = median_wall_s([python, "-c", "pass"], n)
    imports_s = median_wall_s([python, "-c", "import bulkupdate.cli, bulkupdate.run.job"], n)
    cli_s = median_wall_s([python, "-m", "bulkupdate", "--version"], n)

    def seek_and_read_first() -> None:
        position = args.position
        with open_source(
            str(csv_path), fmt="csv", start_offset=position.offset, start_line=position.line
        ) as source:
            next(iter(source))

    fingerprint_s = median_call_s(lambda: fingerprint_file(str(csv_path)), n)
    seek_s = median_call_s(seek_and_read_first, n)
    checkpoint = args.workdir / "probe.ck"
    await build_checkpoint(csv_path, checkpoint, args.position)
    open_times = []
    for _ in range(n):
        copy = args.workdir / "probe-copy.ck"
        for stale in args.workdir.glob("probe-copy.ck*"):
            stale.unlink()
        shutil.copy(checkpoint, copy)
        stem = csv_path.name.removesuffix(".csv")
        identity = JobIdentity(stem, str(csv_path), fingerprint_file(str(csv_path)), "csv")
        store = SqliteCheckpointStore(copy)
        started_s = time.perf_counter()
        await store.open(identity, restart=False)
        open_times.append(time.perf_counter() - started_s)
        await store.close()
    open_s = statistics.median(open_times)
    return [
        ("python -c pass (interpreter start)", f"{interpreter_s:.3f}"),
        (
            "python -c 'import bulkupdate.cli, bulkupdate.run.job' (start + imports)",
            f"{imports_s:.3f}",
        ),
        ("python -m bulkupdate --version", f"{cli_s:.3f}"),
        ("fingerprint_file (size + SHA-256 of the whole file), in-process", f"{fingerprint_s:.4f}"),
        ("SqliteCheckpointStore.open of the 900k checkpoint, in-process", f"{open_s:.4f}"),
        ("open_source at the resume offset + first record, in-process", f"{seek_s:.4f}"),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.resume",
        description="Launch-to-first-UpdateCase when resuming at row 900k of a 1M-row CSV.",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resume-row", type=int, default=900_001, help="first unresolved row")
    parser.add_argument("--repeats", type=int, default=3, help="pairs (resume, fresh start)")
    parser.add_argument("--probe-repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="product --concurrency")
    parser.add_argument("--demo-cases", type=int, default=1000, help="cases the rows cycle")
    parser.add_argument("--emulator-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per launch")
    parser.add_argument("--workdir", type=Path, help="for the input and checkpoints (temp)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.client_cpu})
    csv_path = args.workdir / f"resume-{args.rows}.csv"
    args.position = write_rows_csv(csv_path, args.rows, args.demo_cases, {args.resume_row})[
        args.resume_row
    ]
    launches: list[Launch] = []
    commands: dict[str, str] = {}
    for repeat in range(1, args.repeats + 1):
        order = ("resume", "fresh") if repeat % 2 else ("fresh", "resume")
        for start in order:
            first_row = args.resume_row if start == "resume" else 1
            result, command = await launch(
                args, start, csv_path, first_row, f"resume-{start}-{repeat}"
            )
            commands[start] = command
            log(f"repeat {repeat}, {start}: {result}")
            launches.append(result)
    pieces = await probes(args, csv_path)
    print(f"Resume, {environment()}")
    print(f"command: python -m benchmarks.resume {' '.join(sys.argv[1:])}")
    print(
        f"input: {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB CSV); resume point "
        f"row {args.resume_row:,} = byte offset {args.position.offset:,}, line "
        f"{args.position.line:,}; a fresh no-quota emulator per launch on core "
        f"{args.emulator_cpu}, the product on core {args.client_cpu}.\n"
    )
    print(f"product command (resume; the checkpoint built beforehand): {commands['resume']}\n")
    rows = []
    for start in ("resume", "fresh"):
        mine = [x for x in launches if x.start == start]
        to_started = [x.to_run_started_s for x in mine if x.to_run_started_s is not None]
        to_first = [x.to_first_call_s for x in mine]
        after_started = [
            x.to_first_call_s - x.to_run_started_s for x in mine if x.to_run_started_s is not None
        ]
        rows.append(
            (
                "resume at row 900,001" if start == "resume" else "fresh start at row 1",
                f"{statistics.median(to_first):.2f}",
                " / ".join(f"{s:.2f}" for s in to_first),
                f"{statistics.median(to_started):.2f}" if to_started else "-",
                f"{statistics.median(after_started):.2f}" if after_started else "-",
                ", ".join(sorted({str(x.resume_offset) for x in mine})),
                "yes" if all(x.first_row_ok for x in mine) else "NO",
            )
        )
    header = (
        "start",
        "launch → first UpdateCase applied (s), median",
        "runs (s)",
        "launch → run_started log (s)",
        "run_started → first UpdateCase (s)",
        "resume_offset logged",
        "first call is a row at the start point",
    )
    print(table(header, rows))
    print("\nPieces of the start-up, timed alone:\n")
    print(table(("piece", "seconds, median"), pieces))
    resumed = [x for x in launches if x.start == "resume"]
    median_s = statistics.median(x.to_first_call_s for x in resumed)
    print(
        f"\nresume at row {args.resume_row - 1:,}: {median_s:.2f} s to the first call, target "
        f"≤ {TARGET_S:g} s: {'met' if median_s <= TARGET_S else 'missed'}"
    )
    return 0 if all(x.first_row_ok for x in launches) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as temporary:
        args.workdir = args.workdir or Path(temporary)
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
