"""The DynamoDB checkpoint store: the SQLite store's semantics for containers without a disk, one
request per commit. Owns the item format and the run lease; reads no input, sends no updates.

Items (partition key `pk` = job name, sort key `sk`; one table holds any number of jobs/shards):

    meta#<shard>                   one per checkpoint, < 1 KB: identity, resume point, totals,
                                   counters, the last run, the lease (owner, expiry), a version,
                                   and the offsets resolved ABOVE the resume point as delta
                                   varints in one Binary (bounded by the engine's read-ahead).
                                   Done rows below the resume point are counted, never stored.
    fail#<shard>#<gen>#<offset>    a page of failed rows (zlib of varint records: offset, line,
                                   attempts, case id, code, message, raw bytes; up to 300 KB),
                                   keyed by its first offset. <gen> changes on --restart, so
                                   wiping a checkpoint is one write; old pages are then deleted.

A commit is one conditional UpdateItem of the meta item (1 WCU while it stays under 1 KB), or,
when its batch has failed rows, one TransactWriteItems of that update plus the batch's pages (2
WCU per KB of each item): all or nothing, so a later row of a case is never recorded without the
earlier one. Costs for whole runs: /work/dynamodb-notes.md.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import re
import socket
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import structlog
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from bulkupdate.aws.client import SYSTEMIC_CODES
from bulkupdate.checkpoint import (
    CheckpointBusyError,
    CheckpointError,
    FingerprintMismatchError,
    JobIdentity,
    JobStatus,
    ResumeState,
    RunRecord,
    RunState,
    all_totals,
    check_end_state,
    check_resume_point,
    fresh_outcomes,
    summary_json,
    utc_now,
)
from bulkupdate.models import Outcome, ResumePoint, RowStatus

__all__ = ["DYNAMODB", "DynamoDbCheckpointStore", "parse_shard", "shard_statuses"]

SCHEMA_VERSION = 1
DYNAMODB = "dynamodb://"  # the --checkpoint scheme of this store
PAGE_FORMAT = b"\x01"  # first byte of a failure page: zlib of varint records follows
PAGE_BYTES = 300_000  # encoded rows per page before zlib; an item may hold 400 KB
TRANSACT_ITEMS = 100  # DynamoDB's limits per TransactWriteItems: 100 items, 4 MB in all
TRANSACT_BYTES = 3_500_000
RESOLVED_BYTES = 300_000  # ~150k offsets above the resume point; the engine keeps ~1000
CREATE_WAIT_S = 300.0
# Unlike UpdateCase nothing paces these calls, so botocore absorbs DynamoDB's throttles and 5xx
# itself. Connect errors are retried too: a dead endpoint costs 0-3 s (refused) to ~9 s (silent).
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=10,
    user_agent_appid="bulkupdate",
)
KEYS = (("pk", "HASH"), ("sk", "RANGE"))
_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
log = structlog.get_logger("bulkupdate")


def parse_shard(shard: str) -> tuple[int, int]:
    """ "INDEX/COUNT" as numbers, INDEX 0-based as in bulkupdate.sharding; ValueError unless
    0 <= INDEX < COUNT."""
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    if match is None or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"shard must be INDEX/COUNT, not {shard!r}")
    return int(match[1]), int(match[2])


class _TableMissingError(CheckpointError):
    pass


class _ConditionFailedError(Exception):
    """A conditional write found the item not as expected; the caller looks and decides."""


class _Table:
    """One aiobotocore client on one table: the only reader of DynamoDB's error codes."""

    __slots__ = ("_client", "_client_cm", "_profile", "location", "name", "region")

    def __init__(self, name: str, location: str, region: str | None, profile: str | None):
        self.name, self.location, self.region, self._profile = name, location, region, profile
        self._client_cm: Any = None
        self._client: Any = None

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        if self._client is None:
            await self._connect()
        try:
            response: dict[str, Any] = await getattr(self._client, operation)(**params)
        except ClientError as error:
            raise self._client_error(error, operation) from error
        except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as error:
            raise CheckpointError(self.location, self._transport_error(error)) from error
        return response

    async def _connect(self) -> None:
        try:
            session = AioSession(profile=self._profile)
            # botocore reads AWS_DEFAULT_REGION and profiles; other SDKs also honour AWS_REGION.
            region = session.get_config_variable("region") or os.environ.get("AWS_REGION")
            self.region = self.region or region
            if not self.region:
                raise CheckpointError(self.location, "no AWS Region: set AWS_REGION or --region")
            # No endpoint_url: botocore itself honours AWS_ENDPOINT_URL_DYNAMODB/AWS_ENDPOINT_URL.
            client_cm = session.create_client("dynamodb", self.region, config=CLIENT_CONFIG)
            self._client = await client_cm.__aenter__()
            self._client_cm = client_cm
        except BotoCoreError as error:
            raise CheckpointError(self.location, _redact(str(error))) from error

    async def close(self) -> None:
        client_cm, self._client_cm, self._client = self._client_cm, None, None
        if client_cm is not None:
            with anyio.CancelScope(shield=True):
                await client_cm.__aexit__(None, None, None)

    async def ensure(self, *, create: bool) -> None:
        """The table exists with our key schema and is ACTIVE; created first if allowed."""
        try:
            table = (await self.call("describe_table", TableName=self.name))["Table"]
        except _TableMissingError as missing:
            if not create:
                raise _TableMissingError(
                    self.location,
                    f"{missing.message} and creating it is off (create_table=False): create "
                    "it (partition key pk, sort key sk, both strings) or allow creation",
                ) from None
            table = await self._create()
        keys = {(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])}
        if keys != set(KEYS):
            raise CheckpointError(
                self.location,
                f"table {self.name!r} has key schema {sorted(keys)}; a checkpoint table "
                "needs partition key 'pk' and sort key 'sk', both strings",
            )
        deadline_s = time.monotonic() + CREATE_WAIT_S
        while table.get("TableStatus") != "ACTIVE":
            if time.monotonic() > deadline_s:
                raise CheckpointError(self.location, f"table {self.name!r} is not ACTIVE")
            await anyio.sleep(1.0)
            table = (await self.call("describe_table", TableName=self.name))["Table"]

    async def _create(self) -> dict[str, Any]:
        try:
            response = await self.call(
                "create_table",
                TableName=self.name,
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n, _ in KEYS],
                KeySchema=[{"AttributeName": n, "KeyType": kind} for n, kind in KEYS],
                BillingMode="PAY_PER_REQUEST",
            )
        except _TableInUseError:  # another run created it a moment ago
            return dict((await self.call("describe_table", TableName=self.name))["Table"])
        log.info("checkpoint_table_created", table=self.name, region=self.region)
        return dict(response["TableDescription"])

    async def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        key = {"pk": _s(pk), "sk": _s(sk)}
        response = await self.call("get_item", TableName=self.name, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    async def query(self, pk: str, prefix: str, **extra: Any) -> AsyncIterator[dict[str, Any]]:
        """Every item of `pk` whose sort key starts with `prefix`, in sort-key order."""
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _s(pk), ":prefix": _s(prefix)},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            page = await self.call("query", **params)
            for item in page.get("Items", []):
                yield item
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _client_error(self, error: ClientError, operation: str) -> Exception:
        response: dict[str, Any] = error.response
        code = str(response.get("Error", {}).get("Code", ""))
        message = _redact(str(response.get("Error", {}).get("Message", "")) or str(error))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        reasons = [str(r.get("Code")) for r in response.get("CancellationReasons", [])]
        wrapped = re.search(r"<Code>(.*?)</Code>.*?<Message>(.*?)</Message>", message, re.S)
        if wrapped:  # an XML error body (a proxy, or moto's IAM check) left as the message
            code, message = wrapped[1], wrapped[2]
        if code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons:
            return _ConditionFailedError()
        if code == "ResourceNotFoundException":
            where = f"table {self.name!r} does not exist in {self.region}"
            return _TableMissingError(self.location, where)
        if code == "ResourceInUseException" and operation == "create_table":
            return _TableInUseError(self.location, message)
        if code in SYSTEMIC_CODES or status in (401, 403):
            return CheckpointError(
                self.location,
                f"{operation} on table {self.name!r} in {self.region} was refused ({code}: "
                f"{message}); check the credentials and that the IAM policy allows it",
            )
        if reasons:
            message += f" (reasons: {', '.join(reasons)}); none of it was written"
        return CheckpointError(self.location, f"{operation} failed: {code or status}: {message}")

    def _transport_error(self, error: Exception) -> str:
        if isinstance(error, NoCredentialsError):
            return "no AWS credentials found (environment, profile, container or instance role)"
        if isinstance(error, BotoCoreError) and not isinstance(
            error, BotoConnectionError | HTTPClientError
        ):
            return _redact(f"{type(error).__name__}: {error}")
        url = urlsplit(str(self._client.meta.endpoint_url)) if self._client else None
        where = f" at {url.scheme}://{url.hostname}:{url.port or 443}" if url else ""
        return f"cannot reach DynamoDB{where} ({self.region}): {_redact(str(error))}"


