"""`bulkupdate status`: what a job's runs did and what is left, read from its checkpoint.

Read-only: opens the checkpoint without starting a run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bulkupdate.checkpoint_sqlite import SqliteCheckpointStore
from bulkupdate.errors import ConfigError
from bulkupdate.models import RowStatus


def _size(path: str) -> int | None:
    return os.path.getsize(path) if path != "-" and os.path.isfile(path) else None


def _exists(path: str) -> bool:
    return Path(path).is_file()


async def describe(checkpoint: str) -> dict[str, Any]:
    if not _exists(checkpoint):
        raise ConfigError("--checkpoint", f"no checkpoint at {checkpoint}")
    store = SqliteCheckpointStore(checkpoint)
    try:
        status = await store.status()
    finally:
        await store.close()
    input_path = status.job.input_path
    size = _size(input_path)
    left = size - status.resume_point.offset if size is not None else None
    last = status.last_run
    return {
        "job": status.job.name,
        "input": input_path,
        "format": status.job.format,
        "runs": status.runs,
        "last_run": {
            "state": last.state.value,
            "started_at": last.started_at.isoformat(),
            "ended_at": last.ended_at.isoformat() if last.ended_at else None,
            "summary": dict(last.summary),
        }
        if last
        else None,
        "applied": status.totals.get(RowStatus.DONE, 0),
        "failed": status.totals.get(RowStatus.FAILED, 0),
        "resume_offset": status.resume_point.offset,
        "resume_line": status.resume_point.line,
        "input_bytes": size,
        "input_bytes_left": left,
        "updated_at": status.updated_at.isoformat(),
    }


async def show(checkpoint: str, as_json: bool) -> str:
    info = await describe(checkpoint)
    if as_json:
        return json.dumps(info, indent=2)
    last = info["last_run"] or {}
    left = info["input_bytes_left"]
    lines = [
        f"job {info['job']} ({info['format']}) from {info['input']}",
        f"runs: {info['runs']}, last: {last.get('state', '-')} at {last.get('ended_at') or '-'}",
        f"applied: {info['applied']}, failed: {info['failed']}",
        f"resume at line {info['resume_line']} (byte {info['resume_offset']})"
        + (f", {left} bytes left" if left is not None else ""),
    ]
    if last.get("summary", {}).get("abort"):
        lines.append(f"aborted: {last['summary']['abort']}")
    return "\n".join(lines)
