"""Pacing decisions: the controller that sets the shared bucket's rate (`bulkupdate.pacing.bucket`).

Pure: stdlib only. No I/O, no sleeping, no asyncio. Callers pass the time in and sleep themselves.

`AdaptiveRate` settles just under the server's real quota, starting from a configured ceiling that
may be several times too high. The server is a token bucket (quota q, burst b); what it tells us:

* Every throttle means its bucket is empty at that moment. Between two empty moments it accepts
  exactly q x elapsed calls, whatever we send, unless the bucket overflowed in between (we were
  slow for long). So the accept rate since the last throttle is a quota *measurement*:
  (accepts - 1) / (last - first), trusted from 4 accepts over 2 s (latency jitter of ~25 ms
  is then ~1%) and over at most the last 30 s.
* A throttle with no trusted measurement only says "slower than this".

Epochs. Answers are grouped by when their call was sent: calls sent before the last cut were
paid for by it, so a burst of throttles already in flight lowers the rate once (one cut per
round trip, as TCP does). Within an epoch a cut waits for 8 answers or 0.1 s, and a throttled
share of 10% or less within 2 s of a cut is ignored: right after a cut the server bucket is
empty, so arrival jitter alone gets a few calls refused even below the quota.

Cut. Measured: rate = estimate x 0.97. The 3% margin covers the estimate's error and lets the
server bucket refill, so its burst absorbs jitter again. Unmeasured: rate x max(0.7, share of
the epoch's calls accepted): 0.7 (CUBIC's beta) brings a 4x overload under the quota in four
round trips; the share makes a small overload cost a small cut. The throttled rate becomes an
upper bound for the quota until a measurement replaces it.

Recovery, on every accept. Below 0.97 x the believed quota: double every 4 s, back under the
quota ~2 s after a 0.7 cut. Above it: probe convexly, growth per second = 0.05% x 2^(age /
30 s), age since the last cut. Near a good estimate this crawls, so the under-quota half of a
cycle refills the server bucket about as much as the over-quota half drains it: average ~ q,
one throttle per ~50 s. Left alone it speeds up (2x in ~2.5 min) to follow a raised quota. With
only a bound or a coarse estimate (< 20 accepts) the doubling is every 4 s instead: that belief
may be jitter, so find the real quota soon. The rate never leaves [floor, ceiling].

Floor. 5% of the ceiling, at most 0.1/s (the default 2/s gives 0.1): low enough to yield to
agents sharing the quota, high enough that a throttled run still moves. A ceiling is any positive
rate (a shard of 2/s over 32 processes gets 0.0625/s), so the floor follows it down.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

from bulkupdate.pacing.bucket import check_rate, is_rate

__all__ = ["AdaptiveRate", "RateTuning", "default_floor_per_s"]

MAX_DOUBLINGS = 10.0  # probing growth stops accelerating at 2^10 x its start (~0.5/s)
FLOOR_SHARE = 0.05  # the default floor: this share of the ceiling ...
MAX_FLOOR_PER_S = 0.1  # ... but never above this


def default_floor_per_s(ceiling_per_s: float) -> float:
    """The lowest rate throttles can push the controller to, for a `ceiling_per_s` of any size."""
    floor_per_s = min(MAX_FLOOR_PER_S, ceiling_per_s * FLOOR_SHARE)
    # A ceiling so small that 5% of it has no float interval between calls stays put instead.
    return floor_per_s if is_rate(floor_per_s) else ceiling_per_s


@dataclass(frozen=True, slots=True)
class RateTuning:
    """The controller's constants; the module docstring says why each has its value."""

    margin: float = 0.03
    beta: float = 0.7
    fast_doubling_s: float = 4.0
    probe_gain_per_s: float = 0.0005
    probe_doubling_s: float = 30.0
    unmeasured_gain_per_s: float = 0.0005
    unmeasured_doubling_s: float = 4.0
    window_s: float = 30.0
    min_samples: int = 4
    min_span_s: float = 2.0
    evidence_answers: int = 8
    evidence_s: float = 0.1
    jitter_share: float = 0.1
    settle_s: float = 2.0
    assumed_rtt_s: float = 0.25
    confident_samples: int = 20


