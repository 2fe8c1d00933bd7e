"""The rate gate every worker passes before an UpdateCase call: one shared token bucket whose
rate the adaptive controller moves on accepts and throttles; each change of the controller's
regime is told (`pacing_regime`), with the rate and why.

Sleeps only through the injected Clock; the decisions themselves live in `adaptive` and `bucket`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bulkupdate.clock import Clock
from bulkupdate.pacing.adaptive import AdaptiveRate, Regime
from bulkupdate.pacing.bucket import TokenBucket

# Waiters re-check their slot this often, so a rate cut reaches slots already handed out
# instead of letting them go out on a schedule the service just refused.
SLOT_CHECK_S = 0.25
# Rate increases smaller than this are not worth revoking every waiting slot for.
MIN_INCREASE = 0.01

Tell = Callable[[str, Mapping[str, Any]], None]


class RateGate:
    __slots__ = ("_bucket", "_clock", "_control", "_regime", "_tell", "_throttled")

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Clock,
        *,
        headroom: float = 0.0,
        tell: Tell | None = None,
    ) -> None:
        """`rate_per_s` is the ceiling (--rate, or a shard's part of it); the job sends at most
        (1 - `headroom`) of it. `tell` hears `pacing_regime` now and on each change."""
        self._clock = clock
        self._control = AdaptiveRate(rate_per_s, headroom=headroom)
        self._bucket = TokenBucket(self._control.rate_per_s, burst)
        self._throttled = False
        self._tell = tell
        self._regime = self._control.regime
        self._told()

    @property
    def rate_per_s(self) -> float:
        return self._bucket.rate_per_s

    @property
    def share_per_s(self) -> float:
        """The most the job sends: the ceiling less the headroom."""
        return self._control.share_per_s

    @property
    def regime(self) -> Regime:
        return self._control.regime

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
        before_per_s = self._control.rate_per_s
        if self._control.on_accept(now_s, sent_s=sent_s):
            self._cut(before_per_s)
        self._follow(now_s)

    def throttled(self, sent_s: float) -> None:
        now_s = self._clock.now_s()
        if not self._throttled:
            # The service's bucket is the only burst that counts once it has refused us: paired
            # sends into its empty bucket would only buy throttles.
            self._throttled = True
            self._bucket.narrow_burst(1)
        before_per_s = self._control.rate_per_s
        if self._control.on_throttle(now_s, sent_s=sent_s):
            self._cut(before_per_s)
        self._follow(now_s)

    def _follow(self, now_s: float) -> None:
        target_per_s = self._control.rate_per_s
        current_per_s = self._bucket.rate_per_s
        if target_per_s < current_per_s or target_per_s >= current_per_s * (1 + MIN_INCREASE):
            self._bucket.set_rate(target_per_s, now_s)
        if self._control.regime is not self._regime:
            self._regime = self._control.regime
            self._told()

    def _cut(self, before_per_s: float) -> None:
        if self._tell is not None:
            quota = self._control.quota_estimate_per_s
            self._tell(
                "rate_decreased",
                {
                    "from_per_s": round(before_per_s, 3),
                    "rate_per_s": round(self._control.rate_per_s, 3),
                    "quota_per_s": None if quota is None else round(quota, 3),
                    "regime": self._control.regime.value,
                },
            )

    def _told(self) -> None:
        if self._tell is None:
            return
        control = self._control
        quota = control.quota_estimate_per_s
        self._tell(
            "pacing_regime",
            {
                "regime": control.regime.value,
                "rate_per_s": round(control.rate_per_s, 3),
                "share_per_s": round(control.share_per_s, 3),
                "quota_per_s": None if quota is None else round(quota, 3),
                "headroom_percent": round(100 * control.headroom, 3),
                "why": why(control),
            },
        )


def why(control: AdaptiveRate) -> str:
    """The regime in words, for the log."""
    regime = control.regime
    percent = f"{100 * control.headroom:g}%"
    if regime is Regime.SHARE:
        if control.headroom == 0.0:
            return f"the ceiling ({control.ceiling_per_s:g}/s), with no headroom"
        return f"the ceiling ({control.ceiling_per_s:g}/s) less {percent} headroom for others"
    if regime is Regime.FINDING:
        return "throttled above the quota: below the rate refused until accepts measure it"
    if regime is Regime.MEASURED:
        quota = control.quota_estimate_per_s
        kept = f" less {percent} headroom" if control.headroom else ""
        return f"the quota measured from accepted calls ({quota:.3g}/s){kept}"
    return (
        "throttled within its share: others are using more than the headroom, "
        "so the job gives way until they are done"
    )
