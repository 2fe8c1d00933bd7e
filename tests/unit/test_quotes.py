"""QuoteScan ends a record where csv.reader (framing's dialect) ends it, whatever the record's
text and however its lines come in pieces: the rule that keeps a cell's lines from being rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkupdate.input.quotes import QuoteScan


def csv_record_end(data: bytes, delimiter: str) -> int | None:
    """How many lines csv.reader reads for the first record of `data` (one ending in a strict
    error included); None when it meets the end of the input inside quotes."""
    pulled = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        for line in io.BytesIO(data):  # split on b"\n" only, as sources reads
            pulled += 1
            yield line.decode(errors="replace")

    before = csv.field_size_limit()
    csv.field_size_limit(1 << 30)
    try:
        next(csv.reader(lines(), delimiter=delimiter, strict=True))
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            return None
    finally:
        csv.field_size_limit(before)
    return pulled


def scan_record_end(data: bytes, delimiter: str, cuts: list[int]) -> int | None:
    """The same, by QuoteScan fed each line in pieces cut at `cuts` (as a long line comes)."""
    scan = QuoteScan(delimiter, 1)
    for line in io.BytesIO(data):
        starts = sorted({0, *(c % len(line) for c in cuts)})
        for start, end in zip(starts, [*starts[1:], len(line)], strict=True):
            if scan.feed(line[start:end]):
                return scan.lines
    return scan.lines if scan.finish() else None


RECORD_BYTES = st.lists(
    st.sampled_from(
        [b"a", b",", b";", b'"', b'""', b"\n", b"\r", b"\r\n", b"\xc3\xa9", b"\xc3", b"\xff", b" "]
    ),
    min_size=1,
    max_size=40,
).map(b"".join)


@settings(max_examples=2000)
@given(
    data=RECORD_BYTES,
    delimiter=st.sampled_from([",", ";", "é"]),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=3),
)
def test_a_scan_ends_the_first_record_on_the_line_csv_reader_ends_it(
    data: bytes, delimiter: str, cuts: list[int]
) -> None:
    assert scan_record_end(data, delimiter, cuts) == csv_record_end(data, delimiter)


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b'c1,"a\nb\nc"\nc2,x\n', 3),  # closes at the end of line 3
        (b'c1,"a\nb"",""\nc""\n', None),  # doubled quotes are text: never closes
        (b'c1,"a\nb",x,"y\nz"\n', 3),  # closes, opens again, closes
        (b'c1,"a\nb"x\nc2,y\n', 2),  # strict: text after a closing quote ends the record there
        (b'c1,a"b\nc2\n', 1),  # a quote inside an unquoted field is text
        (b'c1,"a\nb"', 2),  # the last line, without a newline
    ],
)
def test_examples_of_where_a_record_ends(data: bytes, end: int | None) -> None:
    assert scan_record_end(data, ",", []) == csv_record_end(data, ",") == end


def test_the_scan_keeps_the_line_and_column_of_the_last_opening_quote() -> None:
    scan = QuoteScan(",", 7)
    for line in [b'c1,"short\n', b'one",x,"caf\xc3\xa9\n', b"long\n"]:
        scan.feed(line)

    assert (scan.quoted, scan.opened, scan.lines, scan.size_bytes) == (True, (8, 8), 3, 29)
