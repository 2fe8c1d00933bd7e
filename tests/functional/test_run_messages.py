"""What `bulkupdate run` says when its input or its settings are wrong (issue 11, items 4-6): each
message names the file, line and column or key, and the fix (the flag or job file key to give),
before anything is sent, with exit 2. Following the fix then works.

The real command in a subprocess, the real aiobotocore client over HTTP, the in-process emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkupdate.emulator import Emulator, running_emulator
from bulkupdate.exits import EXIT_FAILED_ROWS, EXIT_OK, EXIT_USAGE
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.test_run_inputs import (
    DOMAIN,
    case,
    emulator_config,
    read_csv,
    run_job,
    update_calls,
    values,
)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(emulator_config()) as emulator:
        yield emulator


def refused_before_any_write(emu: Emulator, folder: Path, stem: str) -> None:
    assert update_calls(emu) == 0
    assert not (folder / f"{stem}.checkpoint.sqlite").exists()


# --- item 4: the fix named -------------------------------------------------------------------


async def test_a_csv_whose_case_ids_are_in_another_column_is_told_the_case_id_column_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(f"CaseId,priority\n{case(1)},high\n", encoding="utf-8")

    refused, _ = await run_job(emu, path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"{path}:1: column 'case_id': is not in the header" in refused.stderr
    assert "pass --case-id-column CaseId" in refused.stderr
    assert "'CaseId': names no field" not in refused.stderr, "one problem, said once"
    refused_before_any_write(emu, tmp_path, "export")

    fixed, _ = await run_job(emu, path, "--case-id-column", "CaseId")
    assert fixed.returncode == EXIT_OK, fixed.stderr
    assert values(emu, case(1))["priority"] == {"stringValue": "high"}


async def test_a_semicolon_csv_is_told_the_delimiter_flag(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text(f"case_id;priority\n{case(1)};high\n", encoding="utf-8")

    refused, _ = await run_job(emu, path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "column 'case_id;priority'" in refused.stderr
    assert "pass --delimiter ';'" in refused.stderr
    assert "names no field" not in refused.stderr
    refused_before_any_write(emu, tmp_path, "semi")

    fixed, _ = await run_job(emu, path, "--delimiter", ";")
    assert fixed.returncode == EXIT_OK, fixed.stderr


async def test_jsonl_on_stdin_without_a_format_is_told_the_format_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    data = f'{{"case_id": "{case(1)}", "priority": "high"}}\n'

    refused, _ = await run_job(emu, "-", stdin=data, cwd=tmp_path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "-:1: holds a JSON object, not a CSV header" in refused.stderr
    assert "pass --format jsonl" in refused.stderr
    refused_before_any_write(emu, tmp_path, "stdin")

    fixed, _ = await run_job(emu, "-", "--format", "jsonl", stdin=data, cwd=tmp_path)
    assert fixed.returncode == EXIT_OK, fixed.stderr


async def test_a_csv_given_where_the_job_file_goes_is_asked_whether_it_meant_input(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"case_id,priority\n{case(1)},high\n", encoding="utf-8")

    refused = await run_cli("run", str(path), *fast_run_flags(emu.url))

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"did you mean --input {path}?" in refused.stderr
    assert "TOML" in refused.stderr
    refused_before_any_write(emu, tmp_path, "a")


async def test_an_unknown_column_is_named_once_with_the_closest_fields_and_ignore_columns(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.service.add_field(emu.service.domains[DOMAIN], "Color", "Text", field_id="color")
    path = tmp_path / "colours.csv"
    path.write_text(f"case_id,Colour\n{case(1)},red\n", encoding="utf-8")

    refused, _ = await run_job(emu, path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"{path}:1: column 'Colour': names no field" in refused.stderr
    assert refused.stderr.count("'Colour'") == 1, refused.stderr
    assert "did you mean 'Color'?" in refused.stderr
    assert "ignore_columns" in refused.stderr
    refused_before_any_write(emu, tmp_path, "colours")

    job = tmp_path / "colours.toml"
    job.write_text('input = "colours.csv"\nignore_columns = ["Colour"]\n', encoding="utf-8")
    fixed = await run_cli("run", str(job), *fast_run_flags(emu.url))
    assert fixed.returncode == EXIT_OK, fixed.stderr
    assert update_calls(emu) == 0, "a row setting nothing is not sent"


async def test_a_header_that_is_not_utf8_names_its_line_and_column_and_the_encoding_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes(f"case_id,Priorité\n{case(1)},high\n".encode("cp1252"))

    refused, _ = await run_job(emu, path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"{path}:1:16: header row: invalid UTF-8" in refused.stderr
    assert "--encoding cp1252" in refused.stderr
    refused_before_any_write(emu, tmp_path, "legacy")


async def test_a_row_that_is_not_utf8_fails_alone_naming_its_line_and_the_encoding_flag(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes(
        f"case_id,priority,notes\n{case(1)},high,plain\n{case(2)},low,café\n".encode("cp1252")
    )

    result, _ = await run_job(emu, path)

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert values(emu, case(1))["priority"] == {"stringValue": "high"}
    [failure] = read_csv(tmp_path / "legacy.failures.csv")
    assert failure["error_message"].startswith("line 3, column 21: invalid UTF-8")
    assert "--encoding cp1252" in failure["error_message"]


async def test_a_binary_file_is_refused_as_not_a_text_file(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"  # an Excel workbook (a ZIP file) given as a CSV
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\r\n\x00\x00\xa4\x81")

    refused, _ = await run_job(emu, path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"{path}: is not a text file" in refused.stderr
    assert "universal-newline" not in refused.stderr
    refused_before_any_write(emu, tmp_path, "export")


# --- item 5: no case id in the first records -------------------------------------------------


async def test_jsonl_whose_first_records_lack_case_ids_is_told_so_not_about_datetime_encoding(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "dates.jsonl"
    path.write_text(
        "".join(f'{{"id": "{case(i)}", "due_date": "2024-05-01"}}\n' for i in (1, 2, 3)),
        encoding="utf-8",
    )

    refused, _ = await run_job(emu, path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"{path}:1: none of the first 3 records (lines 1-3) has a case id" in refused.stderr
    assert "key 'case_id'" in refused.stderr
    assert "pass --case-id-column id" in refused.stderr
    assert "--datetime-encoding" not in refused.stderr
    refused_before_any_write(emu, tmp_path, "dates")

    fixed, _ = await run_job(emu, path, "--case-id-column", "id")
    assert fixed.returncode == EXIT_OK, fixed.stderr
    assert "due_date" in values(emu, case(3))


# --- item 6: two stdin jobs in one folder ----------------------------------------------------


async def test_a_second_stdin_job_in_one_folder_is_told_what_differs_and_what_to_do(
    emu: Emulator, tmp_path: Path
) -> None:
    first_input = f"case_id,priority\n{case(1)},high\n"
    second_input = f"case_id,priority\n{case(2)},urgent\n"
    first, _ = await run_job(emu, "-", "--format", "csv", stdin=first_input, cwd=tmp_path)
    assert first.returncode == EXIT_OK, first.stderr

    refused, _ = await run_job(emu, "-", "--format", "csv", stdin=second_input, cwd=tmp_path)

    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "holds job 'stdin' for - with other data than this run reads" in refused.stderr
    assert "input fingerprint differs" in refused.stderr
    assert "but this run is job 'stdin' for -" not in refused.stderr
    assert "--checkpoint PATH" in refused.stderr
    assert "--restart" in refused.stderr
    assert update_calls(emu) == 1, "the refused run sent nothing"

    own = ("--checkpoint", str(tmp_path / "second.sqlite"))
    fixed, _ = await run_job(emu, "-", "--format", "csv", *own, stdin=second_input, cwd=tmp_path)
    assert fixed.returncode == EXIT_OK, fixed.stderr
    assert values(emu, case(2))["priority"] == {"stringValue": "urgent"}
