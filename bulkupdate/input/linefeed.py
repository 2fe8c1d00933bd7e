"""The lines a CSV record is read from: pulled from the stream, or given back to be read again
after an unterminated quote, holding at most a record's bound of them.

Knows no CSV: `framing` says where records end. No opening, seeking or closing files: a stream
read again from an earlier offset is handed in (`restart`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain

# (index of the line within its record, that line's bytes, the decode failure)
BadLine = tuple[int, bytes, UnicodeDecodeError]


class RecordFullError(Exception):
    """Raised through csv.reader by `LineFeed.lines`: `line` would take a record past the bound."""

    def __init__(self, line: bytes) -> None:
        super().__init__()
        self.line = line


class LineFeed:
    """What csv.reader reads (`lines()`): lines given back for re-reading first, then the stream's.

    Keeps the bytes of the lines pulled for the current record in `pending` and refuses a line
    that would take the record past `bound_bytes`, so it holds at most the bound plus that line.
    """

    __slots__ = ("_bound", "_encoding", "_given_back", "_lines", "bad", "ended", "pending")

    def __init__(self, lines: Iterator[bytes], bound_bytes: int, encoding: str = "utf-8") -> None:
        self._lines = lines
        self._bound = bound_bytes
        self._encoding = encoding
        self._given_back: deque[bytes] = deque()
        self.pending: list[bytes] = []  # bytes of the lines pulled for the current record
        self.bad: list[BadLine] = []  # those of them that are not text in the encoding
        self.ended = False  # the last pull found the end of the input

    def lines(self) -> Iterator[str]:
        """The lines as text, until the input ends (then `ended`) or a line is refused
        (`RecordFullError`): then the caller takes the record and reads on from a new `lines()`."""
        pending, bound, encoding = self.pending, self._bound, self._encoding
        size = sum(map(len, pending))
        for raw in chain(self._next_given_back(), self._lines):
            size = (size if pending else 0) + len(raw)  # pending is emptied between records
            if size > bound:
                raise RecordFullError(raw)
            pending.append(raw)
            try:  # the hot loop: one append and one decode per physical line
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                self.bad.append((len(pending) - 1, raw, exc))
                text = raw.decode(encoding, errors="replace")  # csv.reader can still split it
            yield text
        self.ended = True

    def take(self) -> bytes:
        """The pulled lines' bytes, as one record; the next record starts empty."""
        pending = self.pending
        raw = pending[0] if len(pending) == 1 else b"".join(pending)
        self.clear()
        return raw

    def take_first(self, refused: bytes | None = None) -> bytes:
        """Only the first pulled line, as a record: its other lines (and the line refused, if
        any) are given back, to be read again from the start of the next record."""
        first, rest = self.pending[0], self.pending[1:]
        if refused is not None:
            rest.append(refused)
        self._given_back.extendleft(reversed(rest))
        self.clear()
        return first

    def pieces(self) -> Iterator[bytes]:
        """The lines not pulled yet (given back first, then the stream's), as bytes and not kept:
        for reading past a record that no longer fits. Left unfinished, it leaves the rest."""
        return chain(self._next_given_back(), self._lines)  # chain: never closes the stream's

    def restart(self, lines: Iterator[bytes]) -> None:
        """Read on from `lines` (the stream read again from some offset), dropping what was
        given back: it is read again from the stream."""
        self._lines = lines
        self._given_back.clear()

    def skip_line(self, head: bytes) -> int:
        """The length of a line refused on its own (`head` is its start): the rest of it is read
        past, not kept."""
        return skip_line(head, self._next_piece)

    def clear(self) -> None:
        self.pending.clear()  # in place: `lines()` holds it
        self.bad.clear()
        self.ended = False

    def _next_given_back(self) -> Iterator[bytes]:
        while self._given_back:  # popped one at a time: lines not read yet stay given back
            yield self._given_back.popleft()

    def _next_piece(self) -> bytes:
        return self._given_back.popleft() if self._given_back else next(self._lines, b"")


def skip_line(head: bytes, next_piece: Callable[[], bytes]) -> int:
    """The length in bytes of a line that starts with `head`. A line longer than the bound may come
    in pieces (see `sources`): a piece that does not end the line is followed by the next one, or
    by b"" at the end of the input."""
    size = len(head)
    while not head.endswith(b"\n"):
        head = next_piece()
        if not head:
            break
        size += len(head)
    return size
