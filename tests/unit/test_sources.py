from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from itertools import islice, pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bulkupdate.aws.s3 import ObjectInfo, open_object
from bulkupdate.errors import ConfigError, InputError
from bulkupdate.input.framing import MAX_RECORD_BYTES
from bulkupdate.input.sources import Record, RecordError, Source, open_source, open_stream
from tests.unit.test_s3_reader import FakeS3


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.lower().endswith(".gz") else data)
    return path


def read_all(
    path: Path, *, delimiter: str = ",", start_offset: int = 0, start_line: int = 1
) -> list[Record]:
    with open_source(
        path, delimiter=delimiter, start_offset=start_offset, start_line=start_line
    ) as source:
        return list(source)


# --- CSV

QUOTED = (
    b"case_id,note,priority\n"
    b'c1,"hello, world",1\n'
    b'c2,"she said ""hi""",2\n'
    b'c3,"two\nlines",3\n'
    b"c4,plain,4\n"
)


def test_quoted_fields_keep_embedded_commas_quotes_and_newlines(tmp_path: Path) -> None:
    records = read_all(write(tmp_path, "in.csv", QUOTED))

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": "hello, world", "priority": "1"},
        {"case_id": "c2", "note": 'she said "hi"', "priority": "2"},
        {"case_id": "c3", "note": "two\nlines", "priority": "3"},
        {"case_id": "c4", "note": "plain", "priority": "4"},
    ]
    assert [r.line for r in records] == [2, 3, 4, 6]
    assert records[2].raw == b'c3,"two\nlines",3\n'
    assert records[2].next_line == 6


def test_offsets_and_raw_bytes_tile_the_file_after_the_header(tmp_path: Path) -> None:
    records = read_all(write(tmp_path, "in.csv", QUOTED))

    assert records[0].offset == len(b"case_id,note,priority\n")
    assert all(a.end_offset == b.offset for a, b in pairwise(records))
    assert records[-1].end_offset == len(QUOTED)
    assert b"".join(r.raw for r in records) == QUOTED[records[0].offset :]
    assert all(r.error is None for r in records)


def test_a_utf8_bom_is_not_part_of_the_first_column_name_but_counts_in_offsets(
    tmp_path: Path,
) -> None:
    data = b"\xef\xbb\xbf" + b'"case_id",name\nc1,J\xc3\xbcrgen\n'
    path = write(tmp_path, "in.csv", data)

    with open_source(path) as source:
        assert source.header == ("case_id", "name")
        [record] = list(source)

    assert record.values == {"case_id": "c1", "name": "Jürgen"}
    assert record.offset == len(b'\xef\xbb\xbf"case_id",name\n')


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_custom_delimiter_splits_fields_and_leaves_commas_alone(
    tmp_path: Path, delimiter: str
) -> None:
    d = delimiter.encode()
    path = write(tmp_path, "in.csv", b"case_id" + d + b"note\nc1" + d + b"a, b\n")

    [record] = read_all(path, delimiter=delimiter)

    assert record.values == {"case_id": "c1", "note": "a, b"}


def test_a_delimiter_that_is_not_one_plain_character_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"a\n1\n")

    with pytest.raises(ConfigError) as caught:
        open_source(path, delimiter=";;")

    assert caught.value.key == "delimiter"


def test_crlf_line_endings_stay_out_of_values_but_inside_offsets_and_raw(tmp_path: Path) -> None:
    data = b'case_id,note\r\nc1,"x\r\ny"\r\nc2,z\r\n'
    records = read_all(write(tmp_path, "in.csv", data))

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": "x\r\ny"},
        {"case_id": "c2", "note": "z"},
    ]
    assert [r.raw for r in records] == [b'c1,"x\r\ny"\r\n', b"c2,z\r\n"]
    assert [r.line for r in records] == [2, 4]
    assert records[-1].end_offset == len(data)


def test_a_final_line_without_a_newline_is_still_a_record(tmp_path: Path) -> None:
    data = b"case_id,note\nc1,a\nc2,b"
    records = read_all(write(tmp_path, "in.csv", data))

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": "a"},
        {"case_id": "c2", "note": "b"},
    ]
    assert records[-1].end_offset == len(data)
    assert records[-1].next_line == 4


