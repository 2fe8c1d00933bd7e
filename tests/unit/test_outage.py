"""OutageWatch: when transient failures mean the service is out, and the probes during one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.pacing.outage import OutageRule, OutageWatch

RULE = OutageRule(quiet_s=10.0, min_failures=3, window=20, failed_share=0.8, probe_interval_s=5.0)


def test_a_row_that_keeps_failing_while_other_calls_succeed_is_no_outage() -> None:
    watch = OutageWatch(0.0, RULE)
    for second in range(100):
        assert not watch.failed(float(second))
        watch.up(second + 0.5)
    assert not watch.active


def test_nothing_but_failures_for_the_quiet_time_is_an_outage() -> None:
    watch = OutageWatch(0.0, RULE)
    watch.up(0.0)
    assert not watch.failed(1.0)
    assert not watch.failed(5.0)
    assert not watch.failed(9.9)  # three failures, but not yet quiet for 10 s
    assert watch.failed(10.0)
    assert watch.since_s == 10.0


def test_a_window_of_answers_mostly_failed_is_an_outage_at_once() -> None:
    watch = OutageWatch(0.0, RULE)
    for failed in [True] * 16 + [False] * 3:  # 19 answers: the window is not full yet
        if failed:
            watch.failed(0.1)
        else:
            watch.up(0.1)
        assert not watch.active
    assert watch.failed(0.2)  # the 20th answer: 17 of 20 failed
    assert watch.active


def test_any_answer_that_is_not_a_transient_failure_ends_an_outage() -> None:
    watch = OutageWatch(0.0, RULE)
    for _ in range(20):
        watch.failed(1.0)
    assert watch.active
    assert watch.lasted_s(31.0) == pytest.approx(30.0)
    watch.up(31.0)
    assert not watch.active
    assert watch.lasted_s(40.0) == 0.0


def test_an_outage_lets_one_probe_out_at_a_time_spaced_by_the_interval() -> None:
    watch = OutageWatch(0.0, RULE)
    for _ in range(20):
        watch.failed(1.0)
    assert not watch.may_send(1.0)  # the first probe waits one interval
    assert watch.may_send(6.0)
    assert not watch.may_send(6.0), "one probe at a time"
    assert not watch.may_send(20.0), "its answer has not come"
    assert watch.failed(20.5)  # the probe failed: still out
    assert watch.may_send(20.5), "the interval since the last probe has passed"
    watch.not_sent()  # that one never went: the next may go
    assert watch.may_send(20.6) is False  # but not before the interval from the last grant
    assert watch.may_send(25.6)


def test_outside_an_outage_every_call_may_go() -> None:
    watch = OutageWatch(0.0, RULE)
    assert all(watch.may_send(float(t)) for t in range(10))


@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 3.0)), max_size=200))
def test_an_outage_never_begins_on_an_answer_that_shows_the_service_up(
    answers: list[tuple[bool, float]],
) -> None:
    watch = OutageWatch(0.0, RULE)
    now_s = 0.0
    for failed, gap_s in answers:
        now_s += gap_s
        if failed:
            watch.failed(now_s)
        else:
            watch.up(now_s)
            assert not watch.active
