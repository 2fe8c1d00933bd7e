"""Server-side request quotas: one token bucket per operation, as Connect Cases enforces them.

Pure: the caller passes the time in. No I/O, no sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quota:
    """Steady rate and bucket size (burst) of one operation's account-wide bucket."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("a quota needs rate_per_s > 0 and burst >= 1")


# AWS's defaults ("Connect Customer Cases API throttling quotas", see CONNECT-CASES-FACTS §1.1).
DEFAULT_QUOTAS: Mapping[str, Quota] = {
    "UpdateCase": Quota(2, 2),
    # Not published where we can read it (FACTS §7.2): assumed as UpdateCase's until known.
    "BatchUpdateCase": Quota(2, 2),
    "CreateCase": Quota(2, 10),
    "SearchCases": Quota(2, 10),
    "ListTemplates": Quota(2, 10),
    "GetCase": Quota(4, 10),
    "CreateField": Quota(2, 5),
    "ListFields": Quota(2, 5),
    "BatchPutFieldOptions": Quota(2, 5),
    "CreateDomain": Quota(2, 5),
    "GetDomain": Quota(2, 5),
    "ListDomains": Quota(2, 5),
    "CreateTemplate": Quota(2, 5),
    "BatchGetField": Quota(8, 25),
    "ListFieldOptions": Quota(6, 16),
}


class Bucket:
    """A token bucket that starts full; an admitted request takes one token, a refused one none."""

    __slots__ = ("_quota", "_tokens", "_updated_s")

    def __init__(self, quota: Quota, now_s: float) -> None:
        self._quota = quota
        self._tokens = float(quota.burst)
        self._updated_s = now_s

    def try_take(self, now_s: float) -> bool:
        quota = self._quota
        elapsed_s = max(0.0, now_s - self._updated_s)
        self._tokens = min(float(quota.burst), self._tokens + elapsed_s * quota.rate_per_s)
        self._updated_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class QuotaTable:
    """The buckets of one emulated account and Region. An operation mapped to None is unlimited."""

    __slots__ = ("_buckets", "limits")

    def __init__(self, limits: Mapping[str, Quota | None], now_s: float) -> None:
        self.limits = dict(limits)
        self._buckets = {
            operation: Bucket(quota, now_s)
            for operation, quota in self.limits.items()
            if quota is not None
        }

    def admit(self, operation: str, now_s: float) -> bool:
        bucket = self._buckets.get(operation)
        return bucket is None or bucket.try_take(now_s)