class _TableInUseError(CheckpointError):
    pass


def _redact(text: str) -> str:
    return _KEY_ID.sub(lambda m: m[1] + "…", text)


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(round(value, 3) if isinstance(value, float) else value)}


# --- encodings (pure)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def pack_offsets(base: int, offsets: frozenset[int]) -> bytes:
    """Offsets at or above `base` as gaps from the one before, a varint each."""
    out, previous = bytearray(b"\x01"), base  # a format byte: never an empty Binary
    for offset in sorted(offsets):
        out += _varint(offset - previous)
        previous = offset
    return bytes(out)


def unpack_offsets(base: int, data: bytes) -> frozenset[int]:
    offsets, pos = [], 1
    while pos < len(data):
        gap, pos = _read_varint(data, pos)
        base += gap
        offsets.append(base)
    return frozenset(offsets)


def _encode_row(row: Outcome) -> bytes:
    out = bytearray(_varint(row.offset) + _varint(row.line) + _varint(row.attempts))
    texts = (row.case_id, row.error_code, row.error_message)
    for value in (*(t.encode() if t is not None else None for t in texts), row.raw):
        out += _varint(0) if value is None else _varint(len(value) + 1) + value
    return bytes(out)


def decode_page(page: bytes) -> list[Outcome]:
    if page[:1] != PAGE_FORMAT:
        raise ValueError(f"failure page format {page[:1]!r}, not {PAGE_FORMAT!r}")
    data, pos, rows = zlib.decompress(page[1:]), 0, []
    while pos < len(data):
        numbers = []
        for _ in range(3):
            number, pos = _read_varint(data, pos)
            numbers.append(number)
        values: list[bytes | None] = []
        for _ in range(4):
            size, pos = _read_varint(data, pos)
            values.append(data[pos : pos + size - 1] if size else None)
            pos += max(size - 1, 0)
        (offset, line, attempts), (case, code, message, raw) = numbers, values
        rows.append(
            Outcome(
                offset,
                line,
                case.decode() if case is not None else "",
                RowStatus.FAILED,
                code.decode() if code is not None else None,
                message.decode() if message is not None else None,
                raw,
                attempts,
            )
        )
    return rows


