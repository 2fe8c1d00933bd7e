"""`bulkupdate run --batch auto` as a real subprocess against the emulator over real HTTP: rows
with the same values go as BatchUpdateCase calls (status top-level), mixed patches and repeated
cases keep their order, per-case answers, a refused group isolated, systemic errors, a SIGKILL
mid-run resumed with no case applied twice (SQLite and DynamoDB), and shards. The emulator's
update log is the proof: each entry names the token of the batch call that applied it."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import Emulator, FaultConfig, Quota, no_quotas
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_OK
from tests.functional.runner import cli_env
from tests.functional.test_run_dynamodb import aws_env, table_name
from tests.functional.test_run_resume import child, emulator, wait_until
from tests.motoserver import running_moto

FIELDS = ("case_id", "status", "priority")


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with running_moto() as url:
        yield url


def case(index: int) -> str:
    return f"case-{index:07d}"


def write(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = FIELDS) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def argv(folder: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bulkupdate",
        "run",
        "--input",
        str(folder / "rows.csv"),
        "--domain-id",
        "demo",
        "--endpoint-url",
        url,
        "--checkpoint",
        str(folder / "rows.checkpoint.sqlite"),
        "--summary",
        str(folder / "summary.json"),
        "--no-progress",
        "--log-format",
        "json",
        "--headroom",
        "0",
        *extra,
    ]


async def run(folder: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    async with child(argv(folder, url, *extra), cli_env(env), folder) as process:
        return await process.wait(60)


def batch_updates(emu: Emulator) -> list[dict[str, Any]]:
    return [u for u in emu.service.updates if "clientToken" in u]


def calls(emu: Emulator, operation: str) -> int:
    return sum(emu.counters[operation].values())


def failures(folder: Path) -> dict[str, str]:
    with (folder / "rows.failures.csv").open(newline="", encoding="utf-8") as handle:
        return {row["case_id"]: row["error_code"] for row in csv.DictReader(handle)}


FAST = ("--rate", "1000", "--burst", "100", "--batch-rate", "1000", "--batch-burst", "100")


async def test_a_uniform_correction_goes_in_full_batch_calls_with_status_top_level(
    tmp_path: Path,
) -> None:
    rows = [(case(i), "closed", "high") for i in range(1, 501)]
    write(tmp_path / "rows.csv", rows)
    async with emulator(500) as emu:
        done = await run(tmp_path, emu.url, *FAST)

        assert done.returncode == EXIT_OK, done.stderr
        assert calls(emu, "BatchUpdateCase") <= len(rows) / 50
        assert calls(emu, "UpdateCase") == 0
        applied = batch_updates(emu)
        assert Counter(u["caseId"] for u in applied) == Counter(r[0] for r in rows)
        cases = emu.service.domains["demo"].cases
        assert all(cases[r[0]].values["status"] == {"stringValue": "closed"} for r in rows)
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["cases_per_batch"] >= 50
        assert summary["batch_calls"] == calls(emu, "BatchUpdateCase")


async def test_mixed_patches_and_repeated_cases_apply_in_input_order(tmp_path: Path) -> None:
    # 40 cases, each listed 3 times with a rising priority; half the rows share their patch.
    levels = ("low", "medium", "high")
    rows = [(case(i), "open", levels[n]) for n in range(3) for i in range(1, 41)]
    rows += [(case(i), "", "urgent") for i in range(41, 61)]
    write(tmp_path / "rows.csv", rows)
    async with emulator(60) as emu:
        done = await run(tmp_path, emu.url, *FAST)

        assert done.returncode == EXIT_OK, done.stderr
        per_case: dict[str, list[str]] = {}
        for update in emu.service.updates:
            values = {f["id"]: f["value"]["stringValue"] for f in update["fields"]}
            per_case.setdefault(update["caseId"], []).append(values["priority"])
        assert all(per_case[case(i)] == list(levels) for i in range(1, 41))
        assert all(per_case[case(i)] == ["urgent"] for i in range(41, 61))
        assert calls(emu, "BatchUpdateCase") < len(rows) / 5


async def test_per_case_answers_retry_throttled_and_conflicting_cases_and_fail_unknown_ones(
    tmp_path: Path,
) -> None:
    rows = [(case(i), "", "high") for i in range(1, 201)] + [("case-missing", "", "high")]
    write(tmp_path / "rows.csv", rows)
    faults = FaultConfig(
        case_throttle_probability=0.2, case_conflict_probability=0.1, fault_calls=3
    )
    async with emulator(200, faults=faults) as emu:
        done = await run(tmp_path, emu.url, *FAST)

        assert done.returncode == EXIT_FAILED_ROWS, done.stderr
        assert failures(tmp_path) == {"case-missing": "CASE_NOT_FOUND"}
        applied = Counter(u["caseId"] for u in emu.service.updates)
        assert applied == Counter(case(i) for i in range(1, 201)), "each case applied once"
        summary = (tmp_path / "summary.json").read_text()
        assert '"case_throttles": 0' not in summary
        assert '"case_retries": 0' not in summary


async def test_a_group_refused_as_a_whole_fails_only_its_bad_row(tmp_path: Path) -> None:
    bad = "x" * 600  # longer than any case id: the whole BatchUpdateCase call is refused
    rows = [(case(i), "", "high") for i in range(1, 41)] + [(bad, "", "high")]
    write(tmp_path / "rows.csv", rows)
    async with emulator(40) as emu:
        done = await run(tmp_path, emu.url, *FAST)

        assert done.returncode == EXIT_FAILED_ROWS, done.stderr
        assert failures(tmp_path) == {bad: "ValidationException"}
        assert Counter(u["caseId"] for u in emu.service.updates) == Counter(
            case(i) for i in range(1, 41)
        )


async def test_access_denied_stops_the_run_with_exit_3_and_rows_pending(tmp_path: Path) -> None:
    write(tmp_path / "rows.csv", [(case(i), "", "high") for i in range(1, 301)])
    faults = FaultConfig(access_denied_after_calls=1)
    async with emulator(300, faults=faults) as emu:
        done = await run(tmp_path, emu.url, *FAST)

        assert done.returncode == EXIT_ABORTED, done.stderr
        summary = (tmp_path / "summary.json").read_text()
        assert "AccessDeniedException" in summary
        assert len(emu.service.updates) < 300


async def sigkill_then_resume(
    folder: Path, emu: Emulator, extra: Sequence[str], env: dict[str, str] | None = None
) -> None:
    async with child(argv(folder, emu.url, *extra), cli_env(env), folder) as process:
        await wait_until(
            lambda: len(emu.service.updates) >= 600 or not process.running, "600 updates", 60
        )
        process.send(signal.SIGKILL)
        await process.wait(30)
    await asyncio.sleep(0.5)  # what the killed run had in flight lands
    done = await run(folder, emu.url, *extra, env=env)
    assert done.returncode == EXIT_OK, done.stderr


QUOTA_FLAGS = ("--rate", "2", "--burst", "2", "--batch-rate", "4", "--batch-burst", "4")


def slow_batches() -> dict[str, Quota | None]:
    return {**no_quotas(), "BatchUpdateCase": Quota(4, 4)}


async def test_a_run_killed_mid_batch_resumes_with_no_case_applied_twice(tmp_path: Path) -> None:
    rows = [(case(i), "closed", "urgent") for i in range(1, 1601)]
    write(tmp_path / "rows.csv", rows)
    faults = FaultConfig(latency_median_ms=40, latency_p99_ms=80)
    async with emulator(1600, faults=faults, quotas=slow_batches()) as emu:
        await sigkill_then_resume(tmp_path, emu, QUOTA_FLAGS)

        applied = Counter(u["caseId"] for u in emu.service.updates)
        assert applied == Counter(r[0] for r in rows), "every case applied exactly once"


async def test_a_run_killed_mid_batch_resumes_from_dynamodb_with_no_case_applied_twice(
    moto: str,
    tmp_path: Path,
) -> None:
    rows = [(case(i), "closed", "urgent") for i in range(1, 1601)]
    write(tmp_path / "rows.csv", rows)
    faults = FaultConfig(latency_median_ms=40, latency_p99_ms=80)
    checkpoint = ("--checkpoint", f"dynamodb://{table_name(tmp_path)}")
    async with emulator(1600, faults=faults, quotas=slow_batches()) as emu:
        lease = aws_env(moto, BULKUPDATE_CHECKPOINT_LEASE="3")
        await sigkill_then_resume(tmp_path, emu, (*QUOTA_FLAGS, *checkpoint), lease)

        applied = Counter(u["caseId"] for u in emu.service.updates)
        assert applied == Counter(r[0] for r in rows), "every case applied exactly once"


async def test_shards_batch_their_own_cases_and_together_apply_every_row_once(
    tmp_path: Path,
) -> None:
    rows = [(case(i), "closed", "high") for i in range(1, 401)]
    write(tmp_path / "rows.csv", rows)
    async with emulator(400) as emu:
        for index in range(2):
            done = await run(tmp_path, emu.url, *FAST, "--shard", f"{index}/2")
            assert done.returncode == EXIT_OK, done.stderr

        assert Counter(u["caseId"] for u in batch_updates(emu)) == Counter(r[0] for r in rows)
        assert calls(emu, "BatchUpdateCase") <= 2 * (200 // 100 + 1)


async def test_a_dry_run_counts_the_calls_grouped_and_ungrouped_and_sends_nothing(
    tmp_path: Path,
) -> None:
    rows = [(case(i), "closed", "high") for i in range(1, 251)] + [(case(1), "", "low")]
    write(tmp_path / "rows.csv", rows)
    async with emulator(250) as emu:
        done = await run(tmp_path, emu.url, "--dry-run")

        assert done.returncode == EXIT_OK, done.stderr
        assert (
            "grouped (--batch auto) 4 calls (3 BatchUpdateCase at 2/s burst 2, 1 UpdateCase)"
            in done.stderr
        )
        assert (
            "ungrouped (--batch off) 251 UpdateCase calls; about 2 min 4 s at 2/s burst 2"
            in done.stderr
        )
        assert len(emu.service.updates) == 0