class AdaptiveRate:
    """Sets the send rate from what the server answers: accepted calls and throttled ones."""

    __slots__ = (
        "_accepts",
        "_ceiling_per_s",
        "_epoch_accepts",
        "_epoch_start_s",
        "_epoch_throttles",
        "_estimate_samples",
        "_floor_per_s",
        "_last_cut_s",
        "_last_update_s",
        "_mark_s",
        "_measured",
        "_probe_start_s",
        "_quota_per_s",
        "_rate_per_s",
        "_tuning",
    )

    def __init__(
        self,
        ceiling_per_s: float,
        *,
        floor_per_s: float | None = None,
        initial_per_s: float | None = None,
        tuning: RateTuning | None = None,
    ) -> None:
        check_rate(ceiling_per_s)
        if floor_per_s is None:
            floor_per_s = default_floor_per_s(ceiling_per_s)
        check_rate(floor_per_s)
        if floor_per_s > ceiling_per_s:
            raise ValueError(f"floor_per_s {floor_per_s} exceeds ceiling_per_s {ceiling_per_s}")
        self._ceiling_per_s = ceiling_per_s
        self._floor_per_s = floor_per_s
        self._tuning = RateTuning() if tuning is None else tuning
        self._rate_per_s = self._clamp(ceiling_per_s if initial_per_s is None else initial_per_s)
        self._accepts: deque[float] = deque()  # answer times of accepted calls, last window_s
        self._quota_per_s: float | None = None  # what we believe the server's quota is
        self._measured = False  # True when _quota_per_s came from the accept rate
        self._mark_s: float | None = None  # a moment the server bucket was empty (a throttle)
        self._last_cut_s = -math.inf
        self._probe_start_s = 0.0  # probing speeds up with time since this: first answer, last cut
        self._last_update_s: float | None = None
        # The current epoch: answers to calls sent at or after _epoch_start_s.
        self._epoch_start_s = -math.inf
        self._epoch_accepts = 0
        self._epoch_throttles = 0
        self._estimate_samples = 0

    @property
    def rate_per_s(self) -> float:
        return self._rate_per_s

    @property
    def ceiling_per_s(self) -> float:
        return self._ceiling_per_s

    @property
    def floor_per_s(self) -> float:
        return self._floor_per_s

    @property
    def quota_estimate_per_s(self) -> float | None:
        """The server quota the controller believes in, or None before the first throttle."""
        return self._quota_per_s

    def on_accept(self, now_s: float, *, sent_s: float | None = None) -> bool:
        """Record an accepted call (answered at `now_s`, sent at `sent_s`); True if the rate fell.

        Pass `sent_s` when known: it says which epoch the answer belongs to.
        """
        accepts = self._accepts
        accepts.append(now_s)
        horizon_s = now_s - self._tuning.window_s
        while accepts[0] < horizon_s:
            accepts.popleft()
        self._recover(now_s)
        if self._sent_s(now_s, sent_s) < self._epoch_start_s:
            return False
        self._epoch_accepts += 1
        return self._epoch_throttles > 0 and self._maybe_cut(now_s)

    def on_throttle(self, now_s: float, *, sent_s: float | None = None) -> bool:
        """Record a throttled call; return True when the rate fell.

        A call sent before the last cut was already paid for by that cut, so one burst of
        throttles in flight lowers the rate once, not once per call.
        """
        sent = self._sent_s(now_s, sent_s)
        if sent < self._epoch_start_s:
            return False
        if self._mark_s is None:
            # First throttle ever: the server bucket is empty from here on, and the answers in
            # flight since the start include its initial burst. Judge the calls sent from now.
            self._mark_s = now_s
            self._start_epoch(sent)
        self._epoch_throttles += 1
        return self._maybe_cut(now_s)

    def _maybe_cut(self, now_s: float) -> bool:
        tuning = self._tuning
        accepted = self._epoch_accepts
        answered = accepted + self._epoch_throttles
        age_s = now_s - self._last_cut_s
        if answered < tuning.evidence_answers and age_s < tuning.evidence_s:
            return False  # a single early answer is noise at high rates; wait for a few more
        throttled_share = self._epoch_throttles / answered
        if throttled_share <= tuning.jitter_share and age_s < tuning.settle_s:
            # Right after a cut the server bucket is empty, so arrival jitter alone gets a few
            # calls throttled even below the quota. Overload shows as a larger share.
            return False
        rate = self._rate_per_s
        estimate = self._estimate(now_s)
        if estimate is not None and estimate * (1.0 - tuning.margin) < rate:
            # Measured cut: while saturated the server let `estimate` calls/s through.
            self._quota_per_s = estimate
            self._measured = self._estimate_samples >= tuning.confident_samples
            new_rate = estimate * (1.0 - tuning.margin)
        else:
            # No usable measurement: cut multiplicatively, less when most calls still got in,
            # and remember that `rate` was too fast.
            quota = self._quota_per_s
            self._quota_per_s = rate if quota is None else min(quota, rate)
            self._measured = False
            kept = min(1.0 - tuning.margin, accepted / answered)
            new_rate = rate * max(tuning.beta, kept)
        self._rate_per_s = self._clamp(new_rate)
        self._last_cut_s = now_s
        self._probe_start_s = now_s
        self._last_update_s = now_s
        self._start_epoch(now_s)
        return True

    def _start_epoch(self, start_s: float) -> None:
        self._epoch_start_s = start_s
        self._epoch_accepts = 0
        self._epoch_throttles = 0

    def _sent_s(self, now_s: float, sent_s: float | None) -> float:
        return now_s - self._tuning.assumed_rtt_s if sent_s is None else sent_s

    def _estimate(self, now_s: float) -> float | None:
        """Accept rate since the mark, when enough of it was seen to trust.

        Between two moments the server bucket was empty (two throttles), accepted calls equal
        quota x time, whatever we sent, unless the bucket overflowed in between.
        """
        tuning = self._tuning
        if self._mark_s is None:
            return None
        start_s = max(self._mark_s, now_s - tuning.window_s)
        accepts = self._accepts
        first = bisect.bisect_right(accepts, start_s)
        count = len(accepts) - first
        if count < tuning.min_samples:
            return None
        span_s = accepts[-1] - accepts[first]
        if span_s < tuning.min_span_s:
            return None
        self._mark_s = now_s
        self._estimate_samples = count
        return (count - 1) / span_s

    def _recover(self, now_s: float) -> None:
        last_s = self._last_update_s
        self._last_update_s = now_s
        if last_s is None:
            self._probe_start_s = now_s
            return
        if now_s <= last_s:
            return
        dt_s = now_s - last_s
        tuning = self._tuning
        rate = self._rate_per_s
        quota = self._quota_per_s
        target = None if quota is None else quota * (1.0 - tuning.margin)
        if target is not None and rate < target:
            rate = min(target, rate * 2.0 ** (dt_s / tuning.fast_doubling_s))
        else:
            if self._measured:
                gain, doubling_s = tuning.probe_gain_per_s, tuning.probe_doubling_s
            else:
                gain, doubling_s = tuning.unmeasured_gain_per_s, tuning.unmeasured_doubling_s
            age_s = min(now_s - self._probe_start_s, MAX_DOUBLINGS * doubling_s)
            rate *= math.exp(gain * 2.0 ** (age_s / doubling_s) * dt_s)
        self._rate_per_s = self._clamp(rate)

    def _clamp(self, rate_per_s: float) -> float:
        return min(self._ceiling_per_s, max(self._floor_per_s, rate_per_s))
