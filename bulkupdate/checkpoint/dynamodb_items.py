"""The DynamoDB checkpoint's items and conditional requests as plain data: packed offsets, failure
pages, the plan of a commit's transactions, the meta item. Pure: stdlib and the checkpoint types
only; no I/O, no asyncio, no logging (truncated rows are returned for the caller to log).

Items (partition key `pk` = job name, sort key `sk`; one table holds any number of jobs/shards):

    meta#<shard>                   one per checkpoint, < 1 KB: identity, resume point, totals,
                                   counters, the last run, the lease (owner, expiry), a version,
                                   and the offsets resolved ABOVE the resume point as delta
                                   varints in one Binary (bounded by the engine's read-ahead).
                                   Done rows below the resume point are counted, never stored.
                                   While BatchUpdateCase calls are recorded and not yet resolved
                                   (`groups`, zlib of JSON, ~1-3 KB a call) it grows past 1 KB.
    fail#<shard>#<gen>#<offset>    a page of failed rows (zlib of varint records: offset, line,
                                   attempts, case id, code, message, raw bytes; up to 300 KB),
                                   keyed by its first offset. <gen> changes on --restart, so
                                   wiping a checkpoint is one write; old pages are then deleted.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bulkupdate.checkpoint.store import (
    CheckpointError,
    JobIdentity,
    JobStatus,
    RecordedGroup,
    RunRecord,
    RunState,
    all_totals,
    summary_json,
)
from bulkupdate.models import Outcome, ResumePoint, RowStatus

__all__ = [
    "PAGE_BYTES",
    "RESOLVED_BYTES",
    "SCHEMA_VERSION",
    "TRANSACT_BYTES",
    "TRANSACT_ITEMS",
    "Chunk",
    "MetaItem",
    "Truncation",
    "attr_n",
    "attr_s",
    "claiming_put",
    "decode_page",
    "empty_meta",
    "pack_groups",
    "pack_offsets",
    "page_items",
    "plan_chunks",
    "run_attr",
    "unpack_groups",
    "unpack_offsets",
    "versioned_update",
]

SCHEMA_VERSION = 1
PAGE_FORMAT = b"\x01"  # first byte of a failure page: zlib of varint records follows
PAGE_BYTES = 300_000  # encoded rows per page before zlib; an item may hold 400 KB
TRANSACT_ITEMS = 100  # DynamoDB's limits per TransactWriteItems: 100 items, 4 MB in all
TRANSACT_BYTES = 3_500_000
RESOLVED_BYTES = 300_000  # ~150k offsets above the resume point; the engine keeps ~1000


def attr_s(value: str) -> dict[str, str]:
    return {"S": value}


def attr_n(value: float) -> dict[str, str]:
    return {"N": str(round(value, 3) if isinstance(value, float) else value)}


# --- packed offsets


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


# --- failure pages


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


@dataclass(frozen=True, slots=True)
class Truncation:
    """A failed row too big for any page: only the head of its raw bytes is recorded. Its
    fields are the keys of the `checkpoint_row_truncated` log event."""

    line: int
    raw_bytes: int
    kept: int


def _fit(row: Outcome) -> tuple[bytes, Truncation | None]:
    """A failed row's record; one too big for any page keeps the head of its raw bytes."""
    encoded = _encode_row(row)
    if len(encoded) <= PAGE_BYTES or row.raw is None:
        return encoded, None
    keep = max(0, len(row.raw) - (len(encoded) - PAGE_BYTES) - 64)
    note = f" [the checkpoint kept the first {keep} of this row's {len(row.raw)} bytes]"
    message = (row.error_message or "") + note
    record = _encode_row(replace(row, raw=row.raw[:keep], error_message=message))
    return record, Truncation(row.line, len(row.raw), keep)


# --- transactions


@dataclass(frozen=True, slots=True)
class Chunk:
    outcomes: list[Outcome]  # in offset order
    pages: list[tuple[int, bytes]]  # (first offset, page) of its failed rows
    truncated: list[Truncation]  # its failed rows whose raw bytes were cut to fit a page


