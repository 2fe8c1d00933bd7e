"""`--encoding`: an export in Windows-1252 (or any encoding that keeps ASCII as is) is read as
text wherever inputs are read (files, .gz, stdin, resume at a byte offset, the dry run), and its
failures file is written back in that encoding, so it can be fixed and fed back. A job resumes
only with the encoding it started with: the same bytes decoded otherwise are other values.

The real command in a subprocess, the real aiobotocore client over HTTP, the in-process emulator
holding the truth. (S3 inputs: `test_run_s3.py`.)
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import Emulator, FaultConfig, running_emulator
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_OK, EXIT_USAGE
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.test_run_inputs import case, emulator_config, run_job, update_calls, values

ENCODING = "cp1252"
# What a legacy CRM writes: accents, curly quotes, a dash and the euro sign, all in cp1252.
NOTES = ["Café crème — “déjà vu”", "Zoë’s naïve € question", "plain"]
BAD_TOTAL = "douze €"  # a Number field: the row fails alone, with its text intact


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(emulator_config()) as emulator:
        yield emulator


def legacy_rows() -> list[dict[str, str]]:
    rows = [
        {"case_id": case(i), "notes": note, "order_total": ""} for i, note in enumerate(NOTES, 1)
    ]
    rows.append({"case_id": case(9), "notes": "à refaire", "order_total": BAD_TOTAL})
    return rows


def encode_input(rows: list[dict[str, str]], fmt: str) -> bytes:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue()
    else:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return text.encode(ENCODING)


def read_failures(path: Path, fmt: str) -> list[dict[str, Any]]:
    text = path.read_bytes().decode(ENCODING)  # strict: the file is cp1252 or this raises
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    return [json.loads(line) for line in text.splitlines()]


def assert_applied_intact(emu: Emulator) -> None:
    for index, note in enumerate(NOTES, 1):
        assert values(emu, case(index))["notes"] == {"stringValue": note}
    assert case(9) not in {update["caseId"] for update in emu.service.updates}


def encoding_given(how: str, tmp_path: Path, input_arg: str) -> tuple[list[str], dict[str, str]]:
    """The command's arguments and environment giving the input and its encoding `how`."""
    if how == "job":
        job = tmp_path / "legacy.toml"
        job.write_text(f'input = "{input_arg}"\nencoding = "{ENCODING}"\n', encoding="utf-8")
        return [str(job)], {}
    if how == "env":
        return ["--input", input_arg], {"BULKUPDATE_ENCODING": ENCODING}
    return ["--input", input_arg, "--encoding", ENCODING], {}


@pytest.mark.parametrize(
    ("name", "how"),
    [
        pytest.param("legacy.csv", "flag", id="csv-flag"),
        pytest.param("legacy.csv.gz", "env", id="gzip-environment"),
        pytest.param("legacy.jsonl", "job", id="jsonl-job-file"),
        pytest.param("-", "flag", id="stdin-csv"),
    ],
)
async def test_an_input_in_cp1252_is_applied_intact_and_its_failures_file_is_cp1252(
    emu: Emulator, tmp_path: Path, name: str, how: str
) -> None:
    fmt = "jsonl" if ".jsonl" in name else "csv"
    data = encode_input(legacy_rows(), fmt)
    if name != "-":
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    args, env = encoding_given(how, tmp_path, name)
    stdin = data if name == "-" else None

    result = await run_cli(
        "run", *args, "--format", fmt, *fast_run_flags(emu.url), env=env, stdin=stdin, cwd=tmp_path
    )

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert_applied_intact(emu)
    failures = tmp_path / f"{'stdin' if name == '-' else 'legacy'}.failures.{fmt}"
    [failed] = read_failures(failures, fmt)
    assert (failed["case_id"], failed["notes"], failed["order_total"]) == (
        case(9),
        "à refaire",
        BAD_TOTAL,
    )
    if fmt == "csv":
        original = data.splitlines()[-1]
        assert original in failures.read_bytes(), "the row's cp1252 bytes, as they were"


async def test_a_failures_file_in_cp1252_fixed_and_fed_back_applies(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes(encode_input(legacy_rows(), "csv"))
    first, _ = await run_job(emu, path, "--encoding", ENCODING)
    assert first.returncode == EXIT_FAILED_ROWS, first.stderr
    failures = tmp_path / "legacy.failures.csv"
    fixed = failures.read_bytes().replace(BAD_TOTAL.encode(ENCODING), b"12")
    again = tmp_path / "again.csv"
    again.write_bytes(fixed)

    second, _ = await run_job(emu, again, "--encoding", ENCODING)

    assert second.returncode == EXIT_OK, second.stderr
    assert values(emu, case(9))["order_total"] == {"doubleValue": 12.0}
    assert values(emu, case(9))["notes"] == {"stringValue": "à refaire"}


async def test_a_dry_run_reads_cp1252_and_writes_its_failures_in_cp1252(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes(encode_input(legacy_rows(), "csv"))

    result = await run_cli(
        "run",
        *("--input", str(path), "--encoding", ENCODING, "--dry-run"),
        *fast_run_flags(emu.url),
    )

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert "3 rows to send, 1 would fail" in result.stderr
    [failed] = read_failures(tmp_path / "legacy.failures.dry-run.csv", "csv")
    assert (failed["notes"], failed["order_total"]) == ("à refaire", BAD_TOTAL)
    assert update_calls(emu) == 0


async def test_a_cp1252_job_resumes_at_its_byte_offset_and_only_in_its_encoding(
    tmp_path: Path,
) -> None:
    rows = [{"case_id": case(i), "notes": f"café n°{i} — “{i}”"} for i in range(1, 41)]
    data = encode_input(rows, "csv")
    path = tmp_path / "legacy.csv"
    path.write_bytes(data)
    flags = ("--encoding", ENCODING, "--concurrency", "1", "--summary", str(tmp_path / "s.json"))
    faults = FaultConfig(access_denied_after_calls=12)
    async with running_emulator(emulator_config(faults=faults)) as emu:
        aborted = await run_cli("run", "--input", str(path), *fast_run_flags(emu.url), *flags)
        assert aborted.returncode == EXIT_ABORTED, aborted.stderr
        resume_offset = json.loads((tmp_path / "s.json").read_text())["resume_offset"]
        assert 0 < resume_offset < len(data)
        emu.set_faults(FaultConfig())
        sent = update_calls(emu)

        other = await run_cli("run", "--input", str(path), *fast_run_flags(emu.url))
        assert other.returncode == EXIT_USAGE, other.stderr
        assert "input encoding differs ('cp1252', now 'utf-8')" in other.stderr
        assert "run it with --encoding cp1252" in other.stderr
        assert update_calls(emu) == sent, "refused: nothing sent"

        resumed = await run_cli("run", "--input", str(path), *fast_run_flags(emu.url), *flags)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        events = [json.loads(line) for line in resumed.stdout.splitlines()]
        started = next(e for e in events if e["event"] == "run_started")
        assert started["resume_offset"] == resume_offset
        assert data[resume_offset - 1 : resume_offset] == b"\n", "a byte offset of the file"
        for row in rows:
            assert values(emu, row["case_id"])["notes"] == {"stringValue": row["notes"]}
        updated = [u["caseId"] for u in emu.service.updates]
        assert sorted(updated) == sorted(row["case_id"] for row in rows), "each row once"
