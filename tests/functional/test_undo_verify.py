"""`bulkupdate verify` and `bulkupdate undo` as real subprocesses after a `--before-images` job on
the emulator: drift reported, originals restored except what an agent changed since, --force,
a killed undo resumed (each with the SQLite and the DynamoDB checkpoint, on the moto server),
--dry-run, and the shards of a job checkpointed in DynamoDB."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkupdate.exits import EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK
from tests.functional.runner import Completed, run_cli
from tests.functional.test_run_before_images import (
    checkpoint_flags,
    checkpointed_job,
    read_calls,
)
from tests.functional.test_run_resume import Job, child, emulator, make_rows, run, wait_until
from tests.motoserver import use_moto

FAST = ("--rate", "500", "--burst", "50", "--read-rate", "1000", "--read-burst", "100")
QUICK = ("--read-rate", "1000", "--read-burst", "100")
EMPTY = {"emptyValue": {}}
QUICK_SETTLE = {"BULKUPDATE_CALL_TIMEOUT": "2", "BULKUPDATE_SETTLE_PERIOD": "2.5"}


def values(emu: Any) -> dict[str, Any]:
    return {
        c: case.values.get("order_total", EMPTY)
        for c, case in emu.service.domains["demo"].cases.items()
    }


async def agent_edit(emu: Any, case_id: str, total: float) -> None:
    fields = [{"id": "order_total", "value": {"doubleValue": total}}]
    async with aiohttp.ClientSession() as session:
        url = f"{emu.url}/_emulator/cases/demo/{case_id}"
        async with session.post(url, json={"fields": fields}) as response:
            assert response.status == 200, await response.text()


def connection(job: Job, *more: str) -> list[str]:
    return ["--domain-id", "demo", "--endpoint-url", job.url, *QUICK, *more]


async def job_cli(command: str, job: Job, *more: str) -> Completed:
    """`bulkupdate undo|verify` of a job, wherever its checkpoint is, run in the job's folder
    (where an undo of a job checkpointed in DynamoDB keeps its files and verify its report)."""
    flags = [*checkpoint_flags(job), *connection(job, *more)]
    return await run_cli(command, *flags, env=job.env, cwd=job.folder)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def test_verify_and_undo_after_a_job_with_repeated_cases_and_an_agents_edit(
    tmp_path: Path, checkpoint_kind: str
) -> None:
    rows = make_rows(40, 10, seed=3)  # every case has several rows
    async with emulator(10) as emu:
        emu.service.domains["demo"].cases["case-0000001"].values["order_total"] = {
            "doubleValue": 1.0
        }
        originals = values(emu)
        job = checkpointed_job(tmp_path, checkpoint_kind, emu.url, rows)
        done = await run(job, *FAST, "--before-images")
        assert done.returncode == EXIT_OK, done.stderr
        clean = await job_cli("verify", job)
        assert clean.returncode == EXIT_OK, clean.stderr

        await agent_edit(emu, "case-0000002", 42.0)  # a person changes a case after the job
        drift = await job_cli("verify", job)

        assert drift.returncode == EXIT_FAILED_ROWS, drift.stderr
        (report,) = read_csv(tmp_path / "orders.verify.csv")
        assert (report["case_id"], report["current"], report["note"]) == (
            "case-0000002",
            "42",
            "changed_since_job",
        )
        updates_before = len(emu.service.updates)

        dry = await job_cli("undo", job, "--dry-run")
        assert dry.returncode == EXIT_OK, dry.stderr
        assert len(emu.service.updates) == updates_before  # the dry run sent nothing
        plan_text = (tmp_path / "orders.undo.dry-run.jsonl").read_text(encoding="utf-8")
        plan = [json.loads(line) for line in plan_text.splitlines()]
        by_case = {p["caseId"]: p["fields"][0] for p in plan}
        assert by_case["case-0000002"]["action"] == "changed_since_job"
        assert by_case["case-0000002"]["current"] == {"doubleValue": 42.0}
        assert by_case["case-0000001"]["old"] == {"doubleValue": 1.0}
        assert len(plan) == 10

        undone = await job_cli("undo", job)

        assert undone.returncode == EXIT_FAILED_ROWS, undone.stderr  # a field was left alone
        now = values(emu)
        assert now["case-0000002"] == {"doubleValue": 42.0}
        assert {c: v for c, v in now.items() if c != "case-0000002"} == {
            c: v for c, v in originals.items() if c != "case-0000002"
        }
        (left,) = read_csv(tmp_path / "orders.undo.changed.csv")
        assert (left["case_id"], left["current"]) == ("case-0000002", "42")
        again = await job_cli("undo", job)  # resumes: nothing to send
        assert len(emu.service.updates) == updates_before + 9
        assert again.returncode == EXIT_FAILED_ROWS


async def edited_job(tmp_path: Path, kind: str, emu: Any) -> Job:
    """A small `--before-images` job run to the end; then an agent changes one of its cases."""
    job = checkpointed_job(tmp_path, kind, emu.url, make_rows(8, 4, seed=9))
    done = await run(job, *FAST, "--before-images")
    assert done.returncode == EXIT_OK, done.stderr
    await agent_edit(emu, "case-0000002", 42.0)
    return job


async def test_undo_with_force_restores_the_fields_an_agent_changed_since_the_job_too(
    tmp_path: Path, checkpoint_kind: str
) -> None:
    async with emulator(4) as emu:
        originals = values(emu)
        job = await edited_job(tmp_path, checkpoint_kind, emu)

        forced = await job_cli("undo", job, "--force")

        assert forced.returncode == EXIT_OK, forced.stderr
        assert values(emu) == originals


# In DynamoDB the undo's own checkpoint (job NAME.undo) stays in the table when its files are
# removed: a new plan starts it over.
@pytest.mark.parametrize("checkpoint_kind", ["sqlite", "dynamodb"], indirect=True)
async def test_a_new_undo_with_force_after_an_undo_restores_the_agents_field_too(
    tmp_path: Path, checkpoint_kind: str
) -> None:
    async with emulator(4) as emu:
        originals = values(emu)
        job = await edited_job(tmp_path, checkpoint_kind, emu)
        undone = await job_cli("undo", job)
        assert undone.returncode == EXIT_FAILED_ROWS, undone.stderr  # the agent's field is left
        for leftover in tmp_path.glob("orders.undo.*"):  # the undo's plan and files removed
            leftover.unlink()

        forced = await job_cli("undo", job, "--force")

        assert forced.returncode == EXIT_OK, forced.stderr
        assert values(emu) == originals


async def job_to_undo(
    tmp_path: Path, url: str, rows: list[Any], kind: str = "sqlite"
) -> tuple[Job, list[str]]:
    """A `--before-images` job run to the end, and the command line that undoes it (without
    the read pacing), its files in the job's folder."""
    job = checkpointed_job(tmp_path, kind, url, rows)
    done = await run(job, *FAST, "--before-images")
    assert done.returncode == EXIT_OK, done.stderr
    argv = [*job.argv()[:3], "undo", *checkpoint_flags(job), "--state-dir", str(tmp_path)]
    return job, [*argv, "--domain-id", "demo", "--endpoint-url", job.url, "--rate", "150"]


