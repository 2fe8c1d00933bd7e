"""`bulkupdate run` and `status` with `--checkpoint dynamodb://TABLE`: moto's server mode for
DynamoDB and S3, the emulator for Connect Cases, the real command in subprocesses. Includes the
cloud-native job: an S3 input split over three shards sharing one checkpoint table, one shard
killed and replaced."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkupdate.emulator import FaultConfig, Quota, no_quotas
from bulkupdate.exits import EXIT_ABORTED, EXIT_OK, EXIT_USAGE
from tests.faultproxy import Fault, FaultProxy
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.test_run_resume import (
    Child,
    Job,
    applied_rows,
    assert_applied_in_input_order,
    assert_final_state_is_last_row_per_case,
    child,
    emulator,
    make_rows,
    wait_until,
)
from tests.motoserver import running_moto, s3_client

BUCKET = "exports"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with running_moto() as url:
        yield url


def aws_env(moto: str, **extra: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL_DYNAMODB": moto, "AWS_ENDPOINT_URL_S3": moto, **extra}


async def status_of(moto: str, table: str, job: str) -> dict[str, Any]:
    """`bulkupdate status --checkpoint dynamodb://TABLE --job JOB --json`, parsed."""
    done = await run_cli(
        "status", "--checkpoint", f"dynamodb://{table}", "--job", job, "--json", env=aws_env(moto)
    )
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def table_name(tmp_path: Path) -> str:
    return f"ck-{abs(hash(tmp_path)) % 10**9}"


async def test_a_run_keeps_its_checkpoint_in_dynamodb_and_a_rerun_resumes_it(
    moto: str, tmp_path: Path
) -> None:
    rows = make_rows(60, 10, seed=2)
    table = table_name(tmp_path)
    async with emulator(10) as emu:
        job = Job(tmp_path, emu.url, rows, env=aws_env(moto))
        argv = job.argv("--rate", "1000", "--burst", "100")
        argv[argv.index("--checkpoint") + 1] = f"dynamodb://{table}"
        async with child(argv, job.environment(), tmp_path) as first:
            done = await first.wait()
        assert done.returncode == EXIT_OK, done.stderr
        async with child(argv, job.environment(), tmp_path) as again:
            rerun = await again.wait()
        assert rerun.returncode == EXIT_OK, rerun.stderr
        assert len(emu.service.updates) == 60, "the rerun found every row done"
        assert job.read_summary()["read"] == 0  # resumed at the end of the input
    info = await status_of(moto, table, "orders")
    assert (info["applied"], info["runs"]) == (60, 2)


def commits_failed(run: Child) -> int:
    """`checkpoint_commit_failed` events the run has logged so far."""
    return run.stdout().count('"checkpoint_commit_failed"')


@pytest.mark.parametrize("fault", [Fault.LOSE_REQUESTS, Fault.LOSE_ANSWERS])
async def test_a_run_rides_out_a_short_outage_of_its_checkpoint_table_and_finishes(
    moto: str, tmp_path: Path, fault: Fault
) -> None:
    rows = make_rows(320, 32, seed=5)
    table = table_name(tmp_path)
    async with FaultProxy(moto) as proxy, emulator(32) as emu:
        job = Job(tmp_path, emu.url, rows, env=aws_env(moto, AWS_ENDPOINT_URL_DYNAMODB=proxy.url))
        argv = job.argv("--rate", "40", "--burst", "10")
        argv[argv.index("--checkpoint") + 1] = f"dynamodb://{table}"
        async with child(argv, job.environment(), tmp_path) as run:
            await wait_until(lambda: len(emu.service.updates) >= 60, "a fifth of the rows")
            proxy.fault = fault  # the table is out of reach until two commits have failed
            await wait_until(lambda: commits_failed(run) >= 2, "two failed commits")
            proxy.fault = Fault.NONE
            done = await run.wait()
        assert done.returncode == EXIT_OK, done.stderr
        assert proxy.lost >= 2
        assert_final_state_is_last_row_per_case(emu, job)
        assert_applied_in_input_order(rows, applied_rows(emu), run_starts=[0])
        assert len(emu.service.updates) == len(rows), "no row was sent twice"
    info = await status_of(moto, table, "orders")
    assert (info["applied"], info["runs"]) == (len(rows), 1)


@pytest.mark.parametrize(
    ("flags", "endpoint", "message"),
    [
        ((), "http://127.0.0.1:9", "cannot reach"),
        (("--no-create-table",), None, "creat"),
    ],
    ids=["unreachable", "missing-table-not-created"],
)
async def test_a_checkpoint_table_that_cannot_be_used_stops_the_run_before_any_update(
    moto: str, tmp_path: Path, flags: tuple[str, ...], endpoint: str | None, message: str
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("case_id,vip\ncase-0000001,yes\n", encoding="utf-8")
    table = table_name(tmp_path)
    async with emulator(2) as emu:
        started_s = time.monotonic()
        result = await run_cli(
            "run",
            *("--input", str(source), "--checkpoint", f"dynamodb://{table}", *flags),
            *fast_run_flags(emu.url),
            env=aws_env(endpoint or moto),
        )
        assert result.returncode == EXIT_USAGE, result.stderr
        assert time.monotonic() - started_s < 30, "fails fast"
        assert table in result.stderr
        assert message in result.stderr.lower()
        assert emu.service.updates == []


async def test_three_shards_on_s3_and_dynamodb_one_replaced_apply_every_row_in_order(
    moto: str, tmp_path: Path
) -> None:
    rows = make_rows(360, 36, seed=33)
    table = table_name(tmp_path)
    s3 = s3_client(moto)
    s3.create_bucket(Bucket=BUCKET)
    quotas = {**no_quotas(), "UpdateCase": Quota(60.0, 60)}
    async with emulator(36, quotas=quotas, faults=FaultConfig(latency_median_ms=4)) as emu:
        # A short lease: the replacement takes the killed shard's checkpoint over in seconds.
        job = Job(tmp_path, emu.url, rows, env=aws_env(moto, BULKUPDATE_CHECKPOINT_LEASE="3"))
        s3.put_object(Bucket=BUCKET, Key="orders.csv", Body=job.input.read_bytes())

        def argv(index: int) -> list[str]:
            words = job.argv("--rate", "60", "--burst", "30", "--concurrency", "4")
            words[words.index("--input") + 1] = f"s3://{BUCKET}/orders.csv"
            words[words.index("--checkpoint") + 1] = f"dynamodb://{table}"
            words[words.index("--failures") + 1] = f"s3://{BUCKET}/out/orders.failures.csv"
            words[words.index("--summary") + 1] = f"s3://{BUCKET}/out/orders.summary.json"
            return [*words, "--shard", f"{index}/3"]

        async with (
            child(argv(0), job.environment(), tmp_path) as first,
            child(argv(1), job.environment(), tmp_path) as second,
            child(argv(2), job.environment(), tmp_path) as third,
        ):
            await wait_until(lambda: len(emu.service.updates) >= 90, "a quarter of the rows")
            await second.kill()
            # Calls the killed shard had in flight are still in the emulator's latency sleep:
            # let them land before the restarted run's part of the log begins.
            await anyio.sleep(0.5)
            restart_at = len(emu.service.updates)
            async with child(argv(1), job.environment(), tmp_path) as replacement:
                finished = [await p.wait(90) for p in (first, third, replacement)]
        assert [f.returncode for f in finished] == [EXIT_OK] * 3, [f.stderr for f in finished]
        assert_final_state_is_last_row_per_case(emu, job)
        assert_applied_in_input_order(rows, applied_rows(emu), run_starts=[0, restart_at])
        assert emu.counters["UpdateCase"]["ThrottlingException"] == 0, "the quota was exceeded"
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {f"out/orders.shard-{i}-of-3.summary.json" for i in range(3)} <= keys
    shards = (await status_of(moto, table, "orders"))["shards"]
    assert [s["shard"] for s in shards] == ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]
    assert sum(s["applied"] for s in shards) == len(rows)


async def test_a_run_frozen_past_its_lease_sends_nothing_once_a_successor_took_over(
    moto: str, tmp_path: Path
) -> None:
    rows = make_rows(400, 20, seed=44)
    table = table_name(tmp_path)
    quotas = {**no_quotas(), "UpdateCase": Quota(40.0, 4)}
    async with emulator(20, quotas=quotas) as emu:
        lease = aws_env(moto, BULKUPDATE_CHECKPOINT_LEASE="4")
        job = Job(tmp_path, emu.url, rows, env=lease)
        argv = job.argv("--rate", "40", "--burst", "4")
        argv[argv.index("--checkpoint") + 1] = f"dynamodb://{table}"
        async with child(argv, job.environment(), tmp_path) as frozen:
            await wait_until(lambda: len(emu.service.updates) >= 60, "some rows applied")
            frozen.send(signal.SIGSTOP)  # a container paused past its lease
            await anyio.sleep(0.5)  # its calls in flight land
            async with child(argv, job.environment(), tmp_path) as successor:
                done = await successor.wait(120)
            assert done.returncode == EXIT_OK, done.stderr
            finished_at = len(emu.service.updates)
            frozen.send(signal.SIGCONT)
            woke = await frozen.wait(60)
        assert len(emu.service.updates) == finished_at, "the frozen run sent nothing on waking"
        assert woke.returncode == EXIT_ABORTED, woke.stderr
        assert_final_state_is_last_row_per_case(emu, job)