def test_blank_lines_between_csv_rows_are_skipped_without_losing_line_numbers(
    tmp_path: Path,
) -> None:
    records = read_all(write(tmp_path, "in.csv", b"case_id\nc1\n\n\r\nc2\n"))

    assert [(r.line, r.values) for r in records] == [(2, {"case_id": "c1"}), (5, {"case_id": "c2"})]
    assert records[1].offset == len(b"case_id\nc1\n\n\r\n")


def test_a_ragged_csv_row_fails_alone_and_the_rest_of_the_file_goes_on(tmp_path: Path) -> None:
    data = b"case_id,note\nc1,a\nc2,b,extra\nc3\nc4,d\n"
    records = read_all(write(tmp_path, "in.csv", data))

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": "a"},
        None,
        None,
        {"case_id": "c4", "note": "d"},
    ]
    assert records[1].error == RecordError("expected 2 fields, got 3", line=3)
    assert records[2].error == RecordError("expected 2 fields, got 1", line=4)
    assert records[1].raw == b"c2,b,extra\n"


def test_a_malformed_quote_fails_alone_and_parsing_resumes_on_the_next_line(
    tmp_path: Path,
) -> None:
    data = b'case_id,note\nc1,"a"b\nc2,ok\n'
    records = read_all(write(tmp_path, "in.csv", data))

    assert records[0].values is None
    assert records[0].error is not None
    assert records[0].error.line == 2
    assert records[0].raw == b'c1,"a"b\n'
    assert records[1].values == {"case_id": "c2", "note": "ok"}
    assert records[1].offset == records[0].end_offset


def test_an_unterminated_quote_fails_its_first_line_alone_and_the_next_lines_are_read_again(
    tmp_path: Path,
) -> None:
    data = b'case_id,note\nc1,ok\nc2,"never\nclosed\nc3,also\n'
    records = read_all(write(tmp_path, "in.csv", data))

    assert [r.values for r in records] == [
        {"case_id": "c1", "note": "ok"},
        None,
        None,
        {"case_id": "c3", "note": "also"},
    ]
    why = "unterminated quote from line 3: no closing quote before the end of input"
    assert records[1].error == RecordError(why, line=3, column=4)
    assert (records[1].line, records[1].raw) == (3, b'c2,"never\n')
    assert records[2].error == RecordError("expected 2 fields, got 1", line=4)
    assert [r.line for r in records] == [2, 3, 4, 5]
    assert b"".join(r.raw for r in records) == data[records[0].offset :]


# A quoted cell over 4 MiB (lines 3 to 40003) of lines that look like rows.
CELL_LINES = 40_000
BIG_CELL = b"c9,phantom " + b"x" * 100 + b"\n"
BIG_CELL_CSV = b'case_id,note\nc1,first\nc2,"' + BIG_CELL * CELL_LINES + b'end"\nc3,after\n'


def open_big_cell(
    tmp_path: Path, kind: str, *, start_offset: int = 0, start_line: int = 1
) -> Source:
    if kind == "s3":
        info = ObjectInfo("s3://b/in.csv", len(BIG_CELL_CSV), "etag-1", None)
        stream = open_object(FakeS3(BIG_CELL_CSV), info)  # type: ignore[arg-type]
        return Source(
            stream,
            path=info.url,
            fmt="csv",
            seekable=True,
            owns_stream=True,
            start_offset=start_offset,
            start_line=start_line,
            size_bytes=info.size_bytes,
        )
    if kind == "stdin":
        return open_stream(io.BytesIO(BIG_CELL_CSV), name="-", fmt="csv", start_offset=start_offset)
    path = write(tmp_path, kind, BIG_CELL_CSV)
    return open_source(path, start_offset=start_offset, start_line=start_line)


