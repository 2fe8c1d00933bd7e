"""Overhead with no quota: rows/s of `bulkupdate run` against a bare aiobotocore loop
(benchmarks.bare_loop) sending the same UpdateCase calls to the same emulator, in the same run.

    .venv/bin/python -m benchmarks.overhead                     # 20k rows, 3 repeats
    .venv/bin/python -m benchmarks.overhead --rows 5000 --repeats 1 --concurrency 32

The emulator (fresh per measurement, no quotas, no latency) runs on one core, each client on the
other. Product rows/s = applied / elapsed_s of its --summary (the engine's run, without start-up);
its whole command's wall time is shown too. Bare loop rows/s = calls / first call to last answer.
Order alternates between repeats. Rows per CPU-second of the client (whole process, start-up
included, for both) is less sensitive to other processes on this shared machine than rows/s.
Prints a markdown table; exits 1 if a run did not apply every row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cores import busy_s, wait_until_quiet
from benchmarks.emulator_process import emulator_process
from benchmarks.product_process import ProductProcess, shown, start_unthrottled
from benchmarks.report import environment, table
from benchmarks.workload import write_rows_csv

TARGET_RATIO = 0.9


@dataclass(frozen=True, slots=True)
class Variant:
    """A client set-up: the product at a concurrency, or the bare loop with tasks and a pool."""

    kind: str  # "product" or "bare"
    concurrency: int
    pool: int = 0  # bare loop only; 0 = botocore's default (10)

    @property
    def label(self) -> str:
        if self.kind == "product":
            return f"bulkupdate run --concurrency {self.concurrency}"
        pool = f"pool {self.pool}" if self.pool else "default pool (10)"
        return f"bare aiobotocore loop, {self.concurrency} tasks, {pool}"


@dataclass(frozen=True, slots=True)
class Measurement:
    variant: Variant
    ok: int
    rows_per_s: float
    wall_s: float  # whole command
    client_cpu_s: float  # whole process
    emulator_cpu_percent: float
    others_client_core_percent: float
    others_emulator_core_percent: float
    accepted: int
    command: str
    returncode: int

    @property
    def complete(self) -> bool:
        """Every row applied and a clean exit: only such runs count in the medians."""
        return self.returncode == 0 and self.ok == self.accepted and self.ok > 0


def parse_bare(text: str) -> Variant:
    tasks, _, pool = text.partition("/")
    try:
        return Variant("bare", int(tasks), int(pool) if pool else 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TASKS[/POOL], got {text!r}") from None


async def measure(
    args: argparse.Namespace, variant: Variant, csv_path: Path, tag: str
) -> Measurement:
    cores = {args.emulator_cpu, args.client_cpu}
    await wait_until_quiet(cores, args.max_other_cpu_percent, args.patience_s, log)
    async with emulator_process(args.emulator_cpu, args.demo_cases) as emulator:
        output_path = args.workdir / f"{tag}.out"
        emulator_before_s = emulator.cpu_s()
        emulator_core_before_s, client_core_before_s = (
            busy_s({args.emulator_cpu}),
            busy_s({args.client_cpu}),
        )
        if variant.kind == "product":
            process = start_unthrottled(
                csv_path,
                emulator.url,
                args.workdir / tag,
                concurrency=variant.concurrency,
                cpu=args.client_cpu,
                stderr_path=output_path,
            )
        else:
            bare_command = [
                *(sys.executable, "-m", "benchmarks.bare_loop", "--input", str(csv_path)),
                *("--endpoint-url", emulator.url, "--tasks", str(variant.concurrency)),
                *("--pool-connections", str(variant.pool)),
            ]
            process = ProductProcess(bare_command, args.client_cpu, output_path)
        command = process.args
        finished = await process.wait(args.timeout_s)
        emulator_cpu_s = emulator.cpu_s() - emulator_before_s
        emulator_core_s = busy_s({args.emulator_cpu}) - emulator_core_before_s
        client_core_s = busy_s({args.client_cpu}) - client_core_before_s
        counters = await emulator.settled_counters()
    if variant.kind == "product":
        summary = finished.summary or {}
        ok = int(summary.get("applied", 0))
        rows_per_s = ok / summary["elapsed_s"] if summary.get("elapsed_s") else 0.0
    else:
        result = next((e for e in finished.events if "rows_per_s" in e), {})
        ok, rows_per_s = int(result.get("ok", 0)), float(result.get("rows_per_s", 0.0))
    if finished.returncode != 0:
        log(f"{variant.label}: exit {finished.returncode}: {finished.stderr_tail[-500:]}")
    window_s = finished.wall_s
    return Measurement(
        variant=variant,
        ok=ok,
        rows_per_s=rows_per_s,
        wall_s=finished.wall_s,
        client_cpu_s=finished.cpu_s,
        emulator_cpu_percent=100 * emulator_cpu_s / window_s,
        others_client_core_percent=100 * max(0.0, client_core_s - finished.cpu_s) / window_s,
        others_emulator_core_percent=100 * max(0.0, emulator_core_s - emulator_cpu_s) / window_s,
        accepted=counters["update_case"]["accepted"],
        command=shown(command),
        returncode=finished.returncode,
    )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def results_table(variants: Sequence[Variant], runs: dict[Variant, list[Measurement]]) -> str:
    header = (
        "client (own core)",
        "rows/s, median",
        "runs (rows/s)",
        "whole command wall (s), median",
        "rows per client CPU-s, median",
        "emulator CPU",
        "others on client core",
        "others on emulator core",
    )
    rows = []
    for variant in variants:
        ms = [m for m in runs[variant] if m.complete] or runs[variant]
        rows.append(
            (
                variant.label,
                f"{statistics.median(m.rows_per_s for m in ms):,.0f}",
                " / ".join(
                    f"{m.rows_per_s:,.0f}" if m.complete else f"(exit {m.returncode})"
                    for m in runs[variant]
                ),
                f"{statistics.median(m.wall_s for m in ms):.1f}",
                f"{statistics.median(m.ok / m.client_cpu_s for m in ms):,.0f}",
                f"{statistics.median(m.emulator_cpu_percent for m in ms):.0f}%",
                f"{statistics.median(m.others_client_core_percent for m in ms):.0f}%",
                f"{statistics.median(m.others_emulator_core_percent for m in ms):.0f}%",
            )
        )
    return table(header, rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description="bulkupdate run rows/s vs a bare aiobotocore loop, no quota. Prints markdown.",
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows per measurement")
    parser.add_argument(
        "--concurrency",
        dest="concurrencies",
        type=int,
        action="append",
        help="product --concurrency; repeatable (default 16, 32, 64)",
    )
    parser.add_argument(
        "--bare-loop",
        dest="bare_loops",
        type=parse_bare,
        action="append",
        metavar="TASKS[/POOL]",
        help="bare loop tasks and max_pool_connections; repeatable (default 16 and 64/64)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo-cases", type=int, default=1000, help="cases the rows cycle")
    parser.add_argument("--emulator-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per measurement")
    parser.add_argument("--workdir", type=Path, help="for inputs and checkpoints (default: temp)")
    noise = parser.add_argument_group("shared machine")
    noise.add_argument("--max-other-cpu-percent", type=float, default=15.0)
    noise.add_argument("--patience-s", type=float, default=20.0, help="wait for quiet cores")
    args = parser.parse_args(argv)
    args.concurrencies = args.concurrencies or [16, 32, 64]
    args.bare_loops = args.bare_loops or [Variant("bare", 16), Variant("bare", 64, 64)]
    if args.emulator_cpu == args.client_cpu:
        parser.error("--emulator-cpu and --client-cpu must differ")
    return args


async def run(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.client_cpu})
    csv_path = args.workdir / f"overhead-{args.rows}.csv"
    write_rows_csv(csv_path, args.rows, args.demo_cases)
    variants = [Variant("product", c) for c in args.concurrencies] + list(args.bare_loops)
    runs: dict[Variant, list[Measurement]] = {v: [] for v in variants}
    for repeat in range(1, args.repeats + 1):
        order = variants if repeat % 2 else list(reversed(variants))
        for index, variant in enumerate(order):
            m = await measure(args, variant, csv_path, f"overhead-{repeat}-{index}")
            log(
                f"repeat {repeat}: {variant.label}: {m.rows_per_s:,.0f} rows/s, wall "
                f"{m.wall_s:.1f} s, client CPU {m.client_cpu_s:.1f} s, emulator CPU "
                f"{m.emulator_cpu_percent:.0f}%, others on client core "
                f"{m.others_client_core_percent:.0f}%, emulator accepted {m.accepted}"
            )
            runs[variant].append(m)
    print(f"Overhead with no quota, {environment()}")
    print(f"command: python -m benchmarks.overhead {' '.join(sys.argv[1:])}")
    print(
        f"{args.rows} rows per measurement, {args.repeats} repeats in alternating order, a fresh "
        f"no-quota emulator (no latency) per measurement on core {args.emulator_cpu}, clients on "
        f"core {args.client_cpu}.\n"
    )
    product = next(ms for v, ms in runs.items() if v.kind == "product")
    print(f"product command, e.g.: {product[0].command}\n")
    print(results_table(variants, runs))

    def best(kind: str, key: Callable[[Measurement], float]) -> tuple[Variant, float]:
        scores = {
            v: statistics.median(key(m) for m in ms if m.complete)
            for v, ms in runs.items()
            if any(m.complete for m in ms)
        }
        variant = max((v for v in scores if v.kind == kind), key=scores.__getitem__)
        return variant, scores[variant]

    for what, key in (
        ("rows/s", lambda m: m.rows_per_s),
        ("rows per client CPU-s", lambda m: m.ok / m.client_cpu_s),
    ):
        best_product, product_score = best("product", key)
        best_bare, bare_score = best("bare", key)
        ratio = product_score / bare_score
        verdict = "met" if ratio >= TARGET_RATIO else "missed"
        print(
            f"\n{what}: best product ({best_product.label}) / best bare loop ({best_bare.label})"
            f" = {product_score:,.0f} / {bare_score:,.0f} = {ratio:.2f} (target ≥ "
            f"{TARGET_RATIO}: {verdict})"
        )
    complete = all(m.complete and m.ok == args.rows for ms in runs.values() for m in ms)
    if not complete:
        print("\nsome runs did not apply every row or exited non-zero: left out of the medians")
    return 0 if complete else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as temporary:
        args.workdir = args.workdir or Path(temporary)
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
