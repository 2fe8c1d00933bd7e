"""Measuring UpdateCase's quota from the calls the service accepted between two it refused.

The service is a token bucket (quota q, burst b). A throttle means its bucket was empty when that
call arrived, about when it was sent. Between two such moments it admits q x elapsed calls,
give or take the fraction of a token left at each end, unless the bucket overflowed in between
(we were slow for long). So the accepts *sent* between two throttled calls' send times measure
the quota. Counting by send time leaves out the initial burst's calls still in flight at the
first throttle (admitted before it; counted by answer time they made a start 4x too fast
overestimate by ~6% at 50/s); the accepts sent within one service time before the end are still
in flight, so the span counted ends that much earlier. Whole calls miss on average half a
token, the fraction left at the end: half a call is added. Trusted from 4 accepts over 2 s,
over at most the last 30 s; below 20 accepts the start is kept, so the next measurement counts
more. Before that, (accepts + 1) / span, 2% more for timing, bounds the quota from 0.5 s on
(a service that accepted nothing bounds nothing: it may be refusing for other reasons).

Pure: stdlib only. No I/O, no sleeping; callers pass the time in.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque

from bulkupdate.pacing.tuning import RateTuning

__all__ = ["QuotaMeter"]


class QuotaMeter:
    """Accepted calls (answered, sent) over the last window, and the moments to count from."""

    __slots__ = ("_accepts", "_end_s", "_mark_s", "_tuning", "latency_s", "samples")

    def __init__(self, tuning: RateTuning) -> None:
        self._tuning = tuning
        self._accepts: deque[tuple[float, float]] = deque()
        self._mark_s: float | None = None  # send time of the throttled call counting starts at
        self._end_s = -math.inf  # send time of the latest throttled call
        self.samples = 0  # accepts the quota was last measured from
        self.latency_s = 0.0  # accepted calls' send-to-answer time, a running average

    @property
    def marked(self) -> bool:
        """Whether any call was throttled yet."""
        return self._mark_s is not None

    def accepted(self, now_s: float, sent_s: float) -> None:
        self.latency_s += (now_s - sent_s - self.latency_s) * self._tuning.latency_weight
        accepts = self._accepts
        accepts.append((now_s, sent_s))
        horizon_s = now_s - self._tuning.window_s
        while accepts[0][0] < horizon_s:
            accepts.popleft()

    def throttled(self, sent_s: float) -> None:
        self._end_s = max(self._end_s, sent_s)
        if self._mark_s is None:
            self._mark_s = sent_s

    def measure(self, now_s: float) -> tuple[float | None, float]:
        """The quota measured from the accepts sent since the mark (None when too few), and an
        upper bound on it (infinite when nothing bounds it yet)."""
        tuning = self._tuning
        mark_s, end_s = self._mark_s, self._end_s
        if mark_s is None or end_s <= mark_s:
            return None, math.inf
        accepts = self._accepts
        mark_s = max(mark_s, now_s - tuning.window_s)  # accepts before that are gone
        count, latency_s = 0, 0.0
        first = bisect.bisect_right(accepts, (mark_s, math.inf))  # answered after the mark
        for answered_s, sent_s in itertools.islice(accepts, first, None):
            if mark_s < sent_s <= end_s:
                count += 1
                latency_s += answered_s - sent_s
        # Accepts sent within one latency before the end may still be on their way.
        missing_s = max(0.0, latency_s / count - (now_s - end_s)) if count else 0.0
        span_s = end_s - mark_s - missing_s
        if span_s < tuning.bound_span_s or not count:
            return None, math.inf
        bound = (count + 1) / span_s * (1.0 + tuning.bound_pad)
        if count < tuning.min_samples or span_s < tuning.min_span_s:
            return None, bound
        self.samples = count
        if count >= tuning.confident_samples:
            self._mark_s = end_s  # a coarse measurement keeps its mark: the next counts more
        return (count + tuning.count_lean) / span_s, bound