@pytest.mark.parametrize("kind", ["in.csv", "s3"])
def test_a_quoted_cell_over_4_mib_in_a_file_or_s3_object_is_one_failed_record_and_no_rows(
    tmp_path: Path, kind: str
) -> None:
    with open_big_cell(tmp_path, kind) as source:
        first, cell, after = list(source)

    whole = b'c2,"' + BIG_CELL * CELL_LINES + b'end"\n'
    assert (first.values, after.values) == (
        {"case_id": "c1", "note": "first"},
        {"case_id": "c3", "note": "after"},
    )
    assert cell.error == RecordError(
        f"record larger than 4 MiB ({len(whole)} bytes; only its first {MAX_RECORD_BYTES} are "
        f"kept): a quoted field opened on line 3 closes on line {CELL_LINES + 3}",
        line=3,
        column=4,
    )
    assert (cell.values, cell.raw) == (None, whole[:MAX_RECORD_BYTES])
    assert (cell.offset, cell.end_offset) == (first.end_offset, after.offset)
    assert cell.next_line == after.line == CELL_LINES + 4
    with open_big_cell(
        tmp_path, kind, start_offset=cell.end_offset, start_line=cell.next_line
    ) as resumed:
        assert list(resumed) == [after]


@pytest.mark.parametrize("kind", ["in.csv.gz", "stdin"])
def test_a_quoted_cell_over_4_mib_on_stdin_or_gz_fails_its_first_line_and_the_rest_is_read_as_rows(
    tmp_path: Path, kind: str
) -> None:
    # Neither can be read again: the README says to give such inputs as plain files.
    with open_big_cell(tmp_path, kind) as source:
        records = list(source)

    assert records[1].error == RecordError(
        "unterminated quote from line 3: no closing quote within 4 MiB", line=3, column=4
    )
    phantom = {"case_id": "c9", "note": "phantom " + "x" * 100}
    assert [r.values for r in records[2:-2]] == [phantom] * (CELL_LINES - 1)
    assert records[-1].values == {"case_id": "c3", "note": "after"}


def test_undecodable_utf8_in_a_csv_row_fails_alone_with_its_line_and_column(
    tmp_path: Path,
) -> None:
    data = b'case_id,note\nc1,"multi\nl\xffine"\nc2,ok\n'
    records = read_all(write(tmp_path, "in.csv", data))

    assert records[0].values is None
    assert records[0].line == 2
    assert records[0].error is not None
    assert (records[0].error.line, records[0].error.column) == (3, 2)
    assert records[0].raw == b'c1,"multi\nl\xffine"\n'
    assert records[1].values == {"case_id": "c2", "note": "ok"}


class PieceCounter(io.BytesIO):
    """A stream that notes the longest line piece it handed out."""

    longest = 0

    def readline(self, size: int | None = -1, /) -> bytes:
        piece = super().readline(size)
        self.longest = max(self.longest, len(piece))
        return piece


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_line_longer_than_the_bound_is_read_in_pieces_and_fails_alone_holding_its_head(
    fmt: str,
) -> None:
    header, after = (b"case_id,note\n", b"c2,ok\n") if fmt == "csv" else (b"", b'{"c": 2}\n')
    long_line = b"c1," + b"x" * (2 * MAX_RECORD_BYTES) + b"\n"
    stream = PieceCounter(header + long_line + after)

    with open_stream(stream, name="-", fmt=fmt) as source:
        big, good = list(source)

    assert stream.longest <= MAX_RECORD_BYTES + 1, "a line is never held whole"
    assert big.error is not None
    assert big.error.message.startswith("record larger than 4 MiB")
    assert big.raw == long_line[:MAX_RECORD_BYTES]
    assert (big.offset, big.end_offset) == (len(header), len(header) + len(long_line))
    assert good.error is None
    assert good.line == big.next_line == len(header.splitlines()) + 2


# --- header problems


@pytest.mark.parametrize(
    ("data", "message", "column"),
    [
        (b"", "file is empty", None),
        (b"\ncase_id\nc1\n", "missing header row", None),
        (b"case_id,note,case_id\n", "duplicate column name", "case_id"),
        (b"case_id,,note\n", "empty column name", 2),
        (b"case_id, \n", "empty column name", 2),
        (b"case\xff_id\n", "invalid UTF-8: invalid start byte (byte 0xff)", 5),
        (b"case_id,Priorit\xe9\n", "pass its encoding, e.g. --encoding cp1252", 16),
        (b'{"case_id": "c1", "vip": true}\n', "for JSONL input pass --format jsonl", None),
    ],
)
def test_header_problems_raise_an_input_error_naming_the_file_and_line(
    tmp_path: Path, data: bytes, message: str, column: int | str | None
) -> None:
    path = write(tmp_path, "in.csv", data)

    with pytest.raises(InputError) as caught:
        open_source(path)

    assert caught.value.path == str(path)
    assert caught.value.line == 1
    assert caught.value.column == column
    assert message in caught.value.message


