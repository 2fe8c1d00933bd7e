"""The DynamoDB store's own promises: its table, its errors, its lease, its transactions and its
items, against a real moto server configured through the standard AWS environment. The shared
checkpoint contract runs against it in test_checkpoint_contract.py."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.session import AioSession
from structlog.testing import capture_logs

from bulkupdate.aws.checkpoint_dynamodb import DynamoDbCheckpointStore, shard_statuses
from bulkupdate.checkpoint import dynamodb_items as checkpoint_items
from bulkupdate.checkpoint.store import (
    CheckpointBusyError,
    CheckpointError,
    JobIdentity,
    RunState,
    utc_now,
)
from bulkupdate.models import Outcome, RowStatus, parse_shard
from tests.faultproxy import Fault, FaultProxy
from tests.functional.test_checkpoint_crash import (
    BLOCK_RECORDS,
    committed_range,
    expected_after,
)
from tests.functional.test_checkpoint_crash import JOB as CRASH_JOB
from tests.motoserver import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    free_port,
    post,
    running_moto,
    use_moto,
)
from tests.unit.test_checkpoint import JOB, FakeClock, failed_rows, outcome, point

DONE, FAILED = RowStatus.DONE, RowStatus.FAILED
ROOT = Path(__file__).resolve().parents[2]
# aiohttp warns about any request body over 1 MB (a ResourceWarning: silent outside tests).
LARGE_REQUESTS = pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")


@pytest.fixture
def dynamodb(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_moto(monkeypatch, moto_url)
    return moto_url


@pytest.fixture
def table() -> str:
    return f"checkpoints-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def raw(dynamodb: str) -> AsyncIterator[Any]:
    """A plain client, configured by the same environment, to look behind the store's back."""
    async with AioSession().create_client("dynamodb", region_name=REGION) as client:
        yield client


def later(clock: FakeClock, seconds: float) -> Callable[[], datetime]:
    """A clock `seconds` ahead of `clock`: another container, after a lease has lapsed."""
    return lambda: clock() + timedelta(seconds=seconds)


async def items(raw: Any, table: str, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in raw.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": JOB.name}, ":prefix": {"S": prefix}},
        ConsistentRead=True,
    ):
        found.extend(page["Items"])
    return found


def big_failure(index: int, size: int) -> Outcome:
    raw = random.Random(index).randbytes(size)  # incompressible, so pages fill up
    return Outcome(
        index * 100, index + 2, f"case-{index}", FAILED, "ValidationException", "bad", raw
    )


# --- the table


