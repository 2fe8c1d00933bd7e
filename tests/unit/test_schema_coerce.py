"""Value rules of bulkupdate.fields.coerce: one table per field type, then hypothesis properties."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.fields.coerce import BlankPolicy, ValueRejected, coerce, make_coercer
from bulkupdate.models import DateTimeEncoding, Field, FieldOption, FieldType, WireValue

ISO = DateTimeEncoding.ISO8601
MILLIS = DateTimeEncoding.EPOCH_MILLIS

TITLE = Field("title", "Title", FieldType.TEXT, namespace="System")
SUMMARY = Field("summary", "Summary", FieldType.TEXT, namespace="System")
NOTES = Field("notes_id", "Notes", FieldType.TEXT, is_multiline=True)
CODE = Field("code_id", "Code", FieldType.TEXT, is_multiline=False)
AMOUNT = Field("amount_id", "Amount", FieldType.NUMBER)
VIP = Field("vip_id", "VIP", FieldType.BOOLEAN)
STATUS = Field(
    "status",
    "Status",
    FieldType.SINGLE_SELECT,
    namespace="System",
    options=(
        FieldOption("Open", "open"),
        FieldOption("Closed", "closed"),
        FieldOption("Legacy", "legacy", active=False),
        FieldOption("Three", "3"),
        FieldOption("High", "hi"),
        FieldOption("HI", "h2"),
        FieldOption("b", "a"),
    ),
)
LINK = Field("link_id", "Link", FieldType.URL)
OWNER = Field("owner_id", "Owner", FieldType.USER)
DUE = Field("due_id", "Due", FieldType.DATETIME)
ALL_FIELDS = (TITLE, SUMMARY, NOTES, CODE, AMOUNT, VIP, STATUS, LINK, OWNER, DUE)

ARN = "arn:aws:connect:us-east-1:123456789012:instance/0a1b2c3d-4e5f/agent/9f8e7d6c-5b4a"


def reason(field: Field, raw: object, encoding: DateTimeEncoding | None = ISO) -> str:
    with pytest.raises(ValueRejected) as caught:
        coerce(field, raw, encoding)
    return caught.value.reason_code


# -- blanks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ALL_FIELDS, ids=lambda f: f.name)
@pytest.mark.parametrize("raw", [None, "", "   ", "\t\r\n", "\u00a0"])
def test_a_blank_value_leaves_the_field_unchanged_by_default(field: Field, raw: object) -> None:
    assert coerce(field, raw, None) is None


@pytest.mark.parametrize("field", ALL_FIELDS, ids=lambda f: f.name)
@pytest.mark.parametrize("raw", [None, "", "  "])
def test_a_blank_value_clears_the_field_under_the_clear_policy(field: Field, raw: object) -> None:
    assert coerce(field, raw, None, BlankPolicy.CLEAR) == {"emptyValue": {}}


def test_each_cleared_value_is_a_fresh_dict_so_callers_cannot_share_one() -> None:
    coerce_status = make_coercer(STATUS, ISO, BlankPolicy.CLEAR)
    first, second = coerce_status(""), coerce_status("")
    assert first == second
    assert first is not second


# -- Number ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42.0),
        (" -1.5e3 ", -1500.0),
        ("+.5", 0.5),
        ("5.", 5.0),
        ("1E-2", 0.01),
        ("007", 7.0),
        ("1e308", 1e308),
        (7, 7.0),
        (2.5, 2.5),
        (-(2**53), -9007199254740992.0),
    ],
)
def test_a_number_field_takes_decimal_text_and_json_numbers(raw: object, expected: float) -> None:
    assert coerce(AMOUNT, raw, None) == {"doubleValue": expected}


def test_a_number_field_keeps_the_sign_of_negative_zero() -> None:
    value = coerce(AMOUNT, "-0", None)
    assert value is not None
    assert math.copysign(1.0, value["doubleValue"]) == -1.0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("abc", "invalid_number"),
        ("1,000", "invalid_number"),
        ("1_000", "invalid_number"),
        ("0x10", "invalid_number"),
        ("1 2", "invalid_number"),
        ("e5", "invalid_number"),
        (".", "invalid_number"),
        ("١٢", "invalid_number"),  # Arabic-Indic digits: float() would take them
        ("nan", "invalid_number"),
        ("inf", "invalid_number"),
        ("-Infinity", "invalid_number"),
        ("1e400", "invalid_number"),
        (float("nan"), "invalid_number"),
        (float("-inf"), "invalid_number"),
        (10**400, "invalid_number"),
        pytest.param(10**5000, "invalid_number", id="5001-digit-int"),
        (True, "invalid_type"),
        ([1], "invalid_type"),
        ({"n": 1}, "invalid_type"),
    ],
)
def test_a_number_field_refuses_what_is_not_a_finite_decimal(raw: object, code: str) -> None:
    assert reason(AMOUNT, raw) == code


# -- Boolean --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("1", True),
        ("False", False),
        ("no", False),
        ("NO", False),
        ("0", False),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_a_boolean_field_takes_six_words_in_any_case_and_json_booleans(
    raw: object, expected: bool
) -> None:
    assert coerce(VIP, raw, None) == {"booleanValue": expected}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("y", "invalid_boolean"),
        ("on", "invalid_boolean"),
        ("2", "invalid_boolean"),
        ("truthy", "invalid_boolean"),
        (2, "invalid_boolean"),
        (1.0, "invalid_type"),
        ([True], "invalid_type"),
    ],
)
def test_a_boolean_field_refuses_anything_else(raw: object, code: str) -> None:
    assert reason(VIP, raw) == code


# -- SingleSelect ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("open", "open"),  # exact value
        ("Open", "open"),  # exact name
        ("OPEN", "open"),  # any case
        (" closed ", "closed"),  # padding
        ("cLoSeD", "closed"),
        ("Three", "3"),
        (3, "3"),  # JSON integer naming a value
        ("a", "a"),  # exact value
        ("b", "a"),  # the option named "b" has the value "a"
        ("hi", "hi"),  # exact value wins over the other option named "HI"
        ("HI", "h2"),  # exact name wins over the other option's value "hi"
    ],
)
def test_a_single_select_field_sends_the_option_value(raw: object, expected: str) -> None:
    assert coerce(STATUS, raw, None) == {"stringValue": expected}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("pending", "unknown_option"),
        ("open!", "unknown_option"),
        (4, "unknown_option"),
        ("legacy", "inactive_option"),
        ("LEGACY", "inactive_option"),
        ("Hi", "ambiguous_option"),  # value "hi" and name "HI" of two options, ignoring case
        (3.0, "invalid_type"),
        (True, "invalid_type"),
    ],
)
def test_a_single_select_field_refuses_unknown_inactive_and_ambiguous_options(
    raw: object, code: str
) -> None:
    assert reason(STATUS, raw) == code


def test_an_unknown_option_message_lists_a_few_valid_values_but_no_inactive_one() -> None:
    with pytest.raises(ValueRejected) as caught:
        coerce(STATUS, "pending", None)
    assert "'open', 'closed', '3', 'hi', 'h2', ..." in caught.value.message
    assert "legacy" not in caught.value.message


def test_a_single_select_field_without_options_refuses_every_value() -> None:
    bare = Field("bare_id", "Bare", FieldType.SINGLE_SELECT)
    with pytest.raises(ValueRejected, match="valid: none"):
        coerce(bare, "x", None)


# -- Text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "max_chars"),
    [(SUMMARY, 3000), (NOTES, 4100), (CODE, 500), (TITLE, 500)],
    ids=["summary", "multi-line", "single-line", "unknown-line-mode"],
)
def test_a_text_field_takes_up_to_its_limit_and_refuses_one_more(
    field: Field, max_chars: int
) -> None:
    assert coerce(field, "x" * max_chars, None) == {"stringValue": "x" * max_chars}
    assert reason(field, "x" * (max_chars + 1)) == "too_long"


@pytest.mark.parametrize("char", ["é", "😀", "中"])
def test_text_length_counts_characters_not_bytes(char: str) -> None:
    assert coerce(CODE, char * 500, None) == {"stringValue": char * 500}


def test_a_summary_keeps_its_3000_limit_even_when_marked_multi_line() -> None:
    summary = Field("summary", "Summary", FieldType.TEXT, is_multiline=True)
    assert reason(summary, "x" * 3001) == "too_long"


def test_text_is_sent_verbatim_with_its_surrounding_whitespace() -> None:
    assert coerce(TITLE, "  two words \n", None) == {"stringValue": "  two words \n"}


@pytest.mark.parametrize(("raw", "expected"), [(42, "42"), (-7, "-7")])
def test_a_text_field_takes_a_json_integer_as_its_digits(raw: int, expected: str) -> None:
    assert coerce(TITLE, raw, None) == {"stringValue": expected}


@pytest.mark.parametrize(
    ("raw", "code"),
    [(1.5, "invalid_type"), (True, "invalid_type"), (["a"], "invalid_type"), (10**600, "too_long")],
)
def test_a_text_field_refuses_json_values_that_are_not_text(raw: object, code: str) -> None:
    assert reason(TITLE, raw) == code


# -- Url ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/a?b=c#d", "https://example.com/a?b=c#d"),
        (" http://x.io ", "http://x.io"),
        ("HTTPS://EXAMPLE.COM", "HTTPS://EXAMPLE.COM"),
        ("https://user@host:8443", "https://user@host:8443"),
    ],
)
def test_a_url_field_takes_absolute_http_urls(raw: str, expected: str) -> None:
    assert coerce(LINK, raw, None) == {"stringValue": expected}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("example.com", "invalid_url"),
        ("ftp://example.com", "invalid_url"),
        ("javascript:alert(1)", "invalid_url"),
        ("http://", "invalid_url"),
        ("https:///path", "invalid_url"),
        ("https://exa mple.com", "invalid_url"),
        ("https://x.io/" + "a" * 4100, "too_long"),
        (5, "invalid_type"),
    ],
)
def test_a_url_field_refuses_relative_non_http_and_overlong_urls(raw: object, code: str) -> None:
    assert reason(LINK, raw) == code


def test_a_url_of_exactly_4100_characters_is_accepted() -> None:
    url = "https://x.io/" + "a" * (4100 - len("https://x.io/"))
    assert coerce(LINK, url, None) == {"stringValue": url}


# -- User -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        ARN,
        f"  {ARN}\n",
        "arn:aws-us-gov:connect:us-gov-west-1:123456789012:instance/abc/agent/def",
        "arn:aws-cn:connect:cn-north-1:123456789012:instance/abc/agent/def",
    ],
)
def test_a_user_field_takes_a_connect_user_arn(raw: str) -> None:
    assert coerce(OWNER, raw, None) == {"userArnValue": raw.strip()}


@pytest.mark.parametrize(
    "raw",
    [
        "jane.doe",
        ARN.replace("/agent/", "/queue/"),
        ARN.replace("123456789012", "12345678901"),
        ARN.replace("connect", "iam"),
        ARN + "/extra",
        "arn:aws:connect:us-east-1:123456789012:instance/abc/agent/" + "d" * 500,
        7,
    ],
)
def test_a_user_field_refuses_anything_but_a_connect_user_arn(raw: object) -> None:
    assert reason(OWNER, raw) in {"invalid_user_arn", "invalid_type"}


# -- DateTime -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "iso", "millis"),
    [
        ("2024-05-01", "2024-05-01T00:00:00.000Z", 1714521600000),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000Z", 1714564800000),
        ("2024-05-01 12:00", "2024-05-01T12:00:00.000Z", 1714564800000),  # naive is UTC
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.000Z", 1714564800000),
        ("2024-05-01T00:30:00-01:00", "2024-05-01T01:30:00.000Z", 1714527000000),
        ("20240501T120000Z", "2024-05-01T12:00:00.000Z", 1714564800000),
        ("2024-05-01T12:00:00.1239Z", "2024-05-01T12:00:00.123Z", 1714564800123),  # floored
        ("1714564800", "2024-05-01T12:00:00.000Z", 1714564800000),  # seconds
        ("1714564800.5", "2024-05-01T12:00:00.500Z", 1714564800500),
        ("1714564800123", "2024-05-01T12:00:00.123Z", 1714564800123),  # milliseconds
        ("1.714564800123e12", "2024-05-01T12:00:00.123Z", 1714564800123),
        (1714564800, "2024-05-01T12:00:00.000Z", 1714564800000),
        (1714564800.001, "2024-05-01T12:00:00.001Z", 1714564800001),
        (1714564800123, "2024-05-01T12:00:00.123Z", 1714564800123),
        (99999999999, "5138-11-16T09:46:39.000Z", 99999999999000),  # just below 1e11: seconds
        (100000000000, "1973-03-03T09:46:40.000Z", 100000000000),  # 1e11 and up: milliseconds
        ("-1", "1969-12-31T23:59:59.000Z", -1000),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", -62135596800000),
        ("9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999Z", 253402300799999),
    ],
)
def test_a_datetime_field_sends_the_instant_in_the_detected_encoding(
    raw: object, iso: str, millis: int
) -> None:
    assert coerce(DUE, raw, ISO) == {"stringValue": iso}
    assert coerce(DUE, raw, MILLIS) == {"doubleValue": float(millis)}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("yesterday", "invalid_datetime"),
        ("2024-13-01", "invalid_datetime"),
        ("2024-02-30", "invalid_datetime"),
        ("2024-05-01T24:00", "invalid_datetime"),
        ("2024-05-01x12:00", "invalid_datetime"),  # fromisoformat alone would take any separator
        ("2024-W18-3", "invalid_datetime"),
        ("05/01/2024", "invalid_datetime"),
        ("20240501", "invalid_datetime"),  # YYYYMMDD or epoch seconds: ambiguous
        ("0001-01-01T00:00:00+01:00", "invalid_datetime"),  # before year 1 in UTC
        ("1e999999999", "invalid_datetime"),
        ("nan", "invalid_datetime"),
        (float("inf"), "invalid_datetime"),
        (1e300, "invalid_datetime"),
        pytest.param(10**5000, "invalid_datetime", id="5001-digit-int"),
        (True, "invalid_type"),
        ([2024], "invalid_type"),
    ],
)
def test_a_datetime_field_refuses_what_is_no_instant_in_years_1_to_9999(
    raw: object, code: str
) -> None:
    assert reason(DUE, raw, ISO) == code
    assert reason(DUE, raw, MILLIS) == code


def test_a_datetime_field_refuses_values_while_the_encoding_is_unknown() -> None:
    assert reason(DUE, "2024-05-01", None) == "datetime_encoding_unknown"
    assert reason(DUE, 1714564800, None) == "datetime_encoding_unknown"


def test_a_rejection_carries_its_reason_code_and_a_message_naming_the_value() -> None:
    with pytest.raises(ValueRejected) as caught:
        coerce(AMOUNT, "12abc", None)
    assert caught.value.reason_code == "invalid_number"
    assert "'12abc'" in caught.value.message
    assert str(caught.value).startswith("invalid_number: ")
    assert isinstance(caught.value, ValueError)


# -- properties -----------------------------------------------------------------------------------


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_round_trips_through_number_coercion_of_its_repr(x: float) -> None:
    value = coerce(AMOUNT, repr(x), None)
    assert value is not None
    assert value["doubleValue"] == x
    assert math.copysign(1.0, value["doubleValue"]) == math.copysign(1.0, x)


_OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_MOMENTS = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31))
_ISO_OUT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@given(_MOMENTS, st.one_of(st.none(), _OFFSETS))
def test_iso_output_always_parses_back_to_the_same_instant(
    moment: datetime, offset: timezone | None
) -> None:
    given_moment = moment.replace(tzinfo=offset)
    value = coerce(DUE, given_moment.isoformat(), ISO)
    assert value is not None
    text = value["stringValue"]
    assert _ISO_OUT.fullmatch(text)
    expected = given_moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=UTC)
    assert datetime.fromisoformat(text) == expected
    assert coerce(DUE, text, ISO) == value  # and the output is a fixed point


@given(_MOMENTS, _OFFSETS)
def test_epoch_millis_output_counts_whole_milliseconds_of_the_instant(
    moment: datetime, offset: timezone
) -> None:
    given_moment = moment.replace(tzinfo=offset)
    value = coerce(DUE, given_moment.isoformat(), MILLIS)
    assert value is not None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert value["doubleValue"] == (given_moment - epoch) // timedelta(milliseconds=1)


def obeys_the_rules(field: Field, value: WireValue) -> bool:
    """An independent statement of what the service takes for each field type."""
    if value == {"emptyValue": {}}:
        return True
    (member, payload), *rest = value.items()
    if rest:
        return False
    match field.type:
        case FieldType.TEXT:
            limit = {"summary": 3000}.get(field.field_id, 4100 if field.is_multiline else 500)
            return member == "stringValue" and isinstance(payload, str) and len(payload) <= limit
        case FieldType.URL:
            return (
                member == "stringValue"
                and len(payload) <= 4100
                and payload.lower().startswith(("http://", "https://"))
                and not any(c.isspace() for c in payload)
            )
        case FieldType.NUMBER:
            return member == "doubleValue" and type(payload) is float and math.isfinite(payload)
        case FieldType.BOOLEAN:
            return member == "booleanValue" and type(payload) is bool
        case FieldType.SINGLE_SELECT:
            active = {o.value for o in field.options if o.active}
            return member == "stringValue" and payload in active
        case FieldType.USER:
            return (
                member == "userArnValue"
                and 1 <= len(payload) <= 500
                and payload.startswith("arn:aws")
                and ":connect:" in payload
                and "/agent/" in payload
            )
        case FieldType.DATETIME:
            return member == "stringValue" and bool(_ISO_OUT.fullmatch(payload))


_RAW = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.text(alphabet="0123456789+-.eE ", max_size=20),
    st.sampled_from(
        ["true", "No", " 1 ", "open", "OPEN", "legacy", "Hi", "HI", "https://x.io", ARN, "x" * 501]
    ),
    st.sampled_from(["x" * 3000, "x" * 4100, "https://x.io/" + "y" * 4087, " http://a b"]),
    st.datetimes().map(datetime.isoformat),
    st.lists(st.integers(), max_size=2),
)


@given(st.sampled_from(ALL_FIELDS), _RAW, st.sampled_from(BlankPolicy))
def test_coercion_never_returns_a_value_the_rules_would_reject(
    field: Field, raw: object, blank_policy: BlankPolicy
) -> None:
    try:
        value = coerce(field, raw, ISO, blank_policy)
    except ValueRejected as error:
        reason_code: str | None = error.reason_code
    else:
        reason_code = None
        assert value is None or obeys_the_rules(field, value)
    assert reason_code is None or re.fullmatch(r"[a-z]+(?:_[a-z]+)*", reason_code)
