"""The shared token bucket with a changeable rate and revocable slots.

Pure: stdlib only. No I/O, no sleeping, no asyncio. Callers pass the time in and sleep themselves.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Slot", "TokenBucket", "check_rate", "is_rate"]


class Slot:
    """One reserved send time; `TokenBucket.set_rate` revokes the ones not yet due."""

    __slots__ = ("revoked", "send_at_s")

    def __init__(self, send_at_s: float) -> None:
        self.send_at_s = send_at_s
        self.revoked = False

    def delay_s(self, now_s: float) -> float:
        return max(0.0, self.send_at_s - now_s)


class TokenBucket:
    """Capacity `burst`, refill `rate_per_s`, kept as GCRA virtual time so waiters queue FIFO.

    The state is one timestamp, `_tat_s` (theoretical arrival time): `(tat - now) * rate` is the
    number of tokens spent and not yet refilled. A reservation at `now` may go at
    `max(now, tat - (burst - 1) / rate)` and pushes `tat` one interval on, so N callers arriving
    together get N successive slots instead of racing for the next token.
    """

    __slots__ = ("_burst", "_interval_s", "_pending", "_rate_per_s", "_tat_s")

    def __init__(self, rate_per_s: float, burst: int = 1) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        check_rate(rate_per_s)
        self._burst = burst
        self._rate_per_s = rate_per_s
        self._interval_s = 1.0 / rate_per_s
        self._tat_s = -math.inf  # starts full: the first `burst` reservations go at once
        # Slots handed out but not yet due, roughly in send order; set_rate must see them.
        self._pending: deque[Slot] = deque()

    @property
    def rate_per_s(self) -> float:
        return self._rate_per_s

    @property
    def burst(self) -> int:
        return self._burst

    def narrow_burst(self, burst: int) -> None:
        """Lower the burst from now on. Tolerance is read at each reservation, so lowering it
        only delays future slots: no token is granted."""
        if not 1 <= burst <= self._burst:
            raise ValueError(f"burst can only be narrowed to 1..{self._burst}, got {burst}")
        self._burst = burst

    def reserve_slot(self, now_s: float) -> Slot:
        """Take one token as a revocable `Slot`.

        For many callers waiting at once: sleep until `slot.send_at_s` in steps of at most a
        fraction of a second and reserve again once `slot.revoked`. A rate change then reaches
        the callers already waiting, instead of them sending on a schedule the server refused.
        """
        self._prune(now_s)
        tat_s = max(self._tat_s, now_s)
        send_at_s = max(now_s, tat_s - (self._burst - 1) * self._interval_s)
        self._tat_s = tat_s + self._interval_s
        slot = Slot(send_at_s)
        if send_at_s > now_s:
            self._pending.append(slot)
        return slot

    def set_rate(self, rate_per_s: float, now_s: float) -> None:
        """Change the refill rate from `now_s` on; tokens already spent stay spent.

        Slots not yet due are revoked and their tokens refunded, so their holders get slots at
        the new rate. The remaining debt (tokens spent, not yet refilled) carries over in
        tokens: no change grants a free burst.
        """
        check_rate(rate_per_s)
        if rate_per_s == self._rate_per_s:
            return
        self._prune(now_s)
        for slot in self._pending:
            if slot.send_at_s > now_s:  # a due one's holder is sending now
                slot.revoked = True
                self._tat_s -= self._interval_s  # refund its one token
        self._pending.clear()
        debt_tokens = max(0.0, self._tat_s - now_s) * self._rate_per_s
        self._rate_per_s = rate_per_s
        self._interval_s = 1.0 / rate_per_s
        if debt_tokens > 0.0:
            self._tat_s = now_s + debt_tokens * self._interval_s

    def _prune(self, now_s: float) -> None:
        pending = self._pending
        while pending and pending[0].send_at_s <= now_s:
            pending.popleft()


def is_rate(rate_per_s: float) -> bool:
    """Positive and finite, with a finite interval between calls: every rate but the tiniest
    subnormal floats (below ~5.6e-309/s), whose `1 / rate` overflows and would turn a schedule
    into NaN (sending at once)."""
    return rate_per_s > 0.0 and math.isfinite(rate_per_s) and math.isfinite(1.0 / rate_per_s)


def check_rate(rate_per_s: float) -> None:
    if not is_rate(rate_per_s):
        raise ValueError(f"rate_per_s must be positive and finite, got {rate_per_s}")
