"""Framing: split an iterator of byte lines into CSV or JSONL records with exact byte offsets. A
record holds at most MAX_RECORD_BYTES; one that cannot be read is one error record, never more.

Pure over the lines it is given: no opening, seeking or closing files (that is `sources`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bulkupdate.errors import InputError
from bulkupdate.input.linefeed import LineFeed, RecordFullError, skip_line
from bulkupdate.input.text import check_csv_text, undecodable

# UpdateCase takes at most 220 fields of at most 4,100 characters: at 4 UTF-8 bytes a character
# that is 3.4 MiB, plus quoting and the case id. No record a run could send is larger. A quoted
# CSV field still open when its record reaches this bound is an unterminated quote.
MAX_RECORD_BYTES = 4 << 20


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
    bytes including its line terminator, so a failures file can reproduce it byte for byte. Only a
    record larger than MAX_RECORD_BYTES has a shorter `raw`: its first MAX_RECORD_BYTES bytes.
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

    A record is at most `bound_bytes`. A quoted field still open when the next line would take its
    record past the bound, or at the end of the input, is an unterminated quote: the record is its
    first line only, failed, and reading goes on from the line after it. A first line alone past
    the bound is a failed record of that line.

    Reads and checks the header on construction; `records` then continues from wherever the
    underlying stream is, so the caller may seek between the two.
    """

    __slots__ = (
        "_bound",
        "_delimiter",
        "_encoding",
        "_feed",
        "_reader",
        "header",
        "header_bytes",
        "header_lines",
    )

    def __init__(
        self,
        lines: Iterator[bytes],
        *,
        path: str,
        delimiter: str = ",",
        encoding: str = "utf-8",
        bound_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        # Process-wide: raised to the bound (a field never exceeds its record), never lowered.
        if csv.field_size_limit() < MAX_RECORD_BYTES:
            csv.field_size_limit(MAX_RECORD_BYTES)
        self._bound, self._delimiter, self._encoding = bound_bytes, delimiter, encoding
        self._feed = feed = LineFeed(lines, bound_bytes, encoding)
        try:
            lines_read = _without_bom(feed.lines())
            header = next(csv.reader(lines_read, delimiter=delimiter, strict=True), None)
        except csv.Error as exc:
            check_csv_text(path, feed.pending[:1], encoding, parsed=False)
            raise InputError(path, f"unreadable header row: {exc}", line=1) from None
        except RecordFullError as full:
            check_csv_text(path, feed.pending[:1] or [full.line], encoding, parsed=False)
            bound = _bound_text(bound_bytes)
            message = f"header row larger than {bound}"
            if feed.pending:  # csv.reader asked for another line: a quote still open
                message = f"unterminated quote in the header row: no closing quote within {bound}"
            raise InputError(path, message, line=1) from None
        if header is None:
            raise InputError(path, "file is empty; expected a header row", line=1)
        check_csv_text(path, feed.pending[:1], encoding, parsed=True)
        if feed.bad:
            index, line_bytes, decode_error = feed.bad[0]
            message, column = undecodable(decode_error, line_bytes, encoding)
            raise InputError(path, f"header row: {message}", line=1 + index, column=column)
        _check_header(path, header)
        self.header = tuple(header)
        self.header_bytes = sum(map(len, feed.pending))
        self.header_lines = len(feed.pending)
        feed.clear()
        self._reader = self._read_on()

    def records(self, *, offset: int, line: int, start_offset: int = 0) -> Iterator[Record]:
        """Records from the stream's current position, which is byte `offset` and line `line`.

        Records starting before `start_offset` are parsed (to find where they end) but not yielded.
        """
        header, pending, bad = self.header, self._feed.pending, self._feed.bad
        width = len(header)
        position = offset
        while True:
            try:
                for row in self._reader:  # the hot loop: lists cleared in place, no calls
                    count = len(pending)
                    raw = pending[0] if count == 1 else b"".join(pending)
                    pending.clear()
                    offset, position = position, position + len(raw)
                    if not row or offset < start_offset:  # blank line, or before the resume point
                        bad.clear()
                    elif bad:
                        index, line_bytes, exc = bad[0]
                        bad.clear()
                        error = _decode_error(exc, line_bytes, line + index, self._encoding)
                        yield Record(line, offset, position, raw, None, error)
                    elif len(row) != width:
                        error = _ragged(width, len(row), line, count)
                        yield Record(line, offset, position, raw, None, error)
                    else:
                        yield Record(
                            line, offset, position, raw, dict(zip(header, row, strict=True))
                        )
                    line += count
                return
            except RecordFullError as full:
                record: Record | None = self._refused(full.line, line, position)
            except csv.Error as exc:
                record = self._malformed(exc, line, position)
            if record is None:
                continue
            position, line = record.end_offset, record.next_line
            if record.offset >= start_offset:
                yield record

    def _read_on(self) -> Iterator[list[str]]:
        """A csv.reader over the feed's lines from where it stands (one refusing a line ends)."""
        return csv.reader(self._feed.lines(), delimiter=self._delimiter, strict=True)

    def _refused(self, refused: bytes, line: int, offset: int) -> Record:
        """The feed refused a line: the record would pass the bound."""
        feed, bound = self._feed, self._bound
        if not feed.pending:  # its first line alone is past the bound
            size = feed.skip_line(refused)
            feed.clear()
            self._reader = self._read_on()
            return Record(
                line, offset, offset + size, refused[:bound], None, _too_large(line, size, bound)
            )
        raw = feed.take_first(refused)
        self._reader = self._read_on()
        return self._unterminated(
            raw, line, offset, f"no closing quote within {_bound_text(bound)}"
        )

    def _malformed(self, exc: csv.Error, line: int, offset: int) -> Record | None:
        feed = self._feed
        if not feed.pending:
            return None
        if feed.ended:  # csv.reader's "unexpected end of data": a quoted field still open
            raw = feed.take_first()
            self._reader = self._read_on()
            return self._unterminated(raw, line, offset, "no closing quote before the end of input")
        # csv.reader resets on its next call; the rest of the bad line is already consumed.
        error = RecordError(f"malformed CSV: {exc}", line + len(feed.pending) - 1)
        raw = feed.take()
        return Record(line, offset, offset + len(raw), raw, None, error)

    def _unterminated(self, raw: bytes, line: int, offset: int, why: str) -> Record:
        text = raw.decode(self._encoding, errors="replace")
        column = _open_quote_column(text, self._delimiter)
        error = RecordError(f"unterminated quote from line {line}: {why}", line, column)
        return Record(line, offset, offset + len(raw), raw, None, error)


def jsonl_records(
    lines: Iterable[bytes],
    *,
    offset: int,
    line: int,
    start_offset: int = 0,
    encoding: str = "utf-8",
    bound_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Record]:
    """One JSON object per line, from byte `offset` and line `line`; blank lines are skipped. A
    line longer than `bound_bytes` is a failed record holding its first `bound_bytes`."""
    position = offset
    pieces = iter(lines)
    for raw in pieces:
        offset = position
        size = len(raw)
        if size > bound_bytes:
            size = skip_line(raw, lambda: next(pieces, b""))
        position += size
        this_line = line
        line += 1
        if offset < start_offset or raw.isspace():
            continue
        if size > bound_bytes:
            error = _too_large(this_line, size, bound_bytes)
            yield Record(this_line, offset, position, raw[:bound_bytes], None, error)
            continue
        try:
            value = _JSON.decode(raw.decode(encoding))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            error = _json_error(exc, raw, this_line, encoding)
        else:
            if type(value) is dict:
                yield Record(this_line, offset, position, raw, value)
                continue
            column = len(raw) - len(raw.lstrip()) + 1
            error = RecordError(
                f"expected a JSON object, got {type(value).__name__}", this_line, column
            )
        yield Record(this_line, offset, position, raw, None, error)


def _json_error(exc: Exception, raw: bytes, line: int, encoding: str) -> RecordError:
    if isinstance(exc, UnicodeDecodeError):
        return _decode_error(exc, raw, line, encoding)
    if isinstance(exc, json.JSONDecodeError):
        return RecordError(f"invalid JSON: {exc.msg}", line, exc.colno)
    if isinstance(exc, RecursionError):  # thousands of nested [ or {
        return RecordError("invalid JSON: nested too deeply to read", line)
    return RecordError(f"invalid JSON: {exc}", line)  # NaN or Infinity


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


def _bound_text(size_bytes: int) -> str:
    """4194304 -> "4 MiB", for messages."""
    return f"{size_bytes >> 20} MiB" if size_bytes % (1 << 20) == 0 else f"{size_bytes} bytes"


def _too_large(line: int, size_bytes: int, bound_bytes: int) -> RecordError:
    message = f"record larger than {_bound_text(bound_bytes)} ({size_bytes} bytes; "
    return RecordError(message + f"only its first {bound_bytes} are kept)", line)


def _ragged(width: int, got: int, line: int, lines: int) -> RecordError:
    message = f"expected {width} fields, got {got}"
    if lines > 1:  # a quote that closed lines later: say so, the cause is rarely on that line
        message += f" (a quoted field spans lines {line}-{line + lines - 1}: check its quotes)"
    return RecordError(message, line)


def _open_quote_column(text: str, delimiter: str) -> int | None:
    """The 1-based column of the quote that opens the field still open at the end of `text`, read
    as csv.reader does (a doubled quote inside quotes is one quote)."""
    opened, quoted, start = None, False, True
    position, end = 0, len(text)
    while position < end:
        char = text[position]
        position += 1
        if quoted:
            if char == '"':
                if position < end and text[position] == '"':
                    position += 1  # an escaped quote
                else:
                    quoted, start = False, False
        elif char == delimiter:
            start = True
        elif char == '"' and start:
            quoted, opened = True, position
        else:
            start = False
    return opened if quoted else None


def _without_bom(lines: Iterator[str]) -> Iterator[str]:
    for text in lines:
        yield text.removeprefix("\ufeff")  # the BOM: first line only
        break
    yield from lines


def _decode_error(
    exc: UnicodeDecodeError, line_bytes: bytes, line: int, encoding: str
) -> RecordError:
    message, column = undecodable(exc, line_bytes, encoding)
    return RecordError(message, line, column)
