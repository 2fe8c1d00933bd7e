"""Value rules: turn one raw CSV/JSON value into the FieldValueUnion UpdateCase takes, or refuse it.

Pure: no I/O. A value the service would refuse is refused here and never costs an UpdateCase call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_FLOOR, Context, Decimal
from enum import StrEnum
from typing import assert_never

from bulkupdate.errors import BulkUpdateError
from bulkupdate.models import DateTimeEncoding, Field, FieldOption, FieldType, WireValue

# Takes a raw value (str from CSV; str/int/float/bool/None/list/dict from JSON) and returns the
# union to send, or None for "leave the field unchanged". Raises ValueRejected, nothing else.
Coercer = Callable[[object], WireValue | None]
_Convert = Callable[[object], WireValue]  # same, for a value already known not to be blank

# FACTS §1.4. Lengths are Python len(): Unicode code points. The service warns that multi-byte
# characters may lower its effective limit, so a value passing here can still be refused there.
SUMMARY_FIELD_ID = "summary"
SUMMARY_MAX_CHARS = 3000
MULTILINE_TEXT_MAX_CHARS = 4100
SINGLE_LINE_TEXT_MAX_CHARS = 500
URL_MAX_CHARS = 4100
USER_ARN_MAX_CHARS = 500
# Epoch numbers with |n| >= 1e11 are milliseconds, else seconds: 1e11 s is the year 5138, 1e11 ms
# is March 1973, so only millisecond values before 1973 are misread (as seconds).
EPOCH_MILLIS_THRESHOLD = 10**11

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_MS
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _ONE_MS
# ASCII decimal only: float() alone would also take "nan", "inf", "1_000" and non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Calendar dates, extended (2024-05-01[T..]) or basic with a time (20240501T1200Z). Gate in front of
# fromisoformat, which would also take week dates and any character as the date/time separator.
_ISO_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ].+)?|[0-9]{8}[Tt].+")
# Exact decimal arithmetic: the default context rounds to 28 digits, which could move a ms boundary.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_HUGE_INT = 10**4000
_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_USER_ARN = re.compile(
    r"arn:aws(?:-[a-z0-9]+)*:connect:[a-z]{2}(?:-[a-z0-9]+)+:[0-9]{12}"
    r":instance/[A-Za-z0-9-]+/agent/[A-Za-z0-9-]+"
)
# Url fields require an absolute http(s) URL with a host and no whitespace. The service's own check
# is undocumented; the field exists to render a link for agents, and "example.com" or "javascript:"
# would render a broken or unsafe one, so a bulk run should refuse them rather than write thousands.
_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+(?:[/?#]\S*)?")


# Named without the house "Error" suffix because the engine's brief fixes this name.
class ValueRejected(BulkUpdateError, ValueError):
    """One raw value the service would refuse. `reason_code` is short, stable snake_case."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


class BlankPolicy(StrEnum):
    """What a blank input value (None, "" or whitespace only) means."""

    SKIP = "skip"  # leave the field as it is on the case
    CLEAR = "clear"  # send {"emptyValue": {}}


def make_coercer(
    field: Field,
    datetime_encoding: DateTimeEncoding | None,
    blank_policy: BlankPolicy = BlankPolicy.SKIP,
) -> Coercer:
    """Build the per-field coercer once, so each value costs one call and no branching on type."""
    convert = _converter(field, datetime_encoding)
    clear = blank_policy is BlankPolicy.CLEAR

    def coerce(raw: object) -> WireValue | None:
        if raw is None or (isinstance(raw, str) and (not raw or raw.isspace())):
            return {"emptyValue": {}} if clear else None  # a fresh dict: callers may mutate it
        return convert(raw)

    return coerce


def coerce(
    field: Field,
    raw: object,
    datetime_encoding: DateTimeEncoding | None,
    blank_policy: BlankPolicy = BlankPolicy.SKIP,
) -> WireValue | None:
    """One-off coercion; hot paths keep the result of `make_coercer` instead."""
    return make_coercer(field, datetime_encoding, blank_policy)(raw)


def text_max_chars(field: Field) -> int:
    """Longest Text value the field takes; single-line unless the service said multi-line."""
    if field.field_id == SUMMARY_FIELD_ID:
        return SUMMARY_MAX_CHARS
    return MULTILINE_TEXT_MAX_CHARS if field.is_multiline else SINGLE_LINE_TEXT_MAX_CHARS


