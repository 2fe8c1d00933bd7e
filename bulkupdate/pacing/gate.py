"""The rate gate every worker passes before an UpdateCase call: one shared token bucket whose
rate the adaptive controller moves on accepts and throttles.

Sleeps only through the injected Clock; the decisions themselves live in `adaptive` and `bucket`.
"""

from __future__ import annotations

from collections.abc import Callable

from bulkupdate.clock import Clock
from bulkupdate.pacing.adaptive import AdaptiveRate
from bulkupdate.pacing.bucket import TokenBucket

# Waiters re-check their slot this often, so a rate cut reaches slots already handed out
# instead of letting them go out on a schedule the service just refused.
SLOT_CHECK_S = 0.25
# Rate increases smaller than this are not worth revoking every waiting slot for.
MIN_INCREASE = 0.01


class RateGate:
    __slots__ = ("_bucket", "_clock", "_control", "_throttled")

    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate_per_s, burst)
        self._control = AdaptiveRate(rate_per_s)
        self._throttled = False

    @property
    def rate_per_s(self) -> float:
        return self._bucket.rate_per_s

    async def pass_(self, stopped: Callable[[], bool] = lambda: False) -> float | None:
        """Wait for this caller's slot; return the time it was granted (the send time), or None
        when `stopped()` turns true while waiting (checked at least every SLOT_CHECK_S)."""
        clock, bucket = self._clock, self._bucket
        while True:
            slot = bucket.reserve_slot(clock.now_s())
            while not slot.revoked:
                delay_s = slot.delay_s(clock.now_s())
                if delay_s <= 0:
                    return clock.now_s()
                await clock.sleep(min(delay_s, SLOT_CHECK_S))
                if stopped():
                    return None  # its token stays spent: the run is ending
            # Revoked by a rate change: queue again at the new rate.

    def accepted(self, sent_s: float) -> None:
        now_s = self._clock.now_s()
        self._control.on_accept(now_s, sent_s=sent_s)
        self._follow(now_s)

    def throttled(self, sent_s: float) -> None:
        now_s = self._clock.now_s()
        if not self._throttled:
            # The service's bucket is the only burst that counts once it has refused us: paired
            # sends into its empty bucket would only buy throttles.
            self._throttled = True
            self._bucket.narrow_burst(1)
        self._control.on_throttle(now_s, sent_s=sent_s)
        self._follow(now_s)

    def _follow(self, now_s: float) -> None:
        target_per_s = self._control.rate_per_s
        current_per_s = self._bucket.rate_per_s
        if target_per_s < current_per_s or target_per_s >= current_per_s * (1 + MIN_INCREASE):
            self._bucket.set_rate(target_per_s, now_s)