def _fit(row: Outcome) -> bytes:
    """A failed row's record; one too big for any page keeps the head of its raw bytes."""
    encoded = _encode_row(row)
    if len(encoded) <= PAGE_BYTES or row.raw is None:
        return encoded
    keep = max(0, len(row.raw) - (len(encoded) - PAGE_BYTES) - 64)
    log.warning("checkpoint_row_truncated", line=row.line, raw_bytes=len(row.raw), kept=keep)
    note = f" [the checkpoint kept the first {keep} of this row's {len(row.raw)} bytes]"
    message = (row.error_message or "") + note
    return _encode_row(replace(row, raw=row.raw[:keep], error_message=message))


@dataclass(frozen=True, slots=True)
class Chunk:
    outcomes: list[Outcome]  # in offset order
    pages: list[tuple[int, bytes]]  # (first offset, page) of its failed rows


def plan_chunks(fresh: Sequence[Outcome]) -> list[Chunk]:
    """The batch as transactions in offset order: one, unless its failed rows overflow one
    transaction (100 items, 4 MB). Later chunks hold only later offsets, so a crash between two
    still leaves no row of a case recorded without the earlier ones."""
    ordered = sorted(fresh, key=lambda o: o.offset)
    pages: list[tuple[int, bytes]] = []
    first, records = 0, bytearray()
    for row in (o for o in ordered if o.status is RowStatus.FAILED):
        record = _fit(row)
        if records and len(records) + len(record) > PAGE_BYTES:
            pages.append((first, PAGE_FORMAT + zlib.compress(records)))
            records = bytearray()
        if not records:
            first = row.offset
        records += record
    if records:
        pages.append((first, PAGE_FORMAT + zlib.compress(records)))
    groups: list[list[tuple[int, bytes]]] = [[]]
    for page in pages:  # the meta update is one item of each transaction
        group = groups[-1]
        full = len(group) + 2 > TRANSACT_ITEMS
        if group and (full or sum(len(p) for _, p in group) + len(page[1]) > TRANSACT_BYTES):
            groups.append(group := [])
        group.append(page)
    chunks, start = [], 0
    for number, group in enumerate(groups, start=1):
        end = len(ordered)
        if number < len(groups):
            bound = groups[number][0][0]
            end = next(i for i, o in enumerate(ordered) if o.offset >= bound)
        chunks.append(Chunk(ordered[start:end], group))
        start = end
    return chunks


