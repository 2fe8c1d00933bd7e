"""Before the first write: the input opened at the resume point, the domain's schema read,
the columns resolved, and the engine's settings derived from the run's configuration.

Shared by a real run and a dry run; sends no update.
"""

from __future__ import annotations

import gzip
import itertools
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import BinaryIO

import structlog

from bulkupdate.aws.client import BotocoreCases, open_cases, region_hint
from bulkupdate.aws.s3 import S3, ObjectInfo, is_s3, open_object
from bulkupdate.clock import Clock, MonotonicClock
from bulkupdate.config import RunConfig
from bulkupdate.errors import CallError, ConfigError, InputError
from bulkupdate.fields.hints import case_id_candidates, case_id_fix
from bulkupdate.fields.rows import CSV_ERROR_COLUMNS, case_id_of
from bulkupdate.fields.schema import READ_ONLY_FIELD_IDS, BlankPolicy, ColumnMap, Schema
from bulkupdate.input.fingerprint import changed_since, fingerprint_file, fingerprint_stream
from bulkupdate.input.sources import Record, Source, open_source, open_stream
from bulkupdate.lookup.keys import MatchField, match_field
from bulkupdate.lookup.resolver import LookupStats, cases_of_keys
from bulkupdate.models import DateTimeEncoding, Field, FieldType, ResumePoint
from bulkupdate.pacing.retry import RetryPolicy
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.domain import StartupReads, detect_encoding, load_fields, unreachable_error
from bulkupdate.run.settings import BatchSettings, EngineSettings

log = structlog.get_logger("bulkupdate")
PEEK_RECORDS = 20  # records read ahead to find case ids for DateTime detection
SHOWN_KEYS = 8  # JSONL keys a message lists, at most
START = ResumePoint()


