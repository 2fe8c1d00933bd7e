"""Input sources: open CSV/JSONL files, `.gz` or stdin and resume them at a byte offset.

Synchronous and bounded in memory: never reads a whole file, nor a whole line longer than a
record may be. No asyncio, no network, no schema.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Iterator
from functools import partial
from types import TracebackType
from typing import Literal, Protocol

from bulkupdate.errors import ConfigError, InputError
from bulkupdate.input.framing import (
    MAX_RECORD_BYTES,
    CsvFraming,
    Record,
    RecordError,
    jsonl_records,
)
from bulkupdate.input.text import text_problem

__all__ = ["ByteStream", "Format", "Record", "RecordError", "Source", "open_source", "open_stream"]

Format = Literal["csv", "jsonl"]

_FORMAT_NAMES: dict[str, Format] = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
_BOM = b"\xef\xbb\xbf"
# Failures of the byte stream itself (truncated or corrupt gzip, I/O errors) end the whole file.
_READ_ERRORS = (OSError, EOFError, zlib.error)
# Lines are read at most this long, so a line with no end in sight never fills memory: a longer
# line comes in pieces, each but the last this long and not ending in b"\n" (framing's contract).
_PIECE_BYTES = MAX_RECORD_BYTES + 1


class ByteStream(Protocol):
    """What a Source reads: a binary file, `gzip.GzipFile`, `sys.stdin.buffer` or `io.BytesIO`."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class Source:
    """An open input: a context manager, iterable once, yielding `Record`s in file order.

    Header problems raise `InputError` when the source is opened; row problems become error records.
    `seekable` sources resume by seeking, and read a CSV record past the bound on to where it ends
    (`CsvFraming`); others re-read and skip. `size_bytes` (plain files only) is the denominator for
    progress against `Record.end_offset`.
    """

    __slots__ = (
        "_owns_stream",
        "_records",
        "_stream",
        "encoding",
        "fmt",
        "header",
        "path",
        "seekable",
        "size_bytes",
    )

    def __init__(
        self,
        stream: ByteStream,
        *,
        path: str,
        fmt: Format,
        delimiter: str = ",",
        encoding: str = "utf-8",
        seekable: bool = False,
        owns_stream: bool = False,
        start_offset: int = 0,
        start_line: int = 1,
        size_bytes: int | None = None,
    ) -> None:
        self.path = path
        self.fmt: Format = fmt
        self.encoding = encoding  # the text's; offsets stay byte offsets of the stream
        self.seekable = seekable
        self.header: tuple[str, ...] | None = None
        self._stream = stream
        self._owns_stream = owns_stream
        try:  # whatever goes wrong while opening, do not leak the file
            if start_offset < 0 or start_line < 1:
                raise ValueError(f"bad resume point: offset {start_offset}, line {start_line}")
            if fmt == "csv" and (len(delimiter) != 1 or delimiter in '"\r\n'):
                message = f"must be one character, not a quote or newline: {delimiter!r}"
                raise ConfigError("delimiter", message)
            if size_bytes is None and seekable:
                size_bytes = os.fstat(stream.fileno()).st_size
            self.size_bytes = size_bytes
            if fmt == "csv":
                self._records = self._open_csv(delimiter, start_offset, start_line)
            else:
                self._records = self._open_jsonl(start_offset, start_line)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_stream:
            self._stream.close()

    def _open_csv(self, delimiter: str, start_offset: int, start_line: int) -> Iterator[Record]:
        # A file or S3 object can be read again: a record past the bound is then read past.
        reread = self._lines_from if self.seekable else None
        framing = CsvFraming(
            self._lines(),
            path=self.path,
            delimiter=delimiter,
            encoding=self.encoding,
            reread=reread,
        )
        self.header = framing.header
        if self.seekable and start_offset > framing.header_bytes:
            self._seek(start_offset)
            return framing.records(offset=start_offset, line=start_line)
        # Not seekable (or nothing to skip): read on, skipping records that start before the offset.
        line = framing.header_lines + 1
        return framing.records(offset=framing.header_bytes, line=line, start_offset=start_offset)

    def _open_jsonl(self, start_offset: int, start_line: int) -> Iterator[Record]:
        encoding = self.encoding
        if self.seekable and start_offset > 0:
            self._seek(start_offset)
            return jsonl_records(
                self._lines(), offset=start_offset, line=start_line, encoding=encoding
            )
        lines = self._lines()
        first = next(lines, b"")
        problem = text_problem(first, encoding)
        if problem is not None:
            raise InputError(self.path, problem)
        # The BOM belongs to no record: the first record starts just after it.
        offset = len(_BOM) if first.startswith(_BOM) else 0
        if first[offset:]:  # a file holding only a BOM has no first record
            lines = _prepend(first[offset:], lines)
        return jsonl_records(
            lines, offset=offset, line=1, start_offset=start_offset, encoding=encoding
        )

    def _seek(self, offset: int) -> None:
        assert self.size_bytes is not None
        if offset > self.size_bytes:
            message = (
                f"resume offset {offset} is past the end of the file ({self.size_bytes} bytes)"
            )
            raise InputError(self.path, message)
        self._stream.seek(offset - 1)
        # A checkpoint from another (or an edited) file would otherwise resume mid-line silently.
        if self._stream.read(1) != b"\n" and offset != self.size_bytes:
            raise InputError(self.path, f"resume offset {offset} is not at the start of a line")
        self._stream.seek(offset)

    def _lines_from(self, offset: int) -> Iterator[bytes]:
        """The lines again from byte `offset` (seekable sources: offsets are the stream's own)."""
        self._stream.seek(offset)
        return self._lines()

    def _lines(self) -> Iterator[bytes]:
        # Binary readline splits on b"\n" only, so "\r\n" stays in the line and in the byte count.
        readline = self._stream.readline
        try:
            yield from iter(partial(readline, _PIECE_BYTES), b"")
        except _READ_ERRORS as exc:
            raise InputError(self.path, f"cannot read input: {exc}") from exc


