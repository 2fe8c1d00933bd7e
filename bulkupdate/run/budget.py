"""The job's failed rows against its --max-failures budget: counted job-wide (earlier runs'
failures included), so a re-run with the same budget stops again and a higher one goes on.

Counts and decides; stopping the run is the engine's business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from bulkupdate.config import FailureBudget
from bulkupdate.models import RowStatus
from bulkupdate.report.stats import RunStats


class BudgetWatch:
    __slots__ = ("_budget", "_codes", "_failed_before", "_resolved_before")

    def __init__(
        self, budget: FailureBudget | None, totals_before: Mapping[RowStatus, int] | None
    ) -> None:
        before = totals_before or {}
        self._budget = budget
        self._failed_before = before.get(RowStatus.FAILED, 0)
        self._resolved_before = sum(before.values())
        self._codes: Counter[str] = Counter()  # this run's failures, for the message

    def failed(self, code: str | None, stats: RunStats) -> str | None:
        """Count one failed row (already in `stats`); why to stop, once the budget is spent."""
        self._codes[code or "?"] += 1
        budget = self._budget
        if budget is None:
            return None
        failed = self._failed_before + stats.failed
        resolved = self._resolved_before + stats.applied + stats.failed + stats.unchanged
        if not budget.exceeded(failed, resolved):
            return None
        common = ", ".join(f"{code} ({n:,})" for code, n in self._codes.most_common(3))
        return (
            f"failure budget exceeded (--max-failures {budget}): {failed:,} of {resolved:,} "
            f"rows failed; most common this run: {common}"
        )
