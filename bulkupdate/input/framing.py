"""Framing: split an iterator of byte lines into CSV or JSONL records with exact byte offsets.

Pure over the lines it is given: no opening, seeking or closing files (that is `sources`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bulkupdate.errors import InputError

# (index of the line within its record, that line's bytes, the decode failure)
_BadLine = tuple[int, bytes, UnicodeDecodeError]


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record could not be parsed. `line` is the physical line of the problem."""

    message: str
    line: int
    column: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One input record, or one that failed to parse (then `values` is None and `error` says why).

    `offset`/`end_offset` are byte positions in the uncompressed stream; `raw` is the record's exact
    bytes including its line terminator, so a failures file can reproduce it byte for byte.
    """

    line: int
    offset: int
    end_offset: int
    raw: bytes
    values: dict[str, Any] | None
    error: RecordError | None = None

    @property
    def next_line(self) -> int:
        """The `start_line` that goes with `end_offset` to resume just after this record."""
        return self.line + self.raw.count(b"\n") + (0 if self.raw.endswith(b"\n") else 1)


class CsvFraming:
    """csv.reader fed line by line: it pulls only the lines a record needs, so the bytes of the
    lines it pulled since the last record are exactly that record's bytes.

    Reads and checks the header on construction; `records` then continues from wherever the
    underlying stream is, so the caller may seek between the two.
    """

    __slots__ = ("_bad", "_pending", "_reader", "header", "header_bytes", "header_lines")

    def __init__(self, lines: Iterator[bytes], *, path: str, delimiter: str = ",") -> None:
        self._pending: list[bytes] = []  # bytes of the lines pulled for the current record
        self._bad: list[_BadLine] = []
        self._reader = csv.reader(self._decoded(lines), delimiter=delimiter, strict=True)
        try:
            header = next(self._reader, None)
        except csv.Error as exc:
            raise InputError(path, f"unreadable header row: {exc}", line=1) from None
        if header is None:
            raise InputError(path, "file is empty; expected a header row", line=1)
        if self._bad:
            _, _, decode_error = self._bad[0]
            raise InputError(path, f"header is not valid UTF-8: {decode_error.reason}", line=1)
        _check_header(path, header)
        self.header = tuple(header)
        self.header_bytes = sum(map(len, self._pending))
        self.header_lines: int = self._reader.line_num
        self._pending.clear()

    def records(self, *, offset: int, line: int, start_offset: int = 0) -> Iterator[Record]:
        """Records from the stream's current position, which is byte `offset` and line `line`.

        Records starting before `start_offset` are parsed (to find where they end) but not yielded.
        """
        reader, pending, bad, header = self._reader, self._pending, self._bad, self.header
        width = len(header)
        line_delta = line - 1 - reader.line_num  # physical line minus csv.reader's line count
        consumed = reader.line_num
        position = offset
        while True:
            try:
                for row in reader:
                    line = consumed + 1 + line_delta
                    consumed = reader.line_num
                    raw = pending[0] if len(pending) == 1 else b"".join(pending)
                    pending.clear()
                    offset = position
                    position += len(raw)
                    if not row or offset < start_offset:  # blank line, or before the resume point
                        bad.clear()
                    elif bad:
                        index, line_bytes, exc = bad[0]
                        bad.clear()
                        error = _utf8_error(exc, line_bytes, line + index)
                        yield Record(line, offset, position, raw, None, error)
                    elif len(row) != width:
                        error = RecordError(f"expected {width} fields, got {len(row)}", line)
                        yield Record(line, offset, position, raw, None, error)
                    else:
                        yield Record(
                            line, offset, position, raw, dict(zip(header, row, strict=True))
                        )
                return
            except csv.Error as exc:
                # csv.reader resets on its next call; the rest of the bad line is already consumed.
                error = RecordError(f"malformed CSV: {exc}", reader.line_num + line_delta)
                line = consumed + 1 + line_delta
                consumed = reader.line_num
                raw = b"".join(pending)
                pending.clear()
                bad.clear()
                offset = position
                position += len(raw)
                if raw and offset >= start_offset:
                    yield Record(line, offset, position, raw, None, error)

    def _decoded(self, lines: Iterator[bytes]) -> Iterator[str]:
        pending, bad = self._pending, self._bad
        for raw in lines:
            pending.append(raw)
            yield _decode(raw, len(pending) - 1, bad).removeprefix("\ufeff")  # BOM: first line only
            break
        for raw in lines:  # the hot loop: one append and one decode per physical line
            pending.append(raw)
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                text = _decode(raw, len(pending) - 1, bad)
            yield text


def jsonl_records(
    lines: Iterator[bytes], *, offset: int, line: int, start_offset: int = 0
) -> Iterator[Record]:
    """One JSON object per line, from byte `offset` and line `line`; blank lines are skipped."""
    position = offset
    for raw in lines:
        offset = position
        position += len(raw)
        this_line = line
        line += 1
        if offset < start_offset or raw.isspace():
            continue
        try:
            value = _JSON.decode(raw.decode())
        except UnicodeDecodeError as exc:
            error = _utf8_error(exc, raw, this_line)
        except json.JSONDecodeError as exc:
            error = RecordError(f"invalid JSON: {exc.msg}", this_line, exc.colno)
        except (ValueError, RecursionError) as exc:  # NaN/Infinity, or absurdly deep nesting
            error = RecordError(f"invalid JSON: {exc}", this_line)
        else:
            if type(value) is dict:
                yield Record(this_line, offset, position, raw, value)
                continue
            column = len(raw) - len(raw.lstrip()) + 1
            error = RecordError(
                f"expected a JSON object, got {type(value).__name__}", this_line, column
            )
        yield Record(this_line, offset, position, raw, None, error)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# Python's json accepts NaN and Infinity, which JSON itself forbids: reject them per record.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _check_header(path: str, header: list[str]) -> None:
    if not header:
        raise InputError(path, "missing header row (line 1 is blank)", line=1)
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name.strip():
            raise InputError(path, "empty column name in header", line=1, column=index)
        if name in seen:
            raise InputError(path, "duplicate column name in header", line=1, column=name)
        seen.add(name)


def _decode(raw: bytes, index: int, bad: list[_BadLine]) -> str:
    """Slow path: note the bad line for its record, and give csv.reader text it can still split."""
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        bad.append((index, raw, exc))
        return raw.decode(errors="replace")


def _utf8_error(exc: UnicodeDecodeError, line_bytes: bytes, line: int) -> RecordError:
    column = len(line_bytes[: exc.start].decode(errors="replace")) + 1
    return RecordError(f"invalid UTF-8: {exc.reason}", line, column)
