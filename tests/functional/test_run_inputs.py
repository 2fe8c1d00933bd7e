"""`bulkupdate run` reads CSV and JSONL input as issue 3's "Input" section says: the real command
in a subprocess, the real aiobotocore client over HTTP, an in-process emulator holding the truth.

Tests assert on what the emulator holds and logged (state, update log, counters), the exit code,
the failures file and the --summary JSON; of the command's own words, only the column, key or flag
an error must name and the dry run's estimate line.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import (
    DateTimeEncoding,
    Emulator,
    EmulatorConfig,
    FaultConfig,
    no_quotas,
    running_emulator,
)
from bulkupdate.exits import EXIT_ABORTED
from tests.functional.runner import Completed, fast_run_flags, run_cli

DOMAIN = "demo"
CASES = 80
ISO_NOON = {"stringValue": "2024-05-01T12:00:00.000Z"}  # 2024-05-01T12:00Z, as iso8601 sends it
EPOCH_NOON = {"doubleValue": 1714564800000.0}  # the same instant, as epoch-millis sends it
USER_ARN = "arn:aws:connect:us-east-1:123456789012:instance/4f0c-11aa/agent/9b2e-77cd"
# Embedded comma, doubled quotes, newlines (one blank line) and non-ASCII: must arrive intact.
QUOTED_NOTES = 'Called back, left a message.\nShe said "next week".\n\nZoë — café ☕ 日本'


def case(index: int) -> str:
    return f"case-{index:07d}"


def emulator_config(**overrides: Any) -> EmulatorConfig:
    return EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES, **overrides)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(emulator_config()) as emulator:
        yield emulator


# --- reading the emulator --------------------------------------------------------------------


def values(emu: Emulator, case_id: str) -> dict[str, Any]:
    return emu.service.domains[DOMAIN].cases[case_id].values


def snapshot(emu: Emulator) -> dict[str, dict[str, Any]]:
    return {cid: copy.deepcopy(c.values) for cid, c in emu.service.domains[DOMAIN].cases.items()}


def updates_of(emu: Emulator, case_id: str) -> list[list[dict[str, Any]]]:
    """The `fields` of every applied UpdateCase on one case, in apply order."""
    return [u["fields"] for u in emu.service.updates if u["caseId"] == case_id]


def update_calls(emu: Emulator) -> int:
    """UpdateCase requests the emulator received, whatever their outcome."""
    return sum(emu.counters["UpdateCase"].values())


# --- files -----------------------------------------------------------------------------------


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    delimiter: str = ",",
    bom: bool = False,
    line_end: str = "\n",
) -> list[int]:
    """Write an RFC 4180 file (gzip when the name ends .gz); return each row's first line number."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=line_end)
    writer.writerow(header)
    lines, line = [], 2
    for row in rows:
        start = out.tell()
        writer.writerow(row)
        lines.append(line)
        line += out.getvalue()[start:].count("\n")
    data = (("\ufeff" if bom else "") + out.getvalue()).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return lines


