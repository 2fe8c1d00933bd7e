"""The failures file: every failed row of the job, rebuilt from the checkpoint in the input's
format with its error code and message, so it can be fixed and fed back as input.

Writes the file atomically, page by page; decides nothing about the run.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

import anyio

from bulkupdate.fields.rows import CSV_ERROR_COLUMNS, JSON_ERROR_MEMBER
from bulkupdate.models import Outcome
from bulkupdate.report.atomic import finish, open_text, temporary_path

ERROR_CODE_COLUMN = "error_code"
ERROR_MESSAGE_COLUMN = "error_message"


PAGE_ROWS = 500  # failed rows formatted per write: memory stays flat on huge failure counts


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
    temporary = temporary_path(path)
    handle = await anyio.to_thread.run_sync(open_text, temporary)
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
        await anyio.to_thread.run_sync(finish, handle, temporary, path)
    finally:
        handle.close()


async def _aiter(items: AsyncIterable[Outcome] | Iterable[Outcome]) -> AsyncIterator[Outcome]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
