"""Discrete-event simulation: workers sharing one TokenBucket + AdaptiveRate against a server
token bucket, on simulated time (no sleeping, no asyncio). The headline metric lives here:

    goodput = accepted / (server burst + quota x (last accept - first accept))

Workers use the bucket the recommended way: a revocable slot, slept on in steps of at most
0.25 s, reserved again once revoked; the bucket follows the controller at once on a decrease
and on increases of 1% or more. Latency is seeded-uniform 5-30 ms, half each way.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from bulkupdate.pacing.adaptive import AdaptiveRate
from bulkupdate.pacing.bucket import Slot, TokenBucket

RECHECK_S = 0.25  # longest single sleep on a slot before looking at `revoked` again


class ServerBucket:
    """The service side: burst tokens, refilled at the quota; a refused call costs nothing."""

    def __init__(self, quota_per_s: float, burst: int) -> None:
        self.quota_per_s = quota_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated_s = 0.0

    def change(self, quota_per_s: float, burst: int, now_s: float) -> None:
        self._refill(now_s)
        self.quota_per_s, self.burst = quota_per_s, burst

    def admit(self, now_s: float) -> bool:
        self._refill(now_s)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def _refill(self, now_s: float) -> None:
        elapsed_s = now_s - self.updated_s
        self.tokens = min(self.burst, self.tokens + elapsed_s * self.quota_per_s)
        self.updated_s = now_s


@dataclass
class Outcome:
    accepted_s: list[float] = field(default_factory=list)  # server-side accept times
    throttled: int = 0
    attempts: int = 0
    rates: list[tuple[float, float]] = field(default_factory=list)  # (time, controller rate)

    def goodput(self, quota_per_s: float, burst: int) -> float:
        elapsed_s = self.accepted_s[-1] - self.accepted_s[0]
        return len(self.accepted_s) / (burst + quota_per_s * elapsed_s)

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.attempts

    def accept_rate(self, start_s: float, end_s: float) -> float:
        n = sum(1 for t in self.accepted_s if start_s <= t < end_s)
        return n / (end_s - start_s)

    def rate_at(self, when_s: float) -> float:
        return [rate for t, rate in self.rates if t <= when_s][-1]


def simulate(
    quota_per_s: float,
    burst: int,
    rows: int,
    *,
    workers: int = 16,
    ceiling_factor: float = 4.0,
    seed: int = 1,
    changes: tuple[tuple[float, float, int], ...] = (),
) -> Outcome:
    rng = random.Random(seed)
    server = ServerBucket(quota_per_s, burst)
    control = AdaptiveRate(quota_per_s * ceiling_factor)
    bucket = TokenBucket(control.rate_per_s, burst=1)
    out = Outcome()
    events: list[tuple[float, int, str, int, Slot | None, float, bool]] = []
    seq = 0
    next_row = 0

    def push(
        at_s: float,
        kind: str,
        worker: int,
        slot: Slot | None = None,
        sent_s: float = 0.0,
        ok: bool = False,
    ) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at_s, seq, kind, worker, slot, sent_s, ok))

    def book(worker: int, now_s: float) -> None:
        slot = bucket.reserve_slot(now_s)
        push(min(slot.send_at_s, now_s + RECHECK_S), "wake", worker, slot)

    def take_row(worker: int, now_s: float) -> None:
        nonlocal next_row
        if next_row < rows:
            next_row += 1
            book(worker, now_s)

    for at_s, new_quota, new_burst in changes:
        push(at_s, f"quota:{new_quota}:{new_burst}", -1)
    for worker in range(workers):
        take_row(worker, 0.0)

    while events:
        now_s, _, kind, worker, slot, sent_s, ok = heapq.heappop(events)
        if kind.startswith("quota:"):
            _, new_quota, new_burst = kind.split(":")
            server.change(float(new_quota), int(new_burst), now_s)
        elif kind == "wake":
            assert slot is not None
            if slot.revoked:
                book(worker, now_s)
            elif slot.send_at_s > now_s:
                push(min(slot.send_at_s, now_s + RECHECK_S), "wake", worker, slot)
            else:
                out.attempts += 1
                latency_s = rng.uniform(0.005, 0.030)
                ok = server.admit(now_s + latency_s / 2)
                if ok:
                    out.accepted_s.append(now_s + latency_s / 2)
                push(now_s + latency_s, "answer", worker, None, now_s, ok)
        else:  # an answer
            if ok:
                control.on_accept(now_s, sent_s=sent_s)
            else:
                out.throttled += 1
                control.on_throttle(now_s, sent_s=sent_s)
            rate_per_s = control.rate_per_s
            if rate_per_s < bucket.rate_per_s or rate_per_s > bucket.rate_per_s * 1.01:
                bucket.set_rate(rate_per_s, now_s)
            out.rates.append((now_s, rate_per_s))
            if ok:
                take_row(worker, now_s)
            else:
                book(worker, now_s)  # the throttled row goes again, paced like the rest
    return out


@pytest.mark.parametrize(
    ("quota_per_s", "burst", "rows"),
    [(2.0, 2, 300), (50.0, 50, 3000), (500.0, 500, 15000)],
    ids=["2/s-burst-2", "50/s", "500/s"],
)
def test_configured_rate_four_times_the_quota_still_gets_97_percent_goodput(
    quota_per_s: float, burst: int, rows: int
) -> None:
    out = simulate(quota_per_s, burst, rows)
    assert len(out.accepted_s) == rows
    assert out.goodput(quota_per_s, burst) >= 0.97
    assert out.throttled_share <= 0.03


@pytest.mark.parametrize("seed", [2, 3, 4, 5])
@pytest.mark.parametrize("workers", [1, 4, 64])
def test_two_per_second_targets_hold_whatever_the_seed_and_concurrency(
    seed: int, workers: int
) -> None:
    out = simulate(2.0, 2, 300, workers=workers, seed=seed)
    assert out.goodput(2.0, 2) >= 0.97
    assert out.throttled_share <= 0.03


def test_rate_settles_just_under_the_quota() -> None:
    out = simulate(50.0, 50, 3000)
    late = [rate for t, rate in out.rates if t > 20.0]
    assert min(late) >= 0.95 * 50.0
    assert max(late) <= 1.06 * 50.0


def test_controller_climbs_back_towards_the_ceiling_when_the_quota_is_raised() -> None:
    out = simulate(50.0, 50, 14000, changes=((40.0, 100.0, 100),))
    assert out.rate_at(40.0) < 55.0
    assert out.rate_at(180.0) > 80.0
    assert out.accept_rate(175.0, 185.0) > 80.0
    assert max(rate for _, rate in out.rates) <= 200.0


def test_controller_follows_a_lowered_quota_within_seconds() -> None:
    out = simulate(50.0, 50, 4000, changes=((40.0, 20.0, 20),))
    assert 18.0 <= out.rate_at(45.0) <= 20.0
    assert out.accept_rate(45.0, 100.0) == pytest.approx(20.0, rel=0.03)
    assert out.throttled_share <= 0.03
