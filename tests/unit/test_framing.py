"""Framing's rules for records that cannot be read: a stray quote, a record past the bound, JSON
nested too deeply. Each is one failed record; every other line is still read, and offsets stay
exact so a run resumes after any record. Small bounds stand in for MAX_RECORD_BYTES; an input that
can be read again (a file, an S3 object) is a `Rereadable`, one that cannot (stdin, .gz) is
`pieces` alone."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from functools import partial
from itertools import chain

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkupdate.errors import InputError
from bulkupdate.input.framing import (
    MAX_RECORD_BYTES,
    CsvFraming,
    Record,
    RecordError,
    jsonl_records,
)
from bulkupdate.input.sources import open_stream


def pieces(data: bytes, bound_bytes: int) -> Iterator[bytes]:
    """The lines of `data` as `sources` reads them: pieces of at most the bound plus one byte."""
    return iter(partial(io.BytesIO(data).readline, bound_bytes + 1), b"")


class Rereadable:
    """`data` as a file is read: its lines in pieces as `sources` reads them, and again from any
    byte offset (`reread`). Counts the bytes read."""

    def __init__(self, data: bytes, bound_bytes: int) -> None:
        self.stream = io.BytesIO(data)
        self.piece_bytes = bound_bytes + 1
        self.read_bytes = 0

    def lines(self) -> Iterator[bytes]:
        return iter(self._readline, b"")

    def reread(self, offset: int) -> Iterator[bytes]:
        self.stream.seek(offset)
        return self.lines()

    def _readline(self) -> bytes:
        piece = self.stream.readline(self.piece_bytes)
        self.read_bytes += len(piece)
        return piece


def csv_framing(data: bytes, bound_bytes: int, *, rereadable: bool) -> CsvFraming:
    if not rereadable:
        return CsvFraming(pieces(data, bound_bytes), path="in.csv", bound_bytes=bound_bytes)
    file = Rereadable(data, bound_bytes)
    return CsvFraming(file.lines(), path="in.csv", bound_bytes=bound_bytes, reread=file.reread)


def frame_csv(
    data: bytes, bound_bytes: int, *, start_offset: int = 0, rereadable: bool = False
) -> list[Record]:
    framing = csv_framing(data, bound_bytes, rereadable=rereadable)
    records = framing.records(
        offset=framing.header_bytes, line=framing.header_lines + 1, start_offset=start_offset
    )
    return list(records)


def resume_csv(
    data: bytes, bound_bytes: int, header_bytes: int, after: Record, *, rereadable: bool = False
) -> list[Record]:
    """Reading again from just after `after`, as a plain file is resumed: the header, then a
    seek to its end offset."""
    if rereadable:
        file = Rereadable(data, bound_bytes)
        framing = CsvFraming(
            file.lines(), path="in.csv", bound_bytes=bound_bytes, reread=file.reread
        )
        file.stream.seek(after.end_offset)
        return list(framing.records(offset=after.end_offset, line=after.next_line))
    lines = chain(
        pieces(data[:header_bytes], bound_bytes), pieces(data[after.end_offset :], bound_bytes)
    )
    framing = CsvFraming(lines, path="in.csv", bound_bytes=bound_bytes)
    return list(framing.records(offset=after.end_offset, line=after.next_line))


def frame_jsonl(data: bytes, bound_bytes: int, *, offset: int = 0, line: int = 1) -> list[Record]:
    return list(
        jsonl_records(pieces(data, bound_bytes), offset=offset, line=line, bound_bytes=bound_bytes)
    )


def errors(records: list[Record]) -> list[tuple[int, str]]:
    return [(r.line, r.error.message) for r in records if r.error is not None]


@pytest.fixture
def csv_field_limit() -> Iterator[None]:
    """csv's field limit is process-wide: put back whatever it was."""
    before = csv.field_size_limit()
    yield
    csv.field_size_limit(before)


# --- CSV: unterminated quotes


