"""`bulkupdate demo`: the shipped sample job (demo.toml, demo.csv) run through the real engine
against an emulator started in this process, with a quota low enough to show pacing.

Wiring only: the job runs exactly as `bulkupdate run` would run it. May import `run`, `report`,
`config` and the emulator; only `cli` imports this package.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from importlib import resources
from pathlib import Path

from bulkupdate.config import RunConfig, resolve
from bulkupdate.emulator import EmulatorConfig, running_emulator
from bulkupdate.emulator.config import DEFAULT_CREDENTIALS, parse_quota
from bulkupdate.emulator.quotas import DEFAULT_QUOTAS
from bulkupdate.report.progress import ProgressSink
from bulkupdate.run import job

DEMO_QUOTA = "UpdateCase=10/10"  # 10 calls/s, burst 10: the job's rate of 40/s gets throttled
DEMO_CASES = 150  # the sample data's case-0999999 does not exist: it fails at the service
JOB_FILE = "demo.toml"
DATA_FILE = "demo.csv"


def demo_config(folder: Path, endpoint_url: str, **extra: object) -> RunConfig:
    """The demo job as `bulkupdate run demo.toml` would load it, writing into `folder`."""
    job_file = resources.files(__package__) / JOB_FILE
    settings = tomllib.loads(job_file.read_text(encoding="utf-8"))
    flags = {
        "input": str(folder / DATA_FILE),
        "endpoint_url": endpoint_url,
        "region": "us-east-1",
        "summary": str(folder / "demo.summary.json"),
        "restart": True,  # a fresh emulator each time: start the job over too
        **extra,
    }
    return resolve(job=settings, job_path=JOB_FILE, env={}, flags=flags)


def copy_sample(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files(__package__) / DATA_FILE) as sample:
        shutil.copyfile(sample, folder / DATA_FILE)


def use_emulator_credentials() -> None:
    """This process talks only to its own emulator: its test credentials, no profile."""
    access_key, secret = next(iter(DEFAULT_CREDENTIALS.items()))
    os.environ.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)


async def run_demo(
    folder: Path, *, bar: bool | None = None, resume: str | None = None, **extra: object
) -> int:
    """Run the sample job into `folder`; `resume` is what an interrupted demo says to do next,
    `extra` settings as flags (log_format, metrics_port)."""
    copy_sample(folder)
    use_emulator_credentials()
    operation, quota = parse_quota(DEMO_QUOTA)
    emulator = EmulatorConfig(
        port=0, quotas={**DEFAULT_QUOTAS, operation: quota}, demo_cases=DEMO_CASES
    )
    async with running_emulator(emulator) as emu:
        config = demo_config(folder, emu.url, **extra)
        return await job.run(config, progress=ProgressSink(bar=bar), resume=resume)
