"""Run the real `bulkupdate` command in a subprocess without blocking the test's event loop, so an
in-process emulator (`running_emulator`) keeps serving while the command talks to it over HTTP.

    result = await run_cli("run", "--input", str(path), *fast_run_flags(emu.url))
    assert result.returncode == 0, result.stderr
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bulkupdate.emulator.config import DEFAULT_CREDENTIALS

ACCESS_KEY_ID, SECRET_ACCESS_KEY = next(iter(DEFAULT_CREDENTIALS.items()))
REGION = "us-east-1"

# What every run gets, whatever the developer's shell holds: fake credentials for the emulator and
# no shared AWS config, profile, endpoint or BULKUPDATE_* setting leaking in from outside.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def fast_run_flags(url: str, *, domain_id: str = "demo") -> list[str]:
    """`run` flags for an emulator with no quotas: its endpoint, a high rate, no progress bar."""
    return [
        *("--endpoint-url", url, "--domain-id", domain_id),
        *("--rate", "1000", "--burst", "100", "--no-progress"),
    ]


# The emulator answers in milliseconds: a call it has not answered in 6 s never will, so the
# case of a call whose answer never came (a kill, a dropped connection) waits 7 s, not 120.
SETTLE_ENV = {"BULKUPDATE_CALL_TIMEOUT": "6", "BULKUPDATE_SETTLE_PERIOD": "7"}


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: ours minus AWS_*/BULKUPDATE_*, plus AWS_ENV and SETTLE_ENV,
    plus `extra`."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "BULKUPDATE_"))
    }
    return {**kept, **AWS_ENV, **SETTLE_ENV, **(extra or {})}


async def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | str | None = None,
    timeout_s: float = 60,
    cwd: str | Path | None = None,
) -> Completed:
    """`python -m bulkupdate ARGS...`; `env` adds to `cli_env()`. Kills the process on timeout."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkupdate",
        *args,
        stdin=asyncio.subprocess.DEVNULL if data is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(env),
        cwd=cwd,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(data), timeout_s)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        raise AssertionError(
            f"bulkupdate {' '.join(args)} still running after {timeout_s} s; "
            f"stderr:\n{stderr.decode(errors='replace')}"
        ) from None
    assert process.returncode is not None
    return Completed(
        process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
    )
