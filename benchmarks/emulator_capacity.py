"""Emulator capacity: UpdateCase calls per second the local emulator serves on one core with no
quota, loaded from the other core by a generator far cheaper than the server (wrk, else raw Python
sockets), beside what the real aiobotocore client sends from one core to the same emulator.

    .venv/bin/python -m benchmarks.emulator_capacity [--duration-s 10 --repeats 3 ...]

Prints a markdown table; exits 1 if the emulator's counters disagree with what a generator saw.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from benchmarks.cores import busy_s, wait_until_quiet
from benchmarks.emulator_process import EmulatorProcess, emulator_process
from benchmarks.loadgen import LoadGenerator, LoadResult, SocketLoad, WrkLoad, boto_load
from benchmarks.report import cpu_model

GENERATORS = ("wrk", "python", "aiobotocore")


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed run, with the CPU each party used and what the emulator itself counted.

    CPU figures are over window_s, the wall time around the generator's whole run. A core's
    busy time, from /proc/stat, covers every process on it, ours or not.
    """

    generator: str
    result: LoadResult
    window_s: float
    emulator_cpu_s: float
    emulator_core_busy_s: float
    generator_core_busy_s: float
    counters: dict[str, Any]
    problem: str | None  # None when the emulator's counts agree with the generator's

    @property
    def cpu_percents(self) -> tuple[float, float, float, float]:
        """CPU in % of one core: emulator, generator, and other processes on each one's core.

        The last two are differences of separately sampled counters: a few % of noise, floored
        at 0.
        """
        percent_per_s = 100 / self.window_s
        emulator_core_others_s = max(0.0, self.emulator_core_busy_s - self.emulator_cpu_s)
        generator_core_others_s = max(0.0, self.generator_core_busy_s - self.result.cpu_s)
        return (
            self.emulator_cpu_s * percent_per_s,
            self.result.cpu_s * percent_per_s,
            emulator_core_others_s * percent_per_s,
            generator_core_others_s * percent_per_s,
        )

    def contended(self, others_percent_max: float) -> bool:
        """Did other processes take more than others_percent_max of a core we had filled?

        On a core with idle time left, others only used what ours did not need.
        """
        emulator, generator, emulator_core_others, generator_core_others = self.cpu_percents
        return any(
            others > others_percent_max and own + others >= 100 - others_percent_max
            for own, others in (
                (emulator, emulator_core_others),
                (generator, generator_core_others),
            )
        )

    def describe(self) -> str:
        emulator, generator, emulator_core_others, generator_core_others = self.cpu_percents
        accepted = self.counters["update_case"]["accepted"]
        return (
            f"{self.result.rate_per_s:,.0f} UpdateCase/s; CPU % of a core: emulator "
            f"{emulator:.0f} (+{emulator_core_others:.0f} others), generator {generator:.0f} "
            f"(+{generator_core_others:.0f} others); "
            f"answered {self.result.ok}, emulator accepted {accepted}: "
            f"{self.problem or 'counts agree'}"
        )


def generator_for(
    name: str, url: str, args: argparse.Namespace
) -> AbstractAsyncContextManager[LoadGenerator]:
    if name == "wrk":
        return nullcontext(WrkLoad(url, args.connections, args.demo_cases))
    if name == "python":
        return nullcontext(SocketLoad(url, args.connections, args.demo_cases))
    return boto_load(url, args.boto_tasks, args.demo_cases)


def check(result: LoadResult, counters: dict[str, Any], unanswered_max: int) -> str | None:
    """Why the emulator's own counts disagree with the generator's, or None if they agree."""
    outcomes = counters["operations"]
    unexpected = [op for op, o in outcomes.items() if op != "UpdateCase" or set(o) != {"ok"}]
    accepted = counters["update_case"]["accepted"]
    if result.failed or unexpected:
        return f"{result.failed} failed calls; emulator outcomes {outcomes}"
    if not 0 <= accepted - result.ok <= unanswered_max:
        return f"emulator accepted {accepted}, generator saw {result.ok} answered"
    return None


async def timed_run(
    emulator: EmulatorProcess,
    generator: LoadGenerator,
    duration_s: int,
    emulator_cpu: int,
    generator_cpu: int,
) -> Measurement:
    await emulator.reset_counters()
    loop = asyncio.get_running_loop()
    start_s, emulator_before_s = loop.time(), emulator.cpu_s()
    emulator_core_before_s = busy_s({emulator_cpu})
    generator_core_before_s = busy_s({generator_cpu})
    result = await generator.run(duration_s)
    emulator_cpu_s = emulator.cpu_s() - emulator_before_s
    emulator_core_busy_s = busy_s({emulator_cpu}) - emulator_core_before_s
    generator_core_busy_s = busy_s({generator_cpu}) - generator_core_before_s
    window_s = loop.time() - start_s
    counters = await emulator.settled_counters()
    return Measurement(
        generator=generator.label,
        result=result,
        window_s=window_s,
        emulator_cpu_s=emulator_cpu_s,
        emulator_core_busy_s=emulator_core_busy_s,
        generator_core_busy_s=generator_core_busy_s,
        counters=counters,
        problem=check(result, counters, generator.unanswered_at_stop_max),
    )


