"""Discrete-event simulation: workers sharing one TokenBucket + AdaptiveRate against a server
token bucket, on simulated time (no sleeping, no asyncio), with the contact centre's agents
saving cases through the same bucket at random (Poisson) moments. The headline metrics:

    goodput = accepted / (server burst + quota x (last accept - first accept))
    agents' throttled share = agents' calls refused / agents' calls

Workers use the bucket as the gate does: its burst until the first throttle, then 1; a
revocable slot, slept on in steps of at most 0.25 s, reserved again once revoked; the bucket
follows the controller at once on a decrease and on increases of 1% or more. The network takes
a seeded-uniform round trip, half each way: 5-30 ms by default (JITTERY), 0.5-2 ms on LOOPBACK
(the emulator benchmark's set-up); an accepted call then spends `service_s` in the service
before its answer leaves. Agents do not retry: a refused save is a failed save.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from bulkupdate.pacing.adaptive import AdaptiveRate
from bulkupdate.pacing.bucket import Slot, TokenBucket

RECHECK_S = 0.25  # longest single sleep on a slot before looking at `revoked` again
JITTERY = (0.005, 0.030)  # network round trip, seconds
LOOPBACK = (0.0005, 0.002)


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
        elapsed_s = max(0.0, now_s - self.updated_s)
        self.tokens = min(self.burst, self.tokens + elapsed_s * self.quota_per_s)
        self.updated_s = max(self.updated_s, now_s)


@dataclass
class Outcome:
    accepted_s: list[float] = field(default_factory=list)  # server-side accept times
    throttled: int = 0
    attempts: int = 0
    rates: list[tuple[float, float]] = field(default_factory=list)  # (time, controller rate)
    agent_calls: list[tuple[float, bool]] = field(default_factory=list)  # (time, accepted)

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

    def agents_throttled_share(self, start_s: float = 0.0, end_s: float = math.inf) -> float:
        calls = [ok for t, ok in self.agent_calls if start_s <= t < end_s]
        return calls.count(False) / len(calls)


Agents = Sequence[tuple[float, float, float]]  # (from_s, until_s, saves per second)


def simulate(
    quota_per_s: float,
    burst: int,
    rows: int | None = None,
    *,
    until_s: float = math.inf,
    workers: int = 16,
    ceiling_factor: float = 4.0,
    headroom: float = 0.0,
    service_s: float = 0.0,
    network_s: tuple[float, float] = JITTERY,
    agents: Agents = (),
    seed: int = 1,
    changes: tuple[tuple[float, float, int], ...] = (),
) -> Outcome:
    """Send `rows` (or rows until `until_s`) through the pacing at `ceiling_factor` x quota."""
    rng = random.Random(seed)
    server = ServerBucket(quota_per_s, burst)
    control = AdaptiveRate(quota_per_s * ceiling_factor, headroom=headroom)
    bucket = TokenBucket(control.rate_per_s, burst)
    out = Outcome()
    events: list[tuple[float, int, str, int, Slot | None, float, bool]] = []
    seq = 0
    left = math.inf if rows is None else rows

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
        nonlocal left
        if left > 0 and now_s < until_s:
            left -= 1
            book(worker, now_s)

    agents_rng = random.Random(seed + 1)
    for from_s, to_s, per_s in agents:
        at_s = from_s + agents_rng.expovariate(per_s)
        while at_s < to_s:
            push(at_s, "agent", -1)
            at_s += agents_rng.expovariate(per_s)
    for at_s, new_quota, new_burst in changes:
        push(at_s, f"quota:{new_quota}:{new_burst}", -1)
    for worker in range(workers):
        take_row(worker, 0.0)

    while events:
        now_s, _, kind, worker, slot, sent_s, ok = heapq.heappop(events)
        if kind.startswith("quota:"):
            _, new_quota, new_burst = kind.split(":")
            server.change(float(new_quota), int(new_burst), now_s)
        elif kind == "agent":
            out.agent_calls.append((now_s, server.admit(now_s + rng.uniform(*network_s) / 2)))
        elif kind == "wake":
            assert slot is not None
            if slot.revoked:
                book(worker, now_s)
            elif slot.send_at_s > now_s:
                push(min(slot.send_at_s, now_s + RECHECK_S), "wake", worker, slot)
            else:
                out.attempts += 1
                latency_s = rng.uniform(*network_s)
                ok = server.admit(now_s + latency_s / 2)
                if ok:
                    out.accepted_s.append(now_s + latency_s / 2)
                    latency_s += service_s
                push(now_s + latency_s, "answer", worker, None, now_s, ok)
        else:  # an answer
            if ok:
                control.on_accept(now_s, sent_s=sent_s)
            else:
                if not out.throttled:
                    bucket.narrow_burst(1)  # as the gate does on the first throttle
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


# -- goodput: --rate 4x the quota, no headroom -----------------------------------------------


@pytest.mark.parametrize("service_s", [0.005, 0.020, 0.100], ids=["5ms", "20ms", "100ms"])
@pytest.mark.parametrize(
    ("quota_per_s", "burst", "rows", "network_s"),
    [
        pytest.param(2.0, 2, 300, LOOPBACK, id="2/s-burst-2"),
        pytest.param(50.0, 50, 1650, LOOPBACK, id="50/s"),
        pytest.param(500.0, 500, 16500, LOOPBACK, id="500/s"),
        pytest.param(50.0, 50, 1650, JITTERY, id="50/s-jittery"),
        pytest.param(500.0, 500, 16500, JITTERY, id="500/s-jittery"),
    ],
)
def test_configured_rate_four_times_the_quota_still_gets_99_percent_goodput(
    quota_per_s: float, burst: int, rows: int, network_s: tuple[float, float], service_s: float
) -> None:
    # The benchmark's rows (32 s at the quota, 300 at least); enough workers to keep twice the
    # quota in flight at this service time.
    workers = max(16, math.ceil(2 * quota_per_s * (service_s + 0.03)))
    out = simulate(
        quota_per_s, burst, rows, workers=workers, service_s=service_s, network_s=network_s
    )
    assert len(out.accepted_s) == rows
    assert out.goodput(quota_per_s, burst) >= 0.99
    assert out.throttled_share <= 0.02


@pytest.mark.parametrize("seed", [2, 3, 4, 5])
@pytest.mark.parametrize("workers", [1, 4, 64])
def test_two_per_second_targets_hold_whatever_the_seed_and_concurrency(
    seed: int, workers: int
) -> None:
    # 300 rows at 2/s, burst 2, over a jittery network. Finding the quota from 4x costs four
    # throttles (1.3%) and its first measurements count a handful of calls (1/n off), so the
    # goodput left is a token or two short of 99% here; longer jobs get more (below).
    out = simulate(2.0, 2, 300, workers=workers, seed=seed)
    assert out.goodput(2.0, 2) >= 0.98
    assert out.throttled_share <= 0.02


def test_rate_settles_just_under_the_quota() -> None:
    out = simulate(50.0, 50, 3000)
    late = [rate for t, rate in out.rates if t > 20.0]
    assert min(late) >= 0.97 * 50.0
    assert max(late) <= 1.03 * 50.0


def test_controller_climbs_back_towards_the_ceiling_when_the_quota_is_raised() -> None:
    out = simulate(50.0, 50, 14000, changes=((40.0, 100.0, 100),))
    assert out.rate_at(40.0) < 55.0
    assert out.rate_at(180.0) > 80.0
    assert out.accept_rate(175.0, 185.0) > 80.0
    assert max(rate for _, rate in out.rates) <= 200.0


def test_controller_follows_a_lowered_quota_within_seconds() -> None:
    out = simulate(50.0, 50, 4000, changes=((40.0, 20.0, 20),))
    assert 18.0 <= out.rate_at(45.0) <= 20.2
    assert out.accept_rate(45.0, 100.0) == pytest.approx(20.0, rel=0.03)
    assert out.throttled_share <= 0.02


# -- headroom: agents saving cases through the same quota ------------------------------------


@pytest.mark.parametrize(
    ("quota_per_s", "agents_per_s"), [(50.0, 5.0), (10.0, 1.0)], ids=["50/s", "10/s"]
)
def test_agents_using_less_than_the_headroom_are_hardly_ever_throttled(
    quota_per_s: float, agents_per_s: float
) -> None:
    # --rate at the quota, the default 20% headroom, agents at half of it.
    out = simulate(
        quota_per_s,
        round(quota_per_s),
        until_s=300.0,
        ceiling_factor=1.0,
        headroom=0.2,
        agents=[(0.0, 300.0, agents_per_s)],
    )
    share_per_s = 0.8 * quota_per_s
    assert out.agents_throttled_share() <= 0.01
    assert 0.95 * share_per_s <= out.accept_rate(10.0, 290.0) <= 1.02 * share_per_s


def test_agents_using_more_than_the_headroom_make_the_job_give_way() -> None:
    # Agents at 30% of a 50/s quota, the job's share 80% of it: 10% too much between them.
    out = simulate(
        50.0, 50, until_s=300.0, ceiling_factor=1.0, headroom=0.2, agents=[(0.0, 300.0, 15.0)]
    )
    assert out.accept_rate(30.0, 290.0) <= 0.85 * 40.0  # backed off below its share
    assert out.agents_throttled_share() < 0.05


def test_the_job_takes_its_share_back_once_the_agents_are_done() -> None:
    out = simulate(
        50.0, 50, until_s=400.0, ceiling_factor=1.0, headroom=0.2, agents=[(60.0, 180.0, 20.0)]
    )
    assert out.accept_rate(90.0, 180.0) <= 0.85 * 40.0
    assert out.agents_throttled_share() < 0.05
    assert 0.95 * 40.0 <= out.accept_rate(240.0, 400.0) <= 1.02 * 40.0  # back within a minute


def test_a_rate_four_times_the_quota_keeps_the_headroom_of_the_quota_it_measured() -> None:
    out = simulate(
        50.0, 50, until_s=600.0, ceiling_factor=4.0, headroom=0.2, agents=[(0.0, 600.0, 5.0)]
    )
    # It finds the quota within seconds, then stays near its share of it: every few minutes
    # it checks, slowly, whether the quota was raised.
    assert 0.9 * 40.0 <= out.accept_rate(10.0, 600.0) <= 1.1 * 40.0
    assert out.agents_throttled_share(10.0) <= 0.01


def test_no_headroom_takes_what_the_agents_leave_where_the_default_leaves_a_fifth() -> None:
    def job_rate(headroom: float) -> float:
        out = simulate(
            50.0, 50, until_s=300.0, ceiling_factor=1.0, headroom=headroom, agents=[(0, 300, 5)]
        )
        return out.accept_rate(10.0, 290.0)

    assert job_rate(0.0) >= 0.85 * 50.0  # it measures what the agents leave and takes it
    assert job_rate(0.2) <= 0.81 * 50.0
