"""GetCase reads paced by a gate of their own at GetCase's quota, retried as UpdateCase calls are
(throttles adapt the rate and never use up the attempts; 5xx and timeouts do).

Orchestration: sends no update; time and sleep come from the injected Clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bulkupdate.clock import Clock
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.models import WireValue
from bulkupdate.pacing.gate import SLOT_CHECK_S, RateGate
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.run.cases import CasesApi

__all__ = ["PacedReads"]


class PacedReads:
    """Reads of cases' current values; counts the calls and the throttles."""

    __slots__ = ("_api", "_clock", "_policy", "_random", "gate", "reads", "throttles")

    def __init__(
        self,
        api: CasesApi,
        clock: Clock,
        *,
        rate_per_s: float,
        burst: int,
        headroom: float,
        max_attempts: int,
        rng: random.Random | None = None,
        on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self._api = api
        self._clock = clock
        tell = on_event or (lambda name, data: None)
        self.gate = RateGate(  # GetCase's own quota, adapted as UpdateCase's is
            rate_per_s,
            burst,
            clock,
            headroom=headroom,
            tell=lambda name, data: tell(name, {**data, "operation": "GetCase"}),
        )
        self._policy = RetryPolicy(max_attempts=max_attempts)
        self._random = rng or random.Random()
        self.reads = 0
        self.throttles = 0

    async def read(
        self, case_id: str, field_ids: Sequence[str], stopped: Callable[[], bool] = lambda: False
    ) -> dict[str, WireValue] | CallError | None:
        """The case's values of `field_ids` (a field without one is absent); the CallError that
        ended the tries; None when `stopped()` turned true first."""
        failures = {ErrorKind.THROTTLED: 0, ErrorKind.TRANSIENT: 0}
        while not stopped():
            sent_s = await self.gate.pass_(stopped)
            if sent_s is None:
                return None
            self.reads += 1
            try:
                values = await self._api.read_fields(case_id, field_ids)
            except CallError as error:
                if error.kind not in failures:
                    return error
                if error.kind is ErrorKind.THROTTLED:
                    self.throttles += 1
                    self.gate.throttled(sent_s)
                failures[error.kind] += 1
                decision = self._policy.decide(
                    error.kind, failures[error.kind], error.retry_after_s, self._random.random()
                )
                if isinstance(decision, GiveUp):
                    return error
                await self._pause(decision.delay_s, stopped)
                continue
            self.gate.accepted(sent_s)
            return values
        return None

    async def _pause(self, delay_s: float, stopped: Callable[[], bool]) -> None:
        until_s = self._clock.now_s() + delay_s
        while not stopped() and (left_s := until_s - self._clock.now_s()) > 0:
            await self._clock.sleep(min(left_s, SLOT_CHECK_S))
