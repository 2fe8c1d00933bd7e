"""What a run leaves for people: the failures file (rebuilt from the checkpoint, in the input's
format, re-usable as input), the JSON summary and the one-line summary.

Owns writing those files (atomically); decides nothing about the run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from bulkupdate.models import Outcome
from bulkupdate.rows import CSV_ERROR_COLUMNS, JSON_ERROR_MEMBER

ERROR_CODE_COLUMN = "error_code"
ERROR_MESSAGE_COLUMN = "error_message"


PAGE_ROWS = 500  # failed rows formatted per write: memory stays flat on huge failure counts


def _temporary(path: str) -> Path:
    target = Path(path)
    return target.with_name(f".{target.name}.tmp")


def _open_text(path: Path) -> TextIO:
    # surrogateescape: bytes that were not UTF-8 in the input go back out unchanged.
    return path.open("w", encoding="utf-8", errors="surrogateescape", newline="")


def _finish(handle: TextIO, temporary: Path, path: str) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    temporary.replace(path)


def _atomic_write(path: str, text: str) -> None:
    temporary = _temporary(path)
    handle = _open_text(temporary)
    handle.write(text)
    _finish(handle, temporary, path)


def _csv_lines(rows: Iterable[Sequence[str]], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


def failures_csv_header(header: Sequence[str], delimiter: str = ",") -> str:
    kept = [c for c in header if c not in CSV_ERROR_COLUMNS]
    return _csv_lines([[*kept, ERROR_CODE_COLUMN, ERROR_MESSAGE_COLUMN]], delimiter)


def failures_csv_rows(
    header: Sequence[str], failed: Iterable[Outcome], delimiter: str = ","
) -> str:
    """The original cells (minus earlier error columns) plus error_code and error_message."""
    kept = [c for c in header if c not in CSV_ERROR_COLUMNS]
    rows = []
    for outcome in failed:
        text = (outcome.raw or b"").decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
        parsed = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
        if len(parsed) == len(header):
            values = dict(zip(header, parsed, strict=True))
            cells = [values[c] for c in kept]
        else:  # a ragged row stays ragged, cells intact, so fed back it fails again
            cells = parsed
        rows.append([*cells, outcome.error_code or "", outcome.error_message or ""])
    return _csv_lines(rows, delimiter)


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


async def write_failures(
    path: str,
    fmt: str,
    failed: AsyncIterable[Outcome] | Iterable[Outcome],
    *,
    header: Sequence[str] | None,
    delimiter: str = ",",
) -> None:
    """Write the failures file page by page to a temporary file, then rename it into place."""
    temporary = _temporary(path)
    handle = await anyio.to_thread.run_sync(_open_text, temporary)
    try:

        def render(page: list[Outcome]) -> str:
            if fmt == "csv":
                return failures_csv_rows(header or (), page, delimiter)
            return failures_jsonl(page)

        if fmt == "csv":
            await anyio.to_thread.run_sync(
                handle.write, failures_csv_header(header or (), delimiter)
            )
        page: list[Outcome] = []
        async for outcome in _aiter(failed):
            page.append(outcome)
            if len(page) >= PAGE_ROWS:
                await anyio.to_thread.run_sync(handle.write, render(page))
                page = []
        await anyio.to_thread.run_sync(handle.write, render(page))
        await anyio.to_thread.run_sync(_finish, handle, temporary, path)
    finally:
        handle.close()


async def _aiter(items: AsyncIterable[Outcome] | Iterable[Outcome]) -> AsyncIterator[Outcome]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


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
    if summary.get("other_shards"):
        parts.append(f"({summary['other_shards']} rows left to other shards)")
    lines = [" ".join(parts)]
    if summary.get("abort"):
        lines.append(f"  stopped by {summary['abort']}")
        if summary.get("fix"):
            lines.append(f"  to fix: {summary['fix']}; then run the same command to resume")
    for key, label in (("failures_file", "failures"), ("checkpoint", "checkpoint")):
        if summary.get(key):
            lines.append(f"  {label}: {summary[key]}")
    if summary.get("summary_file"):
        lines.append(f"  summary: {summary['summary_file']}")
    return "\n".join(lines)
