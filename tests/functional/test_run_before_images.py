"""`bulkupdate run --before-images` as a real subprocess against the emulator: what a re-run sends,
which fields go out, and duplicates after SIGKILL, judged by the service's own update log; each
with the SQLite and the DynamoDB checkpoint (on the moto server)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import uuid
from pathlib import Path
from typing import Any

from bulkupdate.aws.checkpoint_dynamodb import DynamoDbCheckpointStore
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import CheckpointStore
from bulkupdate.emulator import FaultConfig
from bulkupdate.exits import EXIT_OK
from tests.functional.runner import Completed, run_cli
from tests.functional.test_run_resume import (
    FIRST_VALUE,
    Finished,
    Job,
    applied_rows,
    assert_final_state_is_last_row_per_case,
    child,
    emulator,
    in_flight,
    make_rows,
    run,
    wait_until,
)

IMAGES = "--before-images"
# The emulator answers in milliseconds: a killed run's calls settle within 2.5 s.
QUICK_SETTLE = {"BULKUPDATE_CALL_TIMEOUT": "2", "BULKUPDATE_SETTLE_PERIOD": "2.5"}
FAST = ("--rate", "500", "--burst", "50", "--read-rate", "1000", "--read-burst", "100")


def update_calls(emu: Any) -> int:
    return sum(emu.counters["UpdateCase"].values())


def read_calls(emu: Any) -> int:
    return sum(emu.counters["GetCase"].values())


async def images_of(checkpoint: Path | str, job: str = "orders") -> list[Any]:
    """The before-images a checkpoint holds: a SQLite file, or `dynamodb://TABLE` (with the
    AWS environment pointing at the moto server)."""
    store: CheckpointStore
    if isinstance(checkpoint, str) and checkpoint.startswith("dynamodb://"):
        table = checkpoint.removeprefix("dynamodb://")
        store = DynamoDbCheckpointStore(table, job, create_table=False)
    else:
        store = SqliteCheckpointStore(Path(checkpoint), read_only=True)
    try:
        return [image async for image in store.images()]
    finally:
        await store.close()


def checkpointed_job(tmp_path: Path, kind: str, url: str, rows: list[Any]) -> Job:
    """A job keeping its checkpoint in `kind` (see the `checkpoint_kind` fixture); in DynamoDB
    with a short lease, so that a run resumed after a kill takes it over within seconds."""
    if kind == "sqlite":
        return Job(tmp_path, url, rows, env=dict(QUICK_SETTLE))
    env = {
        **QUICK_SETTLE,
        "AWS_ENDPOINT_URL_DYNAMODB": os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
        "BULKUPDATE_CHECKPOINT_LEASE": "3",
    }
    job = Job(tmp_path, url, rows, env=env)
    job.checkpoint = f"dynamodb://job-{uuid.uuid4().hex[:8]}"  # type: ignore[assignment]
    return job


def checkpoint_flags(job: Job) -> list[str]:
    """The flags naming a job's checkpoint for `status`, `undo` and `verify` (in DynamoDB, the
    table and the job's name: its input's stem)."""
    where = str(job.checkpoint)
    name = ["--job", "orders"] if where.startswith("dynamodb://") else []
    return ["--checkpoint", where, *name]


async def job_status(job: Job, *flags: str) -> Completed:
    """`bulkupdate status` of a job's checkpoint, wherever it is."""
    done = await run_cli("status", *checkpoint_flags(job), *flags, env=job.env, timeout_s=30)
    assert done.returncode == EXIT_OK, done.stderr
    return done


async def test_a_rerun_of_a_completed_job_with_restart_and_before_images_sends_no_update(
    tmp_path: Path, checkpoint_kind: str
) -> None:
    rows = make_rows(60, 20, seed=5)  # cases repeat: each holds its last row's value
    async with emulator(20) as emu:
        job = checkpointed_job(tmp_path, checkpoint_kind, emu.url, rows)
        first = await run(job, *FAST)
        assert first.returncode == EXIT_OK, first.stderr
        sent = update_calls(emu)

        again = await run(job, *FAST, "--restart", IMAGES)

        assert again.returncode == EXIT_OK, again.stderr
        assert update_calls(emu) == sent  # not one UpdateCase more
        summary = job.read_summary()
        assert (summary["applied"], summary["unchanged"], summary["calls"]) == (0, 60, 0)
        assert summary["reads"] == read_calls(emu) == 60  # one GetCase per row
        assert await images_of(job.checkpoint) == []  # nothing changed, nothing to undo
        info = json.loads((await job_status(job, "--json")).stdout)
        assert (info["applied"], info["unchanged_last_run"]) == (60, 60)
        shown = await job_status(job)
        assert "the last run found 60 already holding their values" in shown.stdout


