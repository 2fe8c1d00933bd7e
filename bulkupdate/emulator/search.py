"""SearchCases filters: which cases a CaseFilter and search term select.

Pure: no I/O. Covers field comparisons, andAll/orAll/not; tag filters match nothing (no tags).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkupdate.emulator.records import CaseRecord, Union

ValueOf = Callable[[CaseRecord, str], Union | None]


def _scalar(value: Union | None) -> Any:
    if not value:
        return None
    return next(iter(value.values()))


def _compare(operator: str, actual: Any, expected: Any) -> bool:
    if actual is None:
        return operator == "equalTo" and expected in (None, {})
    try:
        if operator == "equalTo":
            return bool(actual == expected)
        if operator == "contains":
            return isinstance(actual, str) and str(expected) in actual
        if operator == "greaterThan":
            return bool(actual > expected)
        if operator == "greaterThanOrEqualTo":
            return bool(actual >= expected)
        if operator == "lessThan":
            return bool(actual < expected)
        if operator == "lessThanOrEqualTo":
            return bool(actual <= expected)
    except TypeError:
        return False
    return False


def _selects(case: CaseRecord, case_filter: dict[str, Any], value_of: ValueOf) -> bool:
    if "andAll" in case_filter:
        return all(_selects(case, f, value_of) for f in case_filter["andAll"])
    if "orAll" in case_filter:
        return any(_selects(case, f, value_of) for f in case_filter["orAll"])
    if "not" in case_filter:
        return not _selects(case, case_filter["not"], value_of)
    if "field" in case_filter:
        ((operator, condition),) = case_filter["field"].items()
        actual = _scalar(value_of(case, condition["id"]))
        return _compare(operator, actual, _scalar(condition["value"]))
    return False  # tag filters: emulated cases carry no tags


def matches(
    case: CaseRecord, case_filter: dict[str, Any] | None, term: str, value_of: ValueOf
) -> bool:
    if case_filter and not _selects(case, case_filter, value_of):
        return False
    if term:
        lowered = term.lower()
        return any(
            isinstance(_scalar(v), str) and lowered in _scalar(v).lower()
            for v in case.values.values()
        )
    return True
