"""Framing: split an iterator of byte lines into CSV or JSONL records with exact byte offsets. A
record holds at most MAX_RECORD_BYTES; one that cannot be read is one error record, never more.

Pure over the lines it is given: no opening, seeking or closing files (that is `sources`, which
hands in `reread` for an input that can be read again from an offset).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from bulkupdate.errors import InputError
from bulkupdate.input.linefeed import LineFeed, RecordFullError, skip_line
from bulkupdate.input.quotes import QuoteScan
from bulkupdate.input.text import check_csv_text, undecodable

# UpdateCase takes at most 220 fields of at most 4,100 characters: at 4 UTF-8 bytes a character
# that is 3.4 MiB, plus quoting and the case id. No record a run could send is larger. A quoted
# CSV field still open when its record reaches this bound is read past (see CsvFraming).
MAX_RECORD_BYTES = 4 << 20

# The input's lines again from a byte offset: what `sources` gives for a plain file or S3 object.
Reread = Callable[[int], Iterator[bytes]]


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
    record larger than MAX_RECORD_BYTES has a shorter `raw`: its first MAX_RECORD_BYTES bytes (one
    of several lines is then a `SpanRecord`).
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


@dataclass(frozen=True, slots=True)
class SpanRecord(Record):
    """A failed record of several lines whose `raw` was cut to the bound, so cannot count them.
    (A subclass, not a field of Record: every record built would pay for it.)"""

    lines: int = 0

    @property
    def next_line(self) -> int:
        return self.line + self.lines


class CsvFraming:
    """csv.reader fed line by line: it pulls only the lines a record needs, so the bytes of the
    lines it pulled since the last record are exactly that record's bytes.

    A record is at most `bound_bytes`. One that would pass it is failed, and where it ends depends
    on whether the input can be read again (`reread`: a plain file, an S3 object):
    - it can: csv.reader's quote rules are followed past the bound without keeping the text
      (`QuoteScan`), so the record ends where csv.reader would end it; a quote that closes lines
      later makes the whole span one failed record, cut to the bound. Only a quote that never
      closes is an unterminated quote: the line that opened it fails alone, and reading goes on
      from the line after it (read again from `reread`).
    - it cannot (stdin, .gz): a quoted field still open at the bound is an unterminated quote as
      above, so a quoted cell larger than the bound is read as rows from its second line on; a
      first line alone past the bound is a failed record of that line.
    A quoted field still open at the end of the input is an unterminated quote either way.

    Reads and checks the header on construction; `records` then continues from wherever the
    underlying stream is, so the caller may seek between the two.
    """

    __slots__ = (
        "_bound",
        "_delimiter",
        "_encoding",
        "_feed",
        "_reader",
        "_reread",
        "_unclosed_from",
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
        reread: Reread | None = None,
    ) -> None:
        # Process-wide: raised to the bound (a field never exceeds its record), never lowered.
        if csv.field_size_limit() < MAX_RECORD_BYTES:
            csv.field_size_limit(MAX_RECORD_BYTES)
        self._bound, self._delimiter, self._reread = bound_bytes, delimiter, reread
        self._encoding = encoding
        # The first line end inside quotes of a look past the bound that found no closing quote.
        # That look was inside quotes at every later line end too, and what csv.reader does from
        # inside quotes at a line end depends only on the text after it, not on where its record
        # began: so from any line end inside quotes at or past this one, no quote closes either.
        # A look stops there, and so reads to the end of the input at most once.
        self._unclosed_from: int | None = None
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
        if self._reread is not None:
            return self._read_past(refused, line, offset, self._reread)
        feed, bound = self._feed, self._bound
        if not feed.pending:  # its first line alone is past the bound
            size = feed.skip_line(refused)
            feed.clear()
            self._reader = self._read_on()
            return Record(
                line, offset, offset + size, refused[:bound], None, _too_large(line, size, bound)
            )
        return self._give_back(
            refused, line, offset, f"no closing quote within {_bound_text(bound)}"
        )

    def _read_past(self, refused: bytes, line: int, offset: int, reread: Reread) -> Record:
        """The record would pass the bound, and the input can be read again: read on to where
        csv.reader ends the record, keeping only its quote state. One failed record up to there,
        cut to the bound; but if a quote never closes, the line it started on fails alone."""
        feed, bound, unclosed = self._feed, self._bound, self._unclosed_from
        head = b"".join(feed.pending)
        if head and unclosed is not None and offset + len(head) >= unclosed:
            # csv.reader asked for another line: inside quotes at a line end past `_unclosed_from`.
            return self._give_back(
                refused, line, offset, "no closing quote before the end of input"
            )
        raw = head + refused[: bound - len(head)]
        scan = QuoteScan(self._delimiter, line)
        for piece in feed.pending:
            scan.feed(piece)
        opened, open_from, at_end = self._scan_on(scan, chain((refused,), feed.pieces()), offset)
        if scan.ended and opened is not None:  # a quote that closes lines later
            feed.clear()
            self._reader = self._read_on()
            error = _quote_spans(scan.size_bytes, bound, opened, line + scan.lines - 1)
            return SpanRecord(line, offset, offset + scan.size_bytes, raw, None, error, scan.lines)
        if not scan.ended and open_from is not None:  # no quote closes from there: remember it
            self._unclosed_from = open_from if unclosed is None else min(open_from, unclosed)
        # Reading goes on after the first line: from the pending lines after it (given back) and
        # the stream where it stood, or, when that line alone is past the bound, after its end.
        stood = offset + len(head) + len(refused)
        first_end = offset + scan.size_bytes if open_from is None else open_from
        resume = stood if head else first_end
        if at_end or max(stood, offset + scan.size_bytes) != resume:  # the look read on
            feed.restart(reread(resume))
        if head:
            return self._give_back(
                refused, line, offset, "no closing quote before the end of input"
            )
        feed.clear()
        self._reader = self._read_on()
        error = _too_large(line, resume - offset, bound)
        return Record(line, offset, resume, raw, None, error)

    def _scan_on(
        self, scan: QuoteScan, pieces: Iterator[bytes], offset: int
    ) -> tuple[tuple[int, int] | None, int | None, bool]:
        """Feed `scan` until its record ends or the input does. Returns the quote open at the
        first line end inside quotes, and that line end's offset (None, None if there was none),
        and whether the input ended. Stops early at a line end inside quotes past one from which
        no quote closes."""
        unclosed, opened, open_from = self._unclosed_from, None, None
        while True:
            if scan.quoted and scan.at_line_end:  # the record goes on to the next line
                boundary = offset + scan.size_bytes
                if open_from is None:
                    opened, open_from = scan.opened, boundary
                if unclosed is not None and boundary >= unclosed:
                    return opened, open_from, False
            piece = next(pieces, b"")
            if not piece:
                scan.finish()
                return opened, open_from, True
            if scan.feed(piece):
                return opened, open_from, False

    def _give_back(self, refused: bytes, line: int, offset: int, why: str) -> Record:
        """An unterminated quote: its first line fails alone, the other lines pulled for its record
        (and the one refused) are read again."""
        raw = self._feed.take_first(refused)
        self._reader = self._read_on()
        return self._unterminated(raw, line, offset, why)

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
        scan = QuoteScan(self._delimiter, line)
        scan.feed(raw)
        column = scan.opened[1] if scan.quoted and scan.opened else None
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
    return RecordError(_too_large_text(size_bytes, bound_bytes), line)


def _too_large_text(size_bytes: int, bound_bytes: int) -> str:
    message = f"record larger than {_bound_text(bound_bytes)} ({size_bytes} bytes; "
    return message + f"only its first {bound_bytes} are kept)"


def _quote_spans(
    size_bytes: int, bound_bytes: int, opened: tuple[int, int], last_line: int
) -> RecordError:
    """A record past the bound whose quoted field closes lines later: the line and column of the
    quote that was open at the bound."""
    open_line, column = opened
    spans = f"a quoted field opened on line {open_line} closes on line {last_line}"
    return RecordError(f"{_too_large_text(size_bytes, bound_bytes)}: {spans}", open_line, column)


def _ragged(width: int, got: int, line: int, lines: int) -> RecordError:
    message = f"expected {width} fields, got {got}"
    if lines > 1:  # a quote that closed lines later: say so, the cause is rarely on that line
        message += f" (a quoted field spans lines {line}-{line + lines - 1}: check its quotes)"
    return RecordError(message, line)


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