def iso_to_epoch_ms(text: str) -> int:
    """Epoch ms (floored) of an ISO-8601 calendar date or date-time; naive means UTC."""
    if _ISO_SHAPE.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # naive input is UTC, never local time
            return (moment - _EPOCH) // _ONE_MS
    raise ValueRejected(
        "invalid_datetime", f"{_show(text)} is not an ISO-8601 date/date-time or an epoch number"
    )


def _converter(field: Field, encoding: DateTimeEncoding | None) -> _Convert:
    match field.type:
        case FieldType.TEXT:
            return _text(text_max_chars(field))
        case FieldType.NUMBER:
            return _number
        case FieldType.BOOLEAN:
            return _boolean
        case FieldType.SINGLE_SELECT:
            return _OptionIndex(field.options).convert
        case FieldType.URL:
            return _url
        case FieldType.USER:
            return _user
        case FieldType.DATETIME:
            return _datetime(encoding)
    assert_never(field.type)


def _show(raw: object) -> str:
    if isinstance(raw, int) and abs(raw) >= _HUGE_INT:
        return "<integer too long to show>"  # repr() refuses ints of more than 4300 digits
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong_type(raw: object, wanted: str) -> ValueRejected:
    return ValueRejected(
        "invalid_type", f"{_show(raw)} is a {type(raw).__name__}; expected {wanted}"
    )


def _text(max_chars: int) -> _Convert:
    def convert(raw: object) -> WireValue:
        # Stored verbatim (no strip): surrounding whitespace may be content in a text field.
        if isinstance(raw, str):
            text = raw
        elif isinstance(raw, int) and not isinstance(raw, bool):  # JSON true is not the number 1
            if abs(raw) >= _HUGE_INT:
                raise ValueRejected("too_long", "an integer of more than 4000 digits")
            text = str(raw)  # JSON 42 for a text field such as an order number
        else:
            raise _wrong_type(raw, "text")
        if len(text) > max_chars:
            raise ValueRejected("too_long", f"{len(text)} characters; at most {max_chars}")
        return {"stringValue": text}

    return convert


def _number(raw: object) -> WireValue:
    if isinstance(raw, str):
        text = raw.strip()
        if not _DECIMAL.fullmatch(text):
            raise ValueRejected("invalid_number", f"{_show(raw)} is not a decimal number")
        value = float(text)
    elif isinstance(raw, float):
        value = raw
    elif isinstance(raw, int) and not isinstance(raw, bool):  # JSON true is not the number 1
        try:
            value = float(raw)
        except OverflowError:
            value = math.inf
    else:
        raise _wrong_type(raw, "a number")
    if not math.isfinite(value):  # NaN and infinities have no JSON form; 1e400 overflows to inf
        raise ValueRejected("invalid_number", f"{_show(raw)} is not a finite double")
    return {"doubleValue": value}


def _boolean(raw: object) -> WireValue:
    if isinstance(raw, bool):
        return {"booleanValue": raw}
    if isinstance(raw, str):
        value = _BOOLEANS.get(raw.strip().lower())
    elif isinstance(raw, int):
        value = bool(raw) if raw in (0, 1) else None  # JSON 1/0 as in CSV; 2 stays an error
    else:
        raise _wrong_type(raw, "a boolean")
    if value is None:
        raise ValueRejected("invalid_boolean", f"{_show(raw)} is not true/false/yes/no/1/0")
    return {"booleanValue": value}


def _url(raw: object) -> WireValue:
    if not isinstance(raw, str):
        raise _wrong_type(raw, "a URL")
    text = raw.strip()
    if len(text) > URL_MAX_CHARS:
        raise ValueRejected("too_long", f"{len(text)} characters; at most {URL_MAX_CHARS}")
    if not _URL.fullmatch(text):
        raise ValueRejected("invalid_url", f"{_show(text)} is not an absolute http(s) URL")
    return {"stringValue": text}


def _user(raw: object) -> WireValue:
    if not isinstance(raw, str):
        raise _wrong_type(raw, "a user ARN")
    text = raw.strip()
    if len(text) > USER_ARN_MAX_CHARS or not _USER_ARN.fullmatch(text):
        raise ValueRejected(
            "invalid_user_arn",
            f"{_show(text)} is not a Connect user ARN "
            "(arn:aws:connect:<region>:<account>:instance/<id>/agent/<id>)",
        )
    return {"userArnValue": text}


