"""What finding each row's case by a legacy id costs (`--match-field`): 5,000 rows keyed by the
demo cases' `legacy_ticket` against the same rows keyed by case id, each run against an emulator
at AWS's default quotas (UpdateCase 2/s burst 2, SearchCases 2/s burst 10), throughput measured
on a timed slice of each run (accepted UpdateCase calls between two reads of the emulator's
counters, after a warm-up), then the run is stopped.

    .venv/bin/python -m benchmarks.lookup [--slice-s 120] [--warmup-s 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.product_process import child_env
from bulkupdate.emulator.seed import demo_case_id, demo_legacy_ticket

ROWS = 5000


@asynccontextmanager
async def emulator(cases: int) -> AsyncIterator[str]:
    """An emulator at AWS's default quotas on core 0; yields its URL."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bulkupdate", "emulator", "--port", "0"),
        *("--demo-cases", str(cases)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        os.sched_setaffinity(process.pid, {0})
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        assert line.startswith("emulator listening on "), line
        yield line.split()[-1]
    finally:
        process.terminate()
        await process.wait()


async def counters(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url + "/_emulator/counters") as r:
        data: dict[str, Any] = await r.json()
        return data


def write_rows(path: Path, *, by_legacy: bool) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["legacy" if by_legacy else "case_id", "account_code"])
        for index in range(1, ROWS + 1):
            key = demo_legacy_ticket(index) if by_legacy else demo_case_id(index)
            writer.writerow([key, f"B-{index}"])


async def measure(
    folder: Path, *, by_legacy: bool, warmup_s: float, slice_s: float
) -> dict[str, Any]:
    name = "legacy" if by_legacy else "case-id"
    source = folder / f"{name}.csv"
    write_rows(source, by_legacy=by_legacy)
    async with emulator(ROWS) as url:
        argv = [sys.executable, "-m", "bulkupdate", "run", "--input", str(source)]
        argv += ["--domain-id", "demo", "--endpoint-url", url, "--no-progress"]
        argv += ["--checkpoint", str(folder / f"{name}.ck"), "--log-format", "json"]
        if by_legacy:
            argv += ["--case-id-column", "legacy", "--match-field", "legacy_ticket"]
        with (folder / f"{name}.log").open("w") as log:
            process = await asyncio.create_subprocess_exec(
                *argv, env=child_env(), stdout=log, stderr=log
            )
            os.sched_setaffinity(process.pid, {1})
            started_s = time.monotonic()
            await asyncio.sleep(warmup_s)
            first = await counters(url)
            first_s = time.monotonic()
            await asyncio.sleep(slice_s)
            last = await counters(url)
            last_s = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await process.wait()
    accepted = last["update_case"]["accepted"] - first["update_case"]["accepted"]
    search = last["operations"].get("SearchCases", {})
    return {
        "keyed by": name,
        "rate_per_s": accepted / (last_s - first_s),
        "accepted": accepted,
        "slice_s": last_s - first_s,
        "first_accepts_after_s": first_s - started_s,
        "accepted_before_slice": first["update_case"]["accepted"],
        "searches": sum(search.values()),
        "search_throttles": search.get("ThrottlingException", 0),
        "update_throttles": last["operations"].get("UpdateCase", {}).get("ThrottlingException", 0),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice-s", type=float, default=120.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for by_legacy in (False, True):
                sub = Path(folder) / f"r{round_}"
                sub.mkdir(exist_ok=True)
                result = await measure(
                    sub, by_legacy=by_legacy, warmup_s=args.warmup_s, slice_s=args.slice_s
                )
                results.append(result)
                print(result, flush=True)
    plain = [r["rate_per_s"] for r in results if r["keyed by"] == "case-id"]
    keyed = [r["rate_per_s"] for r in results if r["keyed by"] == "legacy"]
    cost = 1 - (sum(keyed) / len(keyed)) / (sum(plain) / len(plain))
    columns = ["keyed by", "UpdateCase/s on the slice", "accepted", "slice s"]
    columns += ["SearchCases calls", "search throttles", "UpdateCase throttles"]
    print("| " + " | ".join(columns) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['keyed by']} | {r['rate_per_s']:.3f} | {r['accepted']} | {r['slice_s']:.1f} "
            f"| {r['searches']} | {r['search_throttles']} | {r['update_throttles']} |"
        )
    print(f"lookup cost: {100 * cost:.1f}% of throughput")


if __name__ == "__main__":
    asyncio.run(main())
