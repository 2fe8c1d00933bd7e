"""Retry decisions: backoff bounds, Retry-After, and which failures give up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkupdate.pacing.retry import ErrorKind, GiveUp, Retry, RetryPolicy, backoff_delay_s

units = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@pytest.mark.parametrize(
    ("attempt", "random_unit", "expected_s"),
    [
        (1, 0.5, 0.25),  # base 0.5 * 2**0 * 0.5
        (2, 0.5, 0.5),
        (3, 0.5, 1.0),
        (6, 0.5, 8.0),
        (7, 0.5, 10.0),  # 0.5 * 2**6 = 32 capped at 20
        (50, 0.5, 10.0),
        (3, 0.0, 0.0),
    ],
)
def test_backoff_is_random_unit_times_capped_exponential(
    attempt: int, random_unit: float, expected_s: float
) -> None:
    delay_s = backoff_delay_s(attempt, base_s=0.5, cap_s=20.0, random_unit=random_unit)
    assert delay_s == pytest.approx(expected_s)


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert backoff_delay_s(10_000, base_s=0.05, cap_s=1.0, random_unit=0.999) < 1.0


@pytest.mark.parametrize("random_unit", [-0.1, 1.0, 2.0])
def test_backoff_refuses_a_random_unit_outside_zero_to_one(random_unit: float) -> None:
    with pytest.raises(ValueError, match="random_unit"):
        backoff_delay_s(1, base_s=1.0, cap_s=2.0, random_unit=random_unit)


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    base_s=st.floats(min_value=0.0, max_value=10.0),
    cap_s=st.floats(min_value=0.0, max_value=100.0),
    random_unit=units,
)
def test_backoff_stays_within_zero_and_cap(
    attempt: int, base_s: float, cap_s: float, random_unit: float
) -> None:
    delay_s = backoff_delay_s(attempt, base_s=base_s, cap_s=cap_s, random_unit=random_unit)
    assert 0.0 <= delay_s <= cap_s


@given(
    kind=st.sampled_from([ErrorKind.THROTTLED, ErrorKind.TRANSIENT]),
    attempt=st.integers(min_value=1, max_value=7),
    retry_after_s=st.one_of(st.none(), st.floats(min_value=0.0, max_value=3600.0)),
    random_unit=units,
)
def test_retry_waits_at_least_the_servers_retry_after(
    kind: ErrorKind, attempt: int, retry_after_s: float | None, random_unit: float
) -> None:
    decision = RetryPolicy().decide(kind, attempt, retry_after_s, random_unit)
    assert isinstance(decision, Retry)
    assert decision.delay_s >= (retry_after_s or 0.0)
    assert decision.delay_s <= max(RetryPolicy().cap_s, retry_after_s or 0.0)


@given(attempt=st.integers(min_value=1, max_value=100_000), random_unit=units)
def test_throttled_rows_are_always_retried_after_a_short_floor(
    attempt: int, random_unit: float
) -> None:
    policy = RetryPolicy()
    decision = policy.decide(ErrorKind.THROTTLED, attempt, None, random_unit)
    assert isinstance(decision, Retry)
    assert 0.0 <= decision.delay_s <= policy.throttle_cap_s


def test_transient_errors_retry_until_max_attempts_then_give_up() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert isinstance(policy.decide(ErrorKind.TRANSIENT, 1, None, 0.5), Retry)
    assert isinstance(policy.decide(ErrorKind.TRANSIENT, 2, None, 0.5), Retry)
    assert policy.decide(ErrorKind.TRANSIENT, 3, None, 0.5) == GiveUp("retries_exhausted")


def test_default_policy_allows_eight_attempts() -> None:
    policy = RetryPolicy()
    assert isinstance(policy.decide(ErrorKind.TRANSIENT, 7, None, 0.5), Retry)
    assert policy.decide(ErrorKind.TRANSIENT, 8, None, 0.5) == GiveUp("retries_exhausted")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [(ErrorKind.ROW, "row"), (ErrorKind.SYSTEMIC, "systemic")],
)
def test_row_and_systemic_errors_give_up_at_once(kind: ErrorKind, reason: str) -> None:
    decision = RetryPolicy().decide(kind, 1, 5.0, 0.5)
    assert decision == GiveUp(reason)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_s": -1.0}, {"base_s": 5.0, "cap_s": 1.0}]
)
def test_policy_refuses_nonsense_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"max_attempts|backoff"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
