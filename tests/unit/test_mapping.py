"""A job file's mapping applied to rows: renamed and ignored columns, value maps and constants."""

from __future__ import annotations

import pytest

from bulkupdate.errors import ConfigError
from bulkupdate.fields.mapping import FieldMapping
from bulkupdate.fields.schema import HeaderError, RowRejectedError, Schema, build_update
from tests.unit.test_schema import FIELDS, ISO

MAPPING = FieldMapping(
    renames={"Prio": "Status", "Refund": "f-amount", "Ticket": "Nowhere"},
    ignored=frozenset({"Legacy ID"}),
    value_maps={"status": {"Open!": "Open", "Shut": "closed"}, "Refund amount": {"none": 0}},
    constants={"Title": "Fixed by job 42"},
)
CONSTANT = {"id": "title", "value": {"stringValue": "Fixed by job 42"}}


@pytest.fixture
def schema() -> Schema:
    return Schema(FIELDS, ISO)


def test_renamed_columns_set_their_fields_through_the_value_maps(schema: Schema) -> None:
    columns = schema.resolve_header(["case_id", "Prio", "Refund", "Legacy ID"], mapping=MAPPING)
    row = {"case_id": "c-1", "Prio": " Shut ", "Refund": "none", "Legacy ID": "L-77"}
    assert build_update(row, columns) == [
        {"id": "status", "value": {"stringValue": "closed"}},
        {"id": "f-amount", "value": {"doubleValue": 0.0}},
        CONSTANT,
    ]


def test_values_outside_a_value_map_are_coerced_as_usual(schema: Schema) -> None:
    columns = schema.resolve_header(["case_id", "Prio"], mapping=MAPPING)
    assert build_update({"case_id": "c-1", "Prio": "open"}, columns)[0]["value"] == {
        "stringValue": "open"
    }
    with pytest.raises(RowRejectedError) as caught:
        build_update({"case_id": "c-1", "Prio": "Hi"}, columns)
    assert [p.column for p in caught.value.problems] == ["Prio"]


def test_constants_go_on_every_row_even_one_with_only_a_case_id(schema: Schema) -> None:
    columns = schema.resolve_header(["case_id"], mapping=MAPPING)
    assert build_update({"case_id": "c-1"}, columns) == [CONSTANT]


def test_jsonl_keys_are_renamed_ignored_and_mapped_as_they_come(schema: Schema) -> None:
    columns = schema.column_map(mapping=MAPPING)
    record = {"case_id": "c-1", "Prio": "Open!", "Legacy ID": 7}
    assert build_update(record, columns) == [
        {"id": "status", "value": {"stringValue": "open"}},
        CONSTANT,
    ]
    with pytest.raises(RowRejectedError) as caught:
        build_update({"case_id": "c-2", "Title": "mine"}, columns)
    assert [(p.column, p.reason_code) for p in caught.value.problems] == [
        ("set.Title", "duplicate_field")
    ]


def test_a_column_renamed_to_no_field_or_clashing_with_a_constant_stops_the_run(
    schema: Schema,
) -> None:
    with pytest.raises(HeaderError) as caught:
        schema.resolve_header(["case_id", "Ticket", "title"], mapping=MAPPING)
    problems = {p.column: p for p in caught.value.problems}
    assert problems["Ticket"].reason_code == "unknown_column"
    assert "renamed to 'Nowhere'" in problems["Ticket"].message
    assert problems["title"].reason_code == "duplicate_field"
    assert "set.Title" in problems["title"].message


@pytest.mark.parametrize(
    ("mapping", "key", "message"),
    [
        (FieldMapping(value_maps={"Stauts": {"a": "b"}}), "values.Stauts", "names no field"),
        (FieldMapping(constants={"Region": "EU"}), "set.Region", "matches fields"),
        (FieldMapping(constants={"f-amount": "lots"}), "set.f-amount", "not a decimal number"),
        (FieldMapping(constants={"Title": " "}), "set.Title", "blank"),
        (FieldMapping(constants={"created_datetime": 0}), "set.created_datetime", "read-only"),
    ],
)
def test_a_value_map_or_constant_that_cannot_apply_names_its_job_file_key(
    schema: Schema, mapping: FieldMapping, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        schema.column_map(mapping=mapping)
    assert caught.value.key == key
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        (FieldMapping(constants={"Title": "a", "title": "b"}), "set.title"),
        (FieldMapping(value_maps={"Status": {"a": "b"}, "status": {"c": "d"}}), "values.status"),
    ],
)
def test_two_keys_of_one_table_naming_one_field_are_refused(
    schema: Schema, mapping: FieldMapping, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        schema.column_map(mapping=mapping)
    assert caught.value.key == key
    assert "as " in caught.value.message