async def test_an_undo_killed_while_restoring_resumes_and_restores_everything(
    tmp_path: Path, checkpoint_kind: str
) -> None:
    rows = make_rows(200, 120, seed=4)
    async with emulator(120) as emu:
        originals = values(emu)
        job, argv = await job_to_undo(tmp_path, emu.url, rows, checkpoint_kind)
        argv += [*QUICK, "--burst", "5"]
        start = len(emu.service.updates)
        async with child(argv, job.environment(), tmp_path) as process:
            await wait_until(
                lambda: len(emu.service.updates) > start + 20 or not process.running,
                "the undo to restore some cases",
            )
            process.send(signal.SIGKILL)
            killed = await process.wait()
        assert killed.returncode == -signal.SIGKILL, killed.stderr  # killed mid-way, not done
        await asyncio.sleep(0.1)
        resumed = await run_cli(*argv[3:], env=job.env)

        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert values(emu) == originals


async def test_a_sigterm_while_undo_reads_cases_stops_it_cleanly_and_it_resumes(
    tmp_path: Path,
) -> None:
    rows = make_rows(120, 120, seed=8)
    async with emulator(120) as emu:
        originals = values(emu)
        job, argv = await job_to_undo(tmp_path, emu.url, rows)
        reads, updates = read_calls(emu), len(emu.service.updates)
        slow = [*argv, "--read-rate", "20", "--read-burst", "1"]  # 120 cases: 6 s of reads
        async with child(slow, job.environment(), tmp_path) as process:
            await wait_until(
                lambda: read_calls(emu) >= reads + 10 or not process.running,
                "the undo to read some cases",
            )
            process.send(signal.SIGTERM)
            stopped = await process.wait(30)

        assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
        assert "run the same command to go on" in stopped.stderr
        assert len(emu.service.updates) == updates, "an interrupted plan restores nothing"
        (partial,) = tmp_path.glob("*.undo.plan.jsonl.partial")
        planned = [json.loads(line)["caseId"] for line in partial.read_text().splitlines()]
        assert 10 <= len(planned) < 120
        read_before_resume = read_calls(emu)

        resumed = await run_cli(*argv[3:], *QUICK, env=QUICK_SETTLE)

        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert values(emu) == originals
        # The cases not planned yet, none twice, and the restore run's one DateTime probe.
        assert read_calls(emu) - read_before_resume == 120 - len(planned) + 1


