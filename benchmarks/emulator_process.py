"""The emulator as a benchmark needs it: `bulkupdate emulator` in a subprocess pinned to one core,
with no quotas and the demo domain, plus its admin views (counters, reset) over HTTP.

Sends no load: that is loadgen's job.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from benchmarks.cores import process_cpu_s


class EmulatorStartError(Exception):
    """The emulator subprocess did not print its "listening on" line."""


class EmulatorProcess:
    """A running emulator subprocess: its URL, its CPU time, its counters."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process, self.url = process, url
        self._admin = aiohttp.ClientSession(base_url=url)

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)

    async def counters(self) -> dict[str, Any]:
        async with self._admin.get("/_emulator/counters") as response:
            response.raise_for_status()
            counters: dict[str, Any] = await response.json()
            return counters

    async def settled_counters(
        self, poll_s: float = 0.2, patience_s: float = 5.0
    ) -> dict[str, Any]:
        """Counters once two reads poll_s apart agree, so calls queued when a run ended are in."""
        counters = await self.counters()
        for _ in range(round(patience_s / poll_s)):
            await asyncio.sleep(poll_s)
            latest = await self.counters()
            if latest == counters:
                break
            counters = latest
        return counters

    async def updates(self) -> list[dict[str, Any]]:
        """The ordered log of applied updates: seq, caseId, fields, performedBy, time (wall)."""
        async with self._admin.get("/_emulator/updates") as response:
            response.raise_for_status()
            updates: list[dict[str, Any]] = (await response.json())["updates"]
            return updates

    async def reset_counters(self) -> None:
        async with self._admin.post("/_emulator/reset") as response:
            response.raise_for_status()

    async def close(self) -> None:
        await self._admin.close()


@asynccontextmanager
async def emulator_process(cpu: int, demo_cases: int) -> AsyncIterator[EmulatorProcess]:
    """Start an emulator with no quotas on core `cpu`; terminate it when the block exits."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bulkupdate", "emulator", "--port", "0", "--no-quotas"),
        *("--demo-cases", str(demo_cases)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        os.sched_setaffinity(process.pid, {cpu})  # long before it serves a request
        assert process.stdout is not None
        first_line = (await process.stdout.readline()).decode()
        if not first_line.startswith("emulator listening on "):
            raise EmulatorStartError(f"emulator did not start; it printed {first_line!r}")
        emulator = EmulatorProcess(process, first_line.split()[-1])
        try:
            yield emulator
        finally:
            await emulator.close()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
