"""Fault decisions of the emulator with a seeded random generator."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from bulkupdate.emulator.faults import Fault, FaultConfig, FaultInjector


def test_fault_frequencies_follow_their_probabilities() -> None:
    config = FaultConfig(
        internal_error_probability=0.1,
        drop_probability=0.05,
        drop_after_apply_probability=0.05,
        cut_short_probability=0.05,
    )
    injector = FaultInjector(config, random.Random(7))
    seen = Counter(injector.choose() for _ in range(20_000))
    assert seen[Fault.INTERNAL_ERROR] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert seen[Fault.DROP_BEFORE_APPLY] / 20_000 == pytest.approx(0.05, abs=0.01)
    assert seen[Fault.DROP_AFTER_APPLY] / 20_000 == pytest.approx(0.05, abs=0.01)
    assert seen[Fault.CUT_SHORT] / 20_000 == pytest.approx(0.05, abs=0.01)
    assert seen[Fault.NONE] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_only_the_first_fault_calls_meet_faults() -> None:
    config = FaultConfig(cut_short_probability=1.0, fault_calls=3)
    injector = FaultInjector(config, random.Random(7))
    chosen = [injector.choose() for _ in range(5)]
    assert chosen == [Fault.CUT_SHORT] * 3 + [Fault.NONE] * 2


def test_latency_follows_the_configured_median_and_p99() -> None:
    injector = FaultInjector(
        FaultConfig(latency_median_ms=20, latency_p99_ms=100), random.Random(3)
    )
    samples_ms = sorted(injector.delay_s() * 1000 for _ in range(20_000))
    assert statistics.median(samples_ms) == pytest.approx(20, rel=0.05)
    assert samples_ms[int(0.99 * len(samples_ms))] == pytest.approx(100, rel=0.1)


def test_slow_responses_add_their_delay() -> None:
    injector = FaultInjector(FaultConfig(slow_probability=1.0, slow_s=3.0), random.Random(1))
    assert injector.delay_s() == 3.0


def test_no_faults_by_default() -> None:
    injector = FaultInjector(FaultConfig(), random.Random(1))
    assert {injector.choose() for _ in range(1000)} == {Fault.NONE}
    assert injector.delay_s() == 0.0


@pytest.mark.parametrize(
    "options",
    [
        {"internal_error_probability": 1.5},
        {"internal_error_probability": 0.6, "drop_probability": 0.6},
        {"latency_median_ms": 50, "latency_p99_ms": 10},
        {"internal_error_probability": 0.6, "cut_short_probability": 0.6},
        {"error_code": "ThrottledException", "error_status": 200},
        {"error_code": ""},
        {"fault_calls": -1},
    ],
)
def test_impossible_fault_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"."):
        FaultConfig(**options)  # type: ignore[arg-type]


def test_per_case_faults_follow_their_probabilities() -> None:
    config = FaultConfig(
        case_throttle_probability=0.2,
        case_conflict_probability=0.1,
        case_internal_error_probability=0.1,
    )
    injector = FaultInjector(config, random.Random(5))
    seen = Counter(injector.case_fault(f"c{i}") for i in range(20_000))
    assert seen["THROTTLED"] / 20_000 == pytest.approx(0.2, abs=0.01)
    assert seen["CONFLICT"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert seen["INTERNAL_ERROR"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert seen[None] / 20_000 == pytest.approx(0.6, abs=0.015)


def test_per_case_faults_meet_only_the_chosen_cases_in_the_first_fault_calls() -> None:
    config = FaultConfig(
        case_throttle_probability=1.0, fault_case_ids=frozenset({"c2"}), fault_calls=1
    )
    injector = FaultInjector(config, random.Random(5))
    injector.choose()
    first_call = [injector.case_fault(c) for c in ("c1", "c2", "c3")]
    injector.choose()
    second_call = [injector.case_fault(c) for c in ("c1", "c2", "c3")]
    assert first_call == [None, "THROTTLED", None]
    assert second_call == [None, None, None]


def test_faults_apply_to_both_writes_by_default() -> None:
    injector = FaultInjector(FaultConfig())
    assert injector.affects("UpdateCase")
    assert injector.affects("BatchUpdateCase")
    assert not injector.affects("GetCase")


@pytest.mark.parametrize(
    "options",
    [
        {"case_throttle_probability": 1.5},
        {"case_conflict_probability": 0.6, "case_internal_error_probability": 0.6},
    ],
)
def test_bad_per_case_fault_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="probabilit"):
        FaultConfig(**options)
