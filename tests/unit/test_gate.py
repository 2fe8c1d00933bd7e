"""The rate gate as the engine uses it (workers awaiting `pass_`, reporting accepts and
throttles) against a simulated service bucket, on a fake clock: the goodput target holds."""

from __future__ import annotations

import random

import anyio
import pytest

from bulkupdate.pacing.gate import RateGate
from tests.fakes.clock import FakeClock
from tests.unit.test_pacing_simulation import ServerBucket


async def drive(quota_per_s: float, burst: int, rows: int, workers: int) -> tuple[list[float], int]:
    """`workers` tasks send `rows` calls through one gate configured 4x above the quota."""
    clock = FakeClock()
    gate = RateGate(4 * quota_per_s, burst, clock)
    server = ServerBucket(quota_per_s, burst)
    rng = random.Random(7)
    accepted_s: list[float] = []
    throttled = 0
    left = rows

    async def worker() -> None:
        nonlocal left, throttled
        while left > 0:
            left -= 1
            while True:
                sent_s = await gate.pass_()
                await clock.sleep(rng.uniform(0.0025, 0.015))  # request on the wire
                ok = server.admit(clock.now_s())
                await clock.sleep(rng.uniform(0.0025, 0.015))  # response on the wire
                if ok:
                    accepted_s.append(clock.now_s())
                    gate.accepted(sent_s)
                    break
                throttled += 1
                gate.throttled(sent_s)

    async with clock.auto_advance(), anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    return accepted_s, throttled


@pytest.mark.parametrize(
    ("quota_per_s", "burst", "rows"),
    [(2.0, 2, 300), (50.0, 50, 3000)],
)
async def test_gate_settles_under_the_quota_with_few_throttles(
    quota_per_s: float, burst: int, rows: int
) -> None:
    accepted_s, throttled = await drive(quota_per_s, burst, rows, workers=16)
    elapsed_s = accepted_s[-1] - accepted_s[0]
    goodput = len(accepted_s) / (burst + quota_per_s * elapsed_s)
    assert len(accepted_s) == rows
    assert goodput >= 0.97
    assert throttled / (throttled + rows) <= 0.03


async def test_a_gate_below_a_tenth_per_second_spaces_calls_and_slows_on_throttles() -> None:
    clock = FakeClock()
    gate = RateGate(2.0 / 32, 1, clock)  # a shard of the default 2/s over 32
    async with clock.auto_advance():
        sent_s = [await gate.pass_() for _ in range(2)]
    assert sent_s == pytest.approx([0.0, 16.0])
    for _ in range(3):
        gate.throttled(clock.now_s())
        await clock.advance(30.0)
    assert 0.0 < gate.rate_per_s < 2.0 / 32