async def measure(
    name: str, args: argparse.Namespace, log: Callable[[str], None]
) -> list[Measurement]:
    """Fresh emulator, warm-up, then args.repeats timed runs of one generator.

    The machine is shared: each run waits for the cores to go quiet first, and a run during
    which other processes took more than args.max_other_cpu_percent of a full core is run again.
    """
    cores = {args.emulator_cpu, args.generator_cpu}
    measurements = []
    async with (
        emulator_process(args.emulator_cpu, args.demo_cases) as emulator,
        generator_for(name, emulator.url, args) as generator,
    ):
        await generator.run(args.warmup_s)
        for repeat in range(1, args.repeats + 1):
            for attempt in range(1, args.attempts + 1):
                await emulator.settled_counters()
                await wait_until_quiet(cores, args.max_other_cpu_percent, args.patience_s, log)
                measurement = await timed_run(
                    emulator, generator, args.duration_s, args.emulator_cpu, args.generator_cpu
                )
                log(f"{generator.label}, run {repeat} try {attempt}: {measurement.describe()}")
                if not measurement.contended(args.max_other_cpu_percent):
                    break
            measurements.append(measurement)
    return measurements


def table(runs: Sequence[Sequence[Measurement]], others_percent_max: float) -> str:
    """Markdown: one row per generator; runs kept although contended carry a `*`."""
    lines = [
        "| load generator (own core) | UpdateCase/s, median | runs | spread | "
        "CPU: emulator | generator | others beside emulator | others beside generator | "
        "emulator's counters |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    contended_runs = 0
    for measurements in runs:
        rates = [m.result.rate_per_s for m in measurements]
        median = statistics.median(rates)
        spread = (max(rates) - min(rates)) / median
        marked = []
        for m in measurements:
            contended = m.contended(others_percent_max)
            contended_runs += contended
            marked.append(f"{m.result.rate_per_s:,.0f}{'*' if contended else ''}")
        columns = zip(*(m.cpu_percents for m in measurements), strict=True)
        cpu = [statistics.median(column) for column in columns]
        problems = sum(1 for m in measurements if m.problem)
        verdict = f"{problems} runs disagree" if problems else "agree, no errors"
        lines.append(
            f"| {measurements[0].generator} | {median:,.0f} | {' / '.join(marked)} | "
            f"{100 * spread:.1f}% | "
            + " | ".join(f"{percent:.0f}%" for percent in cpu)
            + f" | {verdict} |"
        )
    if contended_runs:
        lines.append(
            f"\n\\* kept after every try: other processes took more than {others_percent_max:g}% "
            "of a core the run had filled"
        )
    return "\n".join(lines)


def environment() -> str:
    model = cpu_model()
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores ({model}), "
        f"Python {platform.python_version()}, aiohttp {version('aiohttp')}, "
        f"aiobotocore {version('aiobotocore')}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.emulator_capacity",
        description="UpdateCase/s the emulator serves on one core, and what one aiobotocore "
        "core sends to it. Prints a markdown table.",
    )
    parser.add_argument("--duration-s", type=int, default=10, help="length of one timed run")
    parser.add_argument("--warmup-s", type=int, default=3, help="untimed load before the runs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per generator")
    parser.add_argument(
        "--generator",
        dest="generators",
        action="append",
        choices=GENERATORS,
        help="repeatable; default: wrk (if installed), python and aiobotocore",
    )
    parser.add_argument("--connections", type=int, default=64, help="for wrk and python")
    parser.add_argument("--boto-tasks", type=int, default=64, help="concurrent update_case loops")
    parser.add_argument("--demo-cases", type=int, default=1000, help="cases the updates cycle")
    parser.add_argument("--emulator-cpu", type=int, default=0, help="core the emulator runs on")
    parser.add_argument("--generator-cpu", type=int, default=1, help="core the load runs from")
    noise = parser.add_argument_group("shared machine")
    noise.add_argument(
        "--max-other-cpu-percent",
        type=float,
        default=10.0,
        help="run again if other processes took more than this %% of a core the run filled",
    )
    noise.add_argument("--attempts", type=int, default=3, help="tries per run, then keep it")
    noise.add_argument("--patience-s", type=float, default=30.0, help="wait for quiet cores")
    args = parser.parse_args(argv)
    if args.emulator_cpu == args.generator_cpu:
        parser.error("--emulator-cpu and --generator-cpu must differ")
    if not {args.emulator_cpu, args.generator_cpu} <= os.sched_getaffinity(0):
        parser.error(f"this process may only use cores {sorted(os.sched_getaffinity(0))}")
    if args.generators is None:
        args.generators = [g for g in GENERATORS if g != "wrk" or shutil.which("wrk")]
    elif "wrk" in args.generators and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk); leave out --generator wrk")
    return args


async def run(args: argparse.Namespace) -> int:
    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # This process, and the wrk it starts, load from one core; the emulator gets the other.
    os.sched_setaffinity(0, {args.generator_cpu})
    runs = [await measure(name, args, log) for name in args.generators]
    print(f"Emulator capacity, {environment()}")
    print(
        "command:",
        shlex.join([".venv/bin/python", "-m", "benchmarks.emulator_capacity", *sys.argv[1:]]),
    )
    print(
        f"emulator on core {args.emulator_cpu}, load from core {args.generator_cpu}; "
        f"{args.repeats} runs of {args.duration_s} s per generator\n"
    )
    print(table(runs, args.max_other_cpu_percent))
    medians = {
        name: statistics.median(m.result.rate_per_s for m in measurements)
        for name, measurements in zip(args.generators, runs, strict=True)
    }
    capacity = max((rate for name, rate in medians.items() if name != "aiobotocore"), default=0)
    if capacity and "aiobotocore" in medians:
        ratio = capacity / medians["aiobotocore"]
        print(f"\nemulator capacity / what one aiobotocore core sends: {ratio:.1f}x")
    return 1 if any(m.problem for measurements in runs for m in measurements) else 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