@pytest.fixture
def dynamodb(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_moto(monkeypatch, moto_url)
    return moto_url


async def test_undo_and_verify_read_every_shard_of_a_job_checkpointed_in_dynamodb(
    tmp_path: Path, dynamodb: str
) -> None:
    table = f"dynamodb://undo-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")}
    rows = make_rows(30, 12, seed=6)
    async with emulator(12) as emu:
        originals = values(emu)
        job = Job(tmp_path, emu.url, rows, env=env)
        job.checkpoint = table  # type: ignore[assignment]
        for shard in ("0/2", "1/2"):
            done = await run(job, *FAST, "--before-images", "--shard", shard)
            assert done.returncode == EXIT_OK, done.stderr
        flags = ["--checkpoint", table, "--job", "orders", *connection(job)]
        await agent_edit(emu, "case-0000003", 7.0)
        drift = await run_cli("verify", *flags, "--report", str(tmp_path / "drift.jsonl"), env=env)
        assert drift.returncode == EXIT_FAILED_ROWS, drift.stderr
        (line,) = (tmp_path / "drift.jsonl").read_text().splitlines()
        assert json.loads(line)["current"] == {"doubleValue": 7.0}

        undone = await run_cli("undo", *flags, "--state-dir", str(tmp_path), env=env)

        assert undone.returncode == EXIT_FAILED_ROWS, undone.stderr
        now = values(emu)
        assert now.pop("case-0000003") == {"doubleValue": 7.0}
        assert now == {c: v for c, v in originals.items() if c != "case-0000003"}


async def test_a_grouped_correction_with_before_images_skips_cases_that_hold_it_and_undoes(
    tmp_path: Path,
) -> None:
    # One value on 30 cases (--batch auto, the default): 5 already hold it. Each case is read
    # before its group forms; the others go in BatchUpdateCase calls and undo puts them back.
    async with emulator(30) as emu:
        cases = emu.service.domains["demo"].cases
        holding = [f"case-{n:07d}" for n in range(1, 6)]
        for case_id in holding:
            cases[case_id].values["order_total"] = {"doubleValue": 99.0}
        originals = values(emu)
        job = Job(tmp_path, emu.url, [])
        job.input.write_text(
            "case_id,order_total\n" + "".join(f"case-{n:07d},99\n" for n in range(1, 31)),
            encoding="utf-8",
        )
        grouped = ("--batch-rate", "100", "--batch-burst", "10")
        done = await run(job, *FAST, *grouped, "--before-images")

        assert done.returncode == EXIT_OK, done.stderr
        summary = job.read_summary()
        assert (summary["applied"], summary["unchanged"]) == (25, 5)
        assert summary["batch_calls"] >= 1
        assert summary["reads"] == 30
        updated = [u["caseId"] for u in emu.service.updates]
        assert sorted(updated) == sorted(set(cases) - set(holding))  # each once, none holding
        assert all(v == {"doubleValue": 99.0} for v in values(emu).values())

        undone = await run_cli("undo", "--checkpoint", str(job.checkpoint), *connection(job))

        assert undone.returncode == EXIT_OK, undone.stderr
        assert values(emu) == originals
