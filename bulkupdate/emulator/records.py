"""What a Cases domain holds (fields, options, templates, cases) and the rules a field value
must satisfy for its field type.

Pure: no I/O. Values are kept exactly as the wire union carried them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bulkupdate.emulator.errors import ValidationError

Union = dict[str, Any]  # one FieldValueUnion, e.g. {"stringValue": "open"}

FIELD_TYPES = ("Text", "Number", "Boolean", "DateTime", "SingleSelect", "Url", "User")
# Summary is documented at 3000; single-line text at 500 and multi-line at 4100
# (admin guide "case fields"; CONNECT-CASES-FACTS §1.4).
SUMMARY_MAX_CHARS = 3000
SINGLE_LINE_MAX_CHARS = 500
MULTI_LINE_MAX_CHARS = 4100
READ_ONLY_FIELDS = frozenset({"reference_number", "created_datetime", "last_updated_datetime"})
_USER_ARN = re.compile(r"arn:aws[a-z-]*:connect:[a-z0-9-]+:\d{12}:instance/[^/\s]+/agent/[^/\s]+")


class DateTimeEncoding(StrEnum):
    """The emulator's answer to a question AWS leaves open: which member carries a DateTime."""

    ISO8601 = "iso8601"
    EPOCH_MILLIS = "epoch-millis"

    def render(self, epoch_s: float) -> Union:
        if self is DateTimeEncoding.EPOCH_MILLIS:
            return {"doubleValue": float(round(epoch_s * 1000))}
        moment = datetime.fromtimestamp(epoch_s, tz=UTC)
        millis = moment.microsecond // 1000
        return {"stringValue": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"}


@dataclass(slots=True)
class OptionRecord:
    name: str
    value: str
    active: bool = True


@dataclass(slots=True)
class FieldRecord:
    field_id: str
    name: str
    type: str
    arn: str
    namespace: str = "Custom"
    description: str = ""
    is_multiline: bool = False
    options: dict[str, OptionRecord] = field(default_factory=dict)  # keyed by option value
    created_s: float = 0.0
    modified_s: float = 0.0

    def attributes(self) -> dict[str, Any] | None:
        if self.type != "Text":
            return None
        return {"text": {"isMultiline": self.is_multiline}}

    def max_chars(self) -> int:
        if self.field_id == "summary":
            return SUMMARY_MAX_CHARS
        if self.type == "Text" and not self.is_multiline:
            return SINGLE_LINE_MAX_CHARS
        return MULTI_LINE_MAX_CHARS


@dataclass(slots=True)
class TemplateRecord:
    template_id: str
    name: str
    arn: str
    status: str = "Active"
    description: str = ""
    required_fields: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CaseRecord:
    case_id: str
    template_id: str
    values: dict[str, Union]
    created_s: float
    updated_s: float


@dataclass(slots=True)
class DomainRecord:
    domain_id: str
    name: str
    arn: str
    created_s: float
    fields: dict[str, FieldRecord] = field(default_factory=dict)
    templates: dict[str, TemplateRecord] = field(default_factory=dict)
    cases: dict[str, CaseRecord] = field(default_factory=dict)
    client_tokens: dict[str, str] = field(default_factory=dict)  # CreateCase idempotency


# (id, name, type, multi-line); ids of system fields equal their names, as in Connect Cases.
SYSTEM_FIELDS = (
    ("title", "Title", "Text", False),
    ("status", "Status", "SingleSelect", False),
    ("summary", "Summary", "Text", True),
    ("reference_number", "Reference number", "Text", False),
    ("customer_id", "Customer", "Text", False),
    ("created_datetime", "Created date/time", "DateTime", False),
    ("last_updated_datetime", "Updated date/time", "DateTime", False),
)
SYSTEM_STATUS_OPTIONS = (("Open", "open"), ("Closed", "closed"))
SYSTEM_DATETIME_FIELDS = {"created_datetime": "created_s", "last_updated_datetime": "updated_s"}


def check_value(record: FieldRecord, value: Union, encoding: DateTimeEncoding, path: str) -> None:
    """Raise ValidationError unless `value` is acceptable for the field's type and options."""
    (member, payload), *_ = value.items()
    if member == "emptyValue":
        return
    expected = _expected_member(record.type, encoding)
    if member != expected:
        raise ValidationError(
            f"Invalid value at '{path}': field '{record.field_id}' of type {record.type}"
            f" takes {expected}, not {member}"
        )
    if member == "stringValue" and len(payload) > record.max_chars():
        raise ValidationError(
            f"Invalid value at '{path}': field '{record.field_id}' accepts at most"
            f" {record.max_chars()} characters, got {len(payload)}"
        )
    if record.type == "SingleSelect":
        option = record.options.get(payload)
        if option is None or not option.active:
            state = "inactive" if option is not None else "not a valid"
            raise ValidationError(
                f"Invalid value at '{path}': '{payload}' is {state} option for field"
                f" '{record.field_id}'"
            )
    elif record.type == "User" and not _USER_ARN.fullmatch(payload):
        raise ValidationError(f"Invalid value at '{path}': '{payload}' is not a user ARN")
    elif record.type == "DateTime" and member == "stringValue":
        try:
            moment = datetime.fromisoformat(payload)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValidationError(
                f"Invalid value at '{path}': '{payload}' is not an ISO-8601 date-time with a zone"
            )


def _expected_member(field_type: str, encoding: DateTimeEncoding) -> str:
    if field_type == "Number":
        return "doubleValue"
    if field_type == "Boolean":
        return "booleanValue"
    if field_type == "User":
        return "userArnValue"
    if field_type == "DateTime":
        return "doubleValue" if encoding is DateTimeEncoding.EPOCH_MILLIS else "stringValue"
    return "stringValue"