def performed_by(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    return {"userArn": value} if value.startswith("arn:") else {"customEntity": value}


def fingerprint_input(
    config: RunConfig, remote: RemoteInput | None = None
) -> tuple[str, str, BinaryIO | None]:
    """(fingerprint, format, stream to read) of the input. Stdin can be read only once, so its
    fingerprint comes with the stream that replays the bytes it took; files are re-opened; an
    S3 object's is its ETag, size and version."""
    if remote is not None:
        return remote.info.fingerprint, input_format(config), None
    if config.input == "-":
        fingerprint, stream = fingerprint_stream(sys.stdin.buffer)
        return fingerprint, config.format or "csv", stream
    with open_source(
        config.input, fmt=config.format, delimiter=config.delimiter, encoding=config.encoding
    ) as probe:
        return fingerprint_file(config.input), probe.fmt, None


def input_changed(config: RunConfig, fingerprint: str) -> str | None:
    """How the input file now differs from the one whose `fingerprint` the run started with,
    in words; None when it does not. Files only: an S3 object is read at the ETag the run
    started with, and stdin cannot be read again."""
    if config.input == "-" or is_s3(config.input):
        return None
    change = changed_since(config.input, fingerprint)
    if change is None:
        return None
    return f"a change to its input: {config.input} changed during the run ({change})"


def open_input(
    config: RunConfig,
    point: ResumePoint = START,
    stream: BinaryIO | None = None,
    remote: RemoteInput | None = None,
) -> Source:
    """The input positioned at `point`: seeks in a plain file or S3 object (ranged GETs),
    re-reads and skips otherwise (.gz, stdin)."""
    if remote is not None:
        return remote.open(config, point)
    if config.input == "-":
        return open_stream(
            stream or sys.stdin.buffer,
            name="-",
            fmt=config.format or "csv",
            delimiter=config.delimiter,
            encoding=config.encoding,
            start_offset=point.offset,
        )
    return open_source(
        config.input,
        fmt=config.format,
        delimiter=config.delimiter,
        encoding=config.encoding,
        start_offset=point.offset,
        start_line=point.line,
    )


def record_counter(config: RunConfig) -> Callable[[], int] | None:
    """A function that counts the input's records (for the progress total); None for stdin and
    S3 (counting would read the whole object twice)."""
    if config.input == "-" or is_s3(config.input):
        return None

    def count() -> int:
        with open_input(config) as source:
            return sum(1 for _ in source)

    return count


def input_format(config: RunConfig) -> str:
    name = config.input.removesuffix(".gz").removesuffix(".GZ")
    return config.format or name.rpartition(".")[2].replace("ndjson", "jsonl")


@dataclass(frozen=True, slots=True)
class RemoteInput:
    """An S3 input: the client and the object as it was when the run started."""

    s3: S3
    info: ObjectInfo

    @classmethod
    def head(cls, s3: S3, url: str) -> RemoteInput:
        return cls(s3, s3.head(url))

    def open(self, config: RunConfig, point: ResumePoint) -> Source:
        compressed = config.input.lower().endswith(".gz")
        raw = open_object(self.s3, self.info)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        fmt = input_format(config)
        if fmt not in ("csv", "jsonl"):
            raise ConfigError("--format", f"cannot tell the format of {config.input}; set it")
        return Source(
            stream,
            path=config.input,
            fmt="csv" if fmt == "csv" else "jsonl",
            delimiter=config.delimiter,
            encoding=config.encoding,
            seekable=not compressed,
            owns_stream=True,
            start_offset=point.offset,
            start_line=point.line,
            size_bytes=None if compressed else self.info.size_bytes,
        )


def peek(records: Iterator[Record]) -> tuple[list[Record], Iterator[Record]]:
    head = list(itertools.islice(records, PEEK_RECORDS))
    return head, itertools.chain(head, records)


def head_case_ids(column: str, source: Source, head: list[Record]) -> list[str] | None:
    """The case ids of the first records; None when a CSV header lacks the column (resolving
    the header says so, with the columns that may hold the ids). Raises InputError when records
    were read but none names a case: the ids are under another column or key, or missing, and
    every row would fail."""
    if source.header is not None and column not in source.header:
        return None
    readable = [record.values for record in head if record.values is not None]
    case_ids = [case_id for values in readable if (case_id := case_id_of(values, column))]
    if case_ids or not readable:
        return case_ids
    what = "column" if source.header is not None else "key"
    names = list(source.header or dict.fromkeys(key for values in readable for key in values))
    near = [name for name in case_id_candidates(names, column) if name != column]
    if len(head) == 1:
        message = f"the first record (line {head[0].line}) has no case id in {what} {column!r}"
    else:
        records = f"the first {len(head)} records (lines {head[0].line}-{head[-1].line})"
        message = f"none of {records} has a case id in {what} {column!r}"
    if source.header is None:
        shown = ", ".join(map(repr, names[:SHOWN_KEYS])) + (", …" if names[SHOWN_KEYS:] else "")
        message += f"; their keys are {shown}"
    message += f"; {case_id_fix(near, what)}"
    raise InputError(source.path, message, line=head[0].line)


SAME_COMMAND = "run the same command again"


class Job:
    """Everything one run holds open, so stages can be tested and closed in one place."""

    def __init__(self, config: RunConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or MonotonicClock()
        self.rng = random.Random()
        self.policy = RetryPolicy(max_attempts=config.max_attempts)
        self.reads = StartupReads(self.clock, self.policy, self.rng)
        self.run_id = uuid.uuid4().hex[:12]
        self.s3: S3 | None = None  # when the input or an output is in S3
        self.match: MatchField | None = None  # --match-field, once the domain's fields are read
        self.lookup_stats: LookupStats | None = None  # its searches, for the summary
        self.remote: RemoteInput | None = None  # an S3 input, once its object was read
        # What the summary of a run interrupted once its checkpoint was open says to do next
        # (the demo says its own): with --restart that checkpoint is already the new start.
        self.resume = SAME_COMMAND + (
            ", without --restart (with it the job starts over: every row is sent again)"
            if config.restart
            else ""
        )

    async def schema(self, api: CasesApi, source: Source, head: list[Record]) -> Schema:
        config = self.config
        mapping = config.mapping
        case_ids = head_case_ids(config.case_id_column, source, head)  # before any call
        # Every name that may set a field: the (renamed) columns and the job file's tables.
        header = {
            mapping.target(c)
            for c in source.header or ()
            if c not in mapping.ignored and c != config.case_id_column
        }
        header |= mapping.value_maps.keys() | mapping.constants.keys()
        folded = {column.strip().casefold() for column in header}
        is_csv = source.header is not None

        def wanted(field: Field) -> bool:  # JSONL keys are unknown up front: load them all
            named = field.field_id in header or field.name.strip().casefold() in folded
            return not is_csv or named

        fields = await load_fields(api, wanted_options=wanted, reads=self.reads)
        if config.match_field:  # the case-id column holds keys: refused here if it cannot
            self.match = match_field(fields, config.match_field)
        encoding: DateTimeEncoding | None = None
        uses_datetime = any(
            f.type is FieldType.DATETIME and f.field_id not in READ_ONLY_FIELD_IDS and wanted(f)
            for f in fields
        )
        if config.datetime_encoding != "auto":
            encoding = DateTimeEncoding(config.datetime_encoding)
        elif uses_datetime and case_ids is not None:  # None: the header's error comes first
            if self.match is not None:  # keys, not case ids: their cases, found by one search
                match, keys = self.match, case_ids

                async def search() -> list[str]:
                    return await cases_of_keys(api, match, keys)

                case_ids = await self.reads.call("SearchCases", search)
            encoding, how = await detect_encoding(api, case_ids, reads=self.reads)
            if encoding is None:
                # Failing every DateTime row would record them as failed for good: stop first.
                raise ConfigError(
                    "--datetime-encoding",
                    f"the input sets DateTime fields but the wire encoding could not be "
                    f"detected ({how}); pass --datetime-encoding iso8601 or epoch-millis",
                )
            log.info("datetime_encoding_detected", encoding=encoding.value, evidence=how)
        return Schema(fields, encoding, blank_policy=BlankPolicy(config.blank.value))

    @asynccontextmanager
    async def connect(
        self, source: Source, head: list[Record]
    ) -> AsyncIterator[tuple[CasesApi, ColumnMap]]:
        """The Connect Cases client and the input's columns resolved against the domain.

        Raises CallError when the domain cannot be read (systemic: exit 3), ConfigError when the
        service cannot be reached at all and HeaderError when a CSV column names no field
        (exit 2). Sends no update.
        """
        config = self.config
        async with open_cases(
            domain_id=config.domain_id,
            endpoint_url=config.endpoint_url,
            region=config.region,
            profile=config.profile,
            max_connections=config.concurrency,
            read_timeout_s=config.call_timeout,
        ) as api:
            try:
                schema = await self.schema(api, source, head)
            except CallError as error:
                if not error.unreachable:
                    raise
                raise self.unreachable(error, api) from None
            yield api, self.columns(schema, source)

    def unreachable(self, error: CallError, api: BotocoreCases) -> ConfigError:
        """Exit 2 naming the flag to check: nothing was sent, so a wait helps no one."""
        given = self.config.endpoint_url
        flag = "--endpoint-url" if given else "--region"
        where = f"{api.endpoint_url} (Region {api.region or 'none'})"
        hint = None if given else region_hint(api.region)
        return unreachable_error(error, self.reads, flag=flag, where=where, hint=hint)

    def columns(self, schema: Schema, source: Source) -> ColumnMap:
        config = self.config
        try:
            if source.header is not None:
                header = [c for c in source.header if c not in CSV_ERROR_COLUMNS]
                return schema.resolve_header(
                    header, config.case_id_column, path=source.path, mapping=config.mapping
                )
            return schema.column_map(config.case_id_column, config.mapping)
        except ConfigError as error:  # a [values] or [set] entry of the job file
            raise ConfigError(
                f"{config.job_file or 'job file'}: {error.key}", error.message
            ) from None

    def settings(self) -> EngineSettings:
        config = self.config
        rate_per_s, burst = config.rate, config.burst
        batch_rate_per_s, batch_burst = config.batch_rate, config.batch_burst
        # --rate and --burst are the whole job's: shards share them, and with them its share
        # of the quota (each keeps --headroom of its part). So do --batch-rate and --batch-burst,
        # and --read-rate and --read-burst.
        read_rate_per_s, read_burst = config.read_rate, config.read_burst
        if config.shard is not None:
            rate_per_s, burst = config.shard.rate_share(rate_per_s, burst)
            batch_rate_per_s, batch_burst = config.shard.rate_share(batch_rate_per_s, batch_burst)
            read_rate_per_s, read_burst = config.shard.rate_share(read_rate_per_s, read_burst)
        batch = None
        if config.batch == "auto":
            batch = BatchSettings(config.batch_size, batch_rate_per_s, batch_burst)
        return EngineSettings(
            concurrency=config.concurrency,
            rate_per_s=rate_per_s,
            burst=burst,
            max_attempts=config.max_attempts,
            grace_period_s=config.grace_period,
            flush_interval_s=config.flush_interval,
            performed_by=performed_by(config.performed_by),
            shard=config.shard,
            settle_period_s=config.settle_period,
            outage_timeout_s=config.outage_timeout,
            failure_budget=config.max_failures,
            headroom=config.headroom / 100,
            before_images=config.before_images,
            read_rate_per_s=read_rate_per_s,
            read_burst=read_burst,
            batch=batch,
        )