class _OptionIndex:
    """SingleSelect lookup: exact value, then exact name, then either ignoring case and padding."""

    __slots__ = ("_by_folded", "_by_name", "_by_value", "_valid_values")

    def __init__(self, options: Sequence[FieldOption]) -> None:
        self._by_value: dict[str, list[FieldOption]] = {}
        self._by_name: dict[str, list[FieldOption]] = {}
        self._by_folded: dict[str, list[FieldOption]] = {}
        for option in options:
            self._by_value.setdefault(option.value, []).append(option)
            self._by_name.setdefault(option.name, []).append(option)
            for key in {option.value.strip().casefold(), option.name.strip().casefold()}:
                self._by_folded.setdefault(key, []).append(option)
        active = [option.value for option in options if option.active]
        shown = ", ".join(repr(value) for value in active[:5])
        self._valid_values = (shown + (", ..." if len(active) > 5 else "")) or "none"

    def convert(self, raw: object) -> WireValue:
        if isinstance(raw, str):
            text = raw
        elif isinstance(raw, int) and not isinstance(raw, bool):
            # JSON 3 for an option whose value is "3"; str() refuses ints over 4300 digits.
            text = str(raw) if abs(raw) < _HUGE_INT else ""
        else:
            raise _wrong_type(raw, "an option value or name")
        matches = (
            self._by_value.get(text)
            or self._by_name.get(text)
            or self._by_folded.get(text.strip().casefold())
        )
        if not matches:
            raise ValueRejected(
                "unknown_option", f"{_show(raw)} is not an option; valid: {self._valid_values}"
            )
        if len(matches) > 1:
            shown = ", ".join(repr(option.value) for option in matches)
            raise ValueRejected("ambiguous_option", f"{_show(raw)} matches options {shown}")
        option = matches[0]
        if not option.active:
            # The admin guide: an inactive option can no longer be given to a case.
            raise ValueRejected("inactive_option", f"option {option.value!r} is inactive")
        return {"stringValue": option.value}


def _datetime(encoding: DateTimeEncoding | None) -> _Convert:
    if encoding is None:

        def refuse(raw: object) -> WireValue:
            raise ValueRejected(
                "datetime_encoding_unknown",
                "the DateTime wire encoding was not detected or configured; refusing to guess",
            )

        return refuse
    encode = _iso_value if encoding is DateTimeEncoding.ISO8601 else _epoch_millis_value

    def convert(raw: object) -> WireValue:
        return encode(_epoch_ms(raw))

    return convert


def _iso_value(epoch_ms: int) -> WireValue:
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    # Formatted by hand: strftime("%Y") does not zero-pad years before 1000 on every libc.
    return {
        "stringValue": f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}."
        f"{moment.microsecond // 1000:03d}Z"
    }


def _epoch_millis_value(epoch_ms: int) -> WireValue:
    return {"doubleValue": float(epoch_ms)}  # exact: |epoch_ms| < 2**53


def _epoch_ms(raw: object) -> int:
    """The instant as integer epoch milliseconds, truncated (floored) to the millisecond."""
    if isinstance(raw, str):
        text = raw.strip()
        if _DECIMAL.fullmatch(text):
            if len(text) == 8 and text.isdigit():
                raise ValueRejected(
                    "invalid_datetime",
                    f"{_show(raw)} is ambiguous (YYYYMMDD or epoch seconds); "
                    "write 2024-05-01 or a 10-digit epoch",
                )
            epoch_ms = _ms_from_decimal(Decimal(text), raw)
        else:
            epoch_ms = iso_to_epoch_ms(text)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        epoch_ms = raw if abs(raw) >= EPOCH_MILLIS_THRESHOLD else raw * 1000
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueRejected("invalid_datetime", f"{_show(raw)} is not a finite epoch")
        # repr gives the shortest decimal that reads back as this float: 1.5e9 stays 1500000000,
        # where float arithmetic (x * 1000) could land a hair below and floor to the wrong ms.
        epoch_ms = _ms_from_decimal(Decimal(repr(raw)), raw)
    else:
        raise _wrong_type(raw, "an ISO-8601 date-time or an epoch number")
    if not _MIN_MS <= epoch_ms <= _MAX_MS:
        raise ValueRejected("invalid_datetime", f"{_show(raw)} is outside years 0001..9999")
    return epoch_ms


def _ms_from_decimal(number: Decimal, raw: object) -> int:
    if number.copy_abs() < EPOCH_MILLIS_THRESHOLD:  # copy_abs: exact, no context rounding
        number = number.scaleb(3, _EXACT)
    # Range check before int(): int(Decimal("1e999999999")) would build a billion-digit integer.
    if not _MIN_MS <= number <= _MAX_MS:
        raise ValueRejected("invalid_datetime", f"{_show(raw)} is outside years 0001..9999")
    return int(number.to_integral_value(rounding=ROUND_FLOOR))
