"""`bulkupdate run` on records that cannot be read (issue 10, item 1): a stray quote, a quoted
cell far above csv's 128 KiB field limit, one above the 4 MiB record bound, JSON nested too
deeply. Each is one failed row named by its line; every other row is applied, and the failures
file is always written.

The real command in a subprocess, the real aiobotocore client over HTTP, the in-process emulator
holding the truth (its update log), real SQLite checkpoints.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkupdate.emulator import Emulator, EmulatorConfig, no_quotas, running_emulator
from bulkupdate.exits import EXIT_FAILED_ROWS
from bulkupdate.input.framing import MAX_RECORD_BYTES
from bulkupdate.input.sources import open_source
from tests.functional.runner import cli_env, fast_run_flags, run_cli
from tests.functional.test_run_inputs import case, read_jsonl, run_job, write_jsonl
from tests.functional.test_run_resume import FLUSH_INTERVAL_S, child, wait_until

CASES = 100
STRAY_LINE = 11  # the line holding `"Bob`


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES)
    async with running_emulator(config) as emulator:
        yield emulator


def stray_quote_file(path: Path, rows: int) -> Counter[tuple[str, str]]:
    """A CSV of `rows` rows, each setting a title, with `"Bob` on line 11 and no other quote in
    the file: the quote never closes. Returns the (case, title) updates the other rows make."""
    lines, expected = ["case_id,title\n"], Counter[tuple[str, str]]()
    for line in range(2, rows + 2):
        case_id = case(line % CASES + 1)
        title = '"Bob' if line == STRAY_LINE else f"Name {line}"
        lines.append(f"{case_id},{title}\n")
        if line != STRAY_LINE:
            expected[case_id, title] += 1
    path.write_text("".join(lines), encoding="utf-8")
    return expected


def applied_titles(emu: Emulator) -> Counter[tuple[str, str]]:
    """(case, title) of every update the emulator applied."""
    applied = Counter[tuple[str, str]]()
    for update in emu.service.updates:
        for field in update["fields"]:
            assert field["id"] == "title", update
            applied[update["caseId"], field["value"]["stringValue"]] += 1
    return applied


def assert_the_stray_quote_is_the_one_failure(failures_path: Path) -> None:
    with failures_path.open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["case_id", "title", "error_code", "error_message"]
    # The line's own text in one cell (fed back as it is, it fails again), code and message.
    assert rows == [
        [
            f'{case(STRAY_LINE % CASES + 1)},"Bob\n',
            "unreadable_record",
            f"line {STRAY_LINE}, column 14: unterminated quote from line {STRAY_LINE}: "
            "no closing quote before the end of input",
        ]
    ]


async def test_a_stray_quote_in_12000_rows_fails_its_line_alone_and_every_other_row_is_applied(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "stray.csv"
    expected = stray_quote_file(path, 12_000)

    result, summary = await run_job(emu, path, "--concurrency", "32")

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert summary is not None
    assert (summary["read"], summary["applied"], summary["failed"]) == (12_000, 11_999, 1)
    assert applied_titles(emu) == expected, "every other row applied once, no phantom row"
    assert_the_stray_quote_is_the_one_failure(tmp_path / "stray.failures.csv")


async def test_a_dry_run_of_the_stray_quote_file_reports_the_row_like_any_other_failure(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "stray.csv"
    stray_quote_file(path, 12_000)

    result = await run_cli("run", "--input", str(path), "--dry-run", *fast_run_flags(emu.url))

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert "11999 rows to send, 1 would fail" in result.stderr
    assert "Traceback" not in result.stderr
    assert_the_stray_quote_is_the_one_failure(tmp_path / "stray.failures.dry-run.csv")
    assert emu.service.updates == []


async def test_a_run_killed_after_the_stray_quote_resumes_from_the_lines_after_it(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "stray.csv"
    expected = stray_quote_file(path, 3_000)
    argv = [sys.executable, "-m", "bulkupdate", "run", "--input", str(path)]
    flags = [*fast_run_flags(emu.url), "--summary", str(tmp_path / "summary.json")]

    concurrency, burst, rate_per_s = 8, 8, 300
    pace = ["--concurrency", str(concurrency), "--burst", str(burst), "--rate", str(rate_per_s)]
    async with child([*argv, *flags, *pace], cli_env(), tmp_path) as first:
        await wait_until(lambda: len(emu.service.updates) >= 600, "600 rows applied")
        await first.kill()
    resumed, summary = await run_job(emu, path)

    assert resumed.returncode == EXIT_FAILED_ROWS, resumed.stderr
    assert summary is not None
    # It resumed by seeking past line 11 (rows 2-11 are 10 rows): not by reading it again.
    assert summary["read"] + summary["skipped"] <= 3_000 - 10, "it resumed past line 11"
    assert (summary["job_applied"], summary["job_failed"]) == (2_999, 1)
    applied = applied_titles(emu)
    assert set(applied) == set(expected), "every row applied, no phantom row"
    # Re-sent at most: in flight, plus what the gate let through since the last commit (as in
    # test_run_resume's kill test, with 0.1 s of slack for the commit itself).
    bound = concurrency + burst + math.ceil(rate_per_s * (FLUSH_INTERVAL_S + 0.1))
    assert applied.total() - expected.total() <= bound
    assert_the_stray_quote_is_the_one_failure(tmp_path / "stray.failures.csv")


async def test_a_quoted_cell_far_above_128_kib_is_one_row_and_no_phantom_row_is_applied(
    emu: Emulator, tmp_path: Path
) -> None:
    # 300 KB of lines that look like rows of another case, inside one quoted multi-line cell.
    cell = "".join(f"{case(50)},phantom {n}\n" for n in range(12_000))
    rows = [f"{case(n)},Title {n},\n" for n in range(1, 6)]
    rows[2] = f'{case(3)},Title 3,"{cell}"\n'
    path = tmp_path / "big-cell.csv"
    path.write_text("case_id,title,notes\n" + "".join(rows), encoding="utf-8")

    result, summary = await run_job(emu, path)

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert summary is not None
    assert (summary["read"], summary["applied"], summary["failed"]) == (5, 4, 1)
    assert [u["caseId"] for u in emu.service.updates] == [case(n) for n in (1, 2, 4, 5)]
    with open_source(tmp_path / "big-cell.failures.csv") as failures:  # read as input again
        [failure] = [record.values for record in failures]
    assert failure is not None
    assert (failure["case_id"], failure["error_code"]) == (case(3), "too_long")
    assert failure["notes"] == cell, "the cell whole, to be fixed and fed back"


async def test_a_jsonl_record_nested_too_deeply_is_one_failed_row_and_the_failures_file_is_written(
    emu: Emulator, tmp_path: Path
) -> None:
    deep = f'{{"case_id": "{case(2)}", "title": ' + "[" * 50_000 + "]" * 50_000 + "}"
    path = tmp_path / "deep.jsonl"
    write_jsonl(
        path,
        [
            f'{{"case_id": "{case(1)}", "title": "one"}}',
            deep,
            f'{{"case_id": "{case(3)}", "title": "three"}}',
        ],
    )

    result, summary = await run_job(emu, path)

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert summary is not None
    assert (summary["applied"], summary["failed"]) == (2, 1)
    assert applied_titles(emu) == Counter({(case(1), "one"): 1, (case(3), "three"): 1})
    [failure] = read_jsonl(tmp_path / "deep.failures.jsonl")
    assert failure["raw"] == deep
    assert failure["error"] == {
        "code": "unreadable_record",
        "message": "line 2: invalid JSON: nested too deeply to read",
    }


async def test_a_quoted_cell_over_4_mib_is_one_failed_row_and_no_row_from_inside_it_is_applied(
    emu: Emulator, tmp_path: Path
) -> None:
    # 4.5 MiB of lines inside one quoted cell, each a valid row setting a real case to urgent.
    cell_lines = [f"{case(n % CASES + 1)},urgent,phantom {n} {'x' * 2000}\n" for n in range(2_300)]
    cell = "".join(cell_lines)
    assert len(cell) > MAX_RECORD_BYTES
    rows = [f"{case(n)},high,row {n}\n" for n in range(1, 6)]
    rows[2] = f'{case(3)},high,"{cell}"\n'  # lines 4 to 2304: the quote closes on its own line
    path = tmp_path / "big-cell.csv"
    path.write_text("case_id,priority,notes\n" + "".join(rows), encoding="utf-8")

    result, summary = await run_job(emu, path)

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert summary is not None
    assert (summary["read"], summary["applied"], summary["failed"]) == (5, 4, 1)
    assert sorted(
        (u["caseId"], {f["id"]: f["value"]["stringValue"] for f in u["fields"]})
        for u in emu.service.updates
    ) == [(case(n), {"priority": "high", "notes": f"row {n}"}) for n in (1, 2, 4, 5)]
    priorities = Counter(
        c.values["priority"]["stringValue"] for c in emu.service.domains["demo"].cases.values()
    )
    assert priorities == {"high": 4, "low": CASES - 4}, "no case set to urgent: no phantom row"
    before = csv.field_size_limit()
    csv.field_size_limit(2 * MAX_RECORD_BYTES)
    try:
        with (tmp_path / "big-cell.failures.csv").open(encoding="utf-8", newline="") as handle:
            _, [text, code, message] = list(csv.reader(handle))
    finally:
        csv.field_size_limit(before)
    whole = rows[2].encode()
    assert text.encode() == whole[:MAX_RECORD_BYTES], "its first 4 MiB, in one cell"
    assert (code, message) == (
        "unreadable_record",
        f"line 4, column 19: record larger than 4 MiB ({len(whole)} bytes; only its first "
        f"{MAX_RECORD_BYTES} are kept): a quoted field opened on line 4 closes on line 2304",
    )
