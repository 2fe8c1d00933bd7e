"""Counters and latency percentiles of one run, and the summary they make.

Pure: no I/O. Latencies are kept as a fixed-size uniform sample so memory stays flat.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

LATENCY_SAMPLE_SIZE = 10_000
# Upper bounds of the latency histogram (seconds), Prometheus-style; the last bucket is +Inf.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The achieved rate is measured only over accepts at least this far apart: two rows accepted a
# fraction of a millisecond apart (a burst) say nothing of the pace a job keeps.
RATE_MIN_SPAN_S = 1.0


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass(slots=True)
class RunStats:
    """What this run did. `read` counts records read this run; skipped ones were resolved before."""

    read: int = 0
    skipped: int = 0  # resolved by an earlier run
    other_shards: int = 0  # rows of cases another shard applies
    applied: int = 0
    failed: int = 0  # permanently, this run (locally rejected + service rejected + exhausted)
    rejected_locally: int = 0  # failed before any call (parse or coercion)
    # Nothing to send (every cell blank, or --before-images found the case holding the row's
    # values): recorded done without an UpdateCase call.
    unchanged: int = 0
    calls: int = 0  # UpdateCase attempts
    reads: int = 0  # GetCase calls before writes (--before-images)
    read_throttles: int = 0  # of those, throttled
    retried: int = 0  # attempts after the first, for any reason
    throttles: int = 0
    # BatchUpdateCase (--batch auto): calls (re-sent groups and retries included), the cases
    # they listed, whole calls throttled, and per-case answers that were not "applied".
    batch_calls: int = 0
    batch_cases: int = 0
    batch_throttles: int = 0
    batch_cases_failed: int = 0  # CASE_NOT_FOUND, VALIDATION_ERROR, ... (or attempts spent)
    case_throttles: int = 0  # THROTTLED for one case: sent again, no attempt used
    case_retries: int = 0  # CONFLICT, INTERNAL_ERROR for one case: sent again after a backoff
    groups_split: int = 0  # refused as a whole: split to find the row that made it refuse
    groups_replayed: int = 0  # recorded by a killed run and sent again with the same token
    first_accept_s: float | None = None
    last_accept_s: float | None = None
    _latencies_s: list[float] = field(default_factory=list)
    _seen: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0
    _random: random.Random = field(default_factory=lambda: random.Random(0))

    def record_latency(self, latency_s: float) -> None:
        """Histogram counts, and reservoir sampling: every call has the same chance to be in
        the sample the percentiles come from."""
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        self.latency_sum_s += latency_s
        self._seen += 1
        if len(self._latencies_s) < LATENCY_SAMPLE_SIZE:
            self._latencies_s.append(latency_s)
            return
        slot = self._random.randrange(self._seen)
        if slot < LATENCY_SAMPLE_SIZE:
            self._latencies_s[slot] = latency_s

    def record_accept(self, now_s: float) -> None:
        self.applied += 1
        if self.first_accept_s is None:
            self.first_accept_s = now_s
        self.last_accept_s = now_s

    def achieved_rate_per_s(self) -> float | None:
        """Accepted calls per second from the first accept to the last (start-up, the last
        answers and the wrap-up left out); None when they span less than RATE_MIN_SPAN_S."""
        if self.first_accept_s is None or self.last_accept_s is None or self.applied < 2:
            return None
        span_s = self.last_accept_s - self.first_accept_s
        return (self.applied - 1) / span_s if span_s >= RATE_MIN_SPAN_S else None

    def counters(self) -> dict[str, int]:
        return {
            "read": self.read,
            "skipped": self.skipped,
            "other_shards": self.other_shards,
            "applied": self.applied,
            "failed": self.failed,
            "rejected_locally": self.rejected_locally,
            "unchanged": self.unchanged,
            "calls": self.calls,
            "reads": self.reads,
            "read_throttles": self.read_throttles,
            "retried": self.retried,
            "throttles": self.throttles,
            "batch_calls": self.batch_calls,
            "batch_cases": self.batch_cases,
            "batch_throttles": self.batch_throttles,
            "batch_cases_failed": self.batch_cases_failed,
            "case_throttles": self.case_throttles,
            "case_retries": self.case_retries,
            "groups_split": self.groups_split,
            "groups_replayed": self.groups_replayed,
        }

    def cases_per_batch(self) -> float | None:
        return round(self.batch_cases / self.batch_calls, 2) if self.batch_calls else None

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        ordered = sorted(self._latencies_s)
        p50, p95 = percentile(ordered, 0.50), percentile(ordered, 0.95)
        rate = self.achieved_rate_per_s()
        return {
            **self.counters(),
            "cases_per_batch": self.cases_per_batch(),
            "achieved_rate_per_s": round(rate, 3) if rate is not None else None,
            "elapsed_s": round(elapsed_s, 3),
            "latency_p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
            "latency_p95_ms": round(p95 * 1000, 2) if p95 is not None else None,
        }