def write_jsonl(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def line_of(message: str) -> int:
    found = re.search(r"\bline (\d+)\b", message)
    assert found, f"no line number in {message!r}"
    return int(found.group(1))


def without_errors(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("error_code", "error_message", "error")}


# --- running ---------------------------------------------------------------------------------


async def run_job(
    emu: Emulator, input_path: Path | str, *extra: str, **options: Any
) -> tuple[Completed, dict[str, Any] | None]:
    """`bulkupdate run --input PATH` against `emu` with a --summary beside the input."""
    folder = Path(input_path).parent if str(input_path) != "-" else Path(options["cwd"])
    summary = folder / f"{Path(input_path).name}.summary.json"
    result = await run_cli(
        "run",
        *("--input", str(input_path), "--summary", str(summary)),
        *fast_run_flags(emu.url),
        *extra,
        **options,
    )
    return result, json.loads(summary.read_text()) if summary.exists() else None


# --- CSV: values, columns, failures ----------------------------------------------------------

# Header: the case id, then columns by field id, by exact name and by name in another case.
HEADER = [
    "case_id",
    "Priority",  # name of `priority`
    "ORDER TOTAL",  # name `Order total`, in another case
    "vip",  # id
    "due_date",  # id
    "crm_url",  # id
    "owner",  # id
    "Notes",  # name of the multi-line `notes`
    "account_code",  # id, single-line Text
    "SUMMARY",  # system field `summary` by name, in another case
    "title",  # system field by id
]
FIELD_OF = {
    "Priority": "priority",
    "ORDER TOTAL": "order_total",
    "vip": "vip",
    "due_date": "due_date",
    "crm_url": "crm_url",
    "owner": "owner",
    "Notes": "notes",
    "account_code": "account_code",
    "SUMMARY": "summary",
    "title": "title",
}

# (column, cell, what the case then holds for that field, or the error code the row fails with).
# Each entry is one row on a case of its own; every other cell of the row is blank.
VALUE_TABLE: list[tuple[str, str, dict[str, Any] | str]] = [
    ("ORDER TOTAL", "12.50", {"doubleValue": 12.5}),
    ("ORDER TOTAL", "-0.75", {"doubleValue": -0.75}),
    ("ORDER TOTAL", "1e3", {"doubleValue": 1000.0}),
    ("ORDER TOTAL", "NaN", "invalid_number"),
    ("ORDER TOTAL", "inf", "invalid_number"),
    ("ORDER TOTAL", "-Infinity", "invalid_number"),
    ("ORDER TOTAL", "abc", "invalid_number"),
    ("ORDER TOTAL", "1,5", "invalid_number"),
    ("vip", "TRUE", {"booleanValue": True}),
    ("vip", "False", {"booleanValue": False}),
    ("vip", "yes", {"booleanValue": True}),
    ("vip", "NO", {"booleanValue": False}),
    ("vip", "1", {"booleanValue": True}),
    ("vip", "0", {"booleanValue": False}),
    ("vip", "maybe", "invalid_boolean"),
    ("Priority", "high", {"stringValue": "high"}),
    ("Priority", "Urgent", {"stringValue": "urgent"}),
    ("Priority", "mEDIUM", {"stringValue": "medium"}),
    ("Priority", "legacy", "inactive_option"),
    ("Priority", "LEGACY", "inactive_option"),
    ("Priority", "critical", "unknown_option"),
    ("owner", USER_ARN, {"userArnValue": USER_ARN}),
    ("owner", "jane.doe", "invalid_user_arn"),
    ("crm_url", "https://crm.example.com/a/42?tab=orders", {"stringValue": "https://crm.example.com/a/42?tab=orders"}),
    ("crm_url", "crm.example.com/a/42", "invalid_url"),
    ("account_code", "A" * 500, {"stringValue": "A" * 500}),
    ("account_code", "A" * 501, "too_long"),
    ("Notes", "n" * 4100, {"stringValue": "n" * 4100}),
    ("Notes", "n" * 4101, "too_long"),
    ("SUMMARY", "s" * 3000, {"stringValue": "s" * 3000}),
    ("SUMMARY", "s" * 3001, "too_long"),
    ("Notes", QUOTED_NOTES, {"stringValue": QUOTED_NOTES}),
    ("title", 'ACME, Inc. "EU" branch', {"stringValue": 'ACME, Inc. "EU" branch'}),
    ("due_date", "2024-05-01T12:00:00Z", ISO_NOON),
    ("due_date", "2024-05-01T14:00:00+02:00", ISO_NOON),
    ("due_date", "1714564800", ISO_NOON),  # epoch seconds
    ("due_date", "1714564800000", ISO_NOON),  # epoch milliseconds
    ("due_date", "2024-05-01", {"stringValue": "2024-05-01T00:00:00.000Z"}),
    ("due_date", "next tuesday", "invalid_datetime"),
]  # fmt: skip


def value_table_rows() -> tuple[list[list[str]], list[tuple[str, dict[str, Any] | str, str]]]:
    """One row per VALUE_TABLE entry, each on its own case, and (case id, outcome, field id)."""
    rows: list[list[str]] = []
    plan: list[tuple[str, dict[str, Any] | str, str]] = []
    for index, (column, cell, outcome) in enumerate(VALUE_TABLE, start=1):
        row = [case(index)] + [""] * (len(HEADER) - 1)
        row[HEADER.index(column)] = cell
        rows.append(row)
        plan.append((case(index), outcome, FIELD_OF[column]))
    return rows, plan


async def test_a_csv_applies_every_valid_value_and_fails_every_invalid_row_alone(
    emu: Emulator, tmp_path: Path
) -> None:
    rows, plan = value_table_rows()
    n = len(rows)
    two_problems = [case(n + 1), "", "abc", "maybe", *[""] * (len(HEADER) - 4)]
    no_case_id = ["", "high", *[""] * (len(HEADER) - 2)]
    unknown_case = ["case-9999999", "high", *[""] * (len(HEADER) - 2)]
    all_blank = [case(n + 2), *[""] * (len(HEADER) - 1)]
    rows += [two_problems, no_case_id, unknown_case, all_blank]
    path = tmp_path / "values.csv"
    lines = write_csv(path, HEADER, rows, bom=True)
    before = snapshot(emu)

    # One UpdateCase per row (rows sharing a value would otherwise go in one BatchUpdateCase).
    result, summary = await run_job(emu, path, "--batch", "off")

    assert result.returncode == 1, result.stderr
    # Valid rows: exactly one update each, holding only the one non-blank cell; the case gains that
    # value and nothing else changes (blank cells leave their fields unchanged).
    applied = [(cid, outcome, fid) for cid, outcome, fid in plan if isinstance(outcome, dict)]
    for case_id, outcome, field_id in applied:
        assert updates_of(emu, case_id) == [[{"id": field_id, "value": outcome}]], case_id
        assert values(emu, case_id) == {**before[case_id], field_id: outcome}, case_id
    # Rejected rows are never sent: their cases are untouched and absent from the update log.
    rejected = [(cid, outcome) for cid, outcome, _ in plan if isinstance(outcome, str)]
    for case_id in [cid for cid, _ in rejected] + [case(n + 1), case(n + 2)]:
        assert updates_of(emu, case_id) == [], case_id
        assert values(emu, case_id) == before[case_id], case_id
    assert len(emu.service.updates) == len(applied)
    assert dict(emu.counters["UpdateCase"]) == {
        "ok": len(applied),
        "ResourceNotFoundException": 1,
    }

    failures = read_csv(tmp_path / "values.failures.csv")
    assert list(failures[0]) == [*HEADER, "error_code", "error_message"]
    local = [f for f in failures if f["error_code"] != "ResourceNotFoundException"]
    by_line = {line_of(f["error_message"]): f for f in local}
    expected_local = {
        lines[i]: (rows[i], outcome)
        for i, (_, outcome, _) in enumerate(plan)
        if isinstance(outcome, str)
    }
    expected_local[lines[n]] = (two_problems, "invalid_boolean,invalid_number")
    expected_local[lines[n + 1]] = (no_case_id, "missing_case_id")
    assert sorted(by_line) == sorted(expected_local)
    for line, (row, code) in expected_local.items():
        failure = by_line[line]
        assert without_errors(failure) == dict(zip(HEADER, row, strict=True)), line
        assert failure["error_code"] == code, line
    assert "ORDER TOTAL" in by_line[lines[n]]["error_message"]
    assert "vip" in by_line[lines[n]]["error_message"]
    [service_failure] = [f for f in failures if f not in local]
    assert without_errors(service_failure) == dict(zip(HEADER, unknown_case, strict=True))

    assert summary is not None
    assert summary["end"] == "finished"
    assert summary["read"] == len(rows)
    assert summary["applied"] == len(applied)
    assert summary["unchanged"] == 1
    assert summary["failed"] == len(rejected) + 3
    assert summary["rejected_locally"] == len(rejected) + 2
    assert summary["job_failed"] == len(failures)

    status = await run_cli(
        "status", "--checkpoint", str(tmp_path / "values.checkpoint.sqlite"), "--json"
    )
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["applied"] == len(applied) + 1  # the all-blank row is done: nothing to change
    assert shown["failed"] == len(failures)


async def test_the_failures_csv_fed_back_as_input_fails_the_same_rows_again(
    emu: Emulator, tmp_path: Path
) -> None:
    header = ["case_id", "priority", "order_total", "notes"]
    rows = [
        [case(1), "high", "10", "fine"],
        [case(2), "legacy", "11", QUOTED_NOTES],
        [case(3), "low", "twelve", 'a, "b"\nc'],
        ["", "low", "13", ""],
        ["case-9999999", "low", "14", ""],
    ]
    path = tmp_path / "first.csv"
    write_csv(path, header, rows)
    first, _ = await run_job(emu, path)
    assert first.returncode == 1, first.stderr
    failures = read_csv(tmp_path / "first.failures.csv")
    assert [f["case_id"] for f in failures] == [case(2), case(3), "", "case-9999999"]
    updates_before, calls_before = len(emu.service.updates), update_calls(emu)

    again, summary = await run_job(
        emu,
        tmp_path / "first.failures.csv",
        *("--checkpoint", str(tmp_path / "again.sqlite")),
        *("--failures", str(tmp_path / "again.failures.csv")),
    )

    assert again.returncode == 1, again.stderr  # not 2: error_code/error_message are no fields
    refailed = read_csv(tmp_path / "again.failures.csv")
    assert [without_errors(f) for f in refailed] == [without_errors(f) for f in failures]
    assert [f["error_code"] for f in refailed] == [f["error_code"] for f in failures]
    assert len(emu.service.updates) == updates_before  # nothing applied the second time
    assert update_calls(emu) == calls_before + 1  # only the unknown case reached the service
    assert summary is not None
    assert (summary["read"], summary["failed"]) == (4, 4)


async def test_unreadable_csv_rows_fed_back_from_the_failures_file_fail_again(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_bytes(
        b"case_id,notes,vip\n"
        + f"{case(1)},a,b,yes\n".encode()  # one cell too many
        + f"{case(2)},short\n".encode()  # one cell too few
        + f"{case(3)},".encode()
        + b"\xff\xfe,yes\n"  # not UTF-8
    )
    first, _ = await run_job(emu, path)
    assert first.returncode == 1, first.stderr
    assert len(read_csv(tmp_path / "ragged.failures.csv")) == 3

    again, _ = await run_job(
        emu,
        tmp_path / "ragged.failures.csv",
        *("--checkpoint", str(tmp_path / "again.sqlite")),
        *("--failures", str(tmp_path / "again.failures.csv")),
    )

    assert emu.service.updates == []
    assert again.returncode == 1, again.stderr
    assert len(read_csv(tmp_path / "again.failures.csv")) == 3


@pytest.mark.parametrize(
    ("name", "delimiter", "flags", "bom", "line_end"),
    [
        pytest.param("semicolon.csv", ";", ["--delimiter", ";"], False, "\r\n", id="semicolon"),
        pytest.param("tab.csv", "\t", ["--delimiter", "\t"], False, "\n", id="tab"),
        pytest.param("packed.csv.gz", ",", [], True, "\n", id="gzip-with-bom"),
    ],
)
async def test_a_csv_with_another_delimiter_or_gzip_applies_every_value_intact(
    emu: Emulator,
    tmp_path: Path,
    name: str,
    delimiter: str,
    flags: list[str],
    bom: bool,
    line_end: str,
) -> None:
    tricky = f'one{delimiter} two, three; four\tfive\n"six"\nZoë'
    header = ["case_id", "notes", "priority", "account_code"]
    rows = [
        [case(1), tricky, "High", f"A{delimiter}1"],
        [case(2), "plain", "low", "B-2"],
        [case(3), "", "urgent", ""],
    ]
    path = tmp_path / name
    write_csv(path, header, rows, delimiter=delimiter, bom=bom, line_end=line_end)

    result, summary = await run_job(emu, path, *flags)

    assert result.returncode == 0, result.stderr
    assert values(emu, case(1))["notes"] == {"stringValue": tricky}
    assert values(emu, case(1))["priority"] == {"stringValue": "high"}
    assert values(emu, case(1))["account_code"] == {"stringValue": f"A{delimiter}1"}
    assert values(emu, case(2))["account_code"] == {"stringValue": "B-2"}
    assert updates_of(emu, case(3)) == [[{"id": "priority", "value": {"stringValue": "urgent"}}]]
    assert summary is not None
    assert (summary["read"], summary["applied"], summary["failed"]) == (3, 3, 0)
    stem = name.removesuffix(".gz").removesuffix(".csv")
    assert read_csv(tmp_path / f"{stem}.failures.csv", delimiter) == []


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        pytest.param(
            "csv",
            f"case_id,priority,vip\n{case(1)},High,yes\n{case(2)},low,no\n",
            id="csv",
        ),
        pytest.param(
            "jsonl",
            f'{{"case_id": "{case(1)}", "priority": "High", "vip": true}}\n'
            f'{{"case_id": "{case(2)}", "priority": "low", "vip": false}}\n',
            id="jsonl",
        ),
    ],
)
async def test_input_dash_reads_the_rows_from_stdin(
    emu: Emulator, tmp_path: Path, fmt: str, data: str
) -> None:
    result, summary = await run_job(
        emu,
        "-",
        *("--format", fmt, "--checkpoint", str(tmp_path / "stdin.sqlite")),
        *("--failures", str(tmp_path / f"stdin.failures.{fmt}")),
        stdin=data,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert values(emu, case(1))["priority"] == {"stringValue": "high"}
    assert values(emu, case(1))["vip"] == {"booleanValue": True}
    assert values(emu, case(2))["vip"] == {"booleanValue": False}
    assert summary is not None
    assert summary["applied"] == 2


async def test_a_dry_run_on_stdin_reads_the_rows(emu: Emulator, tmp_path: Path) -> None:
    data = f"case_id,vip\n{case(1)},yes\n{case(2)},maybe\n"
    failures = tmp_path / "stdin.failures.csv"

    result = await run_cli(
        "run",
        *("--input", "-", "--format", "csv", "--dry-run", "--failures", str(failures)),
        *fast_run_flags(emu.url),
        stdin=data,
        cwd=tmp_path,
    )

    assert result.returncode == 1, result.stderr
    assert "1 rows to send, 1 would fail" in result.stderr
    assert [f["case_id"] for f in read_csv(tmp_path / "stdin.failures.dry-run.csv")] == [case(2)]
    assert not failures.exists(), "a dry run never overwrites the real failures file"
    assert update_calls(emu) == 0


# --- columns -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "named"),
    [
        pytest.param(["case_id", "priority", "colour"], "colour", id="unknown"),
        pytest.param(["case_id", "priority", "Vip"], "Vip", id="ambiguous"),
        pytest.param(["id", "priority"], "case_id", id="no-case-id-column"),
    ],
)
async def test_a_bad_csv_column_stops_the_run_before_any_write_and_names_the_column(
    emu: Emulator, tmp_path: Path, header: list[str], named: str
) -> None:
    # A second field whose name differs from `VIP` only in case: "Vip" now matches both.
    emu.service.add_field(emu.service.domains[DOMAIN], "vip", "Text", field_id="vip_note")
    path = tmp_path / "bad-header.csv"
    write_csv(path, header, [[case(1), "high", "x"][: len(header)]])

    result, _ = await run_job(emu, path)

    assert result.returncode == 2, result.stderr
    assert repr(named) in result.stderr
    assert update_calls(emu) == 0
    assert emu.service.updates == []


