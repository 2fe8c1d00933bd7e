"""Whether a case's field already holds a value: GetCase's union against the union a row sends.

Pure: no I/O. Knows the field types' equalities: a field without a value equals a clear, numbers
compare as numbers, DateTimes as instants whichever wire encoding each side uses.
"""

from __future__ import annotations

import math

from bulkupdate.fields.coerce import iso_to_epoch_ms
from bulkupdate.models import FieldType, WireValue

__all__ = ["holds", "is_empty"]


def is_empty(value: WireValue | None) -> bool:
    """No value: absent from GetCase's answer, an emptyValue, or an empty string."""
    if not value or "emptyValue" in value:
        return True
    return value.get("stringValue", None) == ""


def holds(field_type: FieldType | None, current: WireValue | None, wanted: WireValue) -> bool:
    """Whether a field whose value is `current` (None: GetCase returned none) already holds
    `wanted`, so sending it would change nothing."""
    if is_empty(wanted) or is_empty(current):
        return is_empty(wanted) and is_empty(current)
    assert current is not None
    if field_type is FieldType.DATETIME:
        # The encoding is undocumented (ISO-8601 or epoch ms): an instant is the same either way.
        have_ms, want_ms = _instant_ms(current), _instant_ms(wanted)
        if have_ms is not None and want_ms is not None:
            return have_ms == want_ms
    if current.keys() != wanted.keys():
        return False
    (member, have), (_, want) = next(iter(current.items())), next(iter(wanted.items()))
    if member == "doubleValue":
        return _number(have) is not None and _number(have) == _number(want)
    return bool(have == want)


def _instant_ms(value: WireValue) -> float | None:
    """A DateTime union's instant in epoch ms; None when it is not one."""
    if "doubleValue" in value:
        return _number(value["doubleValue"])
    text = value.get("stringValue")
    if not isinstance(text, str):
        return None
    try:
        return float(iso_to_epoch_ms(text))
    except ValueError:
        return None


def _number(raw: object) -> float | None:
    """A finite number, or None (NaN equals nothing, not even itself)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
