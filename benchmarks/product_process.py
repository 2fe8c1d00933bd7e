"""`bulkupdate run` as a benchmark runs it: a subprocess with the emulator's credentials, pinned
to one core, bounded in time, and reaped with wait4 so its own peak RSS and CPU time are known;
its JSON summary and JSON log events are read back afterwards.

Starts only the product and the emulator-free probes around it; the emulator is
emulator_process's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bulkupdate.emulator.config import DEFAULT_CREDENTIALS

ACCESS_KEY_ID, SECRET_ACCESS_KEY = next(iter(DEFAULT_CREDENTIALS.items()))
# Fake credentials for the emulator, and nothing from the developer's AWS set-up leaking in.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def child_env() -> dict[str, str]:
    """Our environment minus AWS_* and BULKUPDATE_* settings, plus AWS_ENV."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BULKUPDATE_"))}
    return {**kept, **AWS_ENV}


def run_args(
    input_path: Path,
    url: str,
    files_prefix: Path,
    *,
    rate_per_s: float,
    burst: int,
    concurrency: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """`python -m bulkupdate run ...` against the demo domain; checkpoint, failures and summary
    files are `files_prefix` + `.ck`, `.failures.csv`, `.summary.json`."""
    return [
        *(sys.executable, "-m", "bulkupdate", "run", "--input", str(input_path)),
        *("--domain-id", "demo", "--endpoint-url", url),
        *("--rate", f"{rate_per_s:g}", "--burst", str(burst), "--concurrency", str(concurrency)),
        *("--checkpoint", f"{files_prefix}.ck", "--failures", f"{files_prefix}.failures.csv"),
        *("--summary", f"{files_prefix}.summary.json", "--no-progress", "--log-format", "json"),
        *extra,
    ]


def shown(args: Sequence[str]) -> str:
    """A command line as a person would type it from the repository root."""
    words = ["python" if a == sys.executable else a for a in args]
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class Finished:
    """A reaped product process: exit code, wall and CPU seconds, peak RSS, what it wrote."""

    returncode: int
    timed_out: bool
    started_wall_s: float  # time.time() just before the process was started
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    summary: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: str = ""

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)


class ProductProcess:
    """One `bulkupdate` subprocess. Not an asyncio subprocess: it is reaped with os.wait4 (in a
    thread) for its own rusage, which asyncio's child watcher would otherwise take."""

    def __init__(self, args: Sequence[str], cpu: int | None, stderr_path: Path) -> None:
        self.args = list(args)
        self._stderr_path = stderr_path
        summary_flag = self.args.index("--summary") if "--summary" in self.args else -1
        self._summary_path = Path(self.args[summary_flag + 1]) if summary_flag >= 0 else None
        if self._summary_path is not None:
            self._summary_path.unlink(missing_ok=True)
        self._stderr = stderr_path.open("wb")
        self.started_wall_s = time.time()
        self._started_s = time.monotonic()
        self._popen = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
            env=child_env(),
        )  # fmt: skip
        self.pid = self._popen.pid
        if cpu is not None:
            os.sched_setaffinity(self.pid, {cpu})

    def rss_mib(self) -> float | None:
        """Resident set size now (VmRSS), or None once the process is gone."""
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except (FileNotFoundError, ProcessLookupError):
            return None
        return None

    def signal(self, signum: int) -> None:
        if self._popen.returncode is None:
            os.kill(self.pid, signum)

    async def wait(self, timeout_s: float) -> Finished:
        """Reap the process (SIGKILL after timeout_s) and read back its summary and logs."""
        reaper = asyncio.ensure_future(asyncio.to_thread(os.wait4, self.pid, 0))
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(reaper), timeout_s)
        except TimeoutError:
            timed_out = True
            os.kill(self.pid, signal.SIGKILL)
        _, status, usage = await reaper
        wall_s = time.monotonic() - self._started_s
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        self._stderr.close()
        text = self._stderr_path.read_text(encoding="utf-8", errors="replace")
        events = []
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        summary = None
        if self._summary_path is not None and self._summary_path.exists():
            summary = json.loads(self._summary_path.read_text(encoding="utf-8"))
        return Finished(
            returncode=self._popen.returncode,
            timed_out=timed_out,
            started_wall_s=self.started_wall_s,
            wall_s=wall_s,
            cpu_s=usage.ru_utime + usage.ru_stime,
            max_rss_mib=usage.ru_maxrss / 1024,
            summary=summary,
            events=events,
            stderr_tail=text[-2000:],
        )


async def run_product(
    args: Sequence[str], cpu: int | None, stderr_path: Path, timeout_s: float
) -> Finished:
    """Start the product and wait for it."""
    return await ProductProcess(args, cpu, stderr_path).wait(timeout_s)


def start_unthrottled(
    input_path: Path,
    url: str,
    files_prefix: Path,
    *,
    concurrency: int,
    cpu: int | None,
    stderr_path: Path,
) -> ProductProcess:
    """Start `bulkupdate run` (run_args) with a --rate and --burst far above what one client
    core sends (1e6/s, 1000), for runs against a no-quota emulator; its command line is the
    returned process's `args`."""
    command = run_args(
        input_path, url, files_prefix, rate_per_s=1_000_000, burst=1000, concurrency=concurrency
    )
    return ProductProcess(command, cpu, stderr_path)


def iso_to_epoch_s(text: str) -> float:
    """structlog's ISO UTC timestamp ("...Z") as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
