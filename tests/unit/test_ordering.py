"""Per-case lanes and the resume frontier, on tables and with hypothesis."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.models import ResumePoint
from bulkupdate.run.ordering import CaseLanes, Frontier


def test_a_free_case_starts_at_once_and_a_busy_one_waits() -> None:
    lanes: CaseLanes[str] = CaseLanes()
    assert lanes.admit("A", "a1")
    assert lanes.admit("B", "b1")
    assert not lanes.admit("A", "a2")
    assert not lanes.admit("A", "a3")
    assert lanes.waiting == 2
    assert lanes.release("A") == "a2"
    assert lanes.release("A") == "a3"
    assert lanes.release("A") is None
    assert lanes.admit("A", "a4")


def test_drain_returns_every_parked_row_and_frees_all_cases() -> None:
    lanes: CaseLanes[int] = CaseLanes()
    for row, case in enumerate("AABAC"):
        lanes.admit(case, row)
    assert sorted(lanes.drain()) == [1, 3]
    assert all(lanes.admit(case, 9) for case in "ABC")  # every case free again
    assert lanes.waiting == 0


@given(st.lists(st.sampled_from("ABCD"), max_size=60), st.randoms(use_true_random=False))
def test_rows_of_a_case_run_in_input_order_whatever_order_cases_finish(
    cases: list[str], rng: random.Random
) -> None:
    lanes: CaseLanes[int] = CaseLanes()
    in_flight: list[tuple[str, int]] = []
    started: list[tuple[str, int]] = []
    for row, case in enumerate(cases):
        if lanes.admit(case, row):
            in_flight.append((case, row))
            started.append((case, row))
    while in_flight:
        case, _ = in_flight.pop(rng.randrange(len(in_flight)))
        following = lanes.release(case)
        if following is not None:
            assert all(c != case for c, _ in in_flight), "one row per case in flight"
            in_flight.append((case, following))
            started.append((case, following))
    assert len(started) == len(cases)
    for case in set(cases):
        rows = [row for c, row in started if c == case]
        assert rows == sorted(rows)


def test_resume_point_is_the_lowest_unresolved_record() -> None:
    frontier = Frontier(ResumePoint(10, 2))
    assert frontier.resume_point() == ResumePoint(10, 2)
    frontier.read(10, 2, ResumePoint(20, 3))
    frontier.read(20, 3, ResumePoint(35, 5))
    frontier.read(35, 5, ResumePoint(40, 6))
    frontier.resolve(20)
    assert frontier.resume_point() == ResumePoint(10, 2)
    frontier.resolve(10)
    assert frontier.resume_point() == ResumePoint(35, 5)
    frontier.resolve(35)
    assert frontier.resume_point() == ResumePoint(40, 6)
    assert frontier.pending == 0


@given(st.integers(1, 80), st.randoms(use_true_random=False))
def test_nothing_before_the_resume_point_is_ever_unresolved(count: int, rng: random.Random) -> None:
    frontier = Frontier(ResumePoint(0, 1))
    offsets = [i * 10 for i in range(count)]
    for offset in offsets:
        frontier.read(offset, offset // 10 + 1, ResumePoint(offset + 10, offset // 10 + 2))
    resolved: set[int] = set()
    for offset in rng.sample(offsets, len(offsets)):
        frontier.resolve(offset)
        resolved.add(offset)
        point = frontier.resume_point()
        assert all(o in resolved for o in offsets if o < point.offset)
        unresolved = set(offsets) - resolved
        assert point.offset == (min(unresolved) if unresolved else count * 10)
    assert frontier.resume_point() == ResumePoint(count * 10, count + 1)
