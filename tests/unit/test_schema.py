"""Column resolution, header checks, row building and DateTime encoding detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.errors import BulkUpdateError, InputError
from bulkupdate.fields.schema import (
    MAX_FIELDS_PER_UPDATE,
    BlankPolicy,
    ColumnError,
    ColumnMap,
    DateTimeEncodingError,
    HeaderError,
    RowRejectedError,
    Schema,
    ValueRejected,
    build_update,
    detect_datetime_encoding,
)
from bulkupdate.models import DateTimeEncoding, Field, FieldOption, FieldType

ISO = DateTimeEncoding.ISO8601
MILLIS = DateTimeEncoding.EPOCH_MILLIS

TITLE = Field("title", "Title", FieldType.TEXT, namespace="System")
STATUS = Field(
    "status",
    "Status",
    FieldType.SINGLE_SELECT,
    namespace="System",
    options=(FieldOption("Open", "open"), FieldOption("Closed", "closed")),
)
CREATED = Field("created_datetime", "Created date/time", FieldType.DATETIME, namespace="System")
UPDATED = Field("last_updated_datetime", "Updated date/time", FieldType.DATETIME, "System")
REFERENCE = Field("reference_number", "Reference number", FieldType.TEXT, namespace="System")
AMOUNT = Field("f-amount", "Refund amount", FieldType.NUMBER)
PRIORITY = Field("priority", "Urgency", FieldType.NUMBER)  # an id that is another field's name
RANK = Field("f-rank", "priority", FieldType.TEXT)
CODE_UPPER = Field("f-code-1", "CODE", FieldType.TEXT)
CODE_TITLE = Field("f-code-2", "Code", FieldType.TEXT)
REGION_A = Field("f-region-a", "Region", FieldType.TEXT)
REGION_B = Field("f-region-b", "Region", FieldType.TEXT)
DUE = Field("f-due", "Due", FieldType.DATETIME)
FIELDS = (
    TITLE,
    STATUS,
    CREATED,
    UPDATED,
    REFERENCE,
    AMOUNT,
    PRIORITY,
    RANK,
    CODE_UPPER,
    CODE_TITLE,
    REGION_A,
    REGION_B,
    DUE,
)


@pytest.fixture
def schema() -> Schema:
    return Schema(FIELDS, ISO)


def column_error(schema: Schema, column: str) -> ColumnError:
    with pytest.raises(ColumnError) as caught:
        schema.resolve(column)
    return caught.value


# -- resolve --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("title", TITLE),  # id
        ("Title", TITLE),  # exact name
        ("TITLE", TITLE),  # any case
        (" status ", STATUS),  # padding around a name
        ("f-amount", AMOUNT),
        ("refund AMOUNT", AMOUNT),
        ("priority", PRIORITY),  # an id beats the field named "priority"
        ("PRIORITY", RANK),  # no id matches, so the name does, ignoring case
        ("Code", CODE_TITLE),  # an exact name beats a name equal ignoring case
        ("CODE", CODE_UPPER),
        ("f-region-b", REGION_B),  # an id settles what the name cannot
    ],
)
def test_a_column_names_a_field_by_id_then_exact_name_then_any_case_name(
    schema: Schema, column: str, field: Field
) -> None:
    assert schema.resolve(column) == field


@pytest.mark.parametrize(
    ("column", "code", "candidates"),
    [
        ("Stauts", "unknown_column", ("Status",)),
        ("nothing like it", "unknown_column", ()),
        ("code", "ambiguous_column", ("f-code-1", "f-code-2")),
        ("Region", "ambiguous_column", ("f-region-a", "f-region-b")),
        ("created_datetime", "read_only_field", ()),
        ("Created date/time", "read_only_field", ()),
        ("last_updated_datetime", "read_only_field", ()),
        ("reference number", "read_only_field", ()),
        ("case_id", "unknown_column", ()),  # the case id column is no field
    ],
)
def test_an_unknown_ambiguous_or_read_only_column_is_refused_with_candidates(
    schema: Schema, column: str, code: str, candidates: tuple[str, ...]
) -> None:
    error = column_error(schema, column)
    assert (error.column, error.reason_code, error.candidates) == (column, code, candidates)
    assert repr(column) in str(error)


def test_a_column_error_is_a_lookup_error_of_the_project(schema: Schema) -> None:
    error = column_error(schema, "Stauts")
    assert isinstance(error, LookupError)
    assert isinstance(error, BulkUpdateError)
    assert "did you mean 'Status'?" in error.message


def test_a_schema_refuses_two_fields_with_one_id() -> None:
    with pytest.raises(ValueError, match="duplicate field id 'title'"):
        Schema([TITLE, TITLE], ISO)


# -- resolve_header -------------------------------------------------------------------------------


def test_a_good_header_maps_every_column_but_the_case_id(schema: Schema) -> None:
    column_map = schema.resolve_header(["case_id", "Status", "f-amount"])
    assert column_map.fields == {"Status": STATUS, "f-amount": AMOUNT}
    assert column_map.case_id_column == "case_id"


def test_a_bad_header_reports_every_bad_column_at_once(schema: Schema) -> None:
    with pytest.raises(HeaderError) as caught:
        schema.resolve_header(
            ["Status", "Stauts", "created_datetime", "status", "Region", "Title", "Title"],
            path="cases.csv",
        )
    error = caught.value
    assert [(p.column, p.reason_code) for p in error.problems] == [
        ("case_id", "missing_case_id_column"),
        ("Stauts", "unknown_column"),
        ("created_datetime", "read_only_field"),
        ("status", "duplicate_field"),
        ("Region", "ambiguous_column"),
        ("Title", "duplicate_column"),
    ]
    assert isinstance(error, InputError)
    assert (error.path, error.line) == ("cases.csv", 1)
    assert str(error).startswith("cases.csv:1: ")


def test_a_header_error_with_one_bad_column_names_that_column(schema: Schema) -> None:
    with pytest.raises(HeaderError) as caught:
        schema.resolve_header(["case_id", "Stauts"], path="in.csv")
    assert caught.value.column == "Stauts"


def test_a_header_error_with_one_bad_column_names_it_once_with_the_closest_fields_and_the_fix(
    schema: Schema,
) -> None:
    with pytest.raises(HeaderError) as caught:
        schema.resolve_header(["case_id", "Stauts"], path="in.csv")
    text = str(caught.value)
    assert text.count("'Stauts'") == 1
    assert text.startswith("in.csv:1: column 'Stauts': names no field")
    assert "did you mean 'Status'?" in text
    assert "ignore_columns" in text


def test_a_jsonl_key_that_names_no_field_says_how_to_leave_it_out(schema: Schema) -> None:
    with pytest.raises(RowRejectedError) as caught:
        build_update({"case_id": "c-1", "Stauts": "open"}, schema.column_map())
    assert "ignore_columns" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "fix", "codes"),
    [
        (["CaseId", "Title"], "pass --case-id-column CaseId ", []),
        (["Case ID", "Title"], "pass --case-id-column 'Case ID' ", []),
        (["case-id", "Title"], "pass --case-id-column case-id ", []),
        (
            ["ticket", "Title"],
            "name the column that holds the case ids with --case-id-column",
            ["unknown_column"],  # nothing says `ticket` holds them: it is a bad column too
        ),
    ],
)
def test_a_header_without_the_case_id_column_names_the_column_that_may_hold_them(
    schema: Schema, header: list[str], fix: str, codes: list[str]
) -> None:
    with pytest.raises(HeaderError) as caught:
        schema.resolve_header(header, path="in.csv")
    problems = caught.value.problems
    assert [p.reason_code for p in problems] == ["missing_case_id_column", *codes]
    assert fix in str(caught.value)
    assert "case_id_column" in str(caught.value)  # the job file key, too


@pytest.mark.parametrize(
    ("header", "flag"),
    [
        ("case_id;Title;Status", "--delimiter ';'"),
        ("case_id\tTitle", "--delimiter tab"),
        ("case_id|Title", "--delimiter '|'"),
    ],
)
def test_a_header_read_as_one_column_holding_a_delimiter_suggests_that_delimiter(
    schema: Schema, header: str, flag: str
) -> None:
    with pytest.raises(HeaderError) as caught:
        schema.resolve_header([header], path="in.csv")
    assert [p.reason_code for p in caught.value.problems] == ["wrong_delimiter"]
    assert flag in str(caught.value)


def test_the_case_id_column_can_have_another_name(schema: Schema) -> None:
    column_map = schema.resolve_header(["Case", "Title"], "Case")
    assert column_map.fields == {"Title": TITLE}
    rows = build_update({"Case": "c-1", "Title": "Hello"}, column_map)
    assert rows == [{"id": "title", "value": {"stringValue": "Hello"}}]


# -- build_update ---------------------------------------------------------------------------------


def test_a_row_becomes_the_fields_of_one_update_in_column_order(schema: Schema) -> None:
    column_map = schema.resolve_header(["case_id", "Status", "f-amount", "Due"])
    row = {"case_id": "c-1", "Status": "Closed", "f-amount": " 12.50 ", "Due": "2024-05-01"}
    assert build_update(row, column_map) == [
        {"id": "status", "value": {"stringValue": "closed"}},
        {"id": "f-amount", "value": {"doubleValue": 12.5}},
        {"id": "f-due", "value": {"stringValue": "2024-05-01T00:00:00.000Z"}},
    ]


def test_blank_values_are_skipped_and_an_all_blank_row_sends_nothing(schema: Schema) -> None:
    column_map = schema.resolve_header(["case_id", "Status", "Title"])
    assert build_update({"case_id": "c-1", "Status": "", "Title": "  "}, column_map) == []


def test_blank_values_clear_their_fields_under_the_clear_policy() -> None:
    schema = Schema(FIELDS, None, blank_policy=BlankPolicy.CLEAR)
    column_map = schema.resolve_header(["case_id", "Title", "Due"])
    assert build_update({"case_id": "c-1", "Title": "", "Due": None}, column_map) == [
        {"id": "title", "value": {"emptyValue": {}}},
        {"id": "f-due", "value": {"emptyValue": {}}},
    ]


def test_a_row_reports_every_problem_with_its_column_and_reason(schema: Schema) -> None:
    column_map = schema.column_map()
    row = {"case_id": "c-1", "Status": "pending", "f-amount": "ten", "Title": "ok", "Oops": "1"}
    with pytest.raises(RowRejectedError) as caught:
        build_update(row, column_map)
    error = caught.value
    assert [(p.column, p.reason_code) for p in error.problems] == [
        ("Status", "unknown_option"),
        ("f-amount", "invalid_number"),
        ("Oops", "unknown_column"),
    ]
    assert "Status: unknown_option (" in str(error)


def test_a_jsonl_record_with_a_read_only_key_fails_alone(schema: Schema) -> None:
    column_map = schema.column_map()
    with pytest.raises(RowRejectedError) as caught:
        build_update({"case_id": "c-1", "reference_number": "42"}, column_map)
    assert [p.reason_code for p in caught.value.problems] == ["read_only_field"]
    assert build_update({"case_id": "c-2", "title": "next"}, column_map) == [
        {"id": "title", "value": {"stringValue": "next"}}
    ]


def test_a_bad_jsonl_key_is_reported_the_same_way_on_every_record(schema: Schema) -> None:
    column_map = schema.column_map()
    messages = []
    for _ in range(3):
        with pytest.raises(RowRejectedError) as caught:
            build_update({"case_id": "c-1", "Stauts": "open"}, column_map)
        messages.append(str(caught.value))
    assert messages == [messages[0]] * 3
    assert "did you mean 'Status'?" in messages[0]


def test_two_jsonl_keys_naming_one_field_are_refused(schema: Schema) -> None:
    column_map = schema.column_map()
    with pytest.raises(RowRejectedError) as caught:
        build_update({"case_id": "c-1", "status": "open", "Status": "closed"}, column_map)
    assert [(p.column, p.reason_code) for p in caught.value.problems] == [
        ("Status", "duplicate_field")
    ]


def test_keys_are_resolved_once_and_remembered(schema: Schema) -> None:
    column_map = schema.column_map()
    build_update({"case_id": "c-1", "Refund amount": 3}, column_map)
    assert column_map.fields == {"Refund amount": AMOUNT}
    assert column_map.field("Refund amount") is AMOUNT


def many_fields(count: int) -> tuple[Schema, ColumnMap]:
    fields = [Field(f"f{i}", f"Field {i}", FieldType.NUMBER) for i in range(count)]
    schema = Schema(fields, ISO)
    return schema, schema.resolve_header(["case_id", *(f.field_id for f in fields)])


def test_a_row_may_set_as_many_fields_as_one_update_takes() -> None:
    _, column_map = many_fields(MAX_FIELDS_PER_UPDATE)
    row = {"case_id": "c-1", **{f"f{i}": i for i in range(MAX_FIELDS_PER_UPDATE)}}
    assert len(build_update(row, column_map)) == MAX_FIELDS_PER_UPDATE


def test_a_row_setting_more_fields_than_one_update_takes_is_refused() -> None:
    _, column_map = many_fields(MAX_FIELDS_PER_UPDATE + 1)
    row = {"case_id": "c-1", **{f"f{i}": i for i in range(MAX_FIELDS_PER_UPDATE + 1)}}
    with pytest.raises(RowRejectedError) as caught:
        build_update(row, column_map)
    [problem] = caught.value.problems
    assert (problem.column, problem.reason_code) == (None, "too_many_fields")


def test_only_the_fields_a_row_actually_sets_count_toward_the_limit() -> None:
    _, column_map = many_fields(MAX_FIELDS_PER_UPDATE + 1)
    row = {"case_id": "c-1", **{f"f{i}": i for i in range(MAX_FIELDS_PER_UPDATE)}, "f220": ""}
    assert len(build_update(row, column_map)) == MAX_FIELDS_PER_UPDATE


@given(st.dictionaries(st.sampled_from(["Title", "Status", "f-amount", "Due"]), st.text()))
def test_a_row_either_builds_valid_updates_or_fails_with_reasons(row: dict[str, str]) -> None:
    column_map = Schema(FIELDS, MILLIS).resolve_header(
        ["case_id", "Title", "Status", "f-amount", "Due"]
    )
    try:
        updates = build_update({"case_id": "c-1", **row}, column_map)
    except RowRejectedError as error:
        rejected: RowRejectedError | None = error
    else:
        rejected = None
        assert [u["id"] for u in updates] == [
            column_map.fields[c].field_id for c in row if row[c].strip()
        ]
    if rejected is not None:
        assert rejected.problems
        assert {p.column for p in rejected.problems} <= set(row)


# -- Schema.coerce --------------------------------------------------------------------------------


def test_schema_coerce_uses_the_schema_encoding_and_blank_policy() -> None:
    schema = Schema(FIELDS, MILLIS, blank_policy=BlankPolicy.CLEAR)
    assert schema.coerce(DUE, "1970-01-01T00:00:01Z") == {"doubleValue": 1000.0}
    assert schema.coerce(DUE, "") == {"emptyValue": {}}


def test_schema_coerce_also_takes_a_field_the_schema_does_not_know(schema: Schema) -> None:
    other = Field("f-other", "Other", FieldType.BOOLEAN)
    assert schema.coerce(other, "yes") == {"booleanValue": True}
    with pytest.raises(ValueRejected):
        schema.coerce(other, "maybe")


def test_datetime_values_are_refused_until_an_encoding_is_known() -> None:
    column_map = Schema(FIELDS, None).resolve_header(["case_id", "Due"])
    with pytest.raises(RowRejectedError) as caught:
        build_update({"case_id": "c-1", "Due": "2024-05-01"}, column_map)
    assert [p.reason_code for p in caught.value.problems] == ["datetime_encoding_unknown"]


# -- detect_datetime_encoding ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_union", "encoding"),
    [
        ({"stringValue": "2024-05-01T12:00:00.000Z"}, ISO),
        ({"stringValue": "2024-05-01T12:00:00+00:00"}, ISO),
        ({"doubleValue": 1714564800000.0}, MILLIS),
        ({"doubleValue": 1714564800000}, MILLIS),
    ],
)
def test_the_datetime_encoding_is_told_from_a_system_datetime_value(
    value_union: dict[str, object], encoding: DateTimeEncoding
) -> None:
    assert detect_datetime_encoding(value_union) is encoding


@pytest.mark.parametrize(
    "value_union",
    [
        {"doubleValue": 1714564800.0},  # seconds: mirroring it as milliseconds would be 1000x off
        {"doubleValue": float("nan")},
        {"doubleValue": True},
        {"stringValue": "yesterday"},
        {"stringValue": "1714564800000"},
        {"stringValue": 5},
        {"emptyValue": {}},
        {},
    ],
)
def test_the_datetime_encoding_is_never_guessed_from_an_unclear_value(
    value_union: dict[str, object],
) -> None:
    with pytest.raises(DateTimeEncodingError, match="cannot tell the DateTime encoding"):
        detect_datetime_encoding(value_union)
