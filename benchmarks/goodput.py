"""Goodput under a quota: with `bulkupdate run --rate` 4x above the emulator's UpdateCase quota,
how much of the quota the product turns into accepted calls, and how many of its attempts are
throttled; side by side with what users write today (boto3 + ThreadPoolExecutor + botocore's
adaptive retry mode) sending the same rows to the same emulator configuration.

    .venv/bin/python -m benchmarks.goodput                      # quotas 2/2, 50/50, 500/500
    .venv/bin/python -m benchmarks.goodput --quota 50/50 --repeats 3
    .venv/bin/python -m benchmarks.goodput --client product --latency-ms 5 --latency-ms 20 \
        --latency-ms 100                                        # each quota at each latency

goodput = accepted / (burst + quota x elapsed), elapsed = the emulator's first to last accepted
UpdateCase; throttled share = ThrottlingException answers / all UpdateCase answers. Both come
from the emulator's /_emulator/counters, never from the client. Every measurement gets a fresh
emulator (a full bucket), after waiting for quiet cores. The product runs with --headroom 0
(this measures taking the whole quota) and enough --concurrency for twice the quota in flight
at the service time. Prints a markdown table; exits 1 if a run did not apply every row.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.boto3_threads import send_with_threads
from benchmarks.cores import wait_until_quiet
from benchmarks.emulator_process import EmulatorProcess, emulator_process
from benchmarks.product_process import run_args, run_product, shown
from benchmarks.report import environment, table
from benchmarks.workload import update_calls, write_rows_csv

TARGET_GOODPUT = 0.99
TARGET_THROTTLED_SHARE = 0.02
PRODUCT, BASELINE = "bulkupdate run", "boto3 threads + adaptive"


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    rate_per_s: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> QuotaSpec:
        rate, _, burst = text.partition("/")
        try:
            spec = cls(float(rate), int(burst) if burst else max(1, round(float(rate))))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected RATE/BURST, got {text!r}") from None
        if spec.rate_per_s <= 0 or spec.burst < 1:
            raise argparse.ArgumentTypeError(f"expected a positive rate and burst: {text!r}")
        return spec

    def __str__(self) -> str:
        return f"{self.rate_per_s:g}/s, burst {self.burst}"


@dataclass(frozen=True, slots=True)
class Measurement:
    quota: QuotaSpec
    latency_ms: float
    concurrency: int
    client: str
    rows: int
    counters: dict[str, Any]
    wall_s: float
    client_note: str  # what the client itself reported, for cross-checking

    @property
    def outcomes(self) -> dict[str, int]:
        outcomes: dict[str, int] = self.counters["operations"].get("UpdateCase", {})
        return outcomes

    @property
    def accepted(self) -> int:
        return self.outcomes.get("ok", 0)

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())

    @property
    def throttled(self) -> int:
        return self.outcomes.get("ThrottlingException", 0)

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.attempts if self.attempts else math.nan

    @property
    def elapsed_s(self) -> float:
        span = self.counters["update_case"]["first_to_last_accept_s"]
        return float(span) if span is not None else math.nan

    @property
    def goodput(self) -> float:
        return self.accepted / (self.quota.burst + self.quota.rate_per_s * self.elapsed_s)

    @property
    def complete(self) -> bool:
        return self.accepted == self.rows

    @property
    def meets_targets(self) -> bool:
        return (
            self.complete
            and self.goodput >= TARGET_GOODPUT
            and self.throttled_share <= TARGET_THROTTLED_SHARE
        )


async def configure(emulator: EmulatorProcess, quota: QuotaSpec, latency_ms: float) -> None:
    """Put the UpdateCase quota and a service latency on a fresh (no-quota) emulator."""
    change = {
        "quotas": {"UpdateCase": f"{quota.rate_per_s:g}/{quota.burst}"},
        "faults": {"latency_median_ms": latency_ms},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emulator.url}/_emulator/config", json=change) as response,
    ):
        response.raise_for_status()
    await emulator.reset_counters()


def rows_for(quota: QuotaSpec, min_rows: int, min_duration_s: float) -> int:
    """Enough rows for min_duration_s of accepts at the quota after the burst, and min_rows."""
    return max(min_rows, quota.burst + math.ceil(quota.rate_per_s * min_duration_s))


def run_timeout_s(quota: QuotaSpec, rows: int) -> float:
    return 60 + 3 * rows / quota.rate_per_s


def concurrency_for(args: argparse.Namespace, quota: QuotaSpec, latency_ms: float) -> int:
    """--concurrency, or more: twice the quota in flight at the service time (500/s at 100 ms
    needs 50 calls in flight just to keep up)."""
    return max(args.concurrency, math.ceil(2 * quota.rate_per_s * latency_ms / 1000))


async def quiet(args: argparse.Namespace) -> None:
    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    await wait_until_quiet({args.emulator_cpu, args.client_cpu}, 20.0, args.patience_s, log)


async def measure_product(
    args: argparse.Namespace,
    quota: QuotaSpec,
    latency_ms: float,
    csv_path: Path,
    rows: int,
    tag: str,
) -> tuple[Measurement, str]:
    concurrency = concurrency_for(args, quota, latency_ms)
    await quiet(args)
    async with emulator_process(args.emulator_cpu, args.demo_cases) as emulator:
        await configure(emulator, quota, latency_ms)
        command = run_args(
            csv_path,
            emulator.url,
            args.workdir / tag,
            rate_per_s=args.overshoot * quota.rate_per_s,
            burst=quota.burst,
            concurrency=concurrency,
            extra=("--headroom", f"{args.headroom:g}"),
        )
        finished = await run_product(
            command, args.client_cpu, args.workdir / f"{tag}.stderr", run_timeout_s(quota, rows)
        )
        counters = await emulator.settled_counters()
    summary = finished.summary or {}
    note = (
        f"exit {finished.returncode}{' (timed out)' if finished.timed_out else ''}; "
        f"its summary: applied {summary.get('applied')}, throttles {summary.get('throttles')}"
    )
    if finished.returncode != 0:
        note += f"; stderr: {finished.stderr_tail[-300:]!r}"
    measurement = Measurement(
        quota, latency_ms, concurrency, PRODUCT, rows, counters, finished.wall_s, note
    )
    return measurement, shown(command)


async def measure_baseline(
    args: argparse.Namespace, quota: QuotaSpec, latency_ms: float, calls: list[Any]
) -> Measurement:
    await quiet(args)
    async with emulator_process(args.emulator_cpu, args.demo_cases) as emulator:
        await configure(emulator, quota, latency_ms)
        deadline_s = time.monotonic() + run_timeout_s(quota, len(calls))
        result = await asyncio.to_thread(
            send_with_threads,
            emulator.url,
            calls,
            threads=args.threads,
            max_attempts=args.baseline_max_attempts,
            deadline_s=deadline_s,
        )
        counters = await emulator.settled_counters()
    failed = ", ".join(f"{code} {n}" for code, n in result.failed.items()) or "none"
    note = f"client saw ok {result.ok}, failed rows: {failed}, not sent {result.not_sent}"
    return Measurement(
        quota, latency_ms, args.threads, BASELINE, len(calls), counters, result.wall_s, note
    )


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def results_table(measurements: Sequence[Measurement]) -> str:
    header = (
        "UpdateCase quota",
        "service (ms)",
        "client",
        "concurrency",
        "rows",
        "accepted",
        "attempts",
        "throttled",
        "throttled share",
        "first→last accept (s)",
        "goodput",
        "wall (s)",
        f"targets (≥{TARGET_GOODPUT:g}, ≤{100 * TARGET_THROTTLED_SHARE:g}%)",
    )
    rows = [
        (
            m.quota,
            f"{m.latency_ms:g}",
            m.client,
            m.concurrency,
            m.rows,
            m.accepted,
            m.attempts,
            m.throttled,
            percent(m.throttled_share),
            f"{m.elapsed_s:.1f}",
            f"{m.goodput:.3f}",
            f"{m.wall_s:.1f}",
            ("met" if m.meets_targets else "missed")
            if m.client == PRODUCT
            else ("-" if m.complete else "incomplete"),
        )
        for m in measurements
    ]
    return table(header, rows, right=3)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.goodput",
        description="Goodput and throttled share of bulkupdate run vs boto3 threads with "
        "adaptive retries, against the emulator with an UpdateCase quota. Prints markdown.",
    )
    parser.add_argument(
        "--quota",
        dest="quotas",
        action="append",
        type=QuotaSpec.parse,
        metavar="RATE/BURST",
        help="emulator UpdateCase quota; repeatable (default 2/2, 50/50, 500/500)",
    )
    parser.add_argument("--overshoot", type=float, default=4.0, help="product --rate / quota")
    parser.add_argument("--min-rows", type=int, default=300, help="rows per run at least")
    parser.add_argument(
        "--min-duration-s", type=float, default=32.0, help="rows for this long at the quota"
    )
    parser.add_argument(
        "--latency-ms",
        dest="latencies_ms",
        action="append",
        type=float,
        help="emulator service time; repeatable (default 10)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="product --concurrency, at least (more when twice the quota in flight needs more)",
    )
    parser.add_argument(
        "--headroom", type=float, default=0.0, help="product --headroom (default 0: all of it)"
    )
    parser.add_argument(
        "--patience-s", type=float, default=120.0, help="wait this long for quiet cores"
    )
    parser.add_argument("--threads", type=int, default=16, help="baseline threads (and pool)")
    parser.add_argument(
        "--baseline-max-attempts",
        type=int,
        default=10,
        help="botocore Config max_attempts for the baseline (retries: attempts = this + 1)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs per quota")
    parser.add_argument(
        "--client",
        dest="clients",
        action="append",
        choices=("product", "baseline"),
        help="repeatable; default both",
    )
    parser.add_argument("--demo-cases", type=int, default=1000, help="cases the rows cycle")
    parser.add_argument("--emulator-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="for inputs and checkpoints (default: temp)")
    args = parser.parse_args(argv)
    args.quotas = args.quotas or [QuotaSpec(2, 2), QuotaSpec(50, 50), QuotaSpec(500, 500)]
    args.latencies_ms = args.latencies_ms or [10.0]
    args.clients = args.clients or ["product", "baseline"]
    if args.emulator_cpu == args.client_cpu:
        parser.error("--emulator-cpu and --client-cpu must differ")
    return args


async def run(args: argparse.Namespace) -> int:
    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    os.sched_setaffinity(0, {args.client_cpu})  # the baseline's threads run in this process
    measurements: list[Measurement] = []
    commands: list[str] = []
    for quota, latency_ms in itertools.product(args.quotas, args.latencies_ms):
        rows = rows_for(quota, args.min_rows, args.min_duration_s)
        csv_path = args.workdir / f"goodput-{quota.rate_per_s:g}.csv"
        write_rows_csv(csv_path, rows, args.demo_cases)
        calls = list(update_calls(csv_path))
        for repeat in range(1, args.repeats + 1):
            order = args.clients if repeat % 2 else list(reversed(args.clients))
            for client in order:
                tag = f"goodput-{quota.rate_per_s:g}-{latency_ms:g}-{repeat}"
                if client == "product":
                    measurement, command = await measure_product(
                        args, quota, latency_ms, csv_path, rows, tag
                    )
                    commands.append(command)
                else:
                    measurement = await measure_baseline(args, quota, latency_ms, calls)
                log(
                    f"{quota}, {latency_ms:g} ms, {measurement.client}, repeat {repeat}: goodput "
                    f"{measurement.goodput:.3f}, throttled {percent(measurement.throttled_share)}"
                    f" ({measurement.throttled}/{measurement.attempts}), elapsed "
                    f"{measurement.elapsed_s:.1f} s; {measurement.client_note}"
                )
                measurements.append(measurement)
    print(f"Goodput under a quota, {environment()}")
    print(f"command: python -m benchmarks.goodput {' '.join(sys.argv[1:])}")
    print(
        f"emulator (fresh per run) on core {args.emulator_cpu}: UpdateCase quota and service "
        f"time (--latency-ms) as listed, other operations unlimited; clients on core "
        f"{args.client_cpu}. Product: --rate {args.overshoot:g} x quota, --burst = quota burst, "
        f"--headroom {args.headroom:g}, --concurrency as listed. "
        f"Baseline: boto3, {args.threads} threads, one client, "
        f"Config(retries={{'mode': 'adaptive', 'max_attempts': {args.baseline_max_attempts}}}, "
        f"max_pool_connections={args.threads}).\n"
    )
    if commands:
        print(f"product command, e.g.: {commands[0]}\n")
    print(results_table(measurements))
    return 0 if all(m.complete for m in measurements) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-goodput-") as temporary:
        args.workdir = args.workdir or Path(temporary)
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
