"""The emulator's lagging search index: what a search sees of a case at each moment."""

from __future__ import annotations

from bulkupdate.emulator.index import SearchIndex
from bulkupdate.emulator.records import CaseRecord


def case(code: str) -> CaseRecord:
    return CaseRecord("c-1", "t", {"code": {"stringValue": code}}, 0.0, 0.0)


def change(index: SearchIndex, record: CaseRecord, code: str, now_s: float) -> None:
    index.changing("d", record)
    record.values["code"] = {"stringValue": code}
    index.changed("d", record, now_s)


def test_without_a_lag_a_search_sees_every_write_at_once() -> None:
    index, record = SearchIndex(), case("A")
    change(index, record, "B", 10.0)

    assert index.values("d", record, 10.0) == {"code": {"stringValue": "B"}}


def test_with_a_lag_each_write_is_seen_only_lag_s_after_it() -> None:
    index, record = SearchIndex(lag_s=2.0), case("A")
    change(index, record, "B", 10.0)
    change(index, record, "C", 11.0)

    seen = [index.values("d", record, now_s) for now_s in (10.0, 11.9, 12.0, 12.5, 13.0, 50.0)]

    assert [v["code"]["stringValue"] for v in seen if v] == ["A", "A", "B", "B", "C", "C"]


def test_a_case_created_within_the_lag_is_not_found_at_all() -> None:
    index, record = SearchIndex(lag_s=1.0), case("A")
    index.changed("d", record, 5.0)  # created

    assert index.values("d", record, 5.5) is None
    assert index.values("d", record, 6.0) == {"code": {"stringValue": "A"}}
