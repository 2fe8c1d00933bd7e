"""Retry decisions for one row after a failed call: full-jitter capped exponential backoff,
Retry-After honoured, and which failures give up.

Pure: no I/O, no sleeping; the caller sleeps the returned delay through its Clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkupdate.errors import ErrorKind

__all__ = ["ErrorKind", "GiveUp", "Retry", "RetryPolicy", "backoff_delay_s"]


def backoff_delay_s(attempt: int, *, base_s: float, cap_s: float, random_unit: float) -> float:
    """Full jitter (Brooker 2015): uniform in [0, min(cap, base * 2**(attempt-1)))."""
    ceiling_s = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return random_unit * ceiling_s


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str  # e.g. "retries_exhausted", or the kind for rows that never retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8  # transient failures only; throttles never use up attempts
    base_s: float = 0.5
    cap_s: float = 20.0  # botocore's standard-mode cap
    # Throttled rows are spaced by the rate gate; this small jittered floor only keeps a
    # burst of throttled rows from re-arriving in lockstep.
    throttle_base_s: float = 0.05
    throttle_cap_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def decide(
        self,
        kind: ErrorKind,
        attempt: int,
        retry_after_s: float | None,
        random_unit: float,
    ) -> Retry | GiveUp:
        """What to do after attempt number `attempt` (1-based) failed with `kind`."""
        if kind is ErrorKind.THROTTLED:
            delay_s = backoff_delay_s(
                attempt,
                base_s=self.throttle_base_s,
                cap_s=self.throttle_cap_s,
                random_unit=random_unit,
            )
            return Retry(max(delay_s, retry_after_s or 0.0))
        if kind is ErrorKind.TRANSIENT:
            if attempt >= self.max_attempts:
                return GiveUp("retries_exhausted")
            delay_s = backoff_delay_s(
                attempt, base_s=self.base_s, cap_s=self.cap_s, random_unit=random_unit
            )
            return Retry(max(delay_s, retry_after_s or 0.0))
        return GiveUp(kind.value)
