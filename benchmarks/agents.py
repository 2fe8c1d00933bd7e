"""Agents beside a job: the contact centre's agents save cases through the same UpdateCase quota
as `bulkupdate run`. How many of their saves the service refuses while the job runs, and how
fast the job goes, with the default --headroom and with --headroom 0.

    .venv/bin/python -m benchmarks.agents    # 2/2@0.2, 2/2@0.4, 50/50@5, 50/50@10; headroom 20, 0
    .venv/bin/python -m benchmarks.agents --scenario 50/50@20 --headroom 20 --duration-s 30

Each run: a fresh emulator on one core with the UpdateCase quota RATE/BURST and --latency-ms;
agents saving at random moments (a Poisson stream, loadgen.PoissonSaves, raw HTTP, no retries)
on cases the job does not touch; and `bulkupdate run --rate RATE --burst BURST --headroom H` on
the other core, for about --duration-s at its share. The window is the job's first to last
update in the emulator's log. In it: the agents' refused share (429s over their saves, as they
saw them) and the job's throughput (its updates over the window); the job's throttled share
is its summary's throttles over its calls. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cores import wait_until_quiet
from benchmarks.emulator_process import EmulatorProcess, emulator_process
from benchmarks.goodput import QuotaSpec, configure
from benchmarks.loadgen import PoissonSaves
from benchmarks.product_process import run_args, run_product, shown
from benchmarks.report import environment, table
from benchmarks.workload import write_rows_csv
from bulkupdate.emulator.seed import demo_case_id

JOB_CASES = 1000  # the job's rows cycle over case 1..1000; the agents save the cases after them
AGENT_CASES = 1000


@dataclass(frozen=True, slots=True)
class Scenario:
    quota: QuotaSpec
    agents_per_s: float

    @classmethod
    def parse(cls, text: str) -> Scenario:
        quota, _, agents = text.partition("@")
        try:
            return cls(QuotaSpec.parse(quota), float(agents))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected RATE/BURST@AGENTS, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class Measurement:
    scenario: Scenario
    headroom: float
    rows: int
    window_s: float
    agent_saves: int
    agent_refused: int
    job_calls: int
    job_throttles: int
    exit_code: int

    @property
    def job_per_s(self) -> float:
        return (self.rows - 1) / self.window_s if self.window_s > 0 else math.nan

    @property
    def share_per_s(self) -> float:
        return self.scenario.quota.rate_per_s * (1 - self.headroom / 100)


async def job_window(emulator: EmulatorProcess) -> tuple[float, float, int]:
    """First and last wall time the emulator applied one of the job's rows, and how many."""
    updates = await emulator.updates()
    times = [u["time"] for u in updates if int(u["caseId"].rpartition("-")[2]) <= JOB_CASES]
    return (times[0], times[-1], len(times)) if times else (math.nan, math.nan, 0)


