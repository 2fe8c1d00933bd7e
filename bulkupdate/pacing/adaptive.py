"""Pacing decisions: the controller that sets the shared bucket's rate (`bulkupdate.pacing.bucket`).

Pure: stdlib only. No I/O, no sleeping, no asyncio. Callers pass the time in and sleep themselves.

`AdaptiveRate` keeps the job under its share of UpdateCase's quota: 1 - headroom of it, the
quota being the ceiling (--rate) until throttles show less. The service is a token bucket shared
with the contact centre's agents: a throttle means it was empty when that call arrived, and the
calls it accepted between two throttled ones measure the quota, or before that bound it
(`bulkupdate.pacing.meter`).

Epochs. Answers are grouped by when their call was sent: calls sent before the last cut were
paid for by it, so a burst of throttles already in flight lowers the rate once (one cut per
round trip, as TCP does). Within an epoch a cut waits for 8 answers or 0.1 s, and for one
accepted call's latency: its throttles answer at once, its accepts a service time later, so an
earlier look sees only refusals. Within 2 s of a cut, a throttled share of 10% or less (30% under
a quota measured from accepts, where the bucket refills only by the margin) or a single throttle
among 8 or more answers is ignored: right after a cut the server bucket is empty, so arrival
jitter alone gets a few calls refused even below the quota.

Cut. The job sends at a share of the quota it believes: 1 - headroom, at most 99%. The 1%
margin covers timing jitter; a larger one (3% until this version) only leaves tokens in the
server bucket that a short run never uses: refilled at 3% of the quota while the probe took
~40 s to climb back, a 32 s benchmark ended 1-2% short. Measured: rate = share x estimate.
Unmeasured: rate x max(0.7, share of the epoch's calls accepted), never above share x the bound:
0.7 (CUBIC's beta) brings a 4x overload under the quota in four round trips when nothing bounds
it, the bound in one or two. The refused rate (or the bound) becomes the quota until a
measurement replaces it, and the rate doubles every 4 s back up to its share of it.

Probing. The believed quota grows on every accept: 0.05% a second, the growth doubling every
30 s since the last cut, so near a good estimate it crawls and the under-quota half of a cycle
refills the server bucket about as much as the over-quota half drains it (one throttle per
~50 s); left alone it doubles in ~2.5 min, to follow a raised quota. A bound or a coarse
estimate (< 20 accepts) doubles its growth every 4 s instead: that belief may be jitter. Below
10 calls/s growth past a quota measured from accepts slows in proportion: each probe costs a
throttle, so it is spread over as many calls as at 10/s (at 2/s, 2% throttled is one call in
fifty). A bound after a deep cut may be far under the quota: it grows back at full speed.

Headroom. Throttled while the service took at least the job's share of what it sent, the quota
is not below the job's rate: others (agents) use more than the headroom. (With headroom a cut
waits for a second refusal in its epoch: one may be the job's burst meeting an agent's save.)
The job yields: its
rate x max(0.7, share accepted), as a factor that grows back as probing does, to its share in
one to two minutes once they are done; the quota stands. When the service took less, --rate is
above the quota: it is measured or bounded as above, and the job keeps the headroom of it. That
measured quota grows back very slowly (0.005% a second, doubling every 60 s: ~6 min to 1.25x),
to notice a raised quota or a measurement taken while agents were busy; throttled above it, the
job drops straight back to it.

Floor. 5% of the share, at most 0.1/s (the default 2/s less 20% gives 0.08): low enough to yield
to agents sharing the quota, high enough that a throttled run still moves. A ceiling is any
positive rate (a shard of 2/s over 32 processes gets 0.0625/s), so the floor follows it down.
"""

from __future__ import annotations

import math
from enum import StrEnum

from bulkupdate.pacing.bucket import check_rate, is_rate
from bulkupdate.pacing.meter import QuotaMeter
from bulkupdate.pacing.tuning import RateTuning

