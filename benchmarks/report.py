"""What every benchmark prints around its figures: the machine and versions they were taken on,
the product's commit, and markdown tables.

Formatting only: measures nothing.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The checked-out commit (read-only git), with "+changes" when the work tree differs."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--", "bulkupdate"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" +uncommitted changes in bulkupdate/" if changed else "")


def cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown CPU"


def environment() -> str:
    model = cpu_model()
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("aiobotocore", "botocore", "boto3", "aiohttp")
    )
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({model}), "
        f"Python {platform.python_version()}, {packages}, bulkupdate at {commit()}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]], right: int = 1) -> str:
    """A markdown table; columns from index `right` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = [header, align, *[[str(cell) for cell in row] for row in rows]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
