"""What becomes of each row of a BatchUpdateCase call, from its answer or its refusal.

    applied                          DONE; its case's next row may go
    ROW (CASE_NOT_FOUND, VALIDATION) FAILED with the code and message
    THROTTLED (per case)             again, at once (the call's gate paces it); no attempt used
    TRANSIENT (CONFLICT, INTERNAL)   again after the retry policy's backoff, or FAILED when spent
    SYSTEMIC (ACCESS_DENIED, ...)    the run stops; the row stays pending

Pure: no I/O, no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bulkupdate.errors import ErrorKind
from bulkupdate.fields.rows import Row
from bulkupdate.models import CaseFailure, CaseFailureKind, Outcome, RowStatus
from bulkupdate.pacing.retry import GiveUp, RetryPolicy


class Next(Enum):
    RESOLVED = "resolved"  # `outcome` is the row's final word
    AGAIN = "again"  # back to the planner after `delay_s`
    STOP = "stop"  # a systemic failure: the run stops, the row stays pending


@dataclass(frozen=True, slots=True)
class Verdict:
    next: Next
    outcome: Outcome | None = None
    delay_s: float = 0.0


def case_verdict(
    row: Row, failure: CaseFailure | None, policy: RetryPolicy, draw: float
) -> Verdict:
    """The verdict on `row` from its case's entry in the answer (None: applied). Counts the
    row's throttles and transient failures; `draw` is a uniform [0, 1) for the jitter."""
    if failure is None:
        return Verdict(Next.RESOLVED, row.outcome(RowStatus.DONE))
    kind = failure.kind
    if kind is CaseFailureKind.ROW:
        message = f"{failure.code}: {failure.message}"
        return Verdict(Next.RESOLVED, row.outcome(RowStatus.FAILED, failure.code, message))
    if kind is CaseFailureKind.THROTTLED:
        row.throttles += 1
        delay = policy.decide(ErrorKind.THROTTLED, row.throttles, None, draw)
        return Verdict(Next.AGAIN, delay_s=0.0 if isinstance(delay, GiveUp) else delay.delay_s)
    if kind is CaseFailureKind.SYSTEMIC:
        return Verdict(Next.STOP)
    row.transient_failures += 1
    decision = policy.decide(ErrorKind.TRANSIENT, row.transient_failures, None, draw)
    if isinstance(decision, GiveUp):
        message = f"{failure.code}: {failure.message}"
        return Verdict(Next.RESOLVED, row.outcome(RowStatus.FAILED, decision.reason, message))
    return Verdict(Next.AGAIN, delay_s=decision.delay_s)


def halves(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """A refused group split in two, to find the row that made the service refuse it."""
    middle = len(rows) // 2
    return rows[:middle], rows[middle:]
