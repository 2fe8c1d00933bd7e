"""Plain data the whole pipeline shares: field schema, records and the UpdateCase value union.

Pure: no I/O, no botocore. Wire dictionaries use the API's own member names.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where the next run starts reading: every record before `offset` is resolved."""

    offset: int = 0
    line: int = 1