async def test_the_table_is_created_on_first_use_and_billed_per_request(
    raw: Any, table: str
) -> None:
    store = DynamoDbCheckpointStore(table, JOB.name)
    try:
        await store.open(JOB, restart=False)
    finally:
        await store.close()

    described = (await raw.describe_table(TableName=table))["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }


async def test_a_missing_table_fails_naming_it_when_creation_is_off(raw: Any, table: str) -> None:
    store = DynamoDbCheckpointStore(table, JOB.name, create_table=False)

    with pytest.raises(CheckpointError) as caught:
        await store.open(JOB, restart=False)
    await store.close()

    message = str(caught.value)
    assert table in message
    assert REGION in message
    assert "create_table=False" in message
    assert table not in (await raw.list_tables())["TableNames"]


async def test_looking_at_a_checkpoint_never_creates_its_table(raw: Any, table: str) -> None:
    store = DynamoDbCheckpointStore(table, JOB.name)

    with pytest.raises(CheckpointError, match="does not exist"):
        await store.status()
    with pytest.raises(CheckpointError, match="does not exist"):
        await shard_statuses(table, JOB.name)
    await store.close()

    assert table not in (await raw.list_tables())["TableNames"]


async def test_a_table_with_another_key_schema_is_refused(raw: Any, table: str) -> None:
    await raw.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoDbCheckpointStore(table, JOB.name)

    with pytest.raises(CheckpointError, match="needs partition key 'pk' and sort key 'sk'"):
        await store.open(JOB, restart=False)
    await store.close()


# --- errors that stop a run before it sends anything


async def test_an_unreachable_endpoint_fails_fast_naming_the_table_and_endpoint(
    dynamodb: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", closed)
    store = DynamoDbCheckpointStore(table, JOB.name)
    started_s = time.monotonic()

    with pytest.raises(CheckpointError) as caught:
        await store.open(JOB, restart=False)
    await store.close()

    assert time.monotonic() - started_s < 5.0
    message = str(caught.value)
    assert table in message
    assert f"cannot reach DynamoDB at {closed}" in message
    assert SECRET_ACCESS_KEY not in message
    assert ACCESS_KEY_ID not in message


@pytest.fixture(scope="module")
def guarded_moto() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server of its own that checks IAM: a user with no policy, and its keys."""
    with running_moto() as url:

        async def make_user() -> dict[str, str]:
            session = AioSession()
            async with session.create_client(
                "iam",
                region_name=REGION,
                endpoint_url=url,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
            ) as iam:
                await iam.create_user(UserName="reader")
                key = (await iam.create_access_key(UserName="reader"))["AccessKey"]
            return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}

        key = anyio.run(make_user)
        post(url, "/moto-api/reset-auth", b"0")  # from now on every request is checked
        yield url, key


@pytest.mark.parametrize("known", [True, False], ids=["no-permission", "unknown-key"])
async def test_refused_credentials_fail_with_the_reason_and_without_the_secret(
    guarded_moto: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    known: bool,
) -> None:
    url, key = guarded_moto
    use_moto(monkeypatch, url)
    if known:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    store = DynamoDbCheckpointStore(table, JOB.name)

    with pytest.raises(CheckpointError) as caught:
        await store.open(JOB, restart=False)
    await store.close()

    message = str(caught.value)
    assert f"on table {table!r} in {REGION} was refused" in message
    if known:
        assert "AccessDenied" in message
        assert "not authorized to perform: dynamodb:DescribeTable" in message
    else:
        assert "InvalidClientTokenId" in message
    assert key["SecretAccessKey"] not in message
    assert SECRET_ACCESS_KEY not in message


# --- one live run per checkpoint


async def test_a_second_run_is_refused_while_the_first_holds_the_lease(
    dynamodb: str, table: str
) -> None:
    first = DynamoDbCheckpointStore(table, JOB.name)
    second = DynamoDbCheckpointStore(table, JOB.name)
    await first.open(JOB, restart=False)
    try:
        with pytest.raises(CheckpointBusyError, match=f"pid {os.getpid()}"):
            await second.open(JOB, restart=False)
        status = await second.status()  # looking is always allowed
        assert status.last_run is not None
        assert status.last_run.state is RunState.RUNNING
    finally:
        await first.close()  # without finish_run: as far as anyone knows, it died

    status = await second.status()
    assert status.last_run is not None
    assert status.last_run.state is RunState.CRASHED
    assert (await second.open(JOB, restart=False)).runs == 2
    await second.close()


@LARGE_REQUESTS
async def test_a_lapsed_lease_shows_a_crash_and_the_next_run_takes_over_for_good(
    raw: Any, table: str
) -> None:
    clock = FakeClock()
    frozen = DynamoDbCheckpointStore(table, JOB.name, now=clock)  # a container that stalls
    await frozen.open(JOB, restart=False)
    await frozen.commit([outcome(0), outcome(1, FAILED)], point(2), {"calls": 2})
    successor = DynamoDbCheckpointStore(table, JOB.name, now=later(clock, 61))
    try:
        crashed = await successor.status()
        state = await successor.open(JOB, restart=False)

        stalled = [big_failure(i, 20_000) for i in range(2, 152)]  # 150 rows, 3 MB: 11 items
        with pytest.raises(CheckpointBusyError, match="took it over"):
            await frozen.commit(stalled, point(152), {"calls": 3})
        with pytest.raises(CheckpointBusyError, match="took it over"):
            await frozen.finish_run("finished", {})
        status = await successor.status()
    finally:
        await frozen.close()
        await successor.close()

    assert crashed.last_run is not None
    assert crashed.last_run.state is RunState.CRASHED
    assert (state.runs, state.resume_point, state.counters) == (2, point(2), {"calls": 2})
    assert status.last_run is not None
    assert (status.last_run.number, status.last_run.state) == (2, RunState.RUNNING)
    assert status.totals == {DONE: 1, FAILED: 1}
    assert len(await items(raw, table, "fail#")) == 1  # the stalled batch left nothing


async def test_a_run_taken_over_by_a_run_that_has_since_ended_is_told_which_run_it_was(
    dynamodb: str, table: str
) -> None:
    clock = FakeClock()
    frozen = DynamoDbCheckpointStore(table, JOB.name, now=clock)  # a container that stalls
    await frozen.open(JOB, restart=False)
    successor = DynamoDbCheckpointStore(table, JOB.name, now=later(clock, 61))
    try:
        await successor.open(JOB, restart=False)
        await successor.finish_run("finished", {})
        await successor.close()  # its lease is given back: the item names no lease holder
        with pytest.raises(CheckpointBusyError, match="took it over") as caught:
            await frozen.commit([outcome(0)], point(1), {})
    finally:
        await frozen.close()
        await successor.close()
    message = caught.value.message
    assert "(none)" not in message
    assert f"another run (run 2, pid {os.getpid()}, started " in message
    assert "which has since released it" in message


@pytest.mark.parametrize("fault", [Fault.LOSE_REQUESTS, Fault.LOSE_ANSWERS])
async def test_a_run_whose_write_failed_is_refused_everything_once_another_run_took_over(
    dynamodb: str, table: str, monkeypatch: pytest.MonkeyPatch, fault: Fault
) -> None:
    clock = FakeClock()
    async with FaultProxy(dynamodb) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        stalled = DynamoDbCheckpointStore(table, JOB.name, now=clock)  # behind the proxy
        await stalled.open(JOB, restart=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        successor = DynamoDbCheckpointStore(table, JOB.name, now=later(clock, 61))
        try:
            await stalled.commit([outcome(0)], point(1), {})
            proxy.fault = fault
            with pytest.raises(CheckpointError):
                await stalled.commit([outcome(1), outcome(2, FAILED)], point(3), {})
            proxy.fault = Fault.NONE
            state = await successor.open(JOB, restart=False)  # the stalled run's lease lapsed
            with pytest.raises(CheckpointBusyError, match="took it over"):
                await stalled.commit([outcome(1), outcome(2, FAILED)], point(3), {})
            with pytest.raises(CheckpointBusyError, match="took it over"):
                await stalled.finish_run("aborted", {})
            status = await successor.status()
        finally:
            await stalled.close()
            await successor.close()

    assert proxy.lost > 0
    landed = fault is Fault.LOSE_ANSWERS
    assert state.resume_point == point(3 if landed else 1)
    assert status.last_run is not None
    assert (status.last_run.number, status.last_run.state) == (2, RunState.RUNNING)
    assert status.totals == {DONE: 2 if landed else 1, FAILED: 1 if landed else 0}


async def test_the_lease_is_renewed_while_a_run_is_idle(dynamodb: str, table: str) -> None:
    idle = DynamoDbCheckpointStore(table, JOB.name, lease_s=0.6)  # renewed every 0.2 s
    other = DynamoDbCheckpointStore(table, JOB.name, lease_s=0.6)
    await idle.open(JOB, restart=False)
    try:
        await anyio.sleep(1.5)  # no commits: only the heartbeat keeps the lease
        with pytest.raises(CheckpointBusyError):
            await other.open(JOB, restart=False)
    finally:
        await idle.close()
    assert (await other.open(JOB, restart=False)).runs == 2
    await other.close()


async def test_a_heartbeat_that_fails_is_logged_and_stops_further_commits(
    dynamodb: str, table: str
) -> None:
    broken = False

    def now() -> datetime:
        if broken:  # what the heartbeat reads first when it renews an idle lease
            raise RuntimeError("clock unreadable")
        return datetime.now(UTC)

    store = DynamoDbCheckpointStore(table, JOB.name, lease_s=0.6, now=now)  # renewed every 0.2 s
    await store.open(JOB, restart=False)
    try:
        with capture_logs() as logs:
            broken = True
            await anyio.sleep(0.5)
            broken = False
        with pytest.raises(CheckpointError, match="lease heartbeat failed"):
            await store.commit([outcome(0, DONE)], point(1), {})
        await store.finish_run("aborted", {})  # the run's end is still recorded
    finally:
        await store.close()

    [failed] = [log for log in logs if log["event"] == "checkpoint_heartbeat_failed"]
    assert failed["error"] == "RuntimeError: clock unreadable"
    reader = DynamoDbCheckpointStore(table, JOB.name)
    status = await reader.status()
    await reader.close()
    assert status.last_run is not None
    assert status.last_run.state is RunState.ABORTED
    assert status.totals[DONE] == 0


# --- transactions


@LARGE_REQUESTS
async def test_a_batch_of_many_large_failed_rows_is_recorded_whole(raw: Any, table: str) -> None:
    store = DynamoDbCheckpointStore(table, JOB.name)
    failures = [big_failure(i, 20_000) for i in range(0, 300, 2)]  # 150 rows, 3 MB
    done = [outcome(i) for i in range(1, 300, 2)]
    await store.open(JOB, restart=False)
    try:
        await store.commit(failures + done, point(300), {})
        rows = await failed_rows(store)
        status = await store.status()
    finally:
        await store.close()

    assert rows == failures
    assert status.totals == {DONE: 150, FAILED: 150}
    pages = await items(raw, table, "fail#")
    assert 10 <= len(pages) < checkpoint_items.TRANSACT_ITEMS


async def test_a_batch_larger_than_one_transaction_is_split_in_offset_order(
    dynamodb: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_items, "TRANSACT_BYTES", 100_000)
    failures = [big_failure(i, 30_000) for i in range(12)]
    chunks = checkpoint_items.plan_chunks(list(reversed(failures)))
    store = DynamoDbCheckpointStore(table, JOB.name)
    await store.open(JOB, restart=False)
    try:
        await store.commit(failures, point(12), {})
        rows = await failed_rows(store)
    finally:
        await store.close()

    assert len(chunks) > 1
    assert [o for chunk in chunks for o in chunk.outcomes] == failures
    assert rows == failures


class DroppingProxy:
    """A TCP proxy that loses the answer to the next request of one operation: the service
    applied it, but the client hears a closed connection, and botocore sends it again."""

    def __init__(self, upstream: str) -> None:
        self.upstream_port = int(upstream.rsplit(":", 1)[1])
        self.operation = ""  # e.g. "PutItem": drop the answer to its next request
        self.dropped: list[str] = []
        self.url = ""
        self.writers: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> DroppingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self.writers:  # closing ends both pumps of every connection
            writer.close()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers |= {client_w, upstream_w}
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        doomed = False  # the request in flight on this connection loses its answer

        async def requests() -> None:
            nonlocal doomed
            while data := await client_r.read(65536):
                target = f"X-Amz-Target: DynamoDB_20120810.{self.operation}\r\n".encode()
                if self.operation and target in data:
                    doomed, self.operation = True, ""
                upstream_w.write(data)
                await upstream_w.drain()
            upstream_w.close()

        async def answers() -> None:
            while data := await upstream_r.read(65536):
                if doomed:
                    self.dropped.append(data.split(b"\r\n", 1)[0].decode())
                    break
                client_w.write(data)
                await client_w.drain()
            client_w.close()
            upstream_w.close()

        await asyncio.gather(requests(), answers(), return_exceptions=True)


@pytest.mark.parametrize("operation", ["PutItem", "UpdateItem", "TransactWriteItems"])
async def test_a_write_whose_answer_was_lost_is_resent_and_applied_once(
    dynamodb: str, table: str, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    store = DynamoDbCheckpointStore(table, JOB.name)
    async with DroppingProxy(dynamodb) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        proxy.operation = operation  # open() puts; a commit updates, or transacts with failures
        state = await store.open(JOB, restart=False)
        try:
            second = FAILED if operation == "TransactWriteItems" else DONE
            await store.commit([outcome(0), outcome(1, second)], point(2), {})
            await store.commit([outcome(2)], point(3), {})
            status = await store.status()
            rows = await failed_rows(store)
        finally:
            await store.close()

    assert proxy.dropped == ["HTTP/1.1 200 OK"]  # it was applied; botocore never heard
    assert state.runs == status.runs == 1
    assert status.resume_point == point(3)
    assert sum(status.totals.values()) == 3
    assert rows == ([outcome(1, FAILED)] if second is FAILED else [])


# --- items


async def test_restart_deletes_the_old_failure_pages(raw: Any, table: str) -> None:
    store = DynamoDbCheckpointStore(table, JOB.name)
    await store.open(JOB, restart=False)
    await store.commit([outcome(i, FAILED) for i in range(3)], point(3), {})
    await store.commit([outcome(3, FAILED)], point(4), {})
    before = await items(raw, table, "fail#")
    await store.close()

    await store.open(JOB, restart=True)
    after = await items(raw, table, "fail#")
    await store.close()

    assert len(before) == 2
    assert after == []


def item_bytes(value: Any, name: str = "") -> int:
    """DynamoDB's item size rule: names plus values; numbers ~1 byte per 2 digits."""
    if isinstance(value, dict) and not {"S", "N", "B", "M"} & value.keys():
        return sum(item_bytes(v, k) for k, v in value.items())
    size = len(name.encode())
    if "S" in value:
        return size + len(value["S"].encode())
    if "N" in value:
        return size + len(value["N"].strip("-").replace(".", "")) // 2 + 1
    if "B" in value:
        return size + len(value["B"])
    return size + 3 + sum(1 + item_bytes(v, k) for k, v in value["M"].items())


async def test_the_meta_item_stays_under_one_kilobyte_while_a_hundred_rows_wait(
    raw: Any, table: str
) -> None:
    job = JobIdentity(JOB.name, "/data/exports/crm-2025-01.csv", "sha256:" + "f" * 64, "csv")
    counters = dict.fromkeys(
        ["read", "skipped", "applied", "failed", "rejected_locally", "unchanged", "calls"], 10**6
    ) | {"retried": 12_345, "throttles": 67_890}
    store = DynamoDbCheckpointStore(table, JOB.name)
    await store.open(job, restart=False)
    # Record 1000 is stuck; the 100 behind it resolved, at ~230 bytes a record.
    waiting = [Outcome(10**8 + i * 230, 10**6 + i, "c", DONE) for i in range(1, 101)]
    await store.commit(waiting, point(10**6), counters)
    meta = await raw.get_item(TableName=table, Key={"pk": {"S": JOB.name}, "sk": {"S": "meta#0/1"}})
    await store.close()

    assert item_bytes(meta["Item"]) < 1024


async def test_shard_statuses_lists_every_shard_of_the_job_in_order(
    dynamodb: str, table: str
) -> None:
    labels = ["10/12", "2/12", "0/12"]  # 0-based, as bulkupdate.models counts
    stores = [DynamoDbCheckpointStore(table, JOB.name, parse_shard(label)) for label in labels]
    other_job = DynamoDbCheckpointStore(table, "another-job", parse_shard("1/12"))
    for failures, store in enumerate(stores):
        await store.open(JOB, restart=False)
        await store.commit([outcome(i, FAILED) for i in range(failures)], point(3), {})
    await other_job.open(JOB, restart=False)
    await stores[2].finish_run("finished", {})
    await stores[1].close()  # no finish_run: crashed
    try:
        found = await shard_statuses(table, JOB.name)
    finally:
        for store in [*stores, other_job]:
            await store.close()

    assert [label for label, _ in found] == ["0/12", "2/12", "10/12"]
    states = [status.last_run.state if status.last_run else None for _, status in found]
    assert states == [RunState.FINISHED, RunState.CRASHED, RunState.RUNNING]
    assert [status.totals[FAILED] for _, status in found] == [2, 1, 0]
    assert await shard_statuses(table, "no-such-job") == []


# --- SIGKILL anywhere: the store holds whole batches only


CHILD = """
import json, sys
from datetime import timedelta
import anyio, structlog
from bulkupdate.aws.checkpoint_dynamodb import DynamoDbCheckpointStore
from bulkupdate.checkpoint.store import utc_now
from tests.functional.test_checkpoint_crash import JOB, batch

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: ours

async def main(table, last_batch, ahead_s):
    now = lambda: utc_now() + timedelta(seconds=ahead_s)
    store = DynamoDbCheckpointStore(table, JOB.name, now=now)
    state = await store.open(JOB, restart=False)
    committed = state.counters.get("batch", 0)
    print(json.dumps({"batch": committed, "runs": state.runs}), flush=True)
    for number in range(committed + 1, last_batch + 1):
        outcomes, resume_point = batch(number)
        print(f"begin {number}", flush=True)
        await store.commit(outcomes, resume_point, {"batch": number})
        print(f"end {number}", flush=True)
    await store.finish_run("finished", {"batches": last_batch})
    await store.close()

anyio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
"""
KILLS = 5


def spawn(script: Path, table: str, last_batch: int, ahead_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), table, str(last_batch), str(ahead_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def look(table: str, ahead_s: float) -> tuple[Any, list[Outcome]]:
    async def read() -> tuple[Any, list[Outcome]]:
        now = lambda: utc_now() + timedelta(seconds=ahead_s)  # noqa: E731
        store = DynamoDbCheckpointStore(table, CRASH_JOB.name, now=now)
        try:
            return await store.status(), await failed_rows(store)
        finally:
            await store.close()

    return anyio.run(read)


@pytest.mark.timeout(90)
def test_a_killed_run_leaves_whole_batches_and_the_next_run_resumes(
    dynamodb: str, table: str, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    committed, runs = 0, 0

    for kill_no in range(KILLS):
        context = f"seed {seed}, kill {kill_no}"
        ahead_s = kill_no * 3600.0  # each child comes after the last one's lease lapsed
        child = spawn(script, table, 10**6, ahead_s)
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first, f"{context}: child died before opening: {child.communicate()}"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL, f"{context}: {errors}"
        found = json.loads(first)
        assert (found["batch"], found["runs"]) == (committed, runs + 1), context

        status, failed = look(table, ahead_s + 1800)
        possible = committed_range((first + rest).splitlines(), before=committed)
        committed = status.counters.get("batch", 0)
        want = expected_after(committed)
        assert committed in possible, f"{context}: holds batch {committed}, not {possible}"
        assert status.resume_point == want.resume_point, context
        assert {s.value: n for s, n in status.totals.items()} == want.totals, context
        assert failed == want.failed, context
        assert status.last_run is not None
        assert status.last_run.state is RunState.CRASHED, context
        runs = status.runs

    final = spawn(script, table, committed + 3, KILLS * 3600.0)
    _, errors = final.communicate(timeout=30)
    assert final.returncode == 0, errors
    status, failed = look(table, KILLS * 3600.0)
    assert failed == expected_after(committed + 3).failed
    assert status.last_run is not None
    assert status.last_run.state is RunState.FINISHED
    assert committed * BLOCK_RECORDS > 0, f"seed {seed}: no kill left a committed batch"