def test_a_header_only_file_has_no_records(tmp_path: Path) -> None:
    with open_source(write(tmp_path, "in.csv", b"case_id,note\n")) as source:
        assert source.header == ("case_id", "note")
        assert list(source) == []


# --- JSONL


def test_jsonl_yields_flat_and_nested_objects_and_skips_blank_lines(tmp_path: Path) -> None:
    data = b'{"case_id": "c1", "n": 1}\n\n  \r\n{"case_id": "c2", "fields": {"a": [1, null]}}\r\n'
    path = write(tmp_path, "in.jsonl", data)

    with open_source(path) as source:
        assert source.header is None
        assert source.fmt == "jsonl"
        records = list(source)

    assert [r.values for r in records] == [
        {"case_id": "c1", "n": 1},
        {"case_id": "c2", "fields": {"a": [1, None]}},
    ]
    assert [r.line for r in records] == [1, 4]
    assert records[1].offset == len(b'{"case_id": "c1", "n": 1}\n\n  \r\n')
    assert records[1].end_offset == len(data)


def test_a_bad_json_line_fails_alone_with_its_line_and_column(tmp_path: Path) -> None:
    data = b'{"case_id": "c1"}\n{"case_id": c2}\n{"case_id": "c3"}\n'
    records = read_all(write(tmp_path, "in.ndjson", data))

    assert [r.values for r in records] == [{"case_id": "c1"}, None, {"case_id": "c3"}]
    assert records[1].error == RecordError("invalid JSON: Expecting value", line=2, column=13)
    assert records[1].raw == b'{"case_id": c2}\n'


@pytest.mark.parametrize(
    ("line", "message", "column"),
    [
        (b"[1, 2]\n", "expected a JSON object, got list", 1),
        (b'  "text"\n', "expected a JSON object, got str", 3),
        (b'{"n": NaN}\n', "invalid JSON: NaN is not allowed", None),
        (
            b'{"note": "caf\xe9"}\n',
            "invalid UTF-8: invalid continuation byte (byte 0xe9); if the file is not UTF-8, "
            "pass its encoding, e.g. --encoding cp1252",
            14,
        ),
        (b'{"a": 1} {"b": 2}\n', "invalid JSON: Extra data", 10),
    ],
)
def test_jsonl_lines_that_are_not_one_object_fail_alone(
    tmp_path: Path, line: bytes, message: str, column: int | None
) -> None:
    records = read_all(write(tmp_path, "in.jsonl", line + b'{"ok": true}\n'))

    assert records[0].error == RecordError(message, line=1, column=column)
    assert records[1].values == {"ok": True}


def test_a_jsonl_bom_is_skipped_and_the_first_record_starts_after_it(tmp_path: Path) -> None:
    [record] = read_all(write(tmp_path, "in.jsonl", b'\xef\xbb\xbf{"a": 1}\n'))

    assert (record.values, record.offset, record.raw) == ({"a": 1}, 3, b'{"a": 1}\n')


def test_a_jsonl_file_holding_only_a_bom_has_no_records(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "in.jsonl", b"\xef\xbb\xbf")) == []


# --- formats, compression, stdin


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("in.csv", "csv"),
        ("in.CSV.GZ", "csv"),
        ("in.jsonl.gz", "jsonl"),
        ("in.ndjson", "jsonl"),
        ("dir.v2/in.ndjson", "jsonl"),
    ],
)
def test_the_format_comes_from_the_file_name(tmp_path: Path, name: str, fmt: str) -> None:
    data = b"a\n1\n" if fmt == "csv" else b'{"a": "1"}\n'
    (tmp_path / "dir.v2").mkdir()

    with open_source(write(tmp_path, name, data)) as source:
        assert source.fmt == fmt
        assert [r.values for r in source] == [{"a": "1"}]