def test_a_stray_quote_fails_its_own_line_and_every_later_line_is_read_as_its_own_record() -> None:
    rows = [b"c%d,Name %d\n" % (n, n) for n in range(2, 40)]
    rows[9] = b'c11,"Bob\n'  # line 11
    data = b"case_id,name\n" + b"".join(rows)

    records = frame_csv(data, MAX_RECORD_BYTES)

    assert len(records) == len(rows)
    assert errors(records) == [
        (11, "unterminated quote from line 11: no closing quote before the end of input")
    ]
    [bad] = [r for r in records if r.error is not None]
    assert (bad.raw, bad.error and bad.error.column) == (b'c11,"Bob\n', 5)
    assert [r.values["case_id"] for r in records if r.values] == [
        f"c{n}" for n in range(2, 40) if n != 11
    ]
    assert [r.line for r in records] == list(range(2, 40))
    assert b"".join(r.raw for r in records) == data[len(b"case_id,name\n") :]


def test_a_quote_still_open_when_its_record_would_pass_the_bound_fails_its_first_line_only() -> (
    None
):
    # The stray quote would close at c9's quote, 300 bytes on: past the 64-byte bound.
    filler = b"".join(b"c%d,filler\n" % n for n in range(3, 9))
    data = b'case_id,note\nc2,"Bob\n' + filler * 5 + b'c9,"quoted"\nc10,last\n'

    records = frame_csv(data, 64)

    assert errors(records) == [
        (2, "unterminated quote from line 2: no closing quote within 64 bytes")
    ]
    assert records[0].raw == b'c2,"Bob\n'
    assert [r.values for r in records[-2:]] == [
        {"case_id": "c9", "note": "quoted"},
        {"case_id": "c10", "note": "last"},
    ]
    assert len(records) == 1 + 6 * 5 + 2
    assert b"".join(r.raw for r in records) == data[len(b"case_id,note\n") :]


# --- CSV: a quote open at the bound, in an input that can be read again (a file, an S3 object)

ROW_LIKE_CELL = b"".join(b"c%d,urgent\n" % n for n in range(10, 50))  # 40 lines, 440 bytes


def test_a_quote_open_at_the_bound_that_closes_lines_later_makes_the_whole_span_one_record() -> (
    None
):
    data = b'case_id,note\nc1,first\nc2,"' + ROW_LIKE_CELL + b'end"\nc3,after\n'

    records = frame_csv(data, 64, rereadable=True)

    first, span, after = records  # no record made of the cell's lines
    assert (first.values, after.values) == (
        {"case_id": "c1", "note": "first"},
        {"case_id": "c3", "note": "after"},
    )
    whole = b'c2,"' + ROW_LIKE_CELL + b'end"\n'
    assert (span.line, span.values, span.raw) == (3, None, whole[:64])
    assert (span.offset, span.end_offset) == (first.end_offset, first.end_offset + len(whole))
    assert span.error == RecordError(
        f"record larger than 64 bytes ({len(whole)} bytes; only its first 64 are kept): "
        "a quoted field opened on line 3 closes on line 43",
        line=3,
        column=4,
    )
    assert span.next_line == after.line == 44
    assert resume_csv(data, 64, len(b"case_id,note\n"), span, rereadable=True) == [after]


def test_a_quote_open_at_the_bound_never_closing_fails_its_first_line_and_the_rest_is_read() -> (
    None
):
    rows = b"".join(b"c%d,urgent\n" % n for n in range(3, 40))
    data = b'case_id,note\nc2,"Bob\n' + rows

    records = frame_csv(data, 64, rereadable=True)

    assert errors(records) == [
        (2, "unterminated quote from line 2: no closing quote before the end of input")
    ]
    assert (records[0].raw, records[0].error and records[0].error.column) == (b'c2,"Bob\n', 4)
    assert [r.values for r in records[1:]] == [
        {"case_id": f"c{n}", "note": "urgent"} for n in range(3, 40)
    ]
    assert b"".join(r.raw for r in records) == data[len(b"case_id,note\n") :]


def test_a_first_line_alone_past_the_bound_whose_quote_closes_lines_later_is_one_record() -> None:
    data = b'case_id,note\nc1,"' + b"x" * 100 + b"\n" + ROW_LIKE_CELL + b'"\nc2,after\n'

    records = frame_csv(data, 64, rereadable=True)

    span, after = records
    assert span.error is not None
    assert span.error.message.endswith("a quoted field opened on line 2 closes on line 43")
    assert (span.raw, span.end_offset, span.next_line) == (data[13:77], len(data) - 9, 44)
    assert (after.line, after.values) == (44, {"case_id": "c2", "note": "after"})