def plan_chunks(fresh: Sequence[Outcome]) -> list[Chunk]:
    """The batch as transactions in offset order: one, unless its failed rows overflow one
    transaction (100 items, 4 MB). Later chunks hold only later offsets, so a crash between two
    still leaves no row of a case recorded without the earlier ones."""
    ordered = sorted(fresh, key=lambda o: o.offset)
    pages: list[tuple[int, bytes]] = []
    cut: dict[int, Truncation] = {}
    first, records = 0, bytearray()
    for row in (o for o in ordered if o.status is RowStatus.FAILED):
        record, truncation = _fit(row)
        if truncation is not None:
            cut[row.offset] = truncation
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
        outcomes = ordered[start:end]
        truncated = [cut[o.offset] for o in outcomes if o.offset in cut]
        chunks.append(Chunk(outcomes, group, truncated))
        start = end
    return chunks


def page_items(
    pk: str, shard: str, gen: str, pages: Sequence[tuple[int, bytes]]
) -> list[dict[str, Any]]:
    """The items of a chunk's (first offset, page) pairs: `fail#<shard>#<gen>#<first offset>`."""
    return [
        {"pk": attr_s(pk), "sk": attr_s(f"fail#{shard}#{gen}#{first:020d}"), "rows": {"B": page}}
        for first, page in pages
    ]


# --- the meta item


@dataclass(frozen=True, slots=True)
class MetaItem:
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
    groups: tuple[RecordedGroup, ...] = ()  # BatchUpdateCase calls recorded, in order

    def progress(self) -> dict[str, Any]:
        """The attributes a commit sets."""
        resolved = pack_offsets(self.resume_point.offset, self.resolved)
        if len(resolved) > RESOLVED_BYTES:
            raise ValueError(f"{len(self.resolved)} rows resolved above the resume point")
        return {
            "resume_offset": attr_n(self.resume_point.offset),
            "resume_line": attr_n(self.resume_point.line),
            "resolved": {"B": resolved},
            "totals": {"M": {status.value: attr_n(rows) for status, rows in self.totals.items()}},
            "counters": {"M": {name: attr_n(value) for name, value in self.counters.items()}},
            "updated_at": attr_s(self.updated_at.isoformat()),
            "groups": {"B": pack_groups(self.groups)},
        }

    def with_group(self, group: RecordedGroup, now: datetime) -> MetaItem:
        return replace(self, groups=(*self.groups, group), updated_at=now)

    def recorded(
        self,
        outcomes: Sequence[Outcome],
        resume_point: ResumePoint,
        counters: Mapping[str, int],
        now: datetime,
        groups_done: Sequence[str] = (),
    ) -> MetaItem:
        """This checkpoint once `outcomes` are recorded, the groups `groups_done` forgotten,
        and it resumes at `resume_point`."""
        totals = dict(self.totals)
        for outcome in outcomes:
            totals[outcome.status] += 1
        resolved = self.resolved.union(o.offset for o in outcomes)
        return replace(
            self,
            resume_point=resume_point,
            resolved=frozenset(o for o in resolved if o >= resume_point.offset),
            totals=totals,
            counters=counters,
            updated_at=now,
            groups=tuple(g for g in self.groups if g.token not in groups_done),
        )

    def to_item(self, pk: str, sk: str) -> dict[str, Any]:
        job = self.job
        item = {
            "pk": attr_s(pk),
            "sk": attr_s(sk),
            "schema": attr_n(SCHEMA_VERSION),
            "gen": attr_s(self.gen),
        }
        item.update(job_name=attr_s(job.name), input_path=attr_s(job.input_path))
        item.update(fingerprint=attr_s(job.fingerprint), format=attr_s(job.stored_format))
        item.update(runs=attr_n(self.runs), version=attr_n(self.version), token=attr_s(self.token))
        item.update(created_at=attr_s(self.created_at.isoformat()), **self.progress())
        if self.run is not None:
            item["run"] = run_attr(self.run)
        if self.lease_owner is not None:
            item.update(lease_owner=attr_s(self.lease_owner), lease_until=attr_n(self.lease_until))
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any], location: str) -> MetaItem:
        schema = int(item.get("schema", {}).get("N", 0))
        if schema != SCHEMA_VERSION:
            newer = " (written by a newer bulkupdate)" if schema > SCHEMA_VERSION else ""
            what = f"has schema version {schema}{newer}" if schema else "is not a checkpoint"
            raise CheckpointError(location, f"item {item['sk']['S']!r} {what}")
        s = {name: value["S"] for name, value in item.items() if "S" in value}
        n = {name: float(value["N"]) for name, value in item.items() if "N" in value}
        resume_point = ResumePoint(int(n["resume_offset"]), int(n["resume_line"]))
        return cls(
            job=JobIdentity.from_stored(
                s["job_name"], s["input_path"], s["fingerprint"], s["format"]
            ),
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
            groups=unpack_groups(bytes(item["groups"]["B"])) if "groups" in item else (),
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
            resolved_offsets=self.resolved,
        )


