"""A job split over shards (`--shard INDEX/COUNT`): three real processes share one emulator's
quota; one is killed and restarted. Every row ends applied, each case's rows in input order,
and the shards together stay under the quota."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from bulkupdate.emulator import FaultConfig, Quota, no_quotas
from bulkupdate.exits import EXIT_OK, EXIT_USAGE
from bulkupdate.models import Shard
from tests.functional.runner import run_cli
from tests.functional.test_run_resume import (
    Job,
    applied_rows,
    assert_applied_in_input_order,
    assert_final_state_is_last_row_per_case,
    child,
    emulator,
    make_rows,
    wait_until,
)

QUOTA = Quota(60.0, 60)  # the account's UpdateCase quota for the test
SHARDS = 3


async def test_three_shards_one_killed_and_restarted_apply_every_row_in_order_under_the_quota(
    tmp_path: Path,
) -> None:
    rows = make_rows(480, 48, seed=21)
    quotas = {**no_quotas(), "UpdateCase": QUOTA}
    faults = FaultConfig(latency_median_ms=4)
    async with emulator(48, quotas=quotas, faults=faults) as emu:
        job = Job(tmp_path, emu.url, rows)
        # --rate/--burst are the job's total: each shard takes a third of them.
        flags = ("--rate", "60", "--burst", "30", "--concurrency", "4")
        argvs = [job.argv(*flags, "--shard", f"{index}/{SHARDS}") for index in range(SHARDS)]
        async with (
            child(argvs[0], job.environment(), tmp_path) as first,
            child(argvs[1], job.environment(), tmp_path) as second,
            child(argvs[2], job.environment(), tmp_path) as third,
        ):
            await wait_until(lambda: len(emu.service.updates) >= 120, "a quarter of the rows")
            await second.kill()
            # Calls the killed shard had in flight are still in the emulator's latency sleep:
            # let them land before the restarted run's part of the log begins.
            await anyio.sleep(0.5)
            restart_at = len(emu.service.updates)
            async with child(argvs[1], job.environment(), tmp_path) as restarted:
                finished = [await p.wait(60) for p in (first, third, restarted)]
        assert [f.returncode for f in finished] == [EXIT_OK] * 3, [f.stderr for f in finished]

        assert_final_state_is_last_row_per_case(emu, job)
        assert_applied_in_input_order(rows, applied_rows(emu), run_starts=[0, restart_at])
        assert emu.counters["UpdateCase"]["ThrottlingException"] == 0, "the quota was exceeded"

        # Each shard applied only its own cases and kept its own checkpoint.
        for index in range(SHARDS):
            shard = Shard(index, SHARDS)
            summary = json.loads(Path(shard.name(str(job.summary))).read_text())
            assert summary["other_shards"] > 0
            assert Path(shard.name(str(job.checkpoint))).is_file()
        status = await run_cli(
            "status", "--checkpoint", Shard(0, SHARDS).name(str(job.checkpoint)), "--json"
        )
        assert status.returncode == 0, status.stderr
        shards = json.loads(status.stdout)["shards"]
        assert [s["shard"] for s in shards] == [f"shard-{i}-of-{SHARDS}" for i in range(SHARDS)]
        assert sum(s["applied"] for s in shards) == len(rows)


async def test_a_shard_index_comes_from_the_runner_when_the_flag_has_only_the_count(
    tmp_path: Path,
) -> None:
    rows = make_rows(40, 8, seed=5)
    async with emulator(8) as emu:
        job = Job(tmp_path, emu.url, rows)
        job.env["JOB_COMPLETION_INDEX"] = "1"
        argv = job.argv("--rate", "1000", "--burst", "100", "--shard", "2")
        async with child(argv, job.environment(), tmp_path) as process:
            done = await process.wait(30)
        assert done.returncode == EXIT_OK, done.stderr
        mine = {row.case_id for row in rows if Shard(1, 2).owns(row.case_id)}
        assert {u["caseId"] for u in emu.service.updates} == mine
        assert Path(Shard(1, 2).name(str(job.checkpoint))).is_file()


async def test_a_job_refuses_another_shard_count_than_its_checkpoints_unless_restarted(
    tmp_path: Path,
) -> None:
    rows = make_rows(30, 6, seed=8)
    async with emulator(6) as emu:
        job = Job(tmp_path, emu.url, rows)
        fast = ("--rate", "1000", "--burst", "100")
        async with child(job.argv(*fast, "--shard", "0/2"), job.environment(), tmp_path) as p:
            assert (await p.wait(30)).returncode == EXIT_OK
        sent = len(emu.service.updates)
        for other in (("--shard", "1/3"), ()):
            async with child(job.argv(*fast, *other), job.environment(), tmp_path) as p:
                refused = await p.wait(30)
            assert refused.returncode == EXIT_USAGE, refused.stderr
            assert "2-shard run" in refused.stderr
        assert len(emu.service.updates) == sent, "nothing was sent by the refused runs"
        async with child(
            job.argv(*fast, "--shard", "1/3", "--restart"), job.environment(), tmp_path
        ) as p:
            assert (await p.wait(30)).returncode == EXIT_OK
        # The restart made 3-shard checkpoints: the job now runs with COUNT 3.
        async with child(job.argv(*fast, "--shard", "2/3"), job.environment(), tmp_path) as p:
            resumed = await p.wait(30)
        assert resumed.returncode == EXIT_OK, resumed.stderr