async def test_only_the_fields_that_differ_are_sent(tmp_path: Path, checkpoint_kind: str) -> None:
    async with emulator(3) as emu:
        domain = emu.service.domains["demo"]
        domain.cases["case-0000001"].values["order_total"] = {"doubleValue": 5.0}
        domain.cases["case-0000002"].values["order_total"] = {"doubleValue": 7.0}
        priority = domain.cases["case-0000001"].values.get("priority", {"emptyValue": {}})
        job = checkpointed_job(tmp_path, checkpoint_kind, emu.url, [])
        job.input.write_text(
            "case_id,order_total,priority\n"
            "case-0000001,5,high\n"  # order_total holds already (5 == 5.0)
            "case-0000002,8,\n"  # a blank cell is left alone; 8 differs
            "case-0000003,,\n",  # nothing to send at all
            encoding="utf-8",
        )
        done = await run(job, *FAST, IMAGES)

        assert done.returncode == EXIT_OK, done.stderr
        sent = {u["caseId"]: u["fields"] for u in emu.service.updates}
        assert sent == {
            "case-0000001": [{"id": "priority", "value": {"stringValue": "high"}}],
            "case-0000002": [{"id": "order_total", "value": {"doubleValue": 8.0}}],
        }
        images = {
            (i.case_id, i.field_id): (i.before, i.after) for i in await images_of(job.checkpoint)
        }
        assert images == {
            ("case-0000001", "priority"): (priority, {"stringValue": "high"}),
            ("case-0000002", "order_total"): ({"doubleValue": 7.0}, {"doubleValue": 8.0}),
        }
        summary = job.read_summary()
        assert (summary["applied"], summary["unchanged"]) == (2, 1)


async def test_a_run_killed_at_random_moments_with_before_images_applies_no_row_twice(
    tmp_path: Path, checkpoint_kind: str
) -> None:
    seed = 11 if checkpoint_kind == "sqlite" else 12
    rng = random.Random(seed)
    rows = make_rows(300 if checkpoint_kind == "sqlite" else 120, 25, seed)
    faults = FaultConfig(latency_median_ms=5, latency_p99_ms=15)
    async with emulator(25, faults=faults) as emu:
        originals = {c: dict(case.values) for c, case in emu.service.domains["demo"].cases.items()}
        job = checkpointed_job(tmp_path, checkpoint_kind, emu.url, rows)
        flags = (*FAST, "--concurrency", "8", IMAGES)
        finished: Finished | None = None
        kills = 0
        for attempt in range(5):
            start = len(emu.service.updates)
            async with child(job.argv(*flags), job.environment(), tmp_path) as process:
                if attempt < 4:
                    await wait_until(
                        lambda: len(emu.service.updates) > start or not process.running,  # noqa: B023
                        "the run to apply an update",
                    )
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                    process.send(signal.SIGKILL)
                done = await process.wait()
            await wait_until(lambda: in_flight(emu) == 0, "calls in flight to land", 5)
            if done.returncode != -signal.SIGKILL:
                finished = done
                break
            kills += 1
        assert finished is not None
        assert finished.returncode == EXIT_OK, finished.stderr
        assert kills >= 1, "no run was killed mid-job"

        log = applied_rows(emu)
        assert_final_state_is_last_row_per_case(emu, job)
        assert sorted(log) == sorted(set(log)), "a row was applied twice"
        assert set(log) == {row.index for row in rows}
        # Every case's image holds its value before the job and the job's last write.
        images = {i.case_id: i for i in await images_of(job.checkpoint)}
        last = job.last_rows()
        for case_id, image in images.items():
            assert image.field_id == "order_total"
            assert image.before == originals[case_id].get("order_total", {"emptyValue": {}})
            assert image.after == {"doubleValue": float(last[case_id].order_total)}
            assert image.pending is None
        assert set(images) == set(last)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


__all__ = ["FIRST_VALUE", "images_of", "read_calls", "update_calls"]