def claiming_put(
    table: str, item: Mapping[str, Any], stored: MetaItem | None, now: datetime
) -> dict[str, Any]:
    """PutItem parameters that start a run with the meta item `item`, owned by its lease_owner:
    new; or unchanged since it was read as `stored` with its lease free, lapsed or ours. Or this
    very put landed already and botocore is sending it again."""
    condition, values = "attribute_not_exists(sk)", {":token": item["token"]}
    if stored is not None:
        condition = (
            "version = :read AND (attribute_not_exists(lease_owner) OR "
            "lease_owner = :me OR lease_until < :now)"
        )
        values |= {
            ":read": attr_n(stored.version),
            ":me": item["lease_owner"],
            ":now": attr_n(now.timestamp()),
        }
    return {
        "TableName": table,
        "Item": item,
        "ConditionExpression": f"({condition}) OR #token = :token",
        "ExpressionAttributeNames": {"#token": "token"},
        "ExpressionAttributeValues": values,
    }


def versioned_update(
    table: str, key: Mapping[str, Any], sets: Mapping[str, Any], owner: str, before: int
) -> dict[str, Any]:
    """UpdateItem parameters that set `sets` on the meta item `key` only while `owner` holds its
    lease and it is still at version `before`."""
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in sets),
        "ConditionExpression": "#lease_owner = :me AND #version = :before",
        "ExpressionAttributeNames": {f"#{name}": name for name in [*sets, "lease_owner"]},
        "ExpressionAttributeValues": {
            **{f":{name}": value for name, value in sets.items()},
            ":me": attr_s(owner),
            ":before": attr_n(before),
        },
    }


def pack_groups(groups: Sequence[RecordedGroup]) -> bytes:
    if not groups:
        return b""
    text = json.dumps([g.to_json() for g in groups], separators=(",", ":"))
    return zlib.compress(text.encode("utf-8"))


def unpack_groups(data: bytes) -> tuple[RecordedGroup, ...]:
    if not data:
        return ()
    return tuple(RecordedGroup.from_json(g) for g in json.loads(zlib.decompress(data)))


def run_attr(run: RunRecord) -> dict[str, str]:
    """The run as the meta item's `run` attribute: a JSON string."""
    ended_at = run.ended_at.isoformat() if run.ended_at else None
    fields: dict[str, Any] = {"number": run.number, "state": run.state.value, "pid": run.pid}
    fields.update(started_at=run.started_at.isoformat(), ended_at=ended_at, summary=run.summary)
    return attr_s(summary_json(fields))


def _run_from_json(text: str) -> RunRecord:
    run = json.loads(text)
    ended_at = datetime.fromisoformat(run["ended_at"]) if run["ended_at"] else None
    started_at = datetime.fromisoformat(run["started_at"])
    state = RunState(run["state"])
    return RunRecord(run["number"], state, run["pid"], started_at, ended_at, run["summary"])


def empty_meta(job: JobIdentity, now: datetime) -> MetaItem:
    """A checkpoint with nothing in it yet, under a generation of its own."""
    return MetaItem(
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