def open_source(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    start_offset: int = 0,
    start_line: int = 1,
) -> Source:
    """Open a file (`.gz` decompressed transparently) or `-` for stdin (then `fmt` is required).

    `fmt` ("csv", "jsonl" or "ndjson") overrides the file name's suffix; `encoding` is the
    text's (a codec that keeps ASCII bytes as they are; UTF-8 takes a BOM). To resume, pass an
    `end_offset` reported earlier as `start_offset` and that record's `next_line` as `start_line`:
    plain files seek there; gzip and stdin re-read and skip records before it, counting lines.
    Offsets are byte offsets of the (uncompressed) file, whatever its encoding.
    """
    name = os.fspath(path)
    if name == "-":
        if fmt is None:
            raise ConfigError("format", "required when reading stdin")
        stdin = sys.stdin.buffer
        return open_stream(
            stdin,
            name=name,
            fmt=fmt,
            delimiter=delimiter,
            encoding=encoding,
            start_offset=start_offset,
        )
    compressed = name.lower().endswith(".gz")
    suffix = os.path.splitext(name[:-3] if compressed else name)[1]
    resolved = _format(fmt or suffix.removeprefix("."), name)
    try:
        stream = gzip.open(name, "rb") if compressed else open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(name, f"cannot open: {exc.strerror or exc}") from None
    return Source(
        stream,
        path=name,
        fmt=resolved,
        delimiter=delimiter,
        encoding=encoding,
        seekable=not compressed,
        owns_stream=True,
        start_offset=start_offset,
        start_line=start_line,
    )


def open_stream(
    stream: ByteStream,
    *,
    name: str,
    fmt: str,
    delimiter: str = ",",
    encoding: str = "utf-8",
    start_offset: int = 0,
) -> Source:
    """Read an already-open binary stream (stdin, a pipe, a test's BytesIO) without seeking it.

    Records before `start_offset` are parsed and skipped, so line numbers stay right. The caller
    keeps ownership: closing the Source does not close `stream`.
    """
    return Source(
        stream,
        path=name,
        fmt=_format(fmt, name),
        delimiter=delimiter,
        encoding=encoding,
        start_offset=start_offset,
    )


def _format(fmt: str, path: str) -> Format:
    try:
        return _FORMAT_NAMES[fmt.lower()]
    except KeyError:
        message = f"unknown format {fmt!r} for {path}; name it .csv, .jsonl or .ndjson, or set it"
        raise ConfigError("format", message) from None


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