def test_an_explicit_format_overrides_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", b'{"a": 1}\n')

    with open_source(path, fmt="ndjson") as source:
        assert [r.values for r in source] == [{"a": 1}]


def test_an_unknown_suffix_without_a_format_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_source(write(tmp_path, "export.txt", b"a\n"))

    assert caught.value.key == "format"


def test_a_missing_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        open_source(tmp_path / "absent.csv")

    assert caught.value.path == str(tmp_path / "absent.csv")


def test_gzip_input_reads_like_the_plain_file_with_uncompressed_offsets(tmp_path: Path) -> None:
    plain = read_all(write(tmp_path, "in.csv", QUOTED))

    with open_source(write(tmp_path, "in.csv.gz", QUOTED)) as source:
        assert (source.seekable, source.size_bytes) == (False, None)
        assert list(source) == plain


def test_a_truncated_gzip_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(QUOTED * 100)[:-20])

    with pytest.raises(InputError) as caught, open_source(path) as source:
        list(source)

    assert "cannot read input" in caught.value.message


def test_a_plain_file_is_seekable_and_reports_its_size(tmp_path: Path) -> None:
    with open_source(write(tmp_path, "in.csv", QUOTED)) as source:
        assert (source.seekable, source.size_bytes) == (True, len(QUOTED))


def test_stdin_is_read_as_binary_when_the_path_is_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"case_id,note\r\nc1,caf\xc3\xa9\r\n"), encoding="latin-1")
    monkeypatch.setattr(sys, "stdin", stdin)

    with open_source("-", fmt="csv") as source:
        assert (source.path, source.seekable, source.size_bytes) == ("-", False, None)
        assert [r.values for r in source] == [{"case_id": "c1", "note": "café"}]

    assert not stdin.closed


def test_stdin_without_a_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        open_source("-")


def test_an_open_stream_is_read_lazily_and_left_open() -> None:
    class EndlessCsv:
        """A stream far larger than memory: only streaming reads can finish."""

        def __init__(self) -> None:
            self.closed = False
            self.lines = 0

        def readline(self, size: int = -1, /) -> bytes:
            self.lines += 1
            return b"case_id\n" if self.lines == 1 else b"c%d\n" % (self.lines - 1)

        def read(self, size: int = -1, /) -> bytes:
            raise AssertionError("not expected")

        def seek(self, offset: int, whence: int = 0, /) -> int:
            raise AssertionError("streams are never seeked")

        def fileno(self) -> int:
            raise AssertionError("not expected")

        def close(self) -> None:
            self.closed = True

    stream = EndlessCsv()
    with open_stream(stream, name="<endless>", fmt="csv") as source:
        first = list(islice(source, 3))

    assert [r.values for r in first] == [{"case_id": "c1"}, {"case_id": "c2"}, {"case_id": "c3"}]
    assert not stream.closed


def test_closing_a_source_closes_the_file_it_opened(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "in.csv", QUOTED))
    with source:
        next(iter(source))

    with pytest.raises(ValueError, match="closed file"):
        next(iter(source))


# --- resume


def test_resuming_a_plain_file_seeks_without_reparsing_earlier_rows(tmp_path: Path) -> None:
    # A row that would be an error if parsed: seeking past it proves it is never read.
    data = b'case_id\nc1\n"broken\nc2\n'
    path = write(tmp_path, "in.csv", data)
    resume_at = len(b'case_id\nc1\n"broken\n')

    [record] = read_all(path, start_offset=resume_at, start_line=4)

    assert (record.line, record.offset, record.values) == (4, resume_at, {"case_id": "c2"})


def test_resuming_at_the_end_of_the_file_yields_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b"case_id\nc1")

    assert read_all(path, start_offset=len(b"case_id\nc1"), start_line=3) == []


