"""Plain data the whole pipeline shares: field schema, outcomes, the UpdateCase value union, what
a BatchUpdateCase call answered per case, and the shard a process applies of a job.

Pure: no I/O, no botocore. Wire dictionaries use the API's own member names.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# One FieldValueUnion as UpdateCase takes it, e.g. {"stringValue": "high"} or {"emptyValue": {}}.
WireValue = dict[str, Any]


class FieldType(StrEnum):
    TEXT = "Text"
    NUMBER = "Number"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    SINGLE_SELECT = "SingleSelect"
    URL = "Url"
    USER = "User"


class DateTimeEncoding(StrEnum):
    """How DateTime values travel on the wire. AWS does not document it: detect, then mirror."""

    ISO8601 = "iso8601"  # {"stringValue": "2024-05-01T12:00:00.000Z"}
    EPOCH_MILLIS = "epoch-millis"  # {"doubleValue": 1714564800000.0}


@dataclass(frozen=True, slots=True)
class FieldOption:
    name: str
    value: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a Cases domain, as ListFields/BatchGetField/ListFieldOptions describe it."""

    field_id: str
    name: str
    type: FieldType
    namespace: str = "Custom"  # "System" or "Custom"
    is_multiline: bool | None = None  # Text only; None when the service did not say
    options: tuple[FieldOption, ...] = field(default=())


class RowStatus(StrEnum):
    DONE = "done"  # the service acknowledged the update
    FAILED = "failed"  # permanently failed; goes to the failures file


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final word on one input record. A record's byte offset is its identity in a job."""

    offset: int  # byte offset of the record in the (uncompressed) input
    line: int  # 1-based line where the record starts
    case_id: str
    status: RowStatus
    error_code: str | None = (
        None  # e.g. "invalid_number", "ValidationException", "retries_exhausted"
    )
    error_message: str | None = None
    raw: bytes | None = None  # the record's original bytes, kept for failed rows only
    attempts: int = 0  # UpdateCase calls made for this row (0 if rejected locally)


# BatchUpdateCase takes 1..100 cases; botocore does not check the maximum (FACTS §7.2).
MAX_CASES_PER_BATCH = 100


class CaseFailureKind(StrEnum):
    """What one case's failure inside a BatchUpdateCase answer means. The values are those of
    `errors.ErrorKind` (`ErrorKind(kind.value)`); this layer may not import it."""

    ROW = "row"  # CASE_NOT_FOUND, VALIDATION_ERROR: that row fails with the code and message
    THROTTLED = "throttled"  # THROTTLED, SERVICE_QUOTA_EXCEEDED: retry that case only
    TRANSIENT = "transient"  # CONFLICT, INTERNAL_ERROR, a code unknown here: retry with backoff
    SYSTEMIC = "systemic"  # ACCESS_DENIED, DOMAIN_NOT_FOUND: stop the run, rows pending


@dataclass(frozen=True, slots=True)
class CaseFailure:
    """One entry of a BatchUpdateCase answer's `failedCases`, classified by `aws`."""

    case_id: str
    code: str  # the service's errorCode, e.g. "CASE_NOT_FOUND"
    message: str
    kind: CaseFailureKind


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one accepted BatchUpdateCase call did to each case it listed: every listed case id is
    in exactly one of `succeeded` (applied) and `failed` (not applied, with its reason)."""

    succeeded: tuple[str, ...]
    failed: Mapping[str, CaseFailure] = field(default_factory=dict)  # by case id

    def failure(self, case_id: str) -> CaseFailure | None:
        return self.failed.get(case_id)

    def of_kind(self, kind: CaseFailureKind) -> Sequence[CaseFailure]:
        return [failure for failure in self.failed.values() if failure.kind is kind]


@dataclass(frozen=True, slots=True)
class FoundCase:
    """One case SearchCases returned: its id and the searched field's value as the index shows
    it (None when the case has none)."""

    case_id: str
    value: WireValue | None


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of SearchCases: the cases, the token of the next page (None: the last), and
    how many cases matched in all."""

    cases: tuple[FoundCase, ...]
    next_token: str | None = None
    total_count: int | None = None


@dataclass(frozen=True, slots=True)
class KeyResolution:
    """What a search found for one key (a value of the match field, as its canonical text):
    no case, one case (the row's case), or several (its rows fail: ambiguous)."""

    field_id: str
    key: str
    case_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where the next run starts reading: every record before `offset` is resolved."""

    offset: int = 0
    line: int = 1


# Where runners put a task's index (0-based) when the flag leaves it out.
INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")


@dataclass(frozen=True, slots=True)
class Shard:
    """Which rows of a job one process applies, when a job is spread over several (Kubernetes
    Indexed Jobs, AWS Batch array jobs). A stable hash of the case id picks the shard, so all
    rows of a case land in one shard and keep their order."""

    index: int  # 0-based, as runners count
    count: int

    @property
    def label(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, case_id: str) -> bool:
        """Whether this shard applies the rows of `case_id`: CRC-32 of its UTF-8 bytes, mod count.

        CRC-32 is stable across processes, machines and Python versions (str hash() is not).
        """
        return zlib.crc32(case_id.encode("utf-8", "surrogatepass")) % self.count == self.index

    def owns_caseless(self) -> bool:
        """Records with no case id (unreadable ones) are reported by shard 0 alone."""
        return self.index == 0

    def rate_share(self, rate_per_s: float, burst: int) -> tuple[float, int]:
        """This shard's part of the job's rate and burst: the quota is shared by all shards."""
        return rate_per_s / self.count, max(1, math.ceil(burst / self.count))

    def name(self, path: str) -> str:
        """`out/crm.failures.csv` -> `out/crm.shard-1-of-3.failures.csv`: one file per shard.

        The label goes before the first suffix, so `.failures.csv.gz` stays together."""
        folder, slash, name = path.rpartition("/")  # works for s3:// URLs too
        stem, dot, rest = name.partition(".")
        return f"{folder}{slash}{stem}.{self.label}{dot}{rest}"


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> Shard:
    """`INDEX/COUNT`, or `COUNT` (or `/COUNT`) with the index from JOB_COMPLETION_INDEX or
    AWS_BATCH_JOB_ARRAY_INDEX in `env`. Raises ValueError saying what is wrong.

    Reads `--shard` and the `INDEX/COUNT` keys a DynamoDB checkpoint stores alike."""
    index_text, slash, count_text = text.strip().rpartition("/")
    if not slash:
        index_text, count_text = "", text.strip()
    try:
        count = int(count_text)
    except ValueError:
        raise ValueError("must be INDEX/COUNT, e.g. 0/3") from None
    if count < 1:
        raise ValueError("COUNT must be at least 1")
    source = "INDEX"
    if not index_text:
        env = env or {}
        found = [(name, env[name]) for name in INDEX_VARIABLES if env.get(name, "").strip()]
        if not found:
            raise ValueError(f"has no INDEX and none of {', '.join(INDEX_VARIABLES)} is set")
        source, index_text = found[0]
    try:
        index = int(index_text)
    except ValueError:
        raise ValueError(f"{source} {index_text!r} is not a whole number") from None
    if not 0 <= index < count:
        raise ValueError(f"{source} {index} is not in 0..{count - 1}")
    return Shard(index, count)
