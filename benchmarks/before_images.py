"""Before-images (issue 14): what `--before-images` costs and saves, side by side with a run
without it, judged by the emulator's own counters and update log.

    .venv/bin/python -m benchmarks.before_images               # ~12 minutes
    .venv/bin/python -m benchmarks.before_images --slice-s 60 --trials 2

(a) Re-run of a completed job: 10,000 rows (one per case) are first applied against the emulator
with no quotas; then the emulator gets the default quotas (UpdateCase 2/s burst 2, GetCase 4/s
burst 10) and the same job is run again with `--restart`, and with `--restart --before-images`,
at the product's defaults (--rate 2, --read-rate 4, --headroom 20). A full re-run would take
hours at 1.6 UpdateCase/s, so each runs for a timed slice (--slice-s), is stopped with SIGTERM,
and is extrapolated to 10,000 rows from the rows it resolved (rows/s over the slice, start-up
included) and the calls per row it made.
(b) Duplicates after SIGKILL: 200 rows over 50 cases at UpdateCase 20/s and GetCase 40/s with a
50 ms service time; each trial kills the run twice at a random moment (SIGKILL), resumes until
it finishes, and counts rows the update log shows applied more than once. Fresh emulator per
trial. Checks the final state is each case's last row. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.emulator_process import EmulatorProcess, emulator_process
from benchmarks.product_process import Finished, ProductProcess, run_args, shown
from benchmarks.report import environment, table
from benchmarks.workload import row_cells, write_rows_csv

MODES = {"without": (), "with": ("--before-images",)}
DEFAULT_QUOTAS = {"UpdateCase": "2/2", "GetCase": "4/10"}
KILL_QUOTAS = {"UpdateCase": "20/20", "GetCase": "40/40"}
# A killed run's calls land within the service time: its successor need not wait 120 s for them.
QUICK_SETTLE = ("--call-timeout", "2", "--settle-period", "2.5")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Slice:
    """One timed re-run: how long, how many rows it resolved, its calls by operation."""

    mode: str
    wall_s: float
    rows: int
    calls: dict[str, int]  # operation -> calls answered (any outcome)
    throttled: dict[str, int]
    command: str

    def per_row(self, operation: str) -> float:
        return self.calls.get(operation, 0) / self.rows if self.rows else float("nan")

    def rows_per_s(self) -> float:
        return self.rows / self.wall_s


@dataclass(frozen=True, slots=True)
class Trial:
    mode: str
    kills: int
    applies: int  # UpdateCase applies in the log
    rows_twice: int  # rows applied more than once
    exact: bool  # final state == last row per case


async def configure(emulator: EmulatorProcess, change: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emulator.url}/_emulator/config", json=change) as response,
    ):
        response.raise_for_status()
    await emulator.reset_counters()


async def state(emulator: EmulatorProcess) -> dict[str, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emulator.url}/_emulator/state") as response,
    ):
        response.raise_for_status()
        cases: dict[str, dict[str, Any]] = (await response.json())["domains"]["demo"]
        return cases


def by_operation(counters: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    operations: dict[str, dict[str, int]] = counters["operations"]
    calls = {op: sum(outcomes.values()) for op, outcomes in operations.items()}
    throttled = {op: outcomes.get("ThrottlingException", 0) for op, outcomes in operations.items()}
    return calls, throttled


def resolved(finished: Finished) -> int:
    summary = finished.summary or {}
    return sum(int(summary.get(key) or 0) for key in ("applied", "unchanged", "failed"))


async def rerun_slices(args: argparse.Namespace) -> list[Slice]:
    """(a): complete the job unthrottled, then time a re-run slice in each mode."""
    csv_path = args.workdir / "rerun.csv"
    write_rows_csv(csv_path, args.rows, args.rows)
    prefix = args.workdir / "rerun"
    slices = []
    async with emulator_process(args.emulator_cpu, args.rows) as emulator:
        first = run_args(
            csv_path, emulator.url, prefix, rate_per_s=1_000_000, burst=1000, concurrency=32
        )
        done = await ProductProcess(first, args.client_cpu, prefix.with_suffix(".log")).wait(600)
        if done.returncode != 0 or resolved(done) != args.rows:
            raise RuntimeError(f"the unthrottled first run failed: {done.stderr_tail}")
        log(f"job completed unthrottled in {done.wall_s:.1f} s")
        await configure(emulator, {"quotas": DEFAULT_QUOTAS})
        for mode, extra in MODES.items():
            await asyncio.sleep(5)  # buckets full again
            await emulator.reset_counters()
            command = run_args(
                csv_path, emulator.url, prefix, rate_per_s=2, burst=2, concurrency=16,
                extra=("--restart", *extra),
            )  # fmt: skip
            process = ProductProcess(command, args.client_cpu, prefix.with_suffix(f".{mode}.log"))
            await asyncio.sleep(args.slice_s)
            process.signal(signal.SIGTERM)
            finished = await process.wait(60)
            calls, throttled = by_operation(await emulator.settled_counters())
            # Rows per second over the slice up to SIGTERM (the grace after it adds a few rows).
            one = Slice(mode, args.slice_s, resolved(finished), calls, throttled, shown(command))
            log(f"re-run {mode} --before-images: {one.rows} rows in {one.wall_s:.1f} s, {calls}")
            slices.append(one)
    return slices


def applied_rows(updates: list[dict[str, Any]]) -> Counter[tuple[str, float]]:
    """How often each row was applied: rows are told apart by (case, order_total)."""
    seen: Counter[tuple[str, float]] = Counter()
    for update in updates:
        for field in update["fields"]:
            if field["id"] == "order_total":
                seen[(update["caseId"], float(field["value"]["doubleValue"]))] += 1
    return seen


async def kill_trial(args: argparse.Namespace, mode: str, trial: int, rng: random.Random) -> Trial:
    """(b): one job killed twice at random moments, then resumed to the end."""
    rows, cases = args.kill_rows, args.kill_cases
    csv_path = args.workdir / f"kill-{mode}-{trial}.csv"
    write_rows_csv(csv_path, rows, cases)
    prefix = args.workdir / f"kill-{mode}-{trial}"
    async with emulator_process(args.emulator_cpu, cases) as emulator:
        await configure(emulator, {"quotas": KILL_QUOTAS, "faults": {"latency_median_ms": 50}})
        command = run_args(
            csv_path, emulator.url, prefix, rate_per_s=20, burst=20, concurrency=16,
            extra=("--read-rate", "40", "--read-burst", "40", *QUICK_SETTLE, *MODES[mode]),
        )  # fmt: skip
        kills = 0
        for attempt in range(args.kills + 1):
            process = ProductProcess(
                command, args.client_cpu, prefix.with_suffix(f".{attempt}.log")
            )
            if attempt < args.kills:
                await asyncio.sleep(rng.uniform(1.5, 8.0))
                process.signal(signal.SIGKILL)
            finished = await process.wait(300)
            if finished.returncode == -signal.SIGKILL:
                kills += 1
                await asyncio.sleep(0.5)  # its calls in flight land
            elif finished.returncode != 0:
                raise RuntimeError(f"run {attempt} failed: {finished.stderr_tail}")
            else:
                break
        seen = applied_rows(await emulator.updates())
        now = await state(emulator)
    last = {}
    for row in range(1, rows + 1):
        case_id, _, order_total, _ = row_cells(row, cases)
        last[case_id] = float(order_total)
    exact = all(now[c].get("order_total", {}).get("doubleValue") == v for c, v in last.items())
    twice = sum(1 for count in seen.values() if count > 1)
    log(f"{mode} --before-images, trial {trial}: {kills} kills, {twice} rows applied twice")
    return Trial(mode, kills, sum(seen.values()), twice, exact and len(seen) == rows)


def results(args: argparse.Namespace, slices: list[Slice], trials: list[Trial]) -> str:
    by_mode = {s.mode: s for s in slices}
    header = ["", "`--restart`", "`--restart --before-images`"]
    lines: list[list[object]] = []

    def row(label: str, cell: Any) -> None:
        lines.append([label, *(cell(by_mode[mode]) for mode in MODES)])

    row(f"(a) slice: rows resolved in {args.slice_s:g} s (then SIGTERM)", lambda s: s.rows)
    row("(a) slice: rows/s", lambda s: f"{s.rows_per_s():.2f}")
    for operation in ("UpdateCase", "GetCase"):
        row(
            f"(a) slice: {operation} calls (throttled)",
            lambda s, op=operation: f"{s.calls.get(op, 0)} ({s.throttled.get(op, 0)})",
        )
    row(
        "(a) slice: other calls (start-up checks)",
        lambda s: sum(n for op, n in s.calls.items() if op not in ("UpdateCase", "GetCase")),
    )
    for operation in ("UpdateCase", "GetCase"):
        row(
            f"(a) {args.rows:,} rows, extrapolated: {operation} calls",
            lambda s, op=operation: f"~{s.per_row(op) * args.rows:,.0f}",
        )
    row(
        f"(a) {args.rows:,} rows, extrapolated: wall time",
        lambda s: f"~{args.rows / s.rows_per_s() / 60:.0f} min",
    )
    for label, cell in (
        ("(b) kills (SIGKILL at a random moment)", "kills"),
        ("(b) UpdateCase applies in the update log", "applies"),
        ("(b) rows applied twice", "rows_twice"),
    ):
        totals = (sum(getattr(t, cell) for t in trials if t.mode == mode) for mode in MODES)
        lines.append([label, *totals])
    lines.append(
        ["(b) final state exact", *(all(t.exact for t in trials if t.mode == m) for m in MODES)]
    )
    return table(header, lines)


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started_s = time.monotonic()
    slices = await rerun_slices(args)
    trials = [
        await kill_trial(args, mode, trial, rng)
        for trial in range(1, args.trials + 1)
        for mode in MODES
    ]
    print(f"Before-images, {environment()}")
    print(f"command: python -m benchmarks.before_images {' '.join(sys.argv[1:])}")
    print(
        f"(a) {args.rows:,} rows, one per case, completed first against a no-quota emulator; "
        f"re-runs at UpdateCase {DEFAULT_QUOTAS['UpdateCase']}, GetCase "
        f"{DEFAULT_QUOTAS['GetCase']} (rate/burst), product defaults (--headroom 20), each a "
        f"{args.slice_s:g} s slice extrapolated to {args.rows:,} rows. (b) {args.trials} trials "
        f"per column of {args.kill_rows} rows over {args.kill_cases} cases at UpdateCase "
        f"{KILL_QUOTAS['UpdateCase']}, GetCase {KILL_QUOTAS['GetCase']}, 50 ms service time, "
        f"{args.kills} SIGKILLs per trial, then resumed to the end; totals over trials. "
        f"Took {time.monotonic() - started_s:.0f} s.\n"
    )
    print(f"re-run command: {slices[-1].command}\n")
    print(results(args, slices, trials))
    exact = all(t.exact for t in trials)
    no_duplicates = all(t.rows_twice == 0 for t in trials if t.mode == "with")
    no_updates = next(s for s in slices if s.mode == "with").calls.get("UpdateCase", 0) == 0
    return 0 if exact and no_duplicates and no_updates else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--slice-s", type=float, default=180.0)
    parser.add_argument("--kill-rows", type=int, default=200)
    parser.add_argument("--kill-cases", type=int, default=50)
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per trial")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--emulator-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=min(1, (os.cpu_count() or 1) - 1))
    parser.add_argument("--workdir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as temporary:
        args.workdir = args.workdir or Path(temporary)
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
