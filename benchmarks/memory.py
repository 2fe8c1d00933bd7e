"""Memory: peak RSS of `bulkupdate run` over a 1M-row CSV against a no-quota emulator, and its
RSS as the rows go by (does it grow with rows?); then the peak RSS of `--dry-run` on the same file.

    nohup .venv/bin/python -m benchmarks.memory > memory.md 2> memory.log &    # ~15-25 min
    .venv/bin/python -m benchmarks.memory --rows 100000 --marks 25000,50000,100000   # quick look

RSS is sampled from /proc/PID/status every --sample-s together with the emulator's accepted
UpdateCase count (rows processed); the peak is the child's own ru_maxrss from wait4. Prints
markdown tables; exits 1 if a run failed or the peak is over --limit-mib.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.emulator_process import emulator_process
from benchmarks.product_process import Finished, ProductProcess, run_args, shown
from benchmarks.report import environment, table
from benchmarks.workload import write_rows_csv

LIMIT_MIB = 150.0


@dataclass(frozen=True, slots=True)
class Sample:
    elapsed_s: float
    rows: int  # UpdateCase calls the emulator accepted so far
    rss_mib: float


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def sampled_run(
    args: argparse.Namespace, csv_path: Path
) -> tuple[Finished, list[Sample], str]:
    async with emulator_process(args.emulator_cpu, args.demo_cases) as emulator:
        command = run_args(
            csv_path,
            emulator.url,
            args.workdir / "memory-run",
            rate_per_s=1_000_000,
            burst=1000,
            concurrency=args.concurrency,
        )
        process = ProductProcess(command, args.client_cpu, args.workdir / "memory-run.stderr")
        started_s = time.monotonic()
        waiter = asyncio.ensure_future(process.wait(args.timeout_s))
        samples: list[Sample] = []
        next_log_s = 0.0
        while not waiter.done():
            rss_mib = process.rss_mib()
            counters = await emulator.counters()
            if rss_mib is not None:
                elapsed_s = time.monotonic() - started_s
                samples.append(Sample(elapsed_s, counters["update_case"]["accepted"], rss_mib))
                if elapsed_s >= next_log_s:
                    log(f"{elapsed_s:6.0f} s: {samples[-1].rows:>9,} rows, RSS {rss_mib:.1f} MiB")
                    next_log_s += 30
            await asyncio.wait([waiter], timeout=args.sample_s)
        finished = await waiter
    return finished, samples, shown(command)


async def dry_run(args: argparse.Namespace, csv_path: Path) -> tuple[Finished, str]:
    async with emulator_process(args.emulator_cpu, 1) as emulator:
        command = [
            *run_args(
                csv_path,
                emulator.url,
                args.workdir / "memory-dry",
                rate_per_s=2,
                burst=2,
                concurrency=args.concurrency,
            ),
            "--dry-run",
        ]
        process = ProductProcess(command, args.client_cpu, args.workdir / "memory-dry.stderr")
        return await process.wait(args.timeout_s), shown(command)


def curve_table(samples: Sequence[Sample], marks: Sequence[int], peak_mib: float) -> str:
    """RSS at the first sample at or past each mark; past the last sample, the last sample (the
    run's final calls land within one sampling interval of its exit)."""
    rows = []
    for mark in marks:
        first = next((s for s in samples if s.rows >= mark), samples[-1] if samples else None)
        if first is None:
            continue
        high = max(s.rss_mib for s in samples if s.elapsed_s <= first.elapsed_s)
        rows.append(
            (
                f"{mark:,}",
                f"{first.rows:,}",
                f"{first.elapsed_s:.0f}",
                f"{first.rss_mib:.1f}",
                f"{high:.1f}",
            )
        )
    rows.append(("whole run", "", "", "", f"{peak_mib:.1f} (wait4 ru_maxrss)"))
    header = (
        "mark (rows)",
        "rows processed at the sample",
        "at (s)",
        "RSS (MiB)",
        "highest RSS so far (MiB)",
    )
    return table(header, rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description="Peak and sampled RSS of bulkupdate run on a large CSV, and of --dry-run.",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--marks",
        default="100000,250000,500000,750000,1000000",
        help="comma-separated row counts to report RSS at",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="product --concurrency")
    parser.add_argument("--sample-s", type=float, default=0.5)
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    parser.add_argument("--demo-cases", type=int, default=1000, help="cases the rows cycle")
    parser.add_argument("--emulator-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="per run")
    parser.add_argument("--skip-run", action="store_true", help="only the dry run")
    parser.add_argument("--workdir", type=Path, help="for the input and checkpoint (temp)")
    args = parser.parse_args(argv)
    args.marks = [int(m) for m in args.marks.split(",") if m]
    return args


async def run(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.client_cpu})
    csv_path = args.workdir / f"memory-{args.rows}.csv"
    write_rows_csv(csv_path, args.rows, args.demo_cases)
    size_mib = csv_path.stat().st_size / 2**20
    print(f"Memory, {environment()}")
    print(f"command: python -m benchmarks.memory {' '.join(sys.argv[1:])}")
    print(
        f"input: {args.rows:,} rows, {size_mib:.0f} MiB CSV; a fresh no-quota emulator on core "
        f"{args.emulator_cpu}, the product on core {args.client_cpu}.\n"
    )
    ok = True
    if not args.skip_run:
        finished, samples, command = await sampled_run(args, csv_path)
        summary = finished.summary or {}
        print(f"product command: {command}")
        print(
            f"exit {finished.returncode}, wall {finished.wall_s:.0f} s, applied "
            f"{summary.get('applied')}, {summary.get('achieved_rate_per_s')} rows/s, "
            f"{len(samples)} samples\n"
        )
        print(curve_table(samples, args.marks, finished.max_rss_mib))
        ok = finished.returncode == 0 and finished.max_rss_mib <= args.limit_mib
        print(
            f"\npeak RSS {finished.max_rss_mib:.1f} MiB, target ≤ {args.limit_mib:g} MiB: "
            f"{'met' if finished.max_rss_mib <= args.limit_mib else 'missed'}\n"
        )
    dry, command = await dry_run(args, csv_path)
    print(f"dry-run command: {command}")
    print(
        table(
            ("run", "exit", "wall (s)", "peak RSS (MiB, wait4)"),
            [("--dry-run", dry.returncode, f"{dry.wall_s:.1f}", f"{dry.max_rss_mib:.1f}")],
        )
    )
    if dry.returncode != 0:
        log(dry.stderr_tail)
    return 0 if ok and dry.returncode == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as temporary:
        args.workdir = args.workdir or Path(temporary)
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