async def measure(args: argparse.Namespace, scenario: Scenario, headroom: float) -> Measurement:
    quota = scenario.quota
    duration_s = args.duration_s or (300.0 if quota.rate_per_s < 10 else 60.0)
    share_per_s = quota.rate_per_s * (1 - headroom / 100)
    rows = quota.burst + math.ceil(share_per_s * duration_s)
    tag = f"agents-{quota.rate_per_s:g}-{scenario.agents_per_s:g}-{headroom:g}"
    csv_path = args.workdir / f"{tag}.csv"
    write_rows_csv(csv_path, rows, JOB_CASES)
    command = run_args(
        csv_path,
        "URL",
        args.workdir / tag,
        rate_per_s=quota.rate_per_s,
        burst=quota.burst,
        concurrency=args.concurrency,
        extra=("--headroom", f"{headroom:g}"),
    )
    args.commands.append(shown(command))
    await wait_until_quiet({args.emulator_cpu, args.client_cpu}, 20.0, args.patience_s, log)
    async with emulator_process(args.emulator_cpu, JOB_CASES + AGENT_CASES) as emulator:
        await configure(emulator, quota, args.latency_ms)
        command[command.index("URL")] = emulator.url
        agent_cases = [demo_case_id(JOB_CASES + 1 + i) for i in range(AGENT_CASES)]
        agents = PoissonSaves(emulator.url, scenario.agents_per_s, agent_cases, seed=args.seed)
        stop = asyncio.Event()
        saving = asyncio.create_task(agents.run(stop))
        try:
            timeout_s = 120 + 3 * rows / share_per_s
            finished = await run_product(
                command, args.client_cpu, args.workdir / f"{tag}.stderr", timeout_s
            )
        finally:
            stop.set()
            await saving
        first_s, last_s, applied = await job_window(emulator)
    saves, refused = agents.between(first_s, last_s)
    summary = finished.summary or {}
    return Measurement(
        scenario,
        headroom,
        applied,
        last_s - first_s,
        saves,
        refused,
        int(summary.get("calls", 0)),
        int(summary.get("throttles", 0)),
        finished.returncode,
    )


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def results_table(measurements: Sequence[Measurement]) -> str:
    header = (
        "UpdateCase quota",
        "agents (saves/s)",
        "--headroom",
        "job rows",
        "window (s)",
        "job (calls/s)",
        "job / quota",
        "job / its share",
        "job throttled",
        "agents' saves",
        "agents refused",
        "agents refused share",
    )
    rows = [
        (
            m.scenario.quota,
            f"{m.scenario.agents_per_s:g}",
            f"{m.headroom:g}%",
            m.rows,
            f"{m.window_s:.1f}",
            f"{m.job_per_s:.2f}",
            f"{m.job_per_s / m.scenario.quota.rate_per_s:.2f}",
            f"{m.job_per_s / m.share_per_s:.2f}",
            percent(m.job_throttles, m.job_calls),
            m.agent_saves,
            m.agent_refused,
            percent(m.agent_refused, m.agent_saves),
        )
        for m in measurements
    ]
    return table(header, rows, right=3)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.agents",
        description="Agents' refused share and the job's throughput when both use one "
        "UpdateCase quota, with and without --headroom. Prints markdown.",
    )
    parser.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        type=Scenario.parse,
        metavar="RATE/BURST@AGENTS",
        help="quota and agents' saves per second; repeatable "
        "(default 2/2@0.2, 2/2@0.4, 50/50@5, 50/50@10)",
    )
    parser.add_argument(
        "--headroom",
        dest="headrooms",
        action="append",
        type=float,
        help="the job's --headroom; repeatable (default 20 and 0)",
    )
    parser.add_argument(
        "--duration-s",
        type=float,
        help="the job's length at its share (default 300 s below 10/s, where agents save "
        "rarely, and 60 s above)",
    )
    parser.add_argument("--latency-ms", type=float, default=10.0, help="emulator service time")
    parser.add_argument("--concurrency", type=int, default=16, help="product --concurrency")
    parser.add_argument("--seed", type=int, default=1, help="of the agents' random stream")
    parser.add_argument("--emulator-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument(
        "--patience-s", type=float, default=120.0, help="wait this long for quiet cores"
    )
    parser.add_argument("--workdir", type=Path, help="for inputs and checkpoints (default: temp)")
    args = parser.parse_args(argv)
    args.scenarios = args.scenarios or [
        Scenario.parse(text) for text in ("2/2@0.2", "2/2@0.4", "50/50@5", "50/50@10")
    ]
    args.headrooms = args.headrooms or [20.0, 0.0]
    if args.emulator_cpu == args.client_cpu:
        parser.error("--emulator-cpu and --client-cpu must differ")
    return args


async def run(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {args.client_cpu})  # the agents' client runs in this process
    args.commands = []
    measurements = []
    for scenario in args.scenarios:
        for headroom in args.headrooms:
            m = await measure(args, scenario, headroom)
            log(
                f"{scenario.quota}, agents {scenario.agents_per_s:g}/s, headroom {headroom:g}%: "
                f"job {m.job_per_s:.2f}/s, throttled {percent(m.job_throttles, m.job_calls)}; "
                f"agents refused {m.agent_refused}/{m.agent_saves}; exit {m.exit_code}"
            )
            measurements.append(m)
    print(f"Agents beside a job, {environment()}")
    print(f"command: python -m benchmarks.agents {' '.join(sys.argv[1:])}")
    print(
        f"emulator (fresh per run) on core {args.emulator_cpu}: UpdateCase quota as listed, "
        f"--latency-ms {args.latency_ms:g}; agents (Poisson, no retries) and the product on "
        f"core {args.client_cpu}. Product: --rate = quota rate, --burst = quota burst, "
        f"--concurrency {args.concurrency}, --headroom as listed.\n"
    )
    if args.commands:
        print(f"product command, e.g.: {args.commands[0]}\n")
    print(results_table(measurements))
    return 0 if all(m.exit_code == 0 for m in measurements) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as temporary:
        args.workdir = args.workdir or Path(temporary)
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
