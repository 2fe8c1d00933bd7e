"""Every job file in jobs/ runs against the emulator as shipped (only the endpoint, domain and
pacing overridden), and `bulkupdate demo` works from a bare folder. Real subprocesses."""

from __future__ import annotations

import asyncio
import csv
import json
import shlex
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import EmulatorConfig, no_quotas, running_emulator
from bulkupdate.emulator.seed import demo_case_id
from bulkupdate.emulator.server import Emulator
from bulkupdate.exits import EXIT_FAILED_ROWS, EXIT_OK, EXIT_USAGE
from tests.functional.runner import cli_env, fast_run_flags, run_cli

JOBS = Path(__file__).resolve().parents[2] / "jobs"
DOMAIN = "demo"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(
        EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=150)
    ) as emulator:
        yield emulator


def value(emu: Emulator, case_id: str, field_id: str) -> Any:
    union = emu.service.domains[DOMAIN].cases[case_id].values.get(field_id)
    return next(iter(union.values())) if union else None


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def check_demo(emu: Emulator, folder: Path) -> None:
    failed = read_csv(folder / "demo.failures.csv")
    assert sorted(row["error_code"] for row in failed) == [
        "ResourceNotFoundException",
        "invalid_boolean",
        "invalid_datetime",
        "invalid_number",
        "unknown_option",
    ]
    # Each case holds its last good row: P-codes mapped, renamed columns on their fields.
    failed_lines = {tuple(row.values())[:5] for row in failed}
    last: dict[str, dict[str, str]] = {}
    for row in read_csv(JOBS / "demo.csv"):
        if tuple(row.values()) not in failed_lines:
            last[row["case_id"]] = row
    codes = {"P1": "urgent", "P2": "high", "P3": "medium", "P4": "low"}
    assert len(last) == 147  # of 150 cases: 58 and 129 have only a bad row, 92 none
    for case_id, row in last.items():
        assert value(emu, case_id, "priority") == codes[row["Priority"]]
        assert value(emu, case_id, "order_total") == float(row["Order Value"])
        assert value(emu, case_id, "vip") is (row["VIP?"] == "yes")
        assert value(emu, case_id, "due_date") == f"{row['Due']}T00:00:00.000Z"


def check_legacy_crm_migration(emu: Emulator, folder: Path) -> None:
    export = read_csv(JOBS / "legacy-crm-export.csv")
    codes = {"Crit": "urgent", "Hi": "high", "Med": "medium", "Lo": "low"}
    for row in export:  # keyed by the legacy ticket (match_field): CRM-70001 is case 1
        case_id = demo_case_id(int(row["Legacy Ticket"].removeprefix("CRM-")) - 70000)
        assert value(emu, case_id, "priority") == codes[row["Prio"]]
        assert value(emu, case_id, "vip") is (row["Key Account"] == "Y")
        assert value(emu, case_id, "order_total") == float(row["Order Amount"])
        assert value(emu, case_id, "account_code") == row["Account"]
        assert value(emu, case_id, "notes") == (row["Agent Notes"] or None)
    assert len(export) == len(emu.service.updates), "one call per row, nothing more"
    assert not (folder / "legacy-crm-export.failures.csv").read_text().strip().count("\n")


def check_nightly_correction(emu: Emulator, folder: Path) -> None:
    listed = {row["case_id"] for row in read_csv(JOBS / "nightly-correction-cases.csv")}
    cases = emu.service.domains[DOMAIN].cases
    assert {cid for cid in cases if value(emu, cid, "priority") == "high"} == listed
    assert all(
        u["fields"] == [{"id": "priority", "value": {"stringValue": "high"}}]
        for u in emu.service.updates
    )


# Job file -> (its exit code as shipped, what the domain holds afterwards).
EXPECTED: dict[str, tuple[int, Callable[[Emulator, Path], None]]] = {
    "demo.toml": (EXIT_FAILED_ROWS, check_demo),
    "legacy-crm-migration.toml": (EXIT_OK, check_legacy_crm_migration),
    "nightly-correction.toml": (EXIT_OK, check_nightly_correction),
}


