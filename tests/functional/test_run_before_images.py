"""`bulkupdate run --before-images` as a real subprocess against the emulator: what a re-run sends,
which fields go out, and duplicates after SIGKILL, judged by the service's own update log."""

from __future__ import annotations

import asyncio
import csv
import random
import signal
from pathlib import Path
from typing import Any

from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.emulator import FaultConfig
from bulkupdate.exits import EXIT_OK
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
FAST = ("--rate", "500", "--burst", "50", "--read-rate", "1000", "--read-burst", "100")


def update_calls(emu: Any) -> int:
    return sum(emu.counters["UpdateCase"].values())


def read_calls(emu: Any) -> int:
    return sum(emu.counters["GetCase"].values())


async def images_of(checkpoint: Path) -> list[Any]:
    store = SqliteCheckpointStore(checkpoint, read_only=True)
    try:
        return [image async for image in store.images()]
    finally:
        await store.close()


async def test_a_rerun_of_a_completed_job_with_restart_and_before_images_sends_no_update(
    tmp_path: Path,
) -> None:
    rows = make_rows(60, 20, seed=5)  # cases repeat: each holds its last row's value
    async with emulator(20) as emu:
        job = Job(tmp_path, emu.url, rows)
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


async def test_only_the_fields_that_differ_are_sent(tmp_path: Path) -> None:
    async with emulator(3) as emu:
        domain = emu.service.domains["demo"]
        domain.cases["case-0000001"].values["order_total"] = {"doubleValue": 5.0}
        domain.cases["case-0000002"].values["order_total"] = {"doubleValue": 7.0}
        priority = domain.cases["case-0000001"].values.get("priority", {"emptyValue": {}})
        job = Job(tmp_path, emu.url, [])
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


# The emulator answers in milliseconds: a killed run's calls settle within 2.5 s.
QUICK_SETTLE = {"BULKUPDATE_CALL_TIMEOUT": "2", "BULKUPDATE_SETTLE_PERIOD": "2.5"}


async def test_a_run_killed_at_random_moments_with_before_images_applies_no_row_twice(
    tmp_path: Path,
) -> None:
    seed = 11
    rng = random.Random(seed)
    rows = make_rows(300, 25, seed)
    faults = FaultConfig(latency_median_ms=5, latency_p99_ms=15)
    async with emulator(25, faults=faults) as emu:
        originals = {c: dict(case.values) for c, case in emu.service.domains["demo"].cases.items()}
        job = Job(tmp_path, emu.url, rows, env=QUICK_SETTLE)
        flags = (*FAST, "--concurrency", "8", IMAGES)
        finished: Finished | None = None
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
        assert finished is not None
        assert finished.returncode == EXIT_OK, finished.stderr

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
