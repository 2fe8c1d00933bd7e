"""What SearchCases reads: a search index that lags behind writes. With a lag, each case is seen
as it was `lag_s` ago (a case created since is not found at all; one changed since is found by
its old values), as the service's index, fed from its write path, shows it.

Pure: no I/O; the caller passes the time in. Keeps only the versions a search can still see.
"""

from __future__ import annotations

import math
from collections import deque

from bulkupdate.emulator.records import CaseRecord, Union

Values = dict[str, Union]
# A case's values at each write still within the lag, oldest first; None: not yet created.
_Versions = deque[tuple[float, Values | None]]


class SearchIndex:
    __slots__ = ("_versions", "lag_s")

    def __init__(self, lag_s: float = 0.0) -> None:
        self.lag_s = lag_s
        self._versions: dict[tuple[str, str], _Versions] = {}

    def changing(self, domain_id: str, case: CaseRecord) -> None:
        """Call before changing a case: until the change reaches the index, it shows the case's
        values as they are now (unless an earlier change is still on its way)."""
        if self.lag_s > 0 and (domain_id, case.case_id) not in self._versions:
            self._versions[(domain_id, case.case_id)] = deque([(-math.inf, dict(case.values))])

    def changed(self, domain_id: str, case: CaseRecord, now_s: float) -> None:
        """`case` was just created or changed: the index sees it as it is now `lag_s` later."""
        if self.lag_s <= 0:
            return
        # A case created now has no earlier version: the index shows no such case until then.
        versions = self._versions.setdefault((domain_id, case.case_id), deque([(-math.inf, None)]))
        versions.append((now_s, dict(case.values)))

    def values(self, domain_id: str, case: CaseRecord, now_s: float) -> Values | None:
        """The case's values as the index shows them now; None when it shows no such case."""
        versions = self._versions.get((domain_id, case.case_id))
        if versions is None:
            return case.values
        seen_until_s = now_s - self.lag_s
        while len(versions) > 1 and versions[1][0] <= seen_until_s:
            versions.popleft()  # an older version no search can see any more
        if len(versions) == 1 and versions[0][0] <= seen_until_s and versions[0][1] is not None:
            del self._versions[(domain_id, case.case_id)]  # caught up: read the case itself
            return case.values
        return versions[0][1]
