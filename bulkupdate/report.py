"""What a run leaves for people: the failures file (rebuilt from the checkpoint, in the input's
format, re-usable as input), the JSON summary and the one-line summary.

Owns writing those files (atomically); decides nothing about the run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bulkupdate.models import Outcome

ERROR_CODE_COLUMN = "error_code"
ERROR_MESSAGE_COLUMN = "error_message"
JSON_ERROR_MEMBER = "error"


def _atomic_write(path: str, text: str) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    # surrogateescape: bytes that were not UTF-8 in the input go back out unchanged.
    with temporary.open("w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(target)


def failures_csv(header: Sequence[str], failed: Iterable[Outcome], *, delimiter: str = ",") -> str:
    """The original columns (minus earlier error columns) plus error_code and error_message."""
    kept = [c for c in header if c not in (ERROR_CODE_COLUMN, ERROR_MESSAGE_COLUMN)]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow([*kept, ERROR_CODE_COLUMN, ERROR_MESSAGE_COLUMN])
    for outcome in failed:
        text = (outcome.raw or b"").decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
        parsed = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
        if len(parsed) == len(header):
            values = dict(zip(header, parsed, strict=True))
            cells = [values[c] for c in kept]
        else:  # a ragged row stays ragged, cells intact, so fed back it fails again
            cells = parsed
        writer.writerow([*cells, outcome.error_code or "", outcome.error_message or ""])
    return out.getvalue()


def failures_jsonl(failed: Iterable[Outcome]) -> str:
    """Each original object with an `error` member ({"code", "message"})."""
    lines = []
    for outcome in failed:
        raw = (outcome.raw or b"").decode("utf-8", errors="surrogateescape")
        text = raw.rstrip("\r\n").lstrip("\ufeff")
        error = {"code": outcome.error_code, "message": outcome.error_message}
        try:
            original: Any = json.loads(text)
        except ValueError:
            original = None
        if isinstance(original, dict):
            original[JSON_ERROR_MEMBER] = error
            lines.append(json.dumps(original, ensure_ascii=False))
        else:  # unreadable record: keep its text so nothing is lost
            lines.append(json.dumps({"raw": text, JSON_ERROR_MEMBER: error}, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def write_failures(
    path: str,
    fmt: str,
    failed: Sequence[Outcome],
    *,
    header: Sequence[str] | None,
    delimiter: str = ",",
) -> None:
    if fmt == "csv":
        _atomic_write(path, failures_csv(header or (), failed, delimiter=delimiter))
    else:
        _atomic_write(path, failures_jsonl(failed))


def write_summary(path: str, summary: Mapping[str, Any]) -> None:
    _atomic_write(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def summary_line(summary: Mapping[str, Any]) -> str:
    rate = summary.get("achieved_rate_per_s")
    parts = [
        f"{summary.get('end', 'finished')}:",
        f"{summary.get('applied', 0)} applied,",
        f"{summary.get('failed', 0)} failed,",
        f"{summary.get('skipped', 0)} skipped,",
        f"{summary.get('pending', 0)} pending;",
        f"{summary.get('throttles', 0)} throttles,",
        f"{summary.get('retried', 0)} retries,",
        f"{rate if rate is not None else '-'} rows/s,",
        f"{summary.get('elapsed_s', 0)} s",
    ]
    job_applied, job_failed = summary.get("job_applied"), summary.get("job_failed")
    if job_applied is not None and (job_applied, job_failed) != (
        summary.get("applied"),
        summary.get("failed"),
    ):
        parts.append(f"(job so far: {job_applied} applied, {job_failed} failed)")
    return " ".join(parts)