__all__ = ["AdaptiveRate", "RateTuning", "Regime", "default_floor_per_s"]

MAX_DOUBLINGS = 10.0  # probing growth stops accelerating at 2^10 x its start
FLOOR_SHARE = 0.05  # the default floor: this part of the job's share ...
MAX_FLOOR_PER_S = 0.1  # ... but never above this


def default_floor_per_s(share_per_s: float) -> float:
    """The lowest rate throttles can push the controller to, for a `share_per_s` of any size."""
    floor_per_s = min(MAX_FLOOR_PER_S, share_per_s * FLOOR_SHARE)
    # A share so small that 5% of it has no float interval between calls stays put instead.
    return floor_per_s if is_rate(floor_per_s) else share_per_s


class Regime(StrEnum):
    """What the rate is set from."""

    SHARE = "share"  # the ceiling less the headroom: nothing throttled, or grown back to it
    FINDING = "finding"  # throttled above the quota, not measured yet: under the refused rate
    MEASURED = "measured"  # the share of the quota measured from accepted calls
    YIELDING = "yielding"  # throttled within its share: others use more than the headroom


class AdaptiveRate:
    """Sets the send rate from what the server answers: accepted calls and throttled ones."""

    __slots__ = (
        "_cap_per_s",
        "_ceiling_per_s",
        "_counted",
        "_epoch_accepts",
        "_epoch_start_s",
        "_epoch_throttles",
        "_floor_per_s",
        "_found_per_s",
        "_headroom",
        "_last_cut_s",
        "_last_update_s",
        "_meter",
        "_probe_start_s",
        "_quota_per_s",
        "_rate_per_s",
        "_tuning",
        "_yield",
    )

    def __init__(
        self,
        ceiling_per_s: float,
        *,
        headroom: float = 0.0,
        floor_per_s: float | None = None,
        initial_per_s: float | None = None,
        tuning: RateTuning | None = None,
    ) -> None:
        check_rate(ceiling_per_s)
        if not 0.0 <= headroom < 1.0:
            raise ValueError(f"headroom must be at least 0 and below 1, got {headroom}")
        share_per_s = ceiling_per_s * (1.0 - headroom)
        check_rate(share_per_s)
        if floor_per_s is None:
            floor_per_s = default_floor_per_s(share_per_s)
        check_rate(floor_per_s)
        if floor_per_s > share_per_s:
            raise ValueError(f"floor_per_s {floor_per_s} exceeds the share {share_per_s}")
        self._ceiling_per_s = ceiling_per_s
        self._headroom = headroom
        self._floor_per_s = floor_per_s
        self._cap_per_s = share_per_s
        self._tuning = RateTuning() if tuning is None else tuning
        self._rate_per_s = self._clamp(self._cap_per_s if initial_per_s is None else initial_per_s)
        # The quota believed in (None: the ceiling), measured or bounded by a refused rate and
        # grown since; as it was found; and how many accepts measured it (0: a bound).
        self._quota_per_s: float | None = None
        self._found_per_s: float | None = None
        self._counted = 0
        self._yield = 1.0  # below 1 while others use more than the headroom
        self._meter = QuotaMeter(self._tuning)
        # The current epoch: answers to calls sent at or after _epoch_start_s.
        self._epoch_start_s = -math.inf
        self._epoch_accepts = 0
        self._epoch_throttles = 0
        self._last_cut_s = -math.inf
        self._probe_start_s = 0.0  # probing speeds up with time since this: first answer, cut
        self._last_update_s: float | None = None

    @property
    def rate_per_s(self) -> float:
        return self._rate_per_s

    @property
    def ceiling_per_s(self) -> float:
        return self._ceiling_per_s

    @property
    def share_per_s(self) -> float:
        """The most this job sends: the ceiling less the headroom."""
        return self._cap_per_s

    @property
    def headroom(self) -> float:
        return self._headroom

    @property
    def floor_per_s(self) -> float:
        return self._floor_per_s

    @property
    def quota_estimate_per_s(self) -> float | None:
        """The server quota the controller believes in, or None before the first throttle."""
        return self._quota_per_s

    @property
    def regime(self) -> Regime:
        if self._yield < 1.0:
            return Regime.YIELDING
        if self._quota_per_s is None:
            return Regime.SHARE
        return Regime.MEASURED if self._measured else Regime.FINDING

    def on_accept(self, now_s: float, *, sent_s: float | None = None) -> bool:
        """Record an accepted call (answered at `now_s`, sent at `sent_s`); True if the rate fell.

        Pass `sent_s` when known: it says which epoch the answer belongs to and when the call
        reached the server.
        """
        sent = self._sent_s(now_s, sent_s)
        self._meter.accepted(now_s, sent)
        self._recover(now_s)
        if sent < self._epoch_start_s:
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
        if not self._meter.marked:
            # First throttle ever: the server bucket is empty from here on, and the answers in
            # flight since the start include its initial burst. Judge the calls sent from now.
            self._start_epoch(sent)
        self._meter.throttled(sent)
        self._epoch_throttles += 1
        return self._maybe_cut(now_s)

    def _maybe_cut(self, now_s: float) -> bool:
        tuning = self._tuning
        throttles = self._epoch_throttles
        answered = self._epoch_accepts + throttles
        age_s = now_s - self._last_cut_s
        if answered < tuning.evidence_answers and age_s < tuning.evidence_s:
            return False  # a single early answer is noise at high rates; wait for a few more
        if age_s < self._meter.latency_s:
            return False  # its throttles come back first: its accepts take a service time
        # Below a measured quota the bucket refills only by the margin: more jitter to ride out.
        tolerated = tuning.measured_jitter_share if self._counted else tuning.jitter_share
        jitter = throttles / answered <= tolerated or (
            throttles == 1 and answered >= tuning.evidence_answers
        )
        if jitter and age_s < tuning.settle_s:
            # Right after a cut the server bucket is empty, so arrival jitter alone gets a few
            # calls throttled even below the quota. Overload shows as a larger share.
            return False
        if self._headroom > 0.0 and throttles < 2:
            return False  # one refusal may be our burst meeting an agent's save: wait for more
        rate = self._rate_per_s
        kept = max(tuning.beta, min(1.0 - tuning.margin, self._epoch_accepts / answered))
        estimate, bound = self._meter.measure(now_s)
        if estimate is not None and estimate * (1.0 - tuning.margin) >= rate:
            estimate = None  # the measurement says this rate fits: the throttles came from others
        got = bound if estimate is None else estimate  # what the service let through, at most
        if self._headroom > 0.0 and got >= (1.0 - self._headroom) * rate:
            self._give_way(rate * kept, estimate)
        elif estimate is not None:
            self._found(estimate, self._meter.samples)
            self._rate_per_s = self._clamp(estimate * self._share())
        else:
            # Cut multiplicatively, less when most calls still got in, never above what the
            # accepts allow; the refused rate bounds the quota.
            bound = min(rate, bound)
            believed = self._quota_per_s
            self._found(bound if believed is None else min(believed, bound), 0)
            self._rate_per_s = self._clamp(min(rate * kept, bound * self._share()))
        self._last_cut_s = now_s
        self._probe_start_s = now_s
        self._last_update_s = now_s
        self._start_epoch(now_s)
        return True

    def _give_way(self, kept_per_s: float, estimate: float | None) -> None:
        """Throttled although the service took the job's share of what it sent."""
        found, believed = self._found_per_s, self._quota_per_s
        if found is not None and believed is not None and believed > found:
            # Growing the quota back found it where it was (or higher, if just measured).
            self._found(found if estimate is None else max(found, estimate), self._counted)
            self._rate_per_s = self._clamp(self._base_per_s())
            return
        # Others use more than the headroom: yield; the quota stands.
        self._yield = max(self._floor_per_s, kept_per_s) / self._base_per_s()
        self._rate_per_s = self._clamp(self._yield * self._base_per_s())

    def _found(self, quota_per_s: float, counted: int) -> None:
        """Believe `quota_per_s`, measured from `counted` accepts (0: a bound)."""
        self._quota_per_s = self._found_per_s = quota_per_s
        self._counted = counted
        self._yield = 1.0

    @property
    def _measured(self) -> bool:
        return self._counted >= self._tuning.confident_samples

    def _share(self) -> float:
        """The part of the believed quota the job sends at."""
        return 1.0 - max(self._headroom, self._tuning.margin)

    def _base_per_s(self) -> float:
        """The rate before yielding: the share of the believed quota, or of the ceiling."""
        quota = self._quota_per_s
        return self._cap_per_s if quota is None else min(self._cap_per_s, quota * self._share())

    def _start_epoch(self, start_s: float) -> None:
        self._epoch_start_s = start_s
        self._epoch_accepts = 0
        self._epoch_throttles = 0

    def _sent_s(self, now_s: float, sent_s: float | None) -> float:
        return now_s - self._tuning.assumed_rtt_s if sent_s is None else sent_s

    def _recover(self, now_s: float) -> None:
        last_s = self._last_update_s
        self._last_update_s = now_s
        if last_s is None:
            self._probe_start_s = now_s
            return
        if now_s <= last_s:
            return
        dt_s = now_s - last_s
        age_s = now_s - self._probe_start_s
        tuning = self._tuning
        if self._yield < 1.0:
            growth = _growth(tuning.probe_gain_per_s, tuning.probe_doubling_s, age_s, dt_s)
            self._yield = min(1.0, self._yield * growth)
        elif self._quota_per_s is not None:
            self._probe(age_s, dt_s)
        target = self._yield * self._base_per_s()
        rate = self._rate_per_s
        if rate < target:  # back up to the share after a cut that went under it
            target = min(target, rate * 2.0 ** (dt_s / tuning.fast_doubling_s))
        self._rate_per_s = self._clamp(target)

    def _probe(self, age_s: float, dt_s: float) -> None:
        """Grow the believed quota, to find a raised one (or agents gone home)."""
        assert self._quota_per_s is not None
        tuning = self._tuning
        if self._headroom > 0.0:
            gain, doubling_s = tuning.quota_gain_per_s, tuning.quota_doubling_s
        elif self._measured:
            gain, doubling_s = tuning.probe_gain_per_s, tuning.probe_doubling_s
        else:
            gain, doubling_s = tuning.unmeasured_gain_per_s, tuning.unmeasured_doubling_s
        if self._counted:
            # Each probe past a quota measured from accepts costs a throttle: below
            # probe_calls_per_s, spread it over as many calls as at that rate. (A bound after
            # a deep cut may be far under the quota: no slowing there.)
            gain *= min(1.0, self._rate_per_s / tuning.probe_calls_per_s)
        quota = self._quota_per_s * _growth(gain, doubling_s, age_s, dt_s)
        if quota * self._share() >= self._cap_per_s:
            self._quota_per_s = self._found_per_s = None  # back to the ceiling's share
            self._counted = 0
        else:
            self._quota_per_s = quota

    def _clamp(self, rate_per_s: float) -> float:
        return min(self._cap_per_s, max(self._floor_per_s, rate_per_s))


def _growth(gain_per_s: float, doubling_s: float, age_s: float, dt_s: float) -> float:
    """The factor to grow by over `dt_s`: `gain_per_s` at first, the growth doubling every
    `doubling_s` of `age_s` (at most MAX_DOUBLINGS times)."""
    age_s = min(age_s, MAX_DOUBLINGS * doubling_s)
    return math.exp(gain_per_s * 2.0 ** (age_s / doubling_s) * dt_s)