async def test_a_case_id_column_can_be_named_and_a_row_without_a_case_id_fails(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "tickets.csv"
    lines = write_csv(
        path,
        ["ticket", "priority", "vip"],
        [[case(1), "high", "yes"], ["", "urgent", "no"], [" ", "urgent", "no"]],
    )

    result, _ = await run_job(emu, path, "--case-id-column", "ticket")

    assert result.returncode == 1, result.stderr
    assert values(emu, case(1))["priority"] == {"stringValue": "high"}
    assert len(emu.service.updates) == 1
    failures = read_csv(tmp_path / "tickets.failures.csv")
    assert [f["error_code"] for f in failures] == ["missing_case_id"] * 2
    assert [line_of(f["error_message"]) for f in failures] == lines[1:]
    assert all("ticket" in f["error_message"] for f in failures)


async def test_columns_and_options_resolve_from_every_page_of_fields_and_options(
    emu: Emulator, tmp_path: Path
) -> None:
    # The client asks for 100 fields and 100 options a page: push one of each onto page two.
    domain = emu.service.domains[DOMAIN]
    for index in range(110):
        emu.service.add_field(domain, f"Extra {index:03d}", "Text", field_id=f"extra_{index:03d}")
    options = [
        {"name": f"Tier {i:03d}", "value": f"tier-{i:03d}", "active": True} for i in range(120)
    ]
    emu.service.batch_put_field_options(
        {"domainId": DOMAIN, "fieldId": "priority", "options": options}
    )
    path = tmp_path / "paged.csv"
    write_csv(path, ["case_id", "Extra 109", "Priority"], [[case(1), "deep", "tier 119"]])

    result, _ = await run_job(emu, path)

    assert result.returncode == 0, result.stderr
    assert emu.counters["ListFields"]["ok"] >= 2
    assert emu.counters["ListFieldOptions"]["ok"] >= 2
    assert values(emu, case(1))["extra_109"] == {"stringValue": "deep"}
    assert values(emu, case(1))["priority"] == {"stringValue": "tier-119"}


async def test_singleselect_and_datetime_columns_may_name_their_field_in_any_case(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "folded.csv"
    write_csv(path, ["case_id", "PRIORITY", "due DATE"], [[case(1), "urgent", "2024-05-01T12:00Z"]])

    result, _ = await run_job(emu, path)

    assert result.returncode == 0, result.stderr
    assert values(emu, case(1))["priority"] == {"stringValue": "urgent"}
    assert values(emu, case(1))["due_date"] == ISO_NOON


# --- blank cells and DateTime encoding -------------------------------------------------------


async def test_blank_clear_sends_empty_value_and_the_field_disappears(
    emu: Emulator, tmp_path: Path
) -> None:
    assert values(emu, case(1))["priority"] == {"stringValue": "low"}
    path = tmp_path / "clear.csv"
    write_csv(path, ["case_id", "priority", "vip"], [[case(1), "", "true"]])

    result, _ = await run_job(emu, path, "--blank", "clear")

    assert result.returncode == 0, result.stderr
    assert "priority" not in values(emu, case(1))
    assert values(emu, case(1))["vip"] == {"booleanValue": True}
    assert updates_of(emu, case(1)) == [
        [
            {"id": "priority", "value": {"emptyValue": {}}},
            {"id": "vip", "value": {"booleanValue": True}},
        ]
    ]


@pytest.mark.parametrize(
    ("encoding", "stored"),
    [
        pytest.param(DateTimeEncoding.ISO8601, ISO_NOON, id="iso8601"),
        pytest.param(DateTimeEncoding.EPOCH_MILLIS, EPOCH_NOON, id="epoch-millis"),
    ],
)
async def test_datetime_values_use_the_encoding_detected_with_get_case(
    tmp_path: Path, encoding: DateTimeEncoding, stored: dict[str, Any]
) -> None:
    path = tmp_path / "dates.csv"
    cells = ["2024-05-01T12:00:00Z", "1714564800", "1714564800000"]
    write_csv(path, ["case_id", "due_date"], [[case(i), c] for i, c in enumerate(cells, 1)])
    async with running_emulator(emulator_config(datetime_encoding=encoding)) as emu:
        result, _ = await run_job(emu, path)

        assert result.returncode == 0, result.stderr
        assert emu.counters["GetCase"]["ok"] >= 1
        for index in range(1, len(cells) + 1):
            assert values(emu, case(index))["due_date"] == stored


@pytest.mark.parametrize(
    ("encoding", "flag"),
    [
        pytest.param(DateTimeEncoding.EPOCH_MILLIS, "epoch-millis", id="matching"),
        pytest.param(DateTimeEncoding.ISO8601, "epoch-millis", id="contrary"),
    ],
)
async def test_datetime_encoding_flag_overrides_detection(
    tmp_path: Path, encoding: DateTimeEncoding, flag: str
) -> None:
    path = tmp_path / "dates.csv"
    write_csv(path, ["case_id", "due_date"], [[case(1), "2024-05-01T12:00:00Z"]])
    async with running_emulator(emulator_config(datetime_encoding=encoding)) as emu:
        result, _ = await run_job(emu, path, "--datetime-encoding", flag)

        assert emu.counters["GetCase"].total() == 0  # nothing detected
        if encoding is DateTimeEncoding.EPOCH_MILLIS:
            assert result.returncode == 0, result.stderr
            assert values(emu, case(1))["due_date"] == EPOCH_NOON
        else:  # sent as the flag says, so the service (which wants strings) refuses it
            assert result.returncode == 1, result.stderr
            [failure] = read_csv(tmp_path / "dates.failures.csv")
            assert failure["error_code"] == "ValidationException"
            assert "doubleValue" in failure["error_message"]
            assert "due_date" not in values(emu, case(1))


async def test_undetectable_datetime_encoding_stops_the_run_before_any_write(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "dates.csv"
    write_csv(path, ["case_id", "due_date"], [["no-such-case", "2024-05-01T12:00:00Z"]])
    result, _ = await run_job(emu, path)

    assert result.returncode == 2, result.stderr
    assert "--datetime-encoding" in result.stderr
    assert update_calls(emu) == 0
    assert not (tmp_path / "dates.checkpoint.sqlite").exists()


# --- JSONL -----------------------------------------------------------------------------------


async def test_a_jsonl_file_applies_flat_and_api_shaped_records_and_fails_bad_ones_alone(
    emu: Emulator, tmp_path: Path
) -> None:
    def api(case_id: str, *fields: tuple[str, dict[str, Any]]) -> str:
        return json.dumps({"caseId": case_id, "fields": [{"id": i, "value": v} for i, v in fields]})

    records = [
        json.dumps(
            {
                "case_id": case(1),
                "priority": "High",
                "order_total": 12.5,
                "vip": True,
                "due_date": "2024-05-01T12:00:00Z",
                "notes": QUOTED_NOTES,
            },
            ensure_ascii=False,
        ),
        json.dumps({"case_id": case(2), "Order Total": 7, "VIP": False, "due_date": 1714564800}),
        api(
            case(3), ("priority", {"stringValue": "urgent"}), ("order_total", {"doubleValue": 3.5})
        ),
        api(case(4), ("priority", {"emptyValue": {}}), ("account_code", {"stringValue": "ACME-4"})),
        json.dumps({"case_id": case(5), "priority": "high", "colour": "red"}),
        f'{{"case_id": "{case(6)}", "priority":',  # line 6: not JSON
        json.dumps({"case_id": case(7), "vip": "perhaps"}),
        json.dumps({"case_id": case(8), "priority": None, "order_total": "12.5"}),
        json.dumps({"case_id": case(9), "order_total": True}),
        json.dumps({"priority": "high"}),
        api(case(11), ("colour", {"stringValue": "red"})),
    ]
    path = tmp_path / "records.jsonl"
    write_jsonl(path, records)
    before = snapshot(emu)

    result, summary = await run_job(emu, path)

    assert result.returncode == 1, result.stderr
    assert values(emu, case(1)) == {
        **before[case(1)],
        "priority": {"stringValue": "high"},
        "order_total": {"doubleValue": 12.5},
        "vip": {"booleanValue": True},
        "due_date": ISO_NOON,
        "notes": {"stringValue": QUOTED_NOTES},
    }
    assert values(emu, case(2)) == {
        **before[case(2)],
        "order_total": {"doubleValue": 7.0},
        "vip": {"booleanValue": False},
        "due_date": ISO_NOON,
    }
    assert values(emu, case(3))["priority"] == {"stringValue": "urgent"}
    assert values(emu, case(3))["order_total"] == {"doubleValue": 3.5}
    assert "priority" not in values(emu, case(4))  # emptyValue cleared it
    assert values(emu, case(4))["account_code"] == {"stringValue": "ACME-4"}
    assert values(emu, case(8)) == {**before[case(8)], "order_total": {"doubleValue": 12.5}}
    for index in (5, 6, 7, 9, 11):
        assert values(emu, case(index)) == before[case(index)], index
        assert updates_of(emu, case(index)) == [], index

    failures = {
        line_of(f["error"]["message"]): f for f in read_jsonl(tmp_path / "records.failures.jsonl")
    }
    assert sorted(failures) == [5, 6, 7, 9, 10, 11]
    codes = {line: f["error"]["code"] for line, f in failures.items()}
    assert codes == {
        5: "unknown_column",
        6: "unreadable_record",
        7: "invalid_boolean",
        9: "invalid_type",
        10: "missing_case_id",
        11: "unknown_column",
    }
    assert "colour" in failures[5]["error"]["message"]
    assert "colour" in failures[11]["error"]["message"]
    for line in (5, 7, 9, 10, 11):
        assert without_errors(failures[line]) == json.loads(records[line - 1]), line
    assert failures[6]["raw"] == records[5]  # unreadable: its text kept
    assert summary is not None
    assert (summary["read"], summary["applied"], summary["failed"]) == (11, 5, 6)


async def test_the_failures_jsonl_fed_back_as_input_fails_the_same_records_again(
    emu: Emulator, tmp_path: Path
) -> None:
    records = [
        json.dumps({"case_id": case(1), "vip": "yes"}),
        json.dumps({"case_id": case(2), "vip": "perhaps"}),
        json.dumps({"case_id": case(3), "colour": "red"}),
        json.dumps({"caseId": case(4), "fields": [{"id": "vip", "value": {"stringValue": "x"}}]}),
    ]
    path = tmp_path / "first.jsonl"
    write_jsonl(path, records)
    first, _ = await run_job(emu, path)
    assert first.returncode == 1, first.stderr
    failures = read_jsonl(tmp_path / "first.failures.jsonl")
    assert [without_errors(f) for f in failures] == [json.loads(r) for r in records[1:]]
    updates_before = len(emu.service.updates)

    again, summary = await run_job(
        emu,
        tmp_path / "first.failures.jsonl",
        *("--checkpoint", str(tmp_path / "again.sqlite")),
        *("--failures", str(tmp_path / "again.failures.jsonl")),
    )

    assert again.returncode == 1, again.stderr
    refailed = read_jsonl(tmp_path / "again.failures.jsonl")
    assert [without_errors(f) for f in refailed] == [without_errors(f) for f in failures]
    assert [f["error"]["code"] for f in refailed] == [f["error"]["code"] for f in failures]
    assert len(emu.service.updates) == updates_before
    assert summary is not None
    assert (summary["read"], summary["failed"]) == (3, 3)


# --- dry run ---------------------------------------------------------------------------------


async def test_a_dry_run_writes_the_failures_it_would_write_and_sends_nothing(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "check.csv"
    rows = [
        [case(1), "high", "1"],
        [case(2), "legacy", "2"],
        [case(3), "low", "x"],
        [case(4), "", ""],
    ]
    write_csv(path, ["case_id", "priority", "order_total"], rows)
    before = snapshot(emu)

    result = await run_cli("run", "--input", str(path), "--dry-run", *fast_run_flags(emu.url))

    assert result.returncode == 1, result.stderr
    assert "1 rows to send, 2 would fail" in result.stderr
    # At --rate 1000 less the default 20% headroom left to agents.
    assert "; under 1 s at 800/s burst 100 (--rate 1000 less 20% headroom)." in result.stderr
    failures = read_csv(tmp_path / "check.failures.dry-run.csv")
    assert [(f["case_id"], f["error_code"]) for f in failures] == [
        (case(2), "inactive_option"),
        (case(3), "invalid_number"),
    ]
    assert update_calls(emu) == 0
    assert snapshot(emu) == before
    assert not (tmp_path / "check.checkpoint.sqlite").exists()


async def test_a_dry_run_of_clean_rows_exits_zero(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "clean.csv"
    write_csv(path, ["case_id", "priority"], [[case(1), "high"], [case(2), "Low"]])

    result = await run_cli("run", "--input", str(path), "--dry-run", *fast_run_flags(emu.url))

    assert result.returncode == 0, result.stderr
    assert "2 rows to send, 0 would fail" in result.stderr
    assert read_csv(tmp_path / "clean.failures.dry-run.csv") == []
    assert update_calls(emu) == 0


# --- exit codes, configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "env", "named"),
    [
        pytest.param(["--rate", "0"], {}, "--rate", id="flag"),
        pytest.param([], {"BULKUPDATE_BURST": "many"}, "BULKUPDATE_BURST", id="environment"),
        pytest.param(["{job}"], {}, "colour", id="job-file-key"),
    ],
)
async def test_a_bad_setting_exits_2_before_any_write_and_names_the_setting(
    emu: Emulator, tmp_path: Path, arguments: list[str], env: dict[str, str], named: str
) -> None:
    path = tmp_path / "fine.csv"
    write_csv(path, ["case_id", "priority"], [[case(1), "high"]])
    job = tmp_path / "job.toml"
    job.write_text('domain_id = "demo"\ncolour = "red"\n')
    arguments = [a.format(job=job) for a in arguments]

    # Last on the line, so a bad flag overrides the good one in fast_run_flags.
    result = await run_cli(
        "run", "--input", str(path), *fast_run_flags(emu.url), *arguments, env=env
    )

    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert update_calls(emu) == 0


async def test_a_run_without_a_domain_id_exits_2_and_says_so(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "fine.csv"
    write_csv(path, ["case_id", "priority"], [[case(1), "high"]])

    result = await run_cli("run", "--input", str(path), "--endpoint-url", emu.url)

    assert result.returncode == 2, result.stderr
    assert "--domain-id" in result.stderr
    assert update_calls(emu) == 0


@pytest.mark.parametrize(
    ("env", "flags", "rate"),
    [
        pytest.param({}, [], "3", id="job-file"),
        pytest.param({"BULKUPDATE_RATE": "7"}, [], "7", id="environment-over-job-file"),
        pytest.param({"BULKUPDATE_RATE": "7"}, ["--rate", "11"], "11", id="flag-over-both"),
    ],
)
async def test_flags_override_the_environment_which_overrides_the_job_file(
    emu: Emulator, tmp_path: Path, env: dict[str, str], flags: list[str], rate: str
) -> None:
    job = tmp_path / "job.toml"
    job.write_text('domain_id = "demo"\nrate = 3\nburst = 1\n')
    path = tmp_path / "rows.csv"
    write_csv(path, ["case_id", "vip"], [[case(i), "yes"] for i in range(1, 6)])

    # The dry run's estimate shows the rate in force; the domain comes from the job file alone.
    result = await run_cli(
        "run",
        *(str(job), "--input", str(path), "--endpoint-url", emu.url, "--dry-run", *flags),
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert f"burst 1 (--rate {rate} less 20% headroom)" in result.stderr


# --- order -----------------------------------------------------------------------------------


async def test_rows_for_one_case_apply_in_input_order(tmp_path: Path) -> None:
    # Random service time (median 2 ms, p99 20 ms) would reorder calls that raced each other.
    faults = FaultConfig(latency_median_ms=2, latency_p99_ms=20)
    rows: list[list[str]] = []
    expected: dict[str, list[float]] = {case(i): [] for i in (1, 2, 3)}
    for step in range(15):
        for index in (1, 2, 3):
            cell = "oops" if (index, step) == (1, 6) else str(step * 10 + index)
            rows.append([case(index), cell])
            if cell != "oops":
                expected[case(index)].append(float(cell))
    path = tmp_path / "order.csv"
    write_csv(path, ["case_id", "order_total"], rows)
    async with running_emulator(emulator_config(faults=faults)) as emu:
        result, _ = await run_job(emu, path, "--concurrency", "16")

        assert result.returncode == 1, result.stderr  # the one "oops"
        for case_id, totals in expected.items():
            sent = [fields[0]["value"]["doubleValue"] for fields in updates_of(emu, case_id)]
            assert sent == totals, case_id
            assert values(emu, case_id)["order_total"] == {"doubleValue": totals[-1]}


async def test_an_input_that_breaks_mid_run_aborts_resumably_with_a_summary(
    emu: Emulator, tmp_path: Path
) -> None:
    source = tmp_path / "cut.csv.gz"
    write_csv(
        source,
        ["case_id", "order_total"],
        [[f"case-{i % 5 + 1:07d}", str(i)] for i in range(20_000)],
    )
    whole = source.read_bytes()
    source.write_bytes(whole[: len(whole) * 2 // 3])  # a copy cut short
    summary = tmp_path / "summary.json"
    result = await run_cli(
        "run", "--input", str(source), *fast_run_flags(emu.url), "--summary", str(summary)
    )
    assert result.returncode == EXIT_ABORTED, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(summary.read_text())
    assert report["end"] == "aborted"
    assert report["abort"].startswith("InputError:")
    assert "run the same command to resume" in result.stderr
    assert report["applied"] == len(emu.service.updates) > 0
    assert (tmp_path / "cut.failures.csv").is_file()


async def test_a_failures_file_fixed_and_fed_back_never_undoes_a_later_row_of_its_case(
    emu: Emulator, tmp_path: Path
) -> None:
    header = ["case_id", "priority", "order_total", "notes"]
    rows = [
        [case(1), "high", "ten", "first"],  # fails: its order_total is no number
        [case(1), "low", "7", ""],  # applied later: priority and order_total, not notes
        [case(2), "urgent", "xyz", "only"],  # fails; nothing later in its case
    ]
    path = tmp_path / "jobs.csv"
    write_csv(path, header, rows)
    first, _ = await run_job(emu, path)
    assert first.returncode == 1, first.stderr
    failures = read_csv(tmp_path / "jobs.failures.csv")
    assert [f["case_id"] for f in failures] == [case(1), case(2)]
    overtaken, alone = failures
    assert (overtaken["priority"], overtaken["order_total"], overtaken["notes"]) == (
        "",
        "",
        "first",
    )
    assert "line 3 of this case" in overtaken["error_message"]
    assert (alone["priority"], alone["order_total"]) == ("urgent", "xyz")

    # The user fixes what is still wrong and feeds the file back.
    fixed = tmp_path / "fixed.csv"
    alone["order_total"] = "9"
    cells = [[f[name] for name in header] for f in (overtaken, alone)]
    write_csv(fixed, header, cells)
    again, _ = await run_job(emu, fixed)
    assert again.returncode == 0, again.stderr

    one, two = values(emu, case(1)), values(emu, case(2))
    assert one["priority"] == {"stringValue": "low"}, "the later row's value stands"
    assert one["order_total"] == {"doubleValue": 7.0}
    assert one["notes"] == {"stringValue": "first"}
    assert two["priority"] == {"stringValue": "urgent"}
    assert two["order_total"] == {"doubleValue": 9.0}


async def test_a_jsonl_failures_file_leaves_out_the_keys_a_later_row_of_its_case_set(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.jsonl"
    write_jsonl(
        path,
        [
            json.dumps({"case_id": case(3), "priority": "high", "order_total": "bad"}),
            json.dumps({"case_id": case(3), "priority": "medium"}),
        ],
    )
    first, _ = await run_job(emu, path)
    assert first.returncode == 1, first.stderr
    [failed] = read_jsonl(tmp_path / "jobs.failures.jsonl")
    assert failed["case_id"] == case(3)
    assert "priority" not in failed, "the later row set it"
    assert failed["order_total"] == "bad"
    assert "left out" in failed["error"]["message"]


async def test_a_failure_budget_stops_the_run_and_a_higher_one_lets_the_job_finish(
    emu: Emulator, tmp_path: Path
) -> None:
    header = ["case_id", "order_total"]
    rows = []
    for i in range(1, 61):
        if i % 10 == 3:
            rows.append(["case-9999999", str(i)])  # the service rejects it: no such case
        elif i % 10 == 7:
            rows.append([case(i), "lots"])  # rejected locally
        else:
            rows.append([case(i), str(i)])
    path = tmp_path / "budget.csv"
    write_csv(path, header, rows)
    # One row in flight at a time, so the run stops at exactly the 4th failure (a group's rows
    # would resolve together and could pass the budget by a group).
    flags = ("--concurrency", "1", "--batch", "off")
    stopped, summary = await run_job(emu, path, *flags, "--max-failures", "3")
    assert stopped.returncode == EXIT_ABORTED, stopped.stderr
    assert summary is not None
    assert summary["abort"].startswith("FailureBudgetExceeded: failure budget exceeded")
    assert summary["failed"] == 4
    assert summary["pending"] > 0, "rows not yet sent stay pending"
    assert "--max-failures" in summary["fix"]

    again, summary = await run_job(emu, path, *flags, "--max-failures", "20%")
    assert again.returncode == 1, again.stderr  # finished, with failed rows
    assert summary is not None
    assert (summary["job_applied"], summary["job_failed"]) == (48, 12)
    assert len({u["caseId"] for u in emu.service.updates}) == 48


async def test_a_dry_run_says_whether_the_local_failures_alone_spend_the_budget(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "budget.csv"
    rows = [[case(i), "x" if i in (3, 5, 9) else str(i)] for i in range(1, 11)]
    line_of_third_bad = write_csv(path, ["case_id", "order_total"], rows)[8]
    base = ("run", "--input", str(path), "--dry-run", *fast_run_flags(emu.url))

    spent = await run_cli(*base, "--max-failures", "2")
    within = await run_cli(*base, "--max-failures", "3")

    assert spent.returncode == within.returncode == 1
    expected = (
        f"the failure budget (--max-failures 2) would stop the run at line {line_of_third_bad}"
    )
    assert expected in spent.stderr
    assert "the local failures alone stay within --max-failures 3" in within.stderr
    assert update_calls(emu) == 0
