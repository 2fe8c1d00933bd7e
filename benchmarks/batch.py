"""BatchUpdateCase grouping (issue 13): a nightly correction of 20,000 cases (one status and one
field for all) and a mixed migration (30 % of rows share one patch, the rest each their own)
at the default quotas (UpdateCase 2/2, BatchUpdateCase 2/2, --headroom 0), --batch auto against
--batch off: calls, wall time, and duplicates after a SIGKILL in the middle.

    .venv/bin/python -m benchmarks.batch

The emulator runs in this process with its default quotas; the product runs as a subprocess.
A full run that would take hours (--batch off, and the mixed migration either way) is timed on
a slice (SLICE_S seconds, then SIGTERM): its calls come from the dry run's count and its wall
time is calls / the measured calls per second. Duplicates: the run is SIGKILLed once about half
its rows are applied (or after SLICE_S), resumed for another slice, and the emulator's update
log counts cases applied more than once. Calls in flight at the kill land before the resume;
the resumed run waits --settle-period (7 s here) for cases the killed run may have had in flight.
Mostly waiting (2 calls/s): fine on a shared machine. Prints one markdown table.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.product_process import child_env
from benchmarks.report import environment, table
from bulkupdate.emulator import DEFAULT_QUOTAS, EmulatorConfig, running_emulator
from bulkupdate.emulator.server import Emulator

CASES = 20_000
SLICE_S = 60.0
SHARED = 0.30
SETTLE = {"BULKUPDATE_CALL_TIMEOUT": "6", "BULKUPDATE_SETTLE_PERIOD": "7"}


def case(index: int) -> str:
    return f"case-{index:07d}"


def write_uniform(path: Path) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["case_id", "status", "priority"])
        out.writerows([case(i), "closed", "high"] for i in range(1, CASES + 1))


def write_mixed(path: Path) -> None:
    rng = random.Random(13)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["case_id", "priority", "order_total"])
        for i in range(1, CASES + 1):
            shared = rng.random() < SHARED
            out.writerow([case(i), "urgent", 500] if shared else [case(i), "low", i])


def argv(folder: Path, url: str, batch: str, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "bulkupdate", "run", "--input", str(folder / "rows.csv")),
        *("--domain-id", "demo", "--endpoint-url", url, "--headroom", "0", "--batch", batch),
        *("--checkpoint", str(folder / f"{batch}.ck"), "--failures", str(folder / "f.csv")),
        *("--summary", str(folder / f"{batch}.summary.json"), "--no-progress"),
        *("--log-format", "json", *extra),
    ]


async def launch(args: list[str], folder: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    log = (folder / "product.log").open("ab")
    return await asyncio.create_subprocess_exec(
        *args, env={**child_env(), **env}, stdout=log, stderr=log
    )


def calls(emu: Emulator) -> int:
    return sum(sum(emu.counters[op].values()) for op in ("UpdateCase", "BatchUpdateCase"))


def accepted(emu: Emulator) -> int:
    return sum(emu.counters[op].get("ok", 0) for op in ("UpdateCase", "BatchUpdateCase"))


async def dry_run_calls(folder: Path, url: str, batch: str) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv(folder, url, batch, "--dry-run"),
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    text = err.decode()
    marker = "grouped (--batch auto) " if batch == "auto" else "at "
    if batch == "auto":
        return int(text.split(marker)[1].split(" calls")[0])
    return int(text.split("dry run: ")[1].split(" rows to send")[0])


async def timed(emu: Emulator, folder: Path, batch: str, *, full: bool) -> tuple[int, float, bool]:
    """(calls, seconds, finished): a full run, or SLICE_S of one stopped with SIGTERM."""
    before, started = calls(emu), time.monotonic()
    process = await launch(argv(folder, emu.url, batch), folder, {})
    try:
        await asyncio.wait_for(process.wait(), None if full else SLICE_S)
    except TimeoutError:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    return calls(emu) - before, time.monotonic() - started, process.returncode == 0


async def duplicates(emu: Emulator, folder: Path, batch: str) -> int:
    """Cases applied twice after a SIGKILL at about half the job (or SLICE_S) and a resume."""
    start = len(emu.service.updates)
    env = SETTLE
    process = await launch(argv(folder, emu.url, batch), folder, env)
    deadline = time.monotonic() + SLICE_S
    while len(emu.service.updates) - start < CASES // 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    process.kill()
    await process.wait()
    await asyncio.sleep(2)
    resumed = await launch(argv(folder, emu.url, batch), folder, env)
    try:
        await asyncio.wait_for(resumed.wait(), 1.5 * SLICE_S)
    except TimeoutError:
        resumed.send_signal(signal.SIGTERM)
        await resumed.wait()
    applied = Counter(u["caseId"] for u in emu.service.updates[start:])
    return sum(count - 1 for count in applied.values() if count > 1)


async def scenario(name: str, write: Any, tmp: Path) -> list[list[object]]:
    rows: list[list[object]] = []
    for batch in ("auto", "off"):
        folder = tmp / f"{name}-{batch}"
        folder.mkdir()
        write(folder / "rows.csv")
        config = EmulatorConfig(port=0, quotas=dict(DEFAULT_QUOTAS), demo_cases=CASES)
        async with running_emulator(config) as emu:
            planned = await dry_run_calls(folder, emu.url, batch)
            full = batch == "auto" and name == "nightly correction"
            made, took_s, finished = await timed(emu, folder, batch, full=full)
            if full and finished:
                wall, how = took_s, "measured"
            else:
                wall, how = planned / (made / took_s), f"from {took_s:.0f} s slice"
        folder2 = tmp / f"{name}-{batch}-kill"
        folder2.mkdir()
        write(folder2 / "rows.csv")
        async with running_emulator(config) as emu:
            dups = await duplicates(emu, folder2, batch)
        calls_text = f"{made}" if full and finished else f"{planned} (planned)"
        rows.append([name, f"--batch {batch}", calls_text, f"{wall / 60:.1f} min ({how})", dups])
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = await scenario("nightly correction", write_uniform, Path(tmp))
        rows += await scenario("mixed migration (30 % shared)", write_mixed, Path(tmp))
    header = [
        "job (20,000 rows)",
        "mode",
        "calls",
        "wall time",
        "cases applied twice after SIGKILL",
    ]
    print(environment())
    print()
    print(table(header, rows, right=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    asyncio.run(main())
