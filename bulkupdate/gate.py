"""The rate gate every worker passes before an UpdateCase call: one shared token bucket whose
rate the adaptive controller moves on accepts and throttles.

Sleeps only through the injected Clock; the decisions themselves live in `pacing`.
"""

from __future__ import annotations

from bulkupdate.clock import Clock
from bulkupdate.pacing import AdaptiveRate, TokenBucket


class RateGate:
    __slots__ = ("_bucket", "_clock", "_control")

    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate_per_s, burst)
        self._control = AdaptiveRate(rate_per_s)

    @property
    def rate_per_s(self) -> float:
        return self._bucket.rate_per_s

    @property
    def quota_estimate_per_s(self) -> float | None:
        return self._control.quota_estimate_per_s

    async def pass_(self) -> float:
        """Wait for this caller's slot; return the time it was granted (the send time)."""
        clock = self._clock
        delay_s = self._bucket.reserve(clock.now_s())
        if delay_s > 0:
            await clock.sleep(delay_s)
        return clock.now_s()

    def accepted(self, sent_s: float) -> None:
        now_s = self._clock.now_s()
        self._control.on_accept(now_s, sent_s=sent_s)
        self._follow(now_s)

    def throttled(self, sent_s: float) -> None:
        now_s = self._clock.now_s()
        self._control.on_throttle(now_s, sent_s=sent_s)
        self._follow(now_s)

    def _follow(self, now_s: float) -> None:
        rate_per_s = self._control.rate_per_s
        if rate_per_s != self._bucket.rate_per_s:
            self._bucket.set_rate(rate_per_s, now_s)
