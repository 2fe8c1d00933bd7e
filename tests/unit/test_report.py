"""The failures file: the input's own format, error columns added, readable as input again."""

from __future__ import annotations

import csv
import errno
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkupdate.input.sources import open_source
from bulkupdate.models import Outcome, RowStatus
from bulkupdate.report import atomic
from bulkupdate.report.failures import MAX_ROW_BYTES, write_failures
from bulkupdate.report.summary import summary_line, write_summary


def failed(raw: bytes, code: str = "invalid_number", line: int = 2) -> Outcome:
    return Outcome(0, line, "C-1", RowStatus.FAILED, code, f"line {line}: bad", raw, 0)


async def test_csv_failures_keep_the_original_cells_and_read_back_as_input(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    raw = b'C-1,"multi\nline, with ""quotes""",12x\r\n'
    await write_failures(str(path), "csv", [failed(raw)], header=("case_id", "notes", "total"))
    with open_source(path) as source:
        records = list(source)
    assert source.header == ("case_id", "notes", "total", "error_code", "error_message")
    assert records[0].values == {
        "case_id": "C-1",
        "notes": 'multi\nline, with "quotes"',
        "total": "12x",
        "error_code": "invalid_number",
        "error_message": "line 2: bad",
    }


async def test_feeding_a_failures_file_back_replaces_its_error_columns(tmp_path: Path) -> None:
    header = ("case_id", "total", "error_code", "error_message")
    raw = b"C-1,12x,old_code,old message\n"
    path = tmp_path / "again.csv"
    await write_failures(str(path), "csv", [failed(raw, "invalid_number")], header=header)
    lines = path.read_text().splitlines()
    assert lines == ["case_id,total,error_code,error_message", "C-1,12x,invalid_number,line 2: bad"]


async def test_jsonl_failures_are_the_original_objects_with_an_error_member(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    rows = [failed(b'{"case_id": "C-1", "total": "x"}\n'), failed(b"{not json\n", "unreadable")]
    await write_failures(str(path), "jsonl", rows, header=None)
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first == {
        "case_id": "C-1",
        "total": "x",
        "error": {"code": "invalid_number", "message": "line 2: bad"},
    }
    assert second["raw"] == "{not json"
    assert second["error"]["code"] == "unreadable"


def test_summary_line_names_the_end_and_the_counts() -> None:
    line = summary_line({"end": "interrupted", "applied": 5, "failed": 1, "pending": 3})
    assert line.startswith("interrupted: 5 applied, 1 failed, 0 skipped, 3 pending;")


async def test_failures_stream_from_an_async_source_in_pages(tmp_path: Path) -> None:
    async def many() -> AsyncIterator[Outcome]:
        for index in range(1203):
            yield failed(f"C-{index},x\n".encode(), line=index + 2)

    path = tmp_path / "many.csv"
    await write_failures(str(path), "csv", many(), header=("case_id", "total"))
    lines = path.read_text().splitlines()
    assert len(lines) == 1204
    assert lines[-1] == "C-1202,x,invalid_number,line 1204: bad"
    assert not list(tmp_path.glob(".*.tmp"))


def test_summary_line_says_when_nothing_was_sent_and_counts_no_pending_rows() -> None:
    # Before the engine ran the input was not counted: no "None pending", no "- pending".
    line = summary_line({"end": "interrupted", "note": "nothing was sent"})
    assert line.splitlines()[:2] == [
        "interrupted: 0 applied, 0 failed, 0 skipped; 0 throttles, 0 retries; 0 s",
        "  nothing was sent",
    ]


def test_summary_line_gives_the_next_step_a_fix_needs_instead_of_resume() -> None:
    summary = {"end": "aborted", "abort": "ResourceNotFoundException: Domain x does not exist."}
    summary.update(fix="check --domain-id", next_step="run the command again with it corrected")
    line = summary_line(summary)
    assert line.splitlines()[-1] == (
        "  to fix: check --domain-id; then run the command again with it corrected"
    )
    assert "resume" not in line


def test_summary_line_of_a_run_only_a_restart_resumes_does_not_say_run_the_same_command() -> None:
    summary = {"end": "aborted", "abort": "a change to its input", "fix": "pass --restart"}
    resumable = summary_line(summary).splitlines()
    restart_only = summary_line({**summary, "resumable": False}).splitlines()
    assert resumable[-1] == "  to fix: pass --restart; then run the same command to resume"
    assert restart_only[-1] == "  to fix: pass --restart"


# --- rows that no reader can take apart


async def test_an_unreadable_csv_row_is_copied_whole_into_one_cell_so_fed_back_it_fails_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.csv"
    raw = b'C-1,"Bob\n'  # an unterminated quote: a lenient reader would make it C-1,Bob
    await write_failures(
        str(path), "csv", [failed(raw, "unreadable_record")], header=("case_id", "name")
    )

    assert path.read_text() == (
        'case_id,name,error_code,error_message\n"C-1,""Bob\n",unreadable_record,line 2: bad\n'
    )
    with open_source(path) as source:
        [record] = list(source)
    assert record.error is not None
    assert record.error.message.startswith("expected 4 fields, got 3")


async def test_a_csv_row_with_a_field_past_csvs_limit_is_still_written(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    csv.field_size_limit(1000)
    try:
        path = tmp_path / "f.csv"
        raw = b"C-1," + b"n" * 5000 + b"\n"
        await write_failures(
            str(path), "csv", [failed(raw, "too_long")], header=("case_id", "notes")
        )
    finally:
        csv.field_size_limit(limit)

    _, row = list(csv.reader(io.StringIO(path.read_text())))
    assert row == [raw.decode(), "too_long", "line 2: bad"]  # one cell: nothing lost


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_a_row_too_big_to_copy_is_cut_to_the_bound_with_a_note(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"f.{fmt}"
    raw = b"C-1," + b"x" * (MAX_ROW_BYTES + 10) + b"\n"

    await write_failures(str(path), fmt, [failed(raw, "unreadable")], header=("case_id", "note"))

    text = path.read_text()
    assert text.count("x") == MAX_ROW_BYTES - len("C-1,")
    note = f"[the failures file kept the first {MAX_ROW_BYTES} of this row's {len(raw)} bytes]"
    assert "line 2: bad " + note in text


async def test_a_jsonl_row_nested_too_deeply_to_read_is_kept_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"

    await write_failures(str(path), "jsonl", [failed(deep, "unreadable_record")], header=None)

    [line] = path.read_text().splitlines()
    assert json.loads(line)["raw"] == deep.decode().rstrip("\n")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_failures_are_written_in_the_inputs_encoding_and_read_back_as_input(
    tmp_path: Path, fmt: str
) -> None:
    text = "C-1,café — 12x\n" if fmt == "csv" else '{"case_id": "C-1", "total": "café — 12x"}\n'
    raw = text.encode("cp1252")
    # The service's words or a field's name may hold what cp1252 cannot: kept as \uXXXX.
    message = "line 2: 'café — 12x' is not a number (日本)"
    row = Outcome(0, 2, "C-1", RowStatus.FAILED, "invalid_number", message, raw, 0)
    path = tmp_path / f"f.{fmt}"

    await write_failures(str(path), fmt, [row], header=("case_id", "total"), encoding="cp1252")

    with open_source(path, encoding="cp1252") as source:
        [record] = list(source)
    assert record.values is not None
    assert record.values["total"] == "café — 12x"
    assert "café — 12x" in path.read_bytes().decode("cp1252")
    error = record.values["error_message"] if fmt == "csv" else record.values["error"]["message"]
    assert error == "line 2: 'café — 12x' is not a number (\\u65e5\\u672c)"


# --- a full disk leaves the last complete file and no temporary behind


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes are buffered: a full disk shows when the file is flushed to it."""

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", fsync)


async def test_a_failures_file_that_cannot_be_written_leaves_no_temporary_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.csv"
    path.write_text("case_id,total,error_code,error_message\nC-0,1x,invalid_number,old\n")
    disk_full(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        await write_failures(str(path), "csv", [failed(b"C-1,12x\n")], header=("case_id", "total"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]
    assert path.read_text().endswith("C-0,1x,invalid_number,old\n"), "the last file stands"


def test_a_summary_that_cannot_be_written_leaves_no_temporary_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.json"
    disk_full(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write_summary(str(path), {"end": "finished"})
    assert list(tmp_path.iterdir()) == []


def test_a_summary_in_a_folder_that_does_not_exist_yet_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deeper" / "s.json"
    write_summary(str(path), {"end": "finished"})
    assert json.loads(path.read_text()) == {"end": "finished"}
