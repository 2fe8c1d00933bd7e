"""Whether a case's field already holds a value: GetCase's union against the union a row sends.

Pure: no I/O. Knows the field types' equalities: a field without a value equals a clear, numbers
compare as numbers, ISO-8601 DateTimes as instants (the service may render them otherwise).
"""

from __future__ import annotations

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
    if current.keys() != wanted.keys():
        return False
    (member, have), (_, want) = next(iter(current.items())), next(iter(wanted.items()))
    if member == "doubleValue":
        try:
            return float(have) == float(want)
        except (TypeError, ValueError):
            return False
    if member == "stringValue" and field_type is FieldType.DATETIME:
        return _same_instant(have, want)
    return bool(have == want)


def _same_instant(have: object, want: object) -> bool:
    if have == want:
        return True
    if not isinstance(have, str) or not isinstance(want, str):
        return False
    try:
        return iso_to_epoch_ms(have) == iso_to_epoch_ms(want)
    except ValueError:
        return False