def test_without_a_way_to_read_again_a_quote_open_at_the_bound_fails_its_first_line_only() -> None:
    # stdin and .gz: the cell's lines after the first are read as rows. The README says so.
    data = b'case_id,note\nc2,"' + ROW_LIKE_CELL + b'end"\nc3,after\n'

    records = frame_csv(data, 64)

    assert errors(records)[0] == (
        2,
        "unterminated quote from line 2: no closing quote within 64 bytes",
    )
    assert records[1].values == {"case_id": "c11", "note": "urgent"}


def test_a_quote_that_never_closes_is_looked_past_to_the_end_of_the_input_once() -> None:
    # Every line closes the quote the line before left open and opens another: each record is
    # an unterminated quote, and each would look to the end again but for the first look.
    data = b'case_id,note\nc1,"a\n' + b'x",y,"z\n' * 300
    file = Rereadable(data, 64)
    framing = CsvFraming(file.lines(), path="in.csv", bound_bytes=64, reread=file.reread)

    records = list(framing.records(offset=framing.header_bytes, line=2))

    assert len(records) == 301
    assert all(r.error is not None and "unterminated" in r.error.message for r in records)
    assert file.read_bytes < 3 * len(data)


def test_a_quoted_multi_line_cell_within_the_bound_is_one_record_whatever_its_lines_look_like() -> (
    None
):
    cell = "".join(f"c{n},looks like a row\n" for n in range(100))
    data = f'case_id,note\nc1,"{cell}"\nc2,after\n'.encode()

    records = frame_csv(data, len(data))

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": cell},
        {"case_id": "c2", "note": "after"},
    ]
    assert records[0].next_line == records[1].line == 103


def test_a_quoted_cell_far_above_csvs_own_128_kib_field_limit_is_one_record() -> None:
    cell = "c9,phantom\n" * 20_000  # 220 KB of lines that look like rows
    data = f'case_id,note\nc1,"{cell}"\nc2,after\n'.encode()

    with open_stream(io.BytesIO(data), name="-", fmt="csv") as source:
        records = list(source)

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": cell},
        {"case_id": "c2", "note": "after"},
    ]


def test_building_a_csv_framing_raises_csvs_field_limit_to_the_bound_and_never_lowers_it(
    csv_field_limit: None,
) -> None:
    csv.field_size_limit(1000)
    CsvFraming(iter([b"a\n"]), path="in.csv")
    assert csv.field_size_limit() == MAX_RECORD_BYTES

    csv.field_size_limit(MAX_RECORD_BYTES * 2)
    CsvFraming(iter([b"a\n"]), path="in.csv")
    assert csv.field_size_limit() == MAX_RECORD_BYTES * 2


def test_a_multi_line_record_with_the_wrong_field_count_says_which_lines_its_quotes_span() -> None:
    data = b'case_id,note\nc1,"a\nb",extra\nc2,ok\n'

    records = frame_csv(data, MAX_RECORD_BYTES)

    assert errors(records) == [
        (2, "expected 2 fields, got 3 (a quoted field spans lines 2-3: check its quotes)")
    ]
    assert records[1].values == {"case_id": "c2", "note": "ok"}


# --- CSV: records past the bound


def test_a_line_past_the_bound_is_one_failed_record_holding_its_first_bound_bytes() -> None:
    long_line = b"c2," + b"x" * 200 + b"\n"
    data = b"case_id,note\nc1,a\n" + long_line + b"c3,b\n"

    records = frame_csv(data, 64)

    assert errors(records) == [
        (3, f"record larger than 64 bytes ({len(long_line)} bytes; only its first 64 are kept)")
    ]
    big = records[1]
    assert big.raw == long_line[:64]
    assert big.end_offset - big.offset == len(long_line)
    assert big.next_line == records[2].line == 4
    assert records[2].values == {"case_id": "c3", "note": "b"}


def test_a_last_line_past_the_bound_without_a_newline_ends_at_the_end_of_the_input() -> None:
    data = b"case_id,note\nc1," + b"y" * 100

    [record] = frame_csv(data, 32)

    assert record.error is not None
    assert (record.offset, record.end_offset, record.raw) == (13, len(data), data[13:45])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'"case_id,' + b"n" * 100 + b"\nmore\n", "header row larger than 64 bytes"),
        (
            b'case_id,"note\n' + b"more\n" * 20,
            "unterminated quote in the header row: no closing quote within 64 bytes",
        ),
    ],
)
def test_a_header_past_the_bound_is_an_input_error_naming_line_1(data: bytes, message: str) -> None:
    with pytest.raises(InputError) as caught:
        CsvFraming(pieces(data, 64), path="in.csv", bound_bytes=64)

    assert (caught.value.line, caught.value.message) == (1, message)


