"""The clock seam: FakeClock wakes sleepers in order and can run simulations on its own."""

from __future__ import annotations

import anyio
import pytest

from bulkupdate.clock import Clock, MonotonicClock
from tests.fakes.clock import FakeClock


async def test_fake_clock_wakes_sleepers_in_deadline_order_at_their_deadlines() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay_s: float) -> None:
        await clock.sleep(delay_s)
        woke.append((name, clock.now_s()))

    async with anyio.create_task_group() as tg:
        for name, delay_s in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
            tg.start_soon(sleeper, name, delay_s)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleepers == 4
        await clock.advance(2.5)
        assert woke == [("a", 1.0), ("a2", 1.0), ("b", 2.0)]
        assert clock.now_s() == 2.5
        await clock.advance(0.5)
    assert woke[-1] == ("c", 3.0)
    assert clock.sleepers == 0


async def test_fake_clock_leaves_sleepers_not_yet_due_asleep() -> None:
    clock = FakeClock(start_s=100.0)
    done = anyio.Event()

    async def sleeper() -> None:
        await clock.sleep(5.0)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(4.999)
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        assert clock.next_deadline_s() == 105.0
        await clock.advance(0.001)
    assert done.is_set()


async def test_fake_clock_sleep_of_zero_returns_without_time_passing() -> None:
    clock = FakeClock()
    await clock.sleep(0.0)
    await clock.sleep(-1.0)
    assert clock.now_s() == 0.0
    assert clock.sleepers == 0


async def test_fake_clock_forgets_a_cancelled_sleeper() -> None:
    clock = FakeClock()
    with anyio.move_on_after(0.01):
        await clock.sleep(10.0)
    assert clock.sleepers == 0
    assert clock.next_deadline_s() is None
    await clock.advance(20.0)  # nothing to wake, nothing raised


async def test_fake_clock_refuses_to_go_back_in_time() -> None:
    with pytest.raises(ValueError, match="back"):
        await FakeClock().advance(-1.0)


async def test_auto_advance_jumps_time_when_every_task_sleeps() -> None:
    clock = FakeClock()
    log: list[tuple[str, float]] = []

    async def ticker(name: str, period_s: float, ticks: int) -> None:
        for _ in range(ticks):
            await clock.sleep(period_s)
            log.append((name, clock.now_s()))

    with anyio.fail_after(5):  # real seconds: a day of fake time must not take long
        async with clock.auto_advance(), anyio.create_task_group() as tg:
            tg.start_soon(ticker, "fast", 1.0, 5)
            tg.start_soon(ticker, "slow", 3600.0, 24)
    assert clock.now_s() == pytest.approx(24 * 3600.0)
    assert log[:5] == [("fast", float(t)) for t in range(1, 6)]
    assert [t for _, t in log] == sorted(t for _, t in log)


async def test_auto_advance_waits_for_tasks_that_are_busy_without_the_clock() -> None:
    clock = FakeClock()
    send, receive = anyio.create_memory_object_stream[int](1)
    seen: list[tuple[int, float]] = []

    async def producer() -> None:
        async with send:
            for i in range(3):
                await clock.sleep(10.0)
                await send.send(i)

    async def consumer() -> None:
        async with receive:
            async for i in receive:
                seen.append((i, clock.now_s()))

    with anyio.fail_after(5):
        async with clock.auto_advance(), anyio.create_task_group() as tg:
            tg.start_soon(producer)
            tg.start_soon(consumer)
    assert seen == [(0, 10.0), (1, 20.0), (2, 30.0)]


async def test_monotonic_clock_sleeps_for_real_and_reads_loop_time() -> None:
    clock: Clock = MonotonicClock()
    before_s = clock.now_s()
    await clock.sleep(0.01)
    await clock.sleep(-5.0)  # negative waits are a checkpoint, not an error
    assert clock.now_s() - before_s >= 0.01


def test_both_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [MonotonicClock(), FakeClock()]
    assert all(hasattr(clock, "now_s") for clock in clocks)
