"""How a run's figures read: rates and durations rounded to what is worth reading, an achieved
rate only over a span that can measure one, and a summary line that says how it was measured
and how to resume."""

from __future__ import annotations

import pytest

from bulkupdate.report.figures import duration_text, rate_text
from bulkupdate.report.stats import RunStats
from bulkupdate.report.summary import summary_line


@pytest.mark.parametrize(
    ("rate_per_s", "text"),
    [
        (9.375, "9.4"),  # the adaptive rate after a throttle
        (2.0, "2"),
        (10.22, "10"),
        (1000.0, "1000"),
        (0.0625, "0.062"),  # --rate 2 over 32 shards
        (0.05, "0.05"),
    ],
)
def test_a_rate_reads_without_false_precision(rate_per_s: float, text: str) -> None:
    assert rate_text(rate_per_s) == text


@pytest.mark.parametrize(
    ("duration_s", "text"),
    [
        (0.0, "0 s"),
        (2.54, "2.5 s"),
        (17.037, "17 s"),
        (200.0, "3 min 20 s"),
        (3600.0, "1 h"),
        (83_333 / 2, "11 h 34 min"),  # 83,333 rows at the default 2/s
        (90_000.0, "1 d 1 h"),
    ],
)
def test_a_duration_reads_in_the_two_largest_units_that_fit(duration_s: float, text: str) -> None:
    assert duration_text(duration_s) == text


def test_two_rows_accepted_a_moment_apart_give_no_rate() -> None:
    stats = RunStats()
    stats.record_accept(100.0)
    stats.record_accept(100.00018)  # a burst: 5,500 rows/s, of nothing

    assert stats.achieved_rate_per_s() is None
    assert stats.summary(0.5)["achieved_rate_per_s"] is None


def test_the_summary_line_says_how_the_rate_was_measured() -> None:
    line = summary_line({"end": "finished", "applied": 175, "achieved_rate_per_s": 10.22})

    assert "10 rows/s (first to last accept)" in line


def test_the_summary_line_of_an_interrupted_run_says_how_to_resume() -> None:
    summary = {"end": "interrupted", "applied": 5, "resume": "run the same command again"}

    assert "  to resume: run the same command again" in summary_line(summary).splitlines()
