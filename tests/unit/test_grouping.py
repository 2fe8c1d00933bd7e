"""The group planner with per-case lanes, as the engine drives them: tables for the rules and a
hypothesis model of a whole run (rows arrive, groups and lone rows go out, calls finish in any
order) that checks order per case, one call per case at a time, equal patches only, the size."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkupdate.fields.rows import Row
from bulkupdate.run.batch.calls import GroupCall, group_call
from bulkupdate.run.batch.grouping import CallCount, Planner, patch_key, window_s
from bulkupdate.run.ordering import CaseLanes

HIGH = [{"id": "priority", "value": {"stringValue": "high"}}]


def row(offset: int, case_id: str, fields: Any = None) -> Row:
    return Row(offset, offset + 2, case_id, list(fields or HIGH), b"")


def test_patches_are_equal_whatever_the_order_of_their_fields() -> None:
    a = [{"id": "x", "value": {"doubleValue": 1.0}}, {"id": "y", "value": {"stringValue": "a"}}]
    assert patch_key(a) == patch_key(list(reversed(a)))
    assert patch_key(a) != patch_key([a[0]])


def test_clearing_a_top_level_field_cannot_be_batched() -> None:
    assert patch_key([{"id": "status", "value": {"emptyValue": {}}}]) is None
    assert patch_key([{"id": "status", "value": {"stringValue": "closed"}}]) is not None


def test_a_full_bucket_goes_at_once_and_a_lone_row_after_the_window() -> None:
    planner = Planner(size=3, window_s=0.5)
    for i in range(4):
        planner.add(row(i, f"C-{i}"), now_s=0.0)
    assert [r.case_id for r in planner.take_group(0.0) or []] == ["C-0", "C-1", "C-2"]
    assert planner.take_group(0.0) is None  # one row left: never a group
    assert planner.take_single(0.4) is None  # it may still find company
    assert planner.take_single(0.5) is not None


def test_two_rows_of_a_patch_go_together_once_the_oldest_waited_the_window() -> None:
    planner = Planner(size=100, window_s=0.5)
    planner.add(row(0, "C-0"), 0.0)
    planner.add(row(1, "C-1"), 0.3)
    assert planner.take_group(0.4) is None
    assert planner.group_due_s() == 0.5
    assert [r.case_id for r in planner.take_group(0.5) or []] == ["C-0", "C-1"]


def test_a_row_alone_goes_at_once_and_a_case_waits_at_most_once() -> None:
    planner = Planner(size=100, window_s=0.5)
    planner.add(row(0, "C-0"), 0.0, alone=True)
    assert planner.take_single(0.0) is not None
    planner.add(row(1, "C-1"), 0.0)
    try:
        planner.add(row(2, "C-1"), 0.0)
    except ValueError:
        pass
    else:
        raise AssertionError("a case with a row waiting took another")


def test_the_window_is_one_update_slot_at_most_half_a_second() -> None:
    assert (window_s(2.0), window_s(100.0), window_s(1000.0)) == (0.5, 0.01, 0.0)


def test_a_group_call_puts_status_top_level_and_other_fields_by_id() -> None:
    fields = [
        {"id": "status", "value": {"stringValue": "closed"}},
        {"id": "priority", "value": {"stringValue": "high"}},
    ]
    call = group_call([row(0, "C-0", fields), row(1, "C-1", fields)], None)
    assert call.top_level == {"status": "closed"}
    assert [f["id"] for f in call.fields] == ["priority"]
    assert GroupCall.from_json(call.to_json()) == call


def test_the_dry_run_count_sends_patches_of_one_row_as_updatecase() -> None:
    count = CallCount(size=100)
    for _ in range(250):
        count.add(HIGH)
    count.add([{"id": "priority", "value": {"stringValue": "low"}}])
    assert count.grouped() == (3, 1)


PATCHES = [
    HIGH,
    [{"id": "priority", "value": {"stringValue": "low"}}],
    [{"id": "status", "value": {"emptyValue": {}}}],
]


@settings(max_examples=200, deadline=None)
@given(
    cases=st.lists(st.integers(0, 7), min_size=1, max_size=60),
    patches=st.lists(st.integers(0, 2), min_size=60, max_size=60),
    size=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_run_keeps_order_per_case_one_call_per_case_equal_patches_and_the_size(
    cases: list[int], patches: list[int], size: int, seed: int
) -> None:
    rng = random.Random(seed)
    rows = [row(i, f"C-{c}", PATCHES[patches[i]]) for i, c in enumerate(cases)]
    lanes: CaseLanes[Row] = CaseLanes()
    planner = Planner(size=size, window_s=1.0)
    now_s, reading = 0.0, list(rows)
    in_flight: list[list[Row]] = []
    done: list[Row] = []
    while reading or len(planner) or in_flight:
        step = rng.random()
        if reading and step < 0.4:
            item = reading.pop(0)
            if lanes.admit(item.case_id, item):
                planner.add(item, now_s)
        elif step < 0.55:
            now_s += rng.choice((0.1, 0.5, 1.0))
        elif step < 0.8:
            taken = planner.take_group(now_s)
            if taken is None:
                single = planner.take_single(now_s)
                taken = [single] if single is not None else None
            if taken is not None:
                flying = {r.case_id for call in in_flight for r in call}
                assert not flying & {r.case_id for r in taken}, "a case in two calls at once"
                assert len({r.case_id for r in taken}) == len(taken)
                assert len(taken) <= size
                assert len({patch_key(r.fields) for r in taken}) == 1, "unequal patches"
                in_flight.append(taken)
        elif in_flight:
            call = in_flight.pop(rng.randrange(len(in_flight)))
            for finished in call:
                done.append(finished)
                following = lanes.release(finished.case_id)
                if following is not None:
                    planner.add(following, now_s)
        elif not reading:
            now_s += 1.0
    assert sorted(r.offset for r in done) == list(range(len(rows)))
    for case_id in {r.case_id for r in rows}:
        offsets = [r.offset for r in done if r.case_id == case_id]
        assert offsets == sorted(offsets), f"{case_id} applied out of input order"
