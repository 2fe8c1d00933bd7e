"""`bulkupdate run --match-field` as a real subprocess against the in-process emulator over real
HTTP: rows keyed by a legacy id (Text) or a ticket number (Number) find their cases with
SearchCases; unmatched and ambiguous keys fail their rows; repeated keys keep input order; a
killed run resumes without searching again; shards, the index lag and the dry run."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import EmulatorConfig, no_quotas, running_emulator
from bulkupdate.emulator.server import Emulator
from bulkupdate.exits import EXIT_FAILED_ROWS, EXIT_OK, EXIT_USAGE
from tests.functional.runner import cli_env, fast_run_flags, run_cli

CASES = 60
DOMAIN = "demo"


def case_id(index: int) -> str:
    return f"case-{index:07d}"


def legacy(index: int) -> str:
    return f"T-{index}"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """Demo cases 1..CASES, each with legacy_id T-<n> and ticket_no 1000+n; cases 5 and 6 share
    T-DUP (and no T-5/T-6)."""
    async with running_emulator(
        EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES)
    ) as emulator:
        service = emulator.service
        domain = service.domains[DOMAIN]
        service.add_field(domain, "Legacy id", "Text", field_id="legacy_id")
        service.add_field(domain, "Ticket number", "Number", field_id="ticket_no")
        for index in range(1, CASES + 1):
            values = domain.cases[case_id(index)].values
            values["legacy_id"] = {"stringValue": "T-DUP" if index in (5, 6) else legacy(index)}
            values["ticket_no"] = {"doubleValue": float(1000 + index)}
        yield emulator


def write_csv(path: Path, rows: Sequence[tuple[str, str]], key_column: str = "legacy") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([key_column, "account_code"])
        writer.writerows(rows)
    return path


def value(emu: Emulator, index: int, field_id: str = "account_code") -> Any:
    union = emu.service.domains[DOMAIN].cases[case_id(index)].values.get(field_id)
    return None if union is None else next(iter(union.values()))


def searches(emu: Emulator) -> int:
    return sum(emu.counters["SearchCases"].values())


def failures(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def match_flags(url: str, *extra: str) -> list[str]:
    return [
        *fast_run_flags(url),
        *("--case-id-column", "legacy", "--match-field", "legacy_id"),
        *("--search-rate", "1000", "--search-burst", "100", "--match-retry-s", "0"),
        *extra,
    ]


async def test_rows_keyed_by_a_legacy_id_update_their_cases_and_bad_keys_fail_alone(
    emu: Emulator, tmp_path: Path
) -> None:
    rows = [
        (legacy(1), "A1"),
        (legacy(2), "B1"),
        ("T-404", "X"),  # no case
        ("T-DUP", "Y"),  # cases 5 and 6
        (legacy(1), "A2"),  # repeated key: applied after A1
        (legacy(2), "B2"),
        (legacy(1), "A3"),
    ]
    source = write_csv(tmp_path / "crm.csv", rows)
    summary = tmp_path / "summary.json"

    result = await run_cli(
        "run", "--input", str(source), *match_flags(emu.url, "--summary", str(summary))
    )

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert (value(emu, 1), value(emu, 2)) == ("A3", "B2")
    assert value(emu, 5) is None  # ambiguous: neither case touched
    assert value(emu, 6) is None
    case1 = [
        u["fields"][0]["value"]["stringValue"]
        for u in emu.service.updates
        if u["caseId"] == case_id(1)
    ]
    assert case1 == ["A1", "A2", "A3"]
    failed = {row["legacy"]: row for row in failures(tmp_path / "crm.failures.csv")}
    assert set(failed) == {"T-404", "T-DUP"}
    assert failed["T-404"]["error_code"] == "case_not_found_by_key"
    assert failed["T-DUP"]["error_code"] == "ambiguous_key"
    assert "case-0000005" in failed["T-DUP"]["error_message"]
    assert "case-0000006" in failed["T-DUP"]["error_message"]
    assert failed["T-404"]["account_code"] == "X"  # the row as it was: valid input again
    report = json.loads(summary.read_text())
    assert (report["keys_found"], report["keys_not_found"], report["keys_ambiguous"]) == (2, 1, 1)
    assert searches(emu) == 1  # four distinct keys, one SearchCases call


async def test_rows_keyed_by_a_number_field_match_however_the_number_is_spelt(
    emu: Emulator, tmp_path: Path
) -> None:
    rows = [("1007", "N7"), ("1008.0", "N8"), ("1007.00", "N7b"), ("99", "none"), ("abc", "bad")]
    source = write_csv(tmp_path / "numbers.csv", rows, key_column="ticket")

    result = await run_cli(
        "run",
        "--input",
        str(source),
        *fast_run_flags(emu.url),
        *("--case-id-column", "ticket", "--match-field", "Ticket number", "--match-retry-s", "0"),
    )

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert (value(emu, 7), value(emu, 8)) == ("N7b", "N8")
    codes = {
        row["ticket"]: row["error_code"] for row in failures(tmp_path / "numbers.failures.csv")
    }
    assert codes == {"99": "case_not_found_by_key", "abc": "invalid_number"}


async def test_distinct_keys_cost_at_most_one_search_per_five_rows(
    emu: Emulator, tmp_path: Path
) -> None:
    rows = [(legacy(i), f"D{i}") for i in range(1, CASES + 1) if i not in (5, 6)]
    source = write_csv(tmp_path / "distinct.csv", rows)

    result = await run_cli("run", "--input", str(source), *match_flags(emu.url))

    assert result.returncode == EXIT_OK, result.stderr
    assert all(value(emu, i) == f"D{i}" for i in range(1, CASES + 1) if i not in (5, 6))
    assert searches(emu) <= len(rows) / 5


@pytest.mark.parametrize(
    ("name", "says"),
    [("nope", "names no field"), ("vip", "type Boolean")],
)
async def test_a_match_field_that_cannot_match_stops_the_run_naming_the_setting(
    emu: Emulator, tmp_path: Path, name: str, says: str
) -> None:
    source = write_csv(tmp_path / "crm.csv", [(legacy(1), "A")])

    result = await run_cli(
        "run",
        "--input",
        str(source),
        *fast_run_flags(emu.url),
        *("--case-id-column", "legacy", "--match-field", name),
    )

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "--match-field" in result.stderr
    assert says in result.stderr
    assert not emu.service.updates


async def test_a_key_the_lagging_index_does_not_show_yet_is_found_on_its_retry(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.service.index.lag_s = 1.0
    domain = emu.service.domains[DOMAIN]
    emu.service.index.changing(DOMAIN, domain.cases[case_id(9)])
    domain.cases[case_id(9)].values["legacy_id"] = {"stringValue": "T-NEW"}
    emu.service.index.changed(DOMAIN, domain.cases[case_id(9)], emu.service.wall_s())
    source = write_csv(tmp_path / "lag.csv", [("T-NEW", "fresh"), (legacy(1), "old")])

    without = await run_cli("run", "--input", str(source), *match_flags(emu.url))
    retried = await run_cli(
        "run",
        "--input",
        str(source),
        *match_flags(emu.url, "--match-retry-s", "1.5"),
        "--restart",
    )

    assert without.returncode == EXIT_FAILED_ROWS, without.stderr
    assert retried.returncode == EXIT_OK, retried.stderr
    assert value(emu, 9) == "fresh"


async def test_a_dry_run_searches_the_keys_reports_bad_ones_and_sends_nothing(
    emu: Emulator, tmp_path: Path
) -> None:
    rows = [(legacy(1), "A"), ("T-404", "X"), ("T-DUP", "Y"), (legacy(2), "B")]
    source = write_csv(tmp_path / "dry.csv", rows)

    result = await run_cli("run", "--input", str(source), *match_flags(emu.url, "--dry-run"))

    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert "2 rows to send, 2 would fail" in result.stderr
    assert "1 match no case and 1 match several" in result.stderr
    assert not emu.service.updates
    codes = sorted(r["error_code"] for r in failures(tmp_path / "dry.failures.dry-run.csv"))
    assert codes == ["ambiguous_key", "case_not_found_by_key"]


async def test_shards_route_by_key_and_together_apply_every_row(
    emu: Emulator, tmp_path: Path
) -> None:
    rows = [(legacy(i % 20 + 7), f"S{n}") for n, i in enumerate(range(80))]
    source = write_csv(tmp_path / "sharded.csv", rows)

    results = await asyncio.gather(
        *(
            run_cli("run", "--input", str(source), *match_flags(emu.url, "--shard", f"{i}/3"))
            for i in range(3)
        )
    )

    assert [r.returncode for r in results] == [EXIT_OK] * 3, [r.stderr for r in results]
    last = {key: code for key, code in rows}
    for key, code in last.items():
        assert value(emu, int(key[2:])) == code
    assert len(emu.service.updates) == len(rows)


async def run_until_killed(
    emu: Emulator, argv: list[str], env: dict[str, str], updates: int
) -> None:
    """Start the command, SIGKILL it once the service applied `updates` updates."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkupdate",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=cli_env(env),
    )
    try:
        for _ in range(3000):
            if len(emu.service.updates) >= updates or process.returncode is not None:
                break
            await asyncio.sleep(0.01)
        assert process.returncode is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("store", ["sqlite", "dynamodb"])