# --- JSONL


def test_a_jsonl_line_past_the_bound_is_one_failed_record_and_the_next_line_is_read() -> None:
    long_line = b'{"case_id": "c1", "note": "' + b"z" * 300 + b'"}\n'
    data = long_line + b'{"case_id": "c2"}\n'

    records = frame_jsonl(data, 100)

    assert errors(records) == [
        (1, f"record larger than 100 bytes ({len(long_line)} bytes; only its first 100 are kept)")
    ]
    assert (records[0].raw, records[0].end_offset) == (long_line[:100], len(long_line))
    assert (records[1].line, records[1].values) == (2, {"case_id": "c2"})


def test_a_jsonl_record_nested_too_deeply_to_read_fails_alone_with_its_line() -> None:
    deep = b'{"case_id": "c1", "note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    data = b'{"case_id": "c0"}\n' + deep + b'{"case_id": "c2"}\n'

    records = frame_jsonl(data, MAX_RECORD_BYTES)

    assert errors(records) == [(2, "invalid JSON: nested too deeply to read")]
    assert records[1].raw == deep
    assert [r.values for r in records[::2]] == [{"case_id": "c0"}, {"case_id": "c2"}]


# --- every record accounted for, and resumable after


MESSY_LINES = st.lists(
    st.sampled_from(
        [
            *(
                b"c1,a\n",
                b'c2,"q\n',
                b'x"y,z\n',
                b'"\n',
                b'",\n',
                b"\n",
                b"c3," + b"w" * 40 + b"\n",
            ),
            # a quote closed and another opened; doubled quotes; a long line opening a quote
            *(b'x",y,"z\n', b'""\n', b'c4,"' + b"v" * 40 + b"\n"),
        ]
    )
    | st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    max_size=30,
).map(b"".join)


@settings(max_examples=300)
@given(
    body=MESSY_LINES, bound_bytes=st.integers(min_value=8, max_value=48), rereadable=st.booleans()
)
def test_every_line_after_the_header_is_in_exactly_one_record_or_blank_and_resume_is_exact(
    body: bytes, bound_bytes: int, rereadable: bool
) -> None:
    header = b"h1,h2\n"
    data = header + body

    records = frame_csv(data, bound_bytes, rereadable=rereadable)

    position = len(header)
    for record in records:
        assert data[position : record.offset].strip(b"\r\n") == b"", "only blank lines between"
        assert record.line == data[: record.offset].count(b"\n") + 1
        assert len(record.raw) <= bound_bytes
        assert data[record.offset : record.end_offset].startswith(record.raw)
        if record.end_offset - record.offset > len(record.raw):  # cut: past the bound
            assert record.error is not None
            assert "larger than" in record.error.message
        assert record.next_line == data[: record.end_offset].count(b"\n") + 1 or (
            record.end_offset == len(data) and not data.endswith(b"\n")
        )
        position = record.end_offset
    assert data[position:].strip(b"\r\n") == b""
    for k, record in enumerate(records):
        resumed = resume_csv(data, bound_bytes, len(header), record, rereadable=rereadable)
        skipped = frame_csv(
            data, bound_bytes, start_offset=record.end_offset, rereadable=rereadable
        )
        assert resumed == skipped == records[k + 1 :]


@settings(max_examples=500)
@given(body=MESSY_LINES, bound_bytes=st.integers(min_value=8, max_value=48))
def test_past_the_bound_an_input_read_again_splits_records_where_csv_reader_does_unbounded(
    body: bytes, bound_bytes: int
) -> None:
    # No row from inside another record's quotes: each record spans the lines it would with no
    # bound (csv.reader's own records, a quote open at the end failing its first line alone),
    # and is that record, or failed as too large.
    data = b"h1,h2\n" + body
    unbounded = frame_csv(data, len(data) + 1)

    records = frame_csv(data, bound_bytes, rereadable=True)

    assert [(r.line, r.offset, r.end_offset) for r in records] == [
        (r.line, r.offset, r.end_offset) for r in unbounded
    ]
    for record, whole in zip(records, unbounded, strict=True):
        if record != whole:
            assert record.values is None
            assert record.error is not None
            assert "larger than" in record.error.message
