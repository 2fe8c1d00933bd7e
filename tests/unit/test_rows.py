"""From a parsed record to a row to send or a local failure (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from bulkupdate.fields.rows import Row, prepare
from bulkupdate.fields.schema import Schema
from bulkupdate.input.framing import RecordError
from bulkupdate.input.sources import Record
from bulkupdate.models import Field, FieldOption, FieldType, Outcome, RowStatus

FIELDS = [
    Field("priority", "Priority", FieldType.SINGLE_SELECT, options=(FieldOption("High", "high"),)),
    Field("vip", "VIP", FieldType.BOOLEAN),
    Field("notes", "Notes", FieldType.TEXT, is_multiline=True),
]
SCHEMA = Schema(FIELDS, None)


def record(values: dict[str, Any] | None, error: RecordError | None = None) -> Record:
    return Record(
        line=7, offset=100, end_offset=150, raw=b"raw bytes\n", values=values, error=error
    )


def test_a_flat_record_becomes_a_row_with_coerced_fields() -> None:
    row = prepare(record({"case_id": "C-1", "Priority": "High", "vip": "yes"}), SCHEMA.column_map())
    assert isinstance(row, Row)
    assert (row.case_id, row.offset, row.line) == ("C-1", 100, 7)
    assert row.fields == [
        {"id": "priority", "value": {"stringValue": "high"}},
        {"id": "vip", "value": {"booleanValue": True}},
    ]


def test_error_columns_of_a_failures_file_are_ignored() -> None:
    values = {"case_id": "C-1", "vip": "no", "error_code": "x", "error_message": "y"}
    row = prepare(record(values), SCHEMA.column_map())
    assert isinstance(row, Row)
    assert [f["id"] for f in row.fields] == ["vip"]


def test_the_api_shape_is_accepted_including_empty_value() -> None:
    values = {
        "caseId": "C-2",
        "fields": [
            {"id": "priority", "value": {"stringValue": "High"}},
            {"id": "notes", "value": {"emptyValue": {}}},
        ],
    }
    row = prepare(record(values), SCHEMA.column_map())
    assert isinstance(row, Row)
    assert row.case_id == "C-2"
    assert row.fields == [
        {"id": "priority", "value": {"stringValue": "high"}},
        {"id": "notes", "value": {"emptyValue": {}}},
    ]


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"vip": "yes"}, "missing_case_id"),
        ({"case_id": "  ", "vip": "yes"}, "missing_case_id"),
        ({"case_id": True, "vip": "yes"}, "missing_case_id"),
        ({"case_id": "C-1", "vip": "maybe"}, "invalid_boolean"),
        ({"case_id": "C-1", "colour": "red"}, "unknown_column"),
        (
            {
                "caseId": "C-1",
                "fields": [
                    {"id": "notes", "value": {"stringValue": "a"}},
                    {"id": "notes", "value": {"emptyValue": {}}},
                ],
            },
            "duplicate_field",
        ),
        (
            {"caseId": "C-1", "fields": [{"id": "nope", "value": {"emptyValue": {}}}]},
            "unknown_column",
        ),
        ({"caseId": "C-1", "fields": ["vip"]}, "invalid_api_shape"),
        ({"caseId": "C-1", "fields": [{"id": "vip", "value": {}}]}, "invalid_api_shape"),
        (
            {
                "caseId": "C-1",
                "fields": [
                    {"id": "vip", "value": {"booleanValue": True}},
                    {"id": "vip", "value": {"booleanValue": False}},
                ],
            },
            "duplicate_field",
        ),
    ],
)
def test_rows_that_cannot_be_sent_fail_locally_with_a_reason(
    values: dict[str, Any], code: str
) -> None:
    outcome = prepare(record(values), SCHEMA.column_map())
    assert isinstance(outcome, Outcome)
    assert outcome.status is RowStatus.FAILED
    assert code in (outcome.error_code or "").split(",")
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("line 7")
    assert outcome.raw == b"raw bytes\n"
    assert outcome.attempts == 0


def test_an_unreadable_record_fails_with_its_line_and_column() -> None:
    outcome = prepare(record(None, RecordError("bad JSON", 7, 12)), SCHEMA.column_map())
    assert isinstance(outcome, Outcome)
    assert outcome.error_code == "unreadable_record"
    assert outcome.error_message == "line 7, column 12: bad JSON"


def test_a_row_of_blanks_is_a_row_with_nothing_to_send() -> None:
    row = prepare(record({"case_id": "C-1", "vip": "", "notes": " "}), SCHEMA.column_map())
    assert isinstance(row, Row)
    assert row.fields == []
