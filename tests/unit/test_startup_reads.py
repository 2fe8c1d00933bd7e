"""The reads a run makes before its first write: retried under the engine's rules, each retry
logged, and a service that keeps failing given up on after the start-up budget."""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.pacing.retry import RetryPolicy
from bulkupdate.run.domain import STARTUP_RETRY_BUDGET_S, StartupReads
from tests.fakes.clock import FakeClock

REFUSED = CallError(ErrorKind.TRANSIENT, "EndpointConnectionError", "refused", unreachable=True)
THROTTLED = CallError(ErrorKind.THROTTLED, "ThrottlingException", "slow down")


def failing(
    clock: FakeClock, error: CallError, times: int | None = None
) -> tuple[list[float], Callable[[], Awaitable[str]]]:
    """A read that fails `times` times (None: always), then answers; and when each call began."""
    made: list[float] = []

    async def call() -> str:
        made.append(clock.now_s())
        if times is None or len(made) <= times:
            raise error
        return "fields"

    return made, call


async def test_a_read_that_keeps_failing_is_given_up_within_the_budget_each_retry_logged() -> None:
    clock = FakeClock()
    # 100 attempts allowed: the budget, not --max-attempts, ends it.
    reads = StartupReads(clock, RetryPolicy(max_attempts=100), random.Random(7))
    made, call = failing(clock, REFUSED)
    with capture_logs() as logs:
        async with clock.auto_advance():
            with pytest.raises(CallError) as caught:
                await reads.call("ListFields", call)
    assert caught.value is REFUSED
    assert clock.now_s() <= STARTUP_RETRY_BUDGET_S
    retries = [e for e in logs if e["event"] == "startup_read_retrying"]
    assert len(retries) == len(made) - 1 == reads.retried > 1
    assert [e["attempt"] for e in retries] == list(range(1, len(made)))
    assert all(e["operation"] == "ListFields" for e in retries)
    assert all(e["error"] == "EndpointConnectionError: refused" for e in retries)
    delays = [later - earlier for earlier, later in itertools.pairwise(made)]
    assert [round(e["delay_s"], 3) for e in retries] == [round(d, 3) for d in delays]
    assert reads.gave_up.startswith(f"ListFields failed {len(made)} times in ")


async def test_throttles_are_retried_past_the_budget_until_the_read_is_answered() -> None:
    clock = FakeClock()
    reads = StartupReads(clock, RetryPolicy(), random.Random(7), budget_s=0.1)
    made, call = failing(clock, THROTTLED, times=30)
    async with clock.auto_advance():
        found = await reads.call("ListFields", call)
    assert found == "fields"
    assert len(made) == 31
    assert clock.now_s() > 0.1