# --- the meta item


@dataclass(frozen=True, slots=True)
class _Meta:
    job: JobIdentity
    gen: str  # names this checkpoint's failure pages; --restart picks a new one
    resume_point: ResumePoint
    resolved: frozenset[int]  # offsets resolved at or above the resume point
    totals: Mapping[RowStatus, int]
    counters: Mapping[str, int]
    runs: int
    run: RunRecord | None
    lease_owner: str | None
    lease_until: float  # epoch seconds
    version: int  # +1 on each write but lease renewals; every write is conditional on it
    token: str  # names the write that made this version: a resent write can tell it landed
    created_at: datetime
    updated_at: datetime

    def progress(self) -> dict[str, Any]:
        """The attributes a commit sets."""
        resolved = pack_offsets(self.resume_point.offset, self.resolved)
        if len(resolved) > RESOLVED_BYTES:
            raise ValueError(f"{len(self.resolved)} rows resolved above the resume point")
        return {
            "resume_offset": _n(self.resume_point.offset),
            "resume_line": _n(self.resume_point.line),
            "resolved": {"B": resolved},
            "totals": {"M": {status.value: _n(rows) for status, rows in self.totals.items()}},
            "counters": {"M": {name: _n(value) for name, value in self.counters.items()}},
            "updated_at": _s(self.updated_at.isoformat()),
        }

    def to_item(self, pk: str, sk: str) -> dict[str, Any]:
        job = self.job
        item = {"pk": _s(pk), "sk": _s(sk), "schema": _n(SCHEMA_VERSION), "gen": _s(self.gen)}
        item.update(job_name=_s(job.name), input_path=_s(job.input_path))
        item.update(fingerprint=_s(job.fingerprint), format=_s(job.format))
        item.update(runs=_n(self.runs), version=_n(self.version), token=_s(self.token))
        item.update(created_at=_s(self.created_at.isoformat()), **self.progress())
        if self.run is not None:
            item["run"] = _run_json(self.run)
        if self.lease_owner is not None:
            item.update(lease_owner=_s(self.lease_owner), lease_until=_n(self.lease_until))
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any], location: str) -> _Meta:
        schema = int(item.get("schema", {}).get("N", 0))
        if schema != SCHEMA_VERSION:
            newer = " (written by a newer bulkupdate)" if schema > SCHEMA_VERSION else ""
            what = f"has schema version {schema}{newer}" if schema else "is not a checkpoint"
            raise CheckpointError(location, f"item {item['sk']['S']!r} {what}")
        s = {name: value["S"] for name, value in item.items() if "S" in value}
        n = {name: float(value["N"]) for name, value in item.items() if "N" in value}
        resume_point = ResumePoint(int(n["resume_offset"]), int(n["resume_line"]))
        return cls(
            job=JobIdentity(s["job_name"], s["input_path"], s["fingerprint"], s["format"]),
            gen=s["gen"],
            resume_point=resume_point,
            resolved=unpack_offsets(resume_point.offset, bytes(item["resolved"]["B"])),
            totals=all_totals({k: int(v["N"]) for k, v in item["totals"]["M"].items()}),
            counters={k: int(v["N"]) for k, v in item["counters"]["M"].items()},
            runs=int(n["runs"]),
            run=_run_from_json(s["run"]) if "run" in s else None,
            lease_owner=s.get("lease_owner"),
            lease_until=n.get("lease_until", 0.0),
            version=int(n["version"]),
            token=s["token"],
            created_at=datetime.fromisoformat(s["created_at"]),
            updated_at=datetime.fromisoformat(s["updated_at"]),
        )

    def leased(self, now: datetime) -> bool:
        return self.lease_owner is not None and self.lease_until > now.timestamp()

    def status(self, now: datetime) -> JobStatus:
        run = self.run
        if run is not None and run.state is RunState.RUNNING and not self.leased(now):
            run = replace(run, state=RunState.CRASHED)  # its lease lapsed: nobody runs it
        return JobStatus(
            job=self.job,
            resume_point=self.resume_point,
            totals=dict(self.totals),
            counters=dict(self.counters),
            runs=self.runs,
            last_run=run,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


def _run_json(run: RunRecord) -> dict[str, str]:
    ended_at = run.ended_at.isoformat() if run.ended_at else None
    fields: dict[str, Any] = {"number": run.number, "state": run.state.value, "pid": run.pid}
    fields.update(started_at=run.started_at.isoformat(), ended_at=ended_at, summary=run.summary)
    return _s(summary_json(fields))


def _run_from_json(text: str) -> RunRecord:
    run = json.loads(text)
    ended_at = datetime.fromisoformat(run["ended_at"]) if run["ended_at"] else None
    started_at = datetime.fromisoformat(run["started_at"])
    state = RunState(run["state"])
    return RunRecord(run["number"], state, run["pid"], started_at, ended_at, run["summary"])


def _empty(job: JobIdentity, now: datetime) -> _Meta:
    """A checkpoint with nothing in it yet, under a generation of its own."""
    return _Meta(
        job=job,
        gen=uuid.uuid4().hex[:8],
        resume_point=ResumePoint(),
        resolved=frozenset(),
        totals=all_totals({}),
        counters={},
        runs=0,
        run=None,
        lease_owner=None,
        lease_until=0.0,
        version=0,
        token="",
        created_at=now,
        updated_at=now,
    )


def _token() -> str:
    return uuid.uuid4().hex[:12]


# --- the store


class DynamoDbCheckpointStore:
    """A `CheckpointStore` in a DynamoDB table; (job, shard) names one checkpoint.

    `open` takes a lease on the meta item (an owner id unique to this instance, and an expiry
    `lease_s` ahead), renewed by every write and by a heartbeat while idle, and given back by
    `close`. A run whose lease lapsed before `finish_run` shows as crashed; the next `open` takes
    over. Every write is conditional on the owner and the version, so a run that lost its lease
    can write nothing more: a container frozen past its lease cannot undo its successor's work.
    """

    __slots__ = (
        "_create_table",
        "_heartbeat",
        "_lease_s",
        "_lease_written_s",
        "_lock",
        "_meta",
        "_now",
        "_owner",
        "_pk",
        "_refusal",
        "_run_ended",
        "_shard",
        "_table",
        "_unsettled",
    )

    def __init__(
        self,
        table: str,
        job: str,
        shard: str = "0/1",
        *,
        create_table: bool = True,
        region: str | None = None,
        profile: str | None = None,
        lease_s: float = 60.0,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        parse_shard(shard)
        if not job:
            raise ValueError("job name must not be empty")
        location = f"dynamodb://{table} (job {job!r}, shard {shard})"
        self._table = _Table(table, location, region, profile)
        self._pk, self._shard = job, shard
        self._create_table = create_table
        self._lease_s = lease_s
        self._now = now
        self._owner = f"{socket.gethostname()} pid {os.getpid()} #{uuid.uuid4().hex[:6]}"
        self._lock = anyio.Lock()  # one write at a time: each one names the version before it
        self._meta: _Meta | None = None  # as last written, while this instance holds the lease
        self._run_ended = False
        self._unsettled: tuple[str, _Meta] | None = None  # a write that failed once sent
        # Why this run may write no more (lease lost), or commit no more (a batch not recorded).
        self._refusal: tuple[CheckpointError, bool] | None = None  # (error, finish_run too)
        self._heartbeat: asyncio.Task[None] | None = None
        self._lease_written_s = 0.0  # time.monotonic() of the last write that renewed the lease

    @property
    def location(self) -> str:
        return self._table.location

    async def open(self, job: JobIdentity, *, restart: bool) -> ResumeState:
        if self._meta is not None:
            raise RuntimeError("checkpoint store is already open")
        try:
            async with self._lock:
                await self._table.ensure(create=self._create_table)
                meta = await self._start_run(job, restart)
            # The Protocol has no context to host a task group, so the heartbeat is a plain
            # asyncio task (aiobotocore runs on asyncio only), stopped and awaited by close().
            self._heartbeat = asyncio.get_running_loop().create_task(self._renew_while_open())
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        return ResumeState(meta.resume_point, meta.resolved, meta.totals, meta.counters, meta.runs)

    async def commit(
        self, outcomes: Sequence[Outcome], resume_point: ResumePoint, counters: Mapping[str, int]
    ) -> None:
        async with self._lock:
            meta = await self._running(commit=True)
            check_resume_point(meta.resume_point, resume_point)
            fresh = [
                outcome
                for outcome in fresh_outcomes(outcomes, meta.resume_point.offset)
                if outcome.offset not in meta.resolved
            ]
            merged = {**meta.counters, **counters}
            if not fresh and resume_point == meta.resume_point and merged == meta.counters:
                return  # nothing new: no write, no cost (the heartbeat keeps the lease)
            chunks = plan_chunks(fresh)
            for number, chunk in enumerate(chunks, start=1):
                last = number == len(chunks)
                totals = dict(meta.totals)
                for outcome in chunk.outcomes:
                    totals[outcome.status] += 1
                point = resume_point if last else meta.resume_point
                resolved = meta.resolved.union(o.offset for o in chunk.outcomes)
                meta = replace(
                    meta,
                    resume_point=point,
                    resolved=frozenset(o for o in resolved if o >= point.offset),
                    totals=totals,
                    counters=merged if last else meta.counters,
                    updated_at=self._now(),
                )
                try:
                    progress = meta.progress()
                except ValueError as error:
                    raise CheckpointError(self.location, f"{error}: lower the read-ahead") from None
                await self._write(meta, meta.updated_at, progress, chunk.pages)

    async def failed_rows(self) -> AsyncIterator[Outcome]:
        meta = await self._read_meta()
        prefix = f"fail#{self._shard}#{meta.gen}#"
        # Pages come in order of their first offset and hold no row below it, so a row below
        # the next page's first offset can go: memory holds only pages that overlap.
        waiting: list[tuple[int, Outcome]] = []
        async for item in self._table.query(self._pk, prefix):
            first = int(item["sk"]["S"].removeprefix(prefix))
            while waiting and waiting[0][0] < first:
                yield heapq.heappop(waiting)[1]
            try:
                rows = decode_page(bytes(item["rows"]["B"]))
            except (KeyError, ValueError, IndexError, zlib.error) as error:
                raise CheckpointError(
                    self.location, f"damaged {item['sk']['S']}: {error}"
                ) from None
            for row in rows:
                heapq.heappush(waiting, (row.offset, row))
        while waiting:
            yield heapq.heappop(waiting)[1]

    async def status(self) -> JobStatus:
        return (await self._read_meta()).status(self._now())

    async def finish_run(self, end_state: str, summary: Mapping[str, Any]) -> None:
        state = check_end_state(end_state)
        async with self._lock:
            meta = await self._running(commit=False)
            if meta.run is None:
                raise RuntimeError("checkpoint store is not open")
            now = self._now()
            ended = json.loads(summary_json(summary))
            run = replace(meta.run, state=state, ended_at=now, summary=ended)
            await self._write(replace(meta, run=run), now, {"run": _run_json(run)})
            self._run_ended = True

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):  # a cancelled caller must still give the lease back
            heartbeat, self._heartbeat = self._heartbeat, None
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.wait({heartbeat})
            async with self._lock:
                meta, self._meta = self._meta, None
                self._run_ended, self._unsettled, self._refusal = False, None, None
                if meta is not None:
                    await self._release()
                await self._table.close()

    # --- starting a run

    async def _read_meta(self) -> _Meta:
        item = await self._table.get(self._pk, f"meta#{self._shard}")
        if item is None:
            raise CheckpointError(self.location, "holds no job yet")
        return _Meta.from_item(item, self.location)

    async def _start_run(self, job: JobIdentity, restart: bool) -> _Meta:
        for _ in range(3):  # another run may write between our read and our write
            now = self._now()
            item = await self._table.get(self._pk, f"meta#{self._shard}")
            stored = _Meta.from_item(item, self.location) if item is not None else None
            if stored is not None and stored.leased(now) and stored.lease_owner != self._owner:
                until = datetime.fromtimestamp(stored.lease_until, UTC).isoformat()
                raise CheckpointBusyError(
                    self.location,
                    f"another run ({stored.lease_owner}) holds its lease until {until}; wait "
                    "for it to end (a run that died lets its lease lapse by then)",
                )
            if stored is not None and stored.job != job and not restart:
                raise FingerprintMismatchError(self.location, stored.job, job)
            fresh = stored is None or restart
            base = _empty(job, now) if fresh or stored is None else stored
            meta = replace(
                base,
                runs=base.runs + 1,
                run=RunRecord(base.runs + 1, RunState.RUNNING, os.getpid(), now, None, {}),
                lease_owner=self._owner,
                lease_until=now.timestamp() + self._lease_s,
                version=(stored.version if stored else 0) + 1,
                token=_token(),
            )
            # New; or unchanged since we read it with its lease free, lapsed or ours. Or this
            # very put landed already and botocore is sending it again.
            condition, values = "attribute_not_exists(sk)", {":token": _s(meta.token)}
            if stored is not None:
                condition = (
                    "version = :read AND (attribute_not_exists(lease_owner) OR "
                    "lease_owner = :me OR lease_until < :now)"
                )
                values |= {
                    ":read": _n(stored.version),
                    ":me": _s(self._owner),
                    ":now": _n(now.timestamp()),
                }
            try:
                await self._table.call(
                    "put_item",
                    TableName=self._table.name,
                    Item=meta.to_item(self._pk, f"meta#{self._shard}"),
                    ConditionExpression=f"({condition}) OR #token = :token",
                    ExpressionAttributeNames={"#token": "token"},
                    ExpressionAttributeValues=values,
                )
            except _ConditionFailedError:
                continue
            self._meta, self._run_ended = meta, False
            self._lease_written_s = time.monotonic()
            if fresh:
                await self._forget_other_generations(meta.gen)
            return meta
        raise CheckpointBusyError(self.location, "another run is starting on it at the same time")

    async def _forget_other_generations(self, gen: str) -> None:
        """Delete failure pages of a wiped or vanished checkpoint. They are unreachable already
        (the meta item names another generation): this only stops paying for their storage."""
        prefix = f"fail#{self._shard}#"
        stale = [
            {"DeleteRequest": {"Key": {"pk": _s(self._pk), "sk": item["sk"]}}}
            async for item in self._table.query(self._pk, prefix, ProjectionExpression="sk")
            if not item["sk"]["S"].startswith(f"{prefix}{gen}#")
        ]
        for start in range(0, len(stale), 25):
            requests = stale[start : start + 25]
            for _ in range(5):
                answer = await self._table.call(
                    "batch_write_item", RequestItems={self._table.name: requests}
                )
                requests = answer.get("UnprocessedItems", {}).get(self._table.name, [])
                if not requests:
                    break
                await anyio.sleep(0.2)

    # --- writing

    async def _running(self, *, commit: bool) -> _Meta:
        if self._meta is None:
            raise RuntimeError("checkpoint store is not open")
        if self._run_ended:
            raise RuntimeError("run already ended")
        if self._unsettled is not None:  # did the write that failed land after all?
            token, written = self._unsettled
            item = await self._table.get(self._pk, f"meta#{self._shard}")
            self._unsettled = None
            if item is not None and item.get("token") == _s(token):
                self._meta = written
            elif self._refusal is None:  # its rows are not recorded: going on could skip them
                message = (
                    "a batch could not be recorded, so this run may record no more; stop and "
                    "resume, and the rows of that batch are sent again"
                )
                self._refusal = CheckpointError(self.location, message), False
        if self._refusal is not None and (commit or self._refusal[1]):
            error = self._refusal[0]
            raise type(error)(error.location, error.message)
        return self._meta

    async def _write(
        self,
        meta: _Meta,
        now: datetime,
        values: Mapping[str, Any],
        pages: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        """Write the next version: one conditional request, which also renews the lease."""
        before = self._meta
        assert before is not None
        meta = replace(
            meta,
            version=before.version + 1,
            token=_token(),
            lease_until=now.timestamp() + self._lease_s,
        )
        sets = {**values, "version": _n(meta.version), "token": _s(meta.token)}
        sets["lease_until"] = _n(meta.lease_until)
        update = {
            "TableName": self._table.name,
            "Key": {"pk": _s(self._pk), "sk": _s(f"meta#{self._shard}")},
            "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in sets),
            "ConditionExpression": "#lease_owner = :me AND #version = :before",
            "ExpressionAttributeNames": {f"#{name}": name for name in [*sets, "lease_owner"]},
            "ExpressionAttributeValues": {
                **{f":{name}": value for name, value in sets.items()},
                ":me": _s(self._owner),
                ":before": _n(before.version),
            },
        }
        try:
            if not pages:
                await self._table.call("update_item", **update)
            else:
                puts = [
                    {"Put": {"TableName": self._table.name, "Item": self._page(meta, *page)}}
                    for page in pages
                ]
                await self._table.call(
                    "transact_write_items",
                    TransactItems=[{"Update": update}, *puts],
                    ClientRequestToken=meta.token,  # botocore resends it: applied once
                )
        except _ConditionFailedError:
            await self._settle_conflict(meta.token)
        except BaseException:
            self._unsettled = (meta.token, meta)  # sent, maybe applied: look before going on
            raise
        self._meta = meta
        self._lease_written_s = time.monotonic()

    def _page(self, meta: _Meta, first: int, page: bytes) -> dict[str, Any]:
        sk = f"fail#{self._shard}#{meta.gen}#{first:020d}"
        return {"pk": _s(self._pk), "sk": _s(sk), "rows": {"B": page}}

    async def _settle_conflict(self, token: str) -> None:
        """A write's condition failed: an earlier attempt of it landed, or someone else wrote."""
        item = await self._table.get(self._pk, f"meta#{self._shard}")
        if item is not None and item.get("token") == _s(token):
            return  # botocore resent a write whose first answer was lost
        error = CheckpointError(self.location, "was changed by someone else during the run")
        owner = item.get("lease_owner", {}).get("S") if item is not None else None
        if item is None:
            error = CheckpointError(self.location, "its meta item was deleted during the run")
        elif owner != self._owner:
            error = CheckpointBusyError(
                self.location,
                f"another run ({owner or 'none'}) took it over after this run's lease lapsed; "
                "this run stops so that no row is sent twice",
            )
        self._refusal = error, True  # this run may write nothing more
        raise error

    # --- the lease

    async def _renew_while_open(self) -> None:
        interval_s = self._lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            async with self._lock:
                meta = self._meta
                if meta is None:
                    return
                if time.monotonic() - self._lease_written_s < interval_s:
                    continue  # a commit renewed it
                until = self._now().timestamp() + self._lease_s
                try:
                    await self._table.call(
                        "update_item",
                        TableName=self._table.name,
                        Key={"pk": _s(self._pk), "sk": _s(f"meta#{self._shard}")},
                        UpdateExpression="SET lease_until = :until",
                        ConditionExpression="lease_owner = :me",
                        ExpressionAttributeValues={":until": _n(until), ":me": _s(self._owner)},
                    )
                except _ConditionFailedError:
                    log.error("checkpoint_lease_lost", checkpoint=self.location)
                    return  # the next write stops the run
                except CheckpointError as error:
                    log.warning("checkpoint_lease_renewal_failed", error=error.message)
                    continue
                self._meta = replace(meta, lease_until=until)
                self._lease_written_s = time.monotonic()

    async def _release(self) -> None:
        try:
            await self._table.call(
                "update_item",
                TableName=self._table.name,
                Key={"pk": _s(self._pk), "sk": _s(f"meta#{self._shard}")},
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues={":me": _s(self._owner)},
            )
        except _ConditionFailedError:
            pass  # taken over already
        except CheckpointError as error:  # it lapses by itself
            log.warning("checkpoint_lease_release_failed", error=error.message)


async def shard_statuses(
    table: str,
    job: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    now: Callable[[], datetime] = utc_now,
) -> list[tuple[str, JobStatus]]:
    """Every shard of `job` checkpointed in `table`, by shard; empty if it has none."""
    location = f"dynamodb://{table} (job {job!r})"
    reader = _Table(table, location, region, profile)
    try:
        items = [item async for item in reader.query(job, "meta#")]
    finally:
        await reader.close()
    statuses = [
        (item["sk"]["S"].removeprefix("meta#"), _Meta.from_item(item, location).status(now()))
        for item in items
    ]
    return sorted(statuses, key=lambda pair: parse_shard(pair[0])[::-1])