def test_every_job_file_has_a_test() -> None:
    assert sorted(path.name for path in JOBS.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_a_shipped_job_file_runs_against_the_emulator(
    name: str, emu: Emulator, tmp_path: Path
) -> None:
    code, check = EXPECTED[name]
    summary = tmp_path / "summary.json"
    result = await run_cli(
        "run",
        str(JOBS / name),
        *fast_run_flags(emu.url, domain_id=DOMAIN),
        *("--state-dir", str(tmp_path), "--summary", str(summary)),
    )
    assert result.returncode == code, result.stderr
    assert json.loads(summary.read_text())["end"] == "finished"
    assert sorted(p.name for p in tmp_path.glob("*.checkpoint.sqlite"))  # in the state dir
    check(emu, tmp_path)


async def test_a_dry_run_of_every_job_file_sends_nothing(emu: Emulator, tmp_path: Path) -> None:
    for name in sorted(EXPECTED):
        result = await run_cli(
            "run",
            str(JOBS / name),
            "--dry-run",
            *fast_run_flags(emu.url, domain_id=DOMAIN),
            *("--state-dir", str(tmp_path)),
        )
        assert result.returncode in (EXIT_OK, EXIT_FAILED_ROWS), result.stderr
    assert emu.service.updates == []


async def test_the_demo_runs_the_sample_job_and_says_where_its_files_went_and_how_to_look(
    tmp_path: Path,
) -> None:
    result = await run_cli("demo", "--dir", "out", cwd=tmp_path, timeout_s=90)
    assert result.returncode == 0, result.stderr
    assert "the demo exits 0" in result.stderr, "it says why it exits 0 with rows failed"
    # The command it advises runs as printed, where it was printed, with no bulkupdate on PATH.
    advised = result.stderr.partition("  what the job did: ")[2].splitlines()[0]
    status = await asyncio.create_subprocess_exec(
        *shlex.split(advised),
        cwd=tmp_path,
        env=cli_env({"PATH": "/usr/bin:/bin"}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    shown, trouble = await asyncio.wait_for(status.communicate(), 60)
    assert status.returncode == 0, (advised, trouble.decode())
    assert "applied: 175, failed: 5" in shown.decode()
    out = tmp_path / "out"
    events = [json.loads(line) for line in result.stdout.splitlines()]  # piped: JSON lines
    assert {e["job"] for e in events} == {"demo"}
    assert len({e["run_id"] for e in events}) == 1
    finished = next(e for e in events if e["event"] == "run_finished")
    assert (finished["applied"], finished["failed"]) == (175, 5)
    assert finished["throttles"] > 0, "the demo's quota is below its rate: pacing shows"
    assert any(e["event"] == "progress" for e in events)
    for name in ("demo.failures.csv", "demo.checkpoint.sqlite", "demo.summary.json"):
        assert (out / name).exists()
        assert f"out/{name}" in result.stderr
    assert len(read_csv(out / "demo.failures.csv")) == 5


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ('[set]\nnope = "x"\n', "bad.toml: set.nope: names no field"),
        ('[set]\norder_total = "lots"\n', "bad.toml: set.order_total: 'lots' is not a decimal"),
        ("[values.priority]\nHi = [1]\n", "bad.toml: values.priority.Hi: [1] must be a string"),
        ('[columns]\ncase_id = "priority"\nPrio = "Nowhere"\n', "'Nowhere'"),
        ('colums = {Prio = "priority"}\n', "bad.toml: colums: unknown setting"),
    ],
)
async def test_a_bad_job_file_stops_before_any_write_naming_the_key(
    tables: str, message: str, emu: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "rows.csv").write_text("case_id,Prio\ncase-0000001,Hi\n", encoding="utf-8")
    job = tmp_path / "bad.toml"
    job.write_text(f'input = "rows.csv"\ndomain_id = "demo"\n{tables}', encoding="utf-8")
    result = await run_cli("run", str(job), *fast_run_flags(emu.url))
    assert result.returncode == EXIT_USAGE, result.stderr
    assert message in result.stderr
    assert emu.service.updates == []
    assert not list(tmp_path.glob("*.checkpoint.sqlite"))