@pytest.mark.parametrize(("offset", "message"), [(9, "not at the start of a line"), (99, "past")])
def test_a_resume_offset_that_is_not_a_line_boundary_is_an_input_error(
    tmp_path: Path, offset: int, message: str
) -> None:
    path = write(tmp_path, "in.csv", b"case_id\nc1\nc2\n")

    with pytest.raises(InputError, match=message):
        open_source(path, start_offset=offset, start_line=3)


@pytest.mark.parametrize("name", ["in.jsonl", "in.jsonl.gz"])
def test_jsonl_resumes_from_every_record_boundary(tmp_path: Path, name: str) -> None:
    data = b'{"a": 1}\n\n{"a": 2}\nnot json\n{"a": 3}'
    path = write(tmp_path, name, data)
    records = read_all(path)

    for k, record in enumerate(records):
        resumed = read_all(path, start_offset=record.end_offset, start_line=record.next_line)
        assert resumed == records[k + 1 :]


CELL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
CSV_TABLES = st.integers(min_value=1, max_value=4).flatmap(
    lambda width: st.tuples(
        st.just([f"col{i}" for i in range(width)]),
        st.lists(st.lists(CELL, min_size=width, max_size=width), max_size=12),
    )
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=CSV_TABLES, terminator=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_resuming_from_every_record_boundary_yields_exactly_the_remaining_records(
    tmp_path: Path, table: tuple[list[str], list[list[str]]], terminator: str, bom: bool
) -> None:
    header, rows = table
    # csv.writer quotes a lone "\r" only when it is part of the line terminator; unquoted, no
    # reader could tell it from a line end, so such files are not valid input.
    assume(terminator == "\r\n" or not any("\r" in cell for row in rows for cell in row))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode()
    path = write(tmp_path, "table.csv", data)

    records = read_all(path)

    assert [r.values for r in records] == [dict(zip(header, row, strict=True)) for row in rows]
    if records:
        assert b"".join(r.raw for r in records) == data[records[0].offset :]
    assert all(a.next_line == b.line for a, b in pairwise(records))
    for k, record in enumerate(records):
        seeked = read_all(path, start_offset=record.end_offset, start_line=record.next_line)
        stream = open_stream(io.BytesIO(data), name="-", fmt="csv", start_offset=record.end_offset)
        assert seeked == records[k + 1 :]
        assert list(stream) == records[k + 1 :]


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    objects=st.lists(
        st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=6))),
        max_size=8,
    ),
    ascii_only=st.booleans(),
)
def test_jsonl_round_trips_objects_with_offsets_that_tile_the_file(
    tmp_path: Path, objects: list[dict[str, object]], ascii_only: bool
) -> None:
    data = b"".join(json.dumps(o, ensure_ascii=ascii_only).encode() + b"\n" for o in objects)
    path = write(tmp_path, "objects.jsonl", data)

    records = read_all(path)

    assert [r.values for r in records] == objects
    assert [r.line for r in records] == list(range(1, len(objects) + 1))
    assert b"".join(r.raw for r in records) == data


MESSY_BYTES = st.lists(
    st.sampled_from([b"a", b",", b'"', b"\n", b"\r", b"\r\n", b"\xff", b"\xc3\xa9", b" ", b"{}"]),
    max_size=40,
).map(b"".join)


@settings(max_examples=200)
@given(body=st.one_of(MESSY_BYTES, st.binary(max_size=100)), fmt=st.sampled_from(["csv", "jsonl"]))
def test_arbitrary_bytes_after_the_header_become_records_or_error_records_never_exceptions(
    body: bytes, fmt: str
) -> None:
    # JSONL has no header; its first line is checked like one (binary input stops whole).
    data = (b"h1,h2\n" if fmt == "csv" else b'{"h": 1}\n') + body
    with open_stream(io.BytesIO(data), name="fuzz", fmt=fmt) as source:
        records = list(source)

    for record in records:
        assert data[record.offset : record.end_offset] == record.raw
        assert (record.values is None) == (record.error is not None)
    for k, record in enumerate(records):
        resumed = open_stream(
            io.BytesIO(data), name="fuzz", fmt=fmt, start_offset=record.end_offset
        )
        assert list(resumed) == records[k + 1 :]


# --- text encodings


