"""What one run of the engine is set to: pacing, retries, stopping, shard, settle and outage
rules, the failure budget. Derived from the run's configuration by `startup`.

Plain data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bulkupdate.config import FailureBudget
from bulkupdate.models import Shard
from bulkupdate.pacing.outage import OutageRule


@dataclass(frozen=True, slots=True)
class EngineSettings:
    concurrency: int
    rate_per_s: float  # the ceiling: --rate, or this shard's part of it
    burst: int
    max_attempts: int
    grace_period_s: float
    flush_interval_s: float
    performed_by: dict[str, str] | None = None
    max_pending_rows: int = 0  # read-ahead cap; 0 = derived from concurrency
    shard: Shard | None = None  # apply only the rows of this shard's cases
    # A call whose outcome is unknown may land this long after it was sent: its case waits.
    settle_period_s: float = 120.0
    outage_timeout_s: float = 300.0  # an outage this long stops the run (rows stay pending)
    outage_rule: OutageRule = field(default_factory=OutageRule)
    # Commits failing for this long (and MAX_FAILED_COMMITS times) stop the run; sending waits.
    commit_patience_s: float = 30.0
    failure_budget: FailureBudget | None = None  # failed rows (job-wide) that stop the run
    headroom: float = 0.0  # part of the rate left to others sharing the quota (0.2: 20%)
    before_images: bool = False  # read each row's fields with GetCase before sending it
    read_rate_per_s: float = 4.0  # GetCase's ceiling (this shard's part); headroom applies
    read_burst: int = 10
    # BatchUpdateCase: None sends every row as UpdateCase; else its own pacing and group size.
    batch: BatchSettings | None = None


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How rows with the same patch go together (`--batch auto`)."""

    size: int = 100  # cases per BatchUpdateCase call
    rate_per_s: float = 2.0  # BatchUpdateCase's ceiling, or this shard's part of it
    burst: int = 2
