"""Faults on demand: which injected failure (if any) a request meets, how long it takes, and
which per-case errorCode (if any) each case of a BatchUpdateCase call meets.

Pure: decisions come from an injected random generator; the server does the sleeping.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum


class Fault(Enum):
    NONE = "none"
    # The configured error: 500 InternalServerException with Retry-After unless error_code says
    # otherwise (another service's throttle or timeout code, with its status)
    INTERNAL_ERROR = "internal_error"
    DROP_BEFORE_APPLY = "drop_before_apply"  # connection closed, request not applied
    DROP_AFTER_APPLY = "drop_after_apply"  # applied, then the connection closed: no reply
    CUT_SHORT = "cut_short"  # applied; the reply stops short of its Content-Length, then closes


# The writes: what faults apply to unless `operations` says otherwise.
WRITE_OPERATIONS = frozenset({"UpdateCase", "BatchUpdateCase"})


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Probabilities are per request to an affected operation, each in [0, 1]."""

    internal_error_probability: float = 0.0
    retry_after_s: int = 1
    # What internal_error_probability answers. Connect Cases' own 500 by default; any code AWS
    # uses elsewhere (ThrottledException 400, RequestTimeout 400, ...) to see how a client takes it.
    error_code: str = "InternalServerException"
    error_status: int = 500
    drop_probability: float = 0.0
    drop_after_apply_probability: float = 0.0
    cut_short_probability: float = 0.0
    slow_probability: float = 0.0
    slow_s: float = 5.0
    # Service time: a log-normal fitted to a median and a 99th percentile (0 = instant).
    latency_median_ms: float = 0.0
    latency_p99_ms: float = 0.0
    # The writes answer AccessDeniedException once this many write calls were received (the
    # same IAM action, cases:UpdateCase, covers UpdateCase and BatchUpdateCase).
    access_denied_after_calls: int | None = None
    # Per case of a BatchUpdateCase call: the errorCode THROTTLED, CONFLICT or INTERNAL_ERROR in
    # failedCases instead of applying that case (each by its probability, at most one).
    case_throttle_probability: float = 0.0
    case_conflict_probability: float = 0.0
    case_internal_error_probability: float = 0.0
    # Only these case ids meet per-case faults; empty: any case.
    fault_case_ids: frozenset[str] = frozenset()
    # Only the first N calls to the affected operations meet errors, drops, cut replies and
    # per-case faults (each by its probability); later ones get none. None: every call may.
    fault_calls: int | None = None
    operations: frozenset[str] = WRITE_OPERATIONS

    def __post_init__(self) -> None:
        exclusive = (
            self.internal_error_probability,
            self.drop_probability,
            self.drop_after_apply_probability,
            self.cut_short_probability,
        )
        per_case = self._per_case()
        if not all(0.0 <= p <= 1.0 for p in (*exclusive, *per_case, self.slow_probability)):
            raise ValueError("fault probabilities must be between 0 and 1")
        if sum(exclusive) > 1.0:
            raise ValueError("error and drop probabilities must add up to at most 1")
        if sum(per_case) > 1.0:
            raise ValueError("per-case fault probabilities must add up to at most 1")
        if self.latency_p99_ms and self.latency_p99_ms < self.latency_median_ms:
            raise ValueError("latency_p99_ms must be at least latency_median_ms")
        if not (self.error_code and 400 <= self.error_status <= 599):
            raise ValueError("an injected error needs a code and a 4xx or 5xx status")
        if self.fault_calls is not None and self.fault_calls < 0:
            raise ValueError("fault_calls must be at least 0")

    def _per_case(self) -> tuple[float, float, float]:
        return (
            self.case_throttle_probability,
            self.case_conflict_probability,
            self.case_internal_error_probability,
        )


_CASE_CODES = ("THROTTLED", "CONFLICT", "INTERNAL_ERROR")  # in the order of _per_case
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


class FaultInjector:
    __slots__ = ("_calls", "_random", "_sigma", "config")

    def __init__(self, config: FaultConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._random = rng or random.Random()
        self._calls = 0  # choices made, for fault_calls
        median, p99 = config.latency_median_ms, config.latency_p99_ms
        self._sigma = math.log(p99 / median) / _Z99 if median > 0 and p99 > median else 0.0

    def affects(self, operation: str) -> bool:
        return operation in self.config.operations

    def _spent(self) -> bool:
        """Whether the calls that may meet faults (fault_calls) are used up."""
        limit = self.config.fault_calls
        return limit is not None and self._calls > limit

    def choose(self) -> Fault:
        config, draw = self.config, self._random.random()
        self._calls += 1
        if self._spent():
            return Fault.NONE
        for fault, probability in (
            (Fault.INTERNAL_ERROR, config.internal_error_probability),
            (Fault.DROP_BEFORE_APPLY, config.drop_probability),
            (Fault.DROP_AFTER_APPLY, config.drop_after_apply_probability),
            (Fault.CUT_SHORT, config.cut_short_probability),
        ):
            if draw < probability:
                return fault
            draw -= probability
        return Fault.NONE

    def case_fault(self, case_id: str) -> str | None:
        """The errorCode one case of the current BatchUpdateCase call meets, or None (apply it).
        Called after `choose` for that call, once per listed case."""
        config = self.config
        if self._spent() or (config.fault_case_ids and case_id not in config.fault_case_ids):
            return None
        probabilities = config._per_case()
        if not any(probabilities):
            return None
        draw = self._random.random()
        for code, probability in zip(_CASE_CODES, probabilities, strict=True):
            if draw < probability:
                return code
            draw -= probability
        return None

    def delay_s(self) -> float:
        """Service time of one request: the latency draw plus, sometimes, a slow response."""
        config = self.config
        delay_s = 0.0
        if config.latency_median_ms > 0:
            delay_s = config.latency_median_ms / 1000.0
            if self._sigma:
                delay_s *= math.exp(self._random.gauss(0.0, self._sigma))
        if config.slow_probability and self._random.random() < config.slow_probability:
            delay_s += config.slow_s
        return delay_s
