"""The failures file: every failed row of the job, rebuilt from the checkpoint in the input's
format and encoding with its error code and message, so it can be fixed and fed back as input.

Writes the file atomically, page by page, whatever bytes a row holds; decides nothing about the
run.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

import anyio

from bulkupdate.fields.rows import CSV_ERROR_COLUMNS, JSON_ERROR_MEMBER
from bulkupdate.input.framing import MAX_RECORD_BYTES
from bulkupdate.models import Outcome
from bulkupdate.report.atomic import discard, finish, open_text, temporary_path

UTF8 = "utf-8"
ERROR_CODE_COLUMN = "error_code"
ERROR_MESSAGE_COLUMN = "error_message"


PAGE_ROWS = 500  # failed rows formatted per write: memory stays flat on huge failure counts
# A row's bytes copied at most: no record read today is longer (framing cuts one that is), but a
# checkpoint written before that bound may hold longer ones.
MAX_ROW_BYTES = MAX_RECORD_BYTES


def _csv_lines(rows: Iterable[Sequence[str]], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


def failures_csv_header(header: Sequence[str], delimiter: str = ",") -> str:
    kept = [c for c in header if c not in CSV_ERROR_COLUMNS]
    return _csv_lines([[*kept, ERROR_CODE_COLUMN, ERROR_MESSAGE_COLUMN]], delimiter)


def failures_csv_rows(
    header: Sequence[str], failed: Iterable[Outcome], delimiter: str = ",", encoding: str = UTF8
) -> str:
    """The original cells (minus earlier error columns) plus error_code and error_message."""
    kept = [c for c in header if c not in CSV_ERROR_COLUMNS]
    rows = []
    for outcome in failed:
        text, message = _copyable(outcome, encoding)
        text = text.lstrip("\ufeff")
        try:
            parsed = next(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True), [])
        except csv.Error:  # unreadable (a stray quote, say): its text whole, in one cell
            parsed = [text]
        if len(parsed) == len(header):
            values = dict(zip(header, parsed, strict=True))
            cells = [values[c] for c in kept]
        else:  # a ragged row stays ragged, cells intact, so fed back it fails again
            cells = parsed
        rows.append([*cells, outcome.error_code or "", message or ""])
    return _csv_lines(rows, delimiter)


def failures_jsonl(failed: Iterable[Outcome], encoding: str = UTF8) -> str:
    """Each original object with an `error` member ({"code", "message"})."""
    lines = []
    for outcome in failed:
        raw, message = _copyable(outcome, encoding)
        text = raw.rstrip("\r\n").lstrip("\ufeff")
        error = {"code": outcome.error_code, "message": message}
        try:
            original: Any = json.loads(text)
            if isinstance(original, dict):
                original[JSON_ERROR_MEMBER] = error
                lines.append(json.dumps(original, ensure_ascii=False))
                continue
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to read or write
            pass
        # unreadable record: keep its text so nothing is lost
        lines.append(json.dumps({"raw": text, JSON_ERROR_MEMBER: error}, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def _copyable(outcome: Outcome, encoding: str) -> tuple[str, str | None]:
    """The row's text in the input's encoding (bytes that are not text in it kept by
    surrogateescape) and its error message, which says so when the text was cut to
    MAX_ROW_BYTES and holds only what the encoding can write (the rest as \\uXXXX)."""
    raw, message = outcome.raw or b"", outcome.error_message
    if len(raw) > MAX_ROW_BYTES:
        message = (message or "") + (
            f" [the failures file kept the first {MAX_ROW_BYTES} of this row's {len(raw)} bytes]"
        )
        raw = raw[:MAX_ROW_BYTES]
    if message is not None and encoding != UTF8:  # a field name or the service's own words
        message = message.encode(encoding, "backslashreplace").decode(encoding)
    return raw.decode(encoding, errors="surrogateescape"), message


async def write_failures(
    path: str,
    fmt: str,
    failed: AsyncIterable[Outcome] | Iterable[Outcome],
    *,
    header: Sequence[str] | None,
    delimiter: str = ",",
    encoding: str = UTF8,
) -> None:
    """Write the failures file page by page to a temporary file, then rename it into place;
    in the input's `encoding`, so that it can be fed back as it is."""
    temporary = temporary_path(path)
    handle = await anyio.to_thread.run_sync(open_text, temporary, encoding)
    try:

        def render(page: list[Outcome]) -> str:
            if fmt == "csv":
                return failures_csv_rows(header or (), page, delimiter, encoding)
            return failures_jsonl(page, encoding)

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
    except BaseException:
        discard(handle, temporary)  # a full disk leaves no half-written temporary behind
        raise


async def _aiter(items: AsyncIterable[Outcome] | Iterable[Outcome]) -> AsyncIterator[Outcome]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
