"""Where a CSV record ends, read as csv.reader reads it with framing's dialect (one delimiter, `"`
quotes doubled inside quotes, strict), keeping only the quote state: constant memory however long
the record. Used past the bound, where the record's text can no longer be kept.

Fed the record's lines; no reading, seeking or decoding of values.
"""

from __future__ import annotations

import codecs
import re

# csv.reader's states (Modules/_csv.c) that a record passes through; BROKEN is its strict error,
# after which the reader drops the rest of the line and starts the next record on the next one.
_START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED, _EAT_CRNL, _BROKEN = range(6)


class QuoteScan:
    """One record's lines fed from its first: says when csv.reader would end the record (a line
    end outside quotes, or the end of a line with a strict error) and where its last quoted field
    opened. Lines come as `sources` reads them: bytes, a long line in pieces (only a piece ending
    in b"\\n" ends its line), text that is not UTF-8 read with U+FFFD as csv.reader gets it.
    """

    __slots__ = (
        "_decoder",
        "_delimiter",
        "_field_end",
        "_first_line",
        "_mid_line",
        "_state",
        "column",
        "ended",
        "lines",
        "opened",
        "size_bytes",
    )

    def __init__(self, delimiter: str, line: int) -> None:
        self._delimiter = delimiter
        self._field_end = re.compile(f"[{re.escape(delimiter)}\r\n]")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._first_line = line
        self._mid_line = False  # the last piece did not end its line
        self._state = _START_FIELD
        self.column = 0  # characters read of the current line
        self.lines = 0  # lines read to their end
        self.size_bytes = 0
        self.ended = False
        self.opened: tuple[int, int] | None = None  # (line, column) of the last opening quote

    @property
    def quoted(self) -> bool:
        """Inside a quoted field: at a line end, the record goes on to the next line."""
        return self._state == _IN_QUOTED

    @property
    def at_line_end(self) -> bool:
        """The last piece fed ended its line (or none was fed)."""
        return not self._mid_line

    def feed(self, piece: bytes) -> bool:
        """Read a line, or a piece of a long one; True once the record has ended (then feed no
        more: the record's last line was this piece's)."""
        self.size_bytes += len(piece)
        self._read(self._decoder.decode(piece))
        self._mid_line = not piece.endswith(b"\n")
        if not self._mid_line:
            self._end_line()
        return self.ended

    def finish(self) -> bool:
        """The input ended after the last piece fed: True if that ended the record (its last line
        had no newline), False if a quote is still open (csv.reader's "unexpected end of data")."""
        self._read(self._decoder.decode(b"", final=True))
        if self._mid_line:
            self._end_line()
        return self.ended

    def _end_line(self) -> None:
        self.lines += 1
        self.column = 0
        self.ended = self._state != _IN_QUOTED

    def _read(self, text: str) -> None:
        """csv.reader's transitions over `text`, jumping from one character that matters to the
        next (a quote inside quotes; a delimiter or line break outside) so long cells cost little.
        """
        state, delimiter, position, end = self._state, self._delimiter, 0, len(text)
        while position < end:
            if state == _IN_QUOTED:
                found = text.find('"', position)
                if found < 0:
                    break
                position, state = found + 1, _QUOTE_IN_QUOTED
                continue
            if state == _IN_FIELD:  # a quote inside an unquoted field is text
                match = self._field_end.search(text, position)
                if match is None:
                    break
                position = match.end()
                state = _START_FIELD if match.group() == delimiter else _EAT_CRNL
                continue
            if state == _BROKEN:  # csv.reader drops the rest of the line
                break
            char = text[position]
            position += 1
            if state == _START_FIELD:
                if char == '"':
                    state = _IN_QUOTED
                    self.opened = (self._first_line + self.lines, self.column + position)
                elif char in "\r\n":
                    state = _EAT_CRNL
                elif char != delimiter:
                    state = _IN_FIELD
            elif state == _QUOTE_IN_QUOTED:
                if char == '"':  # a doubled quote: one quote of the text
                    state = _IN_QUOTED
                elif char == delimiter:
                    state = _START_FIELD
                elif char in "\r\n":
                    state = _EAT_CRNL
                else:  # strict: "',' expected after '"'"
                    state = _BROKEN
            elif char not in "\r\n":  # _EAT_CRNL: "new-line character seen in unquoted field"
                state = _BROKEN
        self._state = state
        self.column += end
