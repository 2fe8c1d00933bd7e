"""TokenBucket and AdaptiveRate: tables for the rules, hypothesis for the invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.pacing.adaptive import AdaptiveRate, RateTuning, Regime, default_floor_per_s
from bulkupdate.pacing.bucket import TokenBucket

# -- TokenBucket ------------------------------------------------------------------------------


def reserve(bucket: TokenBucket, now_s: float) -> float:
    """Take one slot at `now_s`; how long its holder waits before sending."""
    return bucket.reserve_slot(now_s).delay_s(now_s)


def test_bucket_lets_the_first_burst_through_then_spaces_by_rate() -> None:
    bucket = TokenBucket(rate_per_s=4.0, burst=3)
    delays_s = [reserve(bucket, 10.0) for _ in range(6)]
    assert delays_s == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.5, 0.75])


def test_bucket_hands_waiters_successive_slots_in_arrival_order() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=1)
    slots = [bucket.reserve_slot(0.0) for _ in range(4)]
    assert [slot.send_at_s for slot in slots] == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_bucket_refills_while_idle_but_never_beyond_burst() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=2)
    assert reserve(bucket, 0.0) == 0.0
    assert reserve(bucket, 0.0) == 0.0
    # A long idle spell refills only `burst` tokens.
    assert [reserve(bucket, 100.0) for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])


def test_rate_decrease_revokes_waiting_slots_and_respaces_them() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=1)
    slots = [bucket.reserve_slot(0.0) for _ in range(5)]  # 0.0, 0.1, ... 0.4
    bucket.set_rate(2.0, now_s=0.05)
    assert not slots[0].revoked  # already due: its holder is sending
    assert all(slot.revoked for slot in slots[1:])
    # Holders reserve again. The one call sent still owes half a token (half refilled at
    # 10/s by 0.05 s), now repaid at 2/s: 0.25 s.
    again = [bucket.reserve_slot(0.05) for _ in range(4)]
    assert [slot.send_at_s for slot in again] == pytest.approx([0.3, 0.8, 1.3, 1.8])


def test_rate_increase_revokes_waiting_slots_so_they_can_go_sooner() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1)
    slots = [bucket.reserve_slot(0.0) for _ in range(3)]  # 0, 1, 2
    bucket.set_rate(4.0, now_s=0.0)
    assert [slot.revoked for slot in slots] == [False, True, True]
    again = [bucket.reserve_slot(0.0) for _ in range(2)]
    assert [slot.send_at_s for slot in again] == pytest.approx([0.25, 0.5])


def test_rate_change_grants_no_free_burst() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=5)
    for _ in range(5):
        reserve(bucket, 0.0)  # bucket drained
    bucket.set_rate(1.0, now_s=0.0)
    assert reserve(bucket, 0.0) == pytest.approx(1.0)
    bucket.set_rate(100.0, now_s=0.0)
    assert reserve(bucket, 0.0) > 0.0


@pytest.mark.parametrize(
    ("rate_per_s", "burst"),
    [(0.0, 1), (-1.0, 1), (math.inf, 1), (math.nan, 1), (1e-320, 1), (1.0, 0)],
)
def test_bucket_refuses_impossible_settings(rate_per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"rate_per_s|burst"):
        TokenBucket(rate_per_s, burst)


def _admissions_fit(sends_s: list[float], burst: int, rate_per_s: float) -> bool:
    sends_s = sorted(sends_s)
    for i, start_s in enumerate(sends_s):
        for j in range(i, len(sends_s)):
            allowed = burst + rate_per_s * (sends_s[j] - start_s) + 1e-6
            if j - i + 1 > allowed:
                return False
    return True


arrivals = st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=40)


@given(
    gaps_s=arrivals,
    rate_per_s=st.floats(min_value=0.5, max_value=50.0),
    burst=st.integers(min_value=1, max_value=5),
)
def test_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(
    gaps_s: list[float], rate_per_s: float, burst: int
) -> None:
    bucket = TokenBucket(rate_per_s, burst)
    now_s = 0.0
    sends_s = []
    for gap_s in gaps_s:
        now_s += gap_s
        sends_s.append(now_s + reserve(bucket, now_s))
    assert _admissions_fit(sends_s, burst, rate_per_s)


@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2.0),
            st.one_of(st.none(), st.floats(min_value=0.5, max_value=20.0)),
        ),
        min_size=1,
        max_size=40,
    ),
    burst=st.integers(min_value=1, max_value=4),
)
def test_bucket_with_changing_rate_stays_within_its_highest_rate(
    steps: list[tuple[float, float | None]], burst: int
) -> None:
    bucket = TokenBucket(5.0, burst)
    highest_per_s = 5.0
    now_s = 0.0
    slots = []
    for gap_s, new_rate in steps:
        now_s += gap_s
        if new_rate is None:
            slots.append(bucket.reserve_slot(now_s))
        else:
            bucket.set_rate(new_rate, now_s)
            highest_per_s = max(highest_per_s, new_rate)
            # Holders of revoked slots queue again at once, as the gate's waiters do.
            slots = [bucket.reserve_slot(now_s) if slot.revoked else slot for slot in slots]
    assert _admissions_fit([slot.send_at_s for slot in slots], burst, highest_per_s)


# -- AdaptiveRate -----------------------------------------------------------------------------


def saturate(control: AdaptiveRate, start_s: float, quota_per_s: float, seconds: float) -> float:
    """Accepts at exactly the quota, as a saturated server gives them; returns the end time."""
    n = round(quota_per_s * seconds)
    for i in range(1, n + 1):
        control.on_accept(start_s + i / quota_per_s, sent_s=start_s + i / quota_per_s - 0.01)
    return start_s + n / quota_per_s


def test_first_throttle_cuts_the_rate_multiplicatively() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    assert control.on_throttle(1.0, sent_s=0.99)
    assert control.rate_per_s == pytest.approx(28.0)  # x 0.7
    assert control.quota_estimate_per_s == pytest.approx(40.0)  # an upper bound so far


def test_throttles_already_in_flight_cut_the_rate_once() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    assert control.on_throttle(1.0, sent_s=0.99)
    after_cut = control.rate_per_s
    for i in range(20):  # sent before the cut, answered after it
        assert not control.on_throttle(1.001 + i * 0.001, sent_s=0.995)
    assert control.rate_per_s == after_cut


def test_throttle_drops_rate_one_percent_below_measured_quota() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.01)  # marks: the server bucket is empty now
    end_s = saturate(control, 0.0, quota_per_s=10.0, seconds=5.0)
    assert control.on_throttle(end_s + 0.01, sent_s=end_s)
    quota = control.quota_estimate_per_s
    assert quota == pytest.approx(10.0, rel=0.02)  # 50 accepts (+ half a token) over 5 s
    assert control.rate_per_s == pytest.approx(0.99 * quota)
    assert control.regime is Regime.MEASURED


def test_the_burst_in_flight_at_the_first_throttle_is_not_counted_in_the_quota() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.006, sent_s=0.005)  # the first refusal: the bucket just ran dry
    for _ in range(16):  # the initial burst, sent at 0 and admitted before it, answered after
        control.on_accept(0.02, sent_s=0.0)
    end_s = saturate(control, 0.0, quota_per_s=10.0, seconds=3.0)
    control.on_throttle(end_s + 0.01, sent_s=end_s)
    assert control.quota_estimate_per_s == pytest.approx(10.0, rel=0.03)


def test_a_start_four_times_too_fast_is_cut_near_the_quota_on_its_second_refusal() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.01)  # 40 -> 28: nothing is known yet
    end_s = saturate(control, 0.0, quota_per_s=10.0, seconds=0.6)
    assert control.on_throttle(end_s + 0.01, sent_s=end_s)
    # Six accepts in 0.61 s: the quota is at most (6 + 1) / 0.61, 2% more for timing.
    assert control.quota_estimate_per_s == pytest.approx(7 / 0.61 * 1.02)
    assert 10.0 <= control.rate_per_s <= 12.0
    assert control.regime is Regime.FINDING


def test_a_second_of_accepts_bounds_the_quota_but_does_not_measure_it() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.01)
    end_s = saturate(control, 0.0, quota_per_s=10.0, seconds=1.0)
    # 1 refusal among 10 accepts is jitter; the 2nd makes 2 of 12, overload.
    assert not control.on_throttle(end_s + 0.2, sent_s=end_s + 0.1)
    assert control.on_throttle(end_s + 0.21, sent_s=end_s + 0.1)
    bound = 11 / 1.11 * 1.02  # (10 accepts + 1) over the 1.11 s since the mark
    assert control.regime is Regime.FINDING
    assert control.quota_estimate_per_s == pytest.approx(bound)
    assert control.rate_per_s == pytest.approx(0.99 * bound)


def test_a_few_throttles_among_many_accepts_right_after_a_cut_are_jitter() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.01)
    end_s = saturate(control, 0.0, quota_per_s=10.0, seconds=5.0)
    control.on_throttle(end_s + 0.01, sent_s=end_s)
    settled = control.rate_per_s
    t = end_s + 0.01
    for _ in range(12):  # calls sent after the cut: 12 accepted, then one refused
        t += 0.1
        control.on_accept(t, sent_s=t - 0.01)
    assert not control.on_throttle(t + 0.05, sent_s=t)
    assert control.rate_per_s >= settled


def test_below_a_measured_quota_a_quarter_refused_right_after_the_cut_is_still_jitter() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.01)
    end_s = saturate(control, 0.0, quota_per_s=10.0, seconds=5.0)
    control.on_throttle(end_s + 0.01, sent_s=end_s)
    settled = control.rate_per_s
    t = end_s + 0.01
    for _ in range(6):
        t += 0.1
        control.on_accept(t, sent_s=t - 0.01)
    assert not control.on_throttle(t + 0.01, sent_s=t)
    assert not control.on_throttle(t + 0.02, sent_s=t + 0.01)  # 2 of 8
    assert control.rate_per_s >= settled


def test_an_epoch_is_not_judged_before_its_accepts_can_have_come_back() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.3)
    for i in range(1, 51):  # accepted calls take 0.3 s to answer
        control.on_accept(0.3 + i * 0.1, sent_s=i * 0.1)
    assert control.on_throttle(5.4, sent_s=5.1)
    after_cut = control.rate_per_s
    # Two calls sent after the cut come back refused within 0.15 s; its accepts are not due.
    assert not control.on_throttle(5.5, sent_s=5.45)
    assert not control.on_throttle(5.55, sent_s=5.5)
    assert control.rate_per_s >= after_cut


def test_rate_recovers_towards_the_quota_after_a_deep_cut() -> None:
    control = AdaptiveRate(ceiling_per_s=40.0)
    control.on_throttle(0.0, sent_s=-0.01)
    control.on_throttle(0.5, sent_s=0.4)
    assert control.rate_per_s == pytest.approx(19.6)
    saturate(control, 1.0, quota_per_s=19.0, seconds=3.0)
    # Back to 0.99 x the throttled rate, never past the ceiling.
    assert control.rate_per_s == pytest.approx(28.0 * 0.99, rel=0.01)


def measured(quota_per_s: float) -> tuple[AdaptiveRate, float]:
    """A controller that has just measured `quota_per_s` over 10 s; the time."""
    control = AdaptiveRate(ceiling_per_s=4 * quota_per_s)
    control.on_throttle(0.0, sent_s=-0.01)
    end_s = saturate(control, 0.0, quota_per_s=quota_per_s, seconds=10.0)
    control.on_throttle(end_s + 0.01, sent_s=end_s)
    assert control.regime is Regime.MEASURED
    return control, end_s + 0.01


def test_rate_probes_above_a_measured_quota_slowly() -> None:
    control, now_s = measured(10.0)
    after_cut = control.rate_per_s
    now_s = saturate(control, now_s, quota_per_s=after_cut, seconds=10.0)
    assert after_cut < control.rate_per_s < after_cut * 1.01  # a crawl near the estimate
    saturate(control, now_s, quota_per_s=after_cut, seconds=120.0)
    assert control.rate_per_s > 12.0  # left alone it speeds up, to follow a raised quota


def test_below_ten_calls_a_second_probing_counts_calls_not_seconds() -> None:
    def growth(quota_per_s: float) -> float:
        control, now_s = measured(quota_per_s)
        after_cut = control.rate_per_s
        saturate(control, now_s, quota_per_s=after_cut, seconds=60.0)
        return control.rate_per_s / after_cut - 1.0

    # At 2/s each probe past the quota costs as large a share of calls as at 10/s only if
    # it comes five times less often.
    assert growth(2.0) == pytest.approx(growth(10.0) / 5, rel=0.1)


def test_initial_rate_and_bounds_are_clamped() -> None:
    control = AdaptiveRate(ceiling_per_s=10.0, floor_per_s=1.0, initial_per_s=50.0)
    assert control.rate_per_s == 10.0
    with pytest.raises(ValueError, match="floor_per_s"):
        AdaptiveRate(ceiling_per_s=1.0, floor_per_s=2.0)


@pytest.mark.parametrize(
    ("ceiling_per_s", "floor_per_s"),
    [(40.0, 0.1), (2.0, 0.1), (1.0, 0.05), (2.0 / 32, 0.003125), (0.05, 0.0025), (1e-307, 1e-307)],
)
def test_the_default_floor_is_a_twentieth_of_the_ceiling_and_at_most_a_tenth_per_second(
    ceiling_per_s: float, floor_per_s: float
) -> None:
    assert default_floor_per_s(ceiling_per_s) == pytest.approx(floor_per_s)
    assert AdaptiveRate(ceiling_per_s).floor_per_s == pytest.approx(floor_per_s)


def test_a_ceiling_below_a_tenth_per_second_starts_there_and_throttles_cut_it() -> None:
    control = AdaptiveRate(ceiling_per_s=2.0 / 32)  # a shard of the default 2/s over 32
    assert control.rate_per_s == 2.0 / 32
    now_s = 0.0
    for _ in range(20):  # throttled, round trip after round trip
        now_s += 30.0
        control.on_throttle(now_s, sent_s=now_s - 0.1)
    assert control.rate_per_s == pytest.approx(control.floor_per_s)
    assert 0.0 < control.floor_per_s < 2.0 / 32


events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0),
        st.booleans(),
        st.floats(min_value=0.0, max_value=0.5),
    ),
    max_size=200,
)


@given(
    steps=events,
    ceiling_per_s=st.floats(min_value=0.5, max_value=1000.0),
    floor_fraction=st.floats(min_value=0.001, max_value=1.0),
)
def test_rate_never_exceeds_ceiling_or_drops_below_floor(
    steps: list[tuple[float, bool, float]], ceiling_per_s: float, floor_fraction: float
) -> None:
    floor_per_s = ceiling_per_s * floor_fraction
    control = AdaptiveRate(
        ceiling_per_s, floor_per_s=floor_per_s, tuning=RateTuning(min_span_s=0.5)
    )
    now_s = 0.0
    for gap_s, accepted, latency_s in steps:
        now_s += gap_s
        if accepted:
            control.on_accept(now_s, sent_s=now_s - latency_s)
        else:
            control.on_throttle(now_s, sent_s=now_s - latency_s)
        assert floor_per_s <= control.rate_per_s <= ceiling_per_s


@given(steps=events, ceiling_per_s=st.floats(min_value=1e-300, max_value=1000.0))
def test_any_positive_ceiling_gets_a_floor_the_rate_stays_above(
    steps: list[tuple[float, bool, float]], ceiling_per_s: float
) -> None:
    control = AdaptiveRate(ceiling_per_s, tuning=RateTuning(min_span_s=0.5))
    assert 0.0 < control.floor_per_s <= ceiling_per_s
    now_s = 0.0
    for gap_s, accepted, latency_s in steps:
        now_s += gap_s
        if accepted:
            control.on_accept(now_s, sent_s=now_s - latency_s)
        else:
            control.on_throttle(now_s, sent_s=now_s - latency_s)
        assert control.floor_per_s <= control.rate_per_s <= ceiling_per_s
