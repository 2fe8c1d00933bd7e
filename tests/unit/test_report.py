"""The failures file: the input's own format, error columns added, readable as input again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from bulkupdate.input.sources import open_source
from bulkupdate.models import Outcome, RowStatus
from bulkupdate.report.failures import write_failures
from bulkupdate.report.summary import summary_line


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


def test_summary_line_says_when_nothing_was_sent() -> None:
    line = summary_line({"end": "interrupted", "pending": None, "note": "nothing was sent"})
    assert line.splitlines()[:2] == [
        "interrupted: 0 applied, 0 failed, 0 skipped, - pending; 0 throttles, 0 retries, "
        "- rows/s, 0 s",
        "  nothing was sent",
    ]


def test_summary_line_of_a_run_only_a_restart_resumes_does_not_say_run_the_same_command() -> None:
    summary = {"end": "aborted", "abort": "a change to its input", "fix": "pass --restart"}
    resumable = summary_line(summary).splitlines()
    restart_only = summary_line({**summary, "resumable": False}).splitlines()
    assert resumable[-1] == "  to fix: pass --restart; then run the same command to resume"
    assert restart_only[-1] == "  to fix: pass --restart"