CP1252_CSV = "case_id,notes\nc1,café crème\nc2,naïve — “quoted”\nc3,plain\n".encode("cp1252")
CP1252_JSONL = '{"case_id": "c1", "notes": "café"}\n{"case_id": "c2", "notes": "€ 5"}\n'.encode(
    "cp1252"
)


@pytest.mark.parametrize("name", ["in.csv", "in.csv.gz"])
def test_a_csv_in_another_encoding_reads_as_text_and_resumes_at_byte_offsets(
    tmp_path: Path, name: str
) -> None:
    path = write(tmp_path, name, CP1252_CSV)

    with open_source(path, encoding="cp1252") as source:
        records = list(source)
    with open_source(
        path,
        encoding="cp1252",
        start_offset=records[0].end_offset,
        start_line=records[0].next_line,
    ) as resumed:
        rest = list(resumed)

    assert [r.values["notes"] for r in records if r.values] == [
        "café crème",
        "naïve — “quoted”",
        "plain",
    ]
    assert b"".join(r.raw for r in records) == CP1252_CSV[CP1252_CSV.index(b"\n") + 1 :]
    assert [CP1252_CSV.index(r.raw) for r in records] == [r.offset for r in records]
    assert rest == records[1:]


def test_a_jsonl_stream_in_another_encoding_reads_as_text_with_byte_offsets() -> None:
    with open_stream(io.BytesIO(CP1252_JSONL), name="-", fmt="jsonl", encoding="cp1252") as source:
        records = list(source)
    with open_stream(
        io.BytesIO(CP1252_JSONL),
        name="-",
        fmt="jsonl",
        encoding="cp1252",
        start_offset=records[0].end_offset,
    ) as resumed:
        rest = list(resumed)

    assert [r.values for r in records] == [
        {"case_id": "c1", "notes": "café"},
        {"case_id": "c2", "notes": "€ 5"},
    ]
    assert records[1].offset == CP1252_JSONL.index(b"\n") + 1
    assert rest == records[1:]


def test_a_line_that_is_not_text_in_the_encoding_fails_alone_naming_the_encoding() -> None:
    data = b"case_id,notes\nc1,\x81\nc2,ok\n"  # 0x81 is no cp1252 character

    with open_stream(io.BytesIO(data), name="-", fmt="csv", encoding="cp1252") as source:
        bad, good = list(source)

    assert bad.error == RecordError(
        "invalid cp1252: character maps to <undefined> (byte 0x81); check --encoding",
        line=2,
        column=4,
    )
    assert good.values == {"case_id": "c2", "notes": "ok"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\n\x00", "utf-8", "is not a text file"),
        (b"PK\x03\x04\x14\x00\x06\x00", "utf-8", "is not a text file"),
        ("case_id\n".encode("utf-16"), "utf-8", "save it as UTF-8"),
        (b"\xef\xbb\xbfcase_id\n", "cp1252", "so it is UTF-8, not cp1252: leave out --encoding"),
    ],
)
def test_an_input_that_is_not_text_in_its_encoding_is_refused_whole_in_plain_words(
    data: bytes, encoding: str, message: str, fmt: str
) -> None:
    with pytest.raises(InputError) as caught:
        open_stream(io.BytesIO(data), name="in", fmt=fmt, encoding=encoding)

    assert message in caught.value.message
    assert "universal-newline" not in str(caught.value)


def test_a_csv_with_classic_mac_line_ends_is_refused_saying_so() -> None:
    with pytest.raises(InputError) as caught:
        open_stream(io.BytesIO(b"case_id,vip\rc1,yes\rc2,no\r"), name="mac.csv", fmt="csv")

    assert "carriage return alone" in caught.value.message


def test_a_utf8_bom_is_still_accepted_by_default_and_with_utf8_named() -> None:
    data = b"\xef\xbb\xbfcase_id,notes\nc1,caf\xc3\xa9\n"
    for encoding in ("utf-8", "UTF8", "utf-8-sig"):
        with open_stream(io.BytesIO(data), name="-", fmt="csv", encoding=encoding) as source:
            assert source.header == ("case_id", "notes")
            assert [r.values for r in source] == [{"case_id": "c1", "notes": "café"}]
