"""bulkupdate.fields.compare: when a case's field already holds what a row sends, one table per
field type and wire encoding, then hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.fields.compare import holds, is_empty
from bulkupdate.models import FieldType, WireValue

EMPTIES: list[WireValue | None] = [None, {}, {"emptyValue": {}}, {"stringValue": ""}]
ARN = "arn:aws:connect:us-east-1:123456789012:instance/0a1b/agent/9f8e"


@pytest.mark.parametrize("value", EMPTIES)
def test_a_field_without_a_value_is_empty_in_every_form(value: WireValue | None) -> None:
    assert is_empty(value)


@pytest.mark.parametrize(
    "value",
    [{"stringValue": " "}, {"doubleValue": 0.0}, {"booleanValue": False}, {"userArnValue": ARN}],
)
def test_a_value_that_is_falsy_is_still_a_value(value: WireValue) -> None:
    assert not is_empty(value)


@pytest.mark.parametrize("current", EMPTIES)
@pytest.mark.parametrize("wanted", [v for v in EMPTIES if v is not None])
@pytest.mark.parametrize("field_type", [*FieldType, None])
def test_a_clear_holds_on_a_field_without_a_value_of_any_type(
    field_type: FieldType | None, current: WireValue | None, wanted: WireValue
) -> None:
    assert holds(field_type, current, wanted)


@pytest.mark.parametrize("current", EMPTIES)
@pytest.mark.parametrize(
    "value", [{"stringValue": "x"}, {"doubleValue": 0.0}, {"booleanValue": False}]
)
def test_a_value_and_no_value_never_hold_each_other(
    current: WireValue | None, value: WireValue
) -> None:
    assert not holds(None, current, value)
    assert not holds(None, value, current or {"emptyValue": {}})


ISO_NOON = "2024-05-01T12:00:00.000Z"
NOON_MS = 1714564800000

# (type, what the case holds, what the row sends, holds?)
TABLE: list[tuple[FieldType, WireValue, WireValue, bool]] = [
    (FieldType.TEXT, {"stringValue": "high"}, {"stringValue": "high"}, True),
    (FieldType.TEXT, {"stringValue": "high"}, {"stringValue": "High"}, False),  # case counts
    (FieldType.TEXT, {"stringValue": "high "}, {"stringValue": "high"}, False),  # so do spaces
    (FieldType.SINGLE_SELECT, {"stringValue": "open"}, {"stringValue": "open"}, True),
    (FieldType.SINGLE_SELECT, {"stringValue": "open"}, {"stringValue": "closed"}, False),
    (
        FieldType.URL,
        {"stringValue": "https://a.example/x"},
        {"stringValue": "https://a.example/x"},
        True,
    ),
    (FieldType.NUMBER, {"doubleValue": 5.0}, {"doubleValue": 5}, True),  # numbers, not text
    (FieldType.NUMBER, {"doubleValue": 5.0}, {"doubleValue": 5.5}, False),
    (FieldType.NUMBER, {"doubleValue": 0.1 + 0.2}, {"doubleValue": 0.3}, False),  # exact
    (FieldType.NUMBER, {"doubleValue": -0.0}, {"doubleValue": 0.0}, True),
    (FieldType.NUMBER, {"doubleValue": float("nan")}, {"doubleValue": float("nan")}, False),
    (FieldType.NUMBER, {"doubleValue": "not a number"}, {"doubleValue": 1.0}, False),
    (FieldType.NUMBER, {"stringValue": "5"}, {"doubleValue": 5.0}, False),  # other member
    (FieldType.BOOLEAN, {"booleanValue": True}, {"booleanValue": True}, True),
    (FieldType.BOOLEAN, {"booleanValue": False}, {"booleanValue": True}, False),
    (FieldType.BOOLEAN, {"booleanValue": True}, {"doubleValue": 1.0}, False),
    (FieldType.USER, {"userArnValue": ARN}, {"userArnValue": ARN}, True),
    (FieldType.USER, {"userArnValue": ARN}, {"userArnValue": ARN + "0"}, False),
    # DateTime, ISO-8601: the same instant however it is written.
    (FieldType.DATETIME, {"stringValue": ISO_NOON}, {"stringValue": ISO_NOON}, True),
    (FieldType.DATETIME, {"stringValue": ISO_NOON}, {"stringValue": "2024-05-01T12:00:00Z"}, True),
    (
        FieldType.DATETIME,
        {"stringValue": ISO_NOON},
        {"stringValue": "2024-05-01T14:00:00+02:00"},
        True,
    ),
    (
        FieldType.DATETIME,
        {"stringValue": ISO_NOON},
        {"stringValue": "2024-05-01T12:00:00.001Z"},
        False,
    ),
    (
        FieldType.DATETIME,
        {"stringValue": "2024-05-01"},
        {"stringValue": "2024-05-01T00:00:00Z"},
        True,
    ),
    # DateTime, epoch milliseconds.
    (FieldType.DATETIME, {"doubleValue": float(NOON_MS)}, {"doubleValue": NOON_MS}, True),
    (FieldType.DATETIME, {"doubleValue": float(NOON_MS)}, {"doubleValue": NOON_MS + 1.0}, False),
    # DateTime across the two encodings: the service's answer and the row's need not agree.
    (FieldType.DATETIME, {"doubleValue": float(NOON_MS)}, {"stringValue": ISO_NOON}, True),
    (FieldType.DATETIME, {"stringValue": ISO_NOON}, {"doubleValue": float(NOON_MS)}, True),
    (FieldType.DATETIME, {"stringValue": ISO_NOON}, {"doubleValue": NOON_MS + 1000.0}, False),
    # Not a date: compared as the text it is.
    (FieldType.DATETIME, {"stringValue": "soon"}, {"stringValue": "soon"}, True),
    (FieldType.DATETIME, {"stringValue": "soon"}, {"stringValue": ISO_NOON}, False),
    # The same text is an instant only for a DateTime field.
    (FieldType.TEXT, {"stringValue": ISO_NOON}, {"stringValue": "2024-05-01T12:00:00Z"}, False),
]


@pytest.mark.parametrize(("field_type", "current", "wanted", "expected"), TABLE)
def test_a_field_holds_a_value_by_its_types_equality(
    field_type: FieldType, current: WireValue, wanted: WireValue, expected: bool
) -> None:
    assert holds(field_type, current, wanted) is expected


def test_a_field_of_unknown_type_compares_by_member_and_value() -> None:
    assert holds(None, {"doubleValue": 2.0}, {"doubleValue": 2})
    assert not holds(None, {"stringValue": ISO_NOON}, {"stringValue": "2024-05-01T12:00:00Z"})


# -- properties -----------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
values = st.one_of(
    st.builds(lambda s: {"stringValue": s}, st.text(min_size=1)),
    st.builds(lambda x: {"doubleValue": x}, finite),
    st.builds(lambda b: {"booleanValue": b}, st.booleans()),
    st.builds(lambda s: {"userArnValue": s}, st.text(min_size=1)),
)
types = st.one_of(st.none(), st.sampled_from(FieldType))
instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
offsets_min = st.integers(min_value=-14 * 60, max_value=14 * 60)


@given(types, values)
def test_every_value_holds_itself(field_type: FieldType | None, value: WireValue) -> None:
    assert holds(field_type, dict(value), value)


@given(types, values, values)
def test_holding_is_symmetric(field_type: FieldType | None, a: WireValue, b: WireValue) -> None:
    assert holds(field_type, a, b) == holds(field_type, b, a)


@given(finite, finite)
def test_numbers_hold_exactly_when_they_are_equal(have: float, want: float) -> None:
    assert holds(FieldType.NUMBER, {"doubleValue": have}, {"doubleValue": want}) == (have == want)


@given(instants, offsets_min)
def test_a_datetime_holds_its_instant_in_any_offset_and_either_encoding(
    moment: datetime, offset_min: int
) -> None:
    zone = timezone(timedelta(minutes=offset_min))
    stored = {
        "stringValue": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    }
    epoch_ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    for wanted in (
        {"stringValue": moment.astimezone(zone).isoformat()},
        {"doubleValue": float(epoch_ms)},
    ):
        assert holds(FieldType.DATETIME, stored, wanted)
        assert holds(FieldType.DATETIME, wanted, stored)


@given(instants, st.integers(min_value=1, max_value=10**9))
def test_a_datetime_does_not_hold_another_instant(moment: datetime, later_ms: int) -> None:
    other = moment + timedelta(milliseconds=later_ms)
    epoch_ms = (other - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    stored = {"stringValue": moment.isoformat()}
    assert not holds(FieldType.DATETIME, stored, {"stringValue": other.isoformat()})
    assert not holds(FieldType.DATETIME, stored, {"doubleValue": float(epoch_ms)})