async def test_a_killed_run_resumes_without_searching_again_for_keys_it_resolved(
    emu: Emulator, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    keys = [i for i in range(1, CASES + 1) if i not in (5, 6)]
    rows = [(legacy(i), f"R{n}-{i}") for n in range(3) for i in keys]  # every key, three times
    source = write_csv(tmp_path / "resume.csv", rows)
    # The emulator answers in milliseconds: the killed run's cases wait 1.5 s, not 7.
    env = {"BULKUPDATE_CALL_TIMEOUT": "1", "BULKUPDATE_SETTLE_PERIOD": "1.5"}
    flags = match_flags(emu.url, "--rate", "80", "--burst", "1")
    if store == "dynamodb":
        moto: str = request.getfixturevalue("moto_url")
        # A short lease: the resume waits out the killed run's before it takes the job over.
        env |= {"AWS_ENDPOINT_URL_DYNAMODB": moto, "BULKUPDATE_CHECKPOINT_LEASE": "2"}
        flags += ["--checkpoint", f"dynamodb://lookup-{tmp_path.name[-12:]}"]
    argv = ["run", "--input", str(source), *flags]

    await run_until_killed(emu, argv, env, updates=20)
    await asyncio.sleep(0.2)  # let calls the killed run had in flight land
    searched = searches(emu)
    applied_before = len(emu.service.updates)
    resumed = await run_cli(*argv, env=env, timeout_s=60)

    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert searched == 6  # 58 distinct keys: 6 calls, all before the kill
    assert searches(emu) == searched, "the resumed run searched keys the first one had resolved"
    assert applied_before < len(rows)
    for i in keys:
        assert value(emu, i) == f"R2-{i}"
