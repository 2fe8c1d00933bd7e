"""Which keys to search next and what each answer decides: batches of up to 10 distinct keys
(one SearchCases `orAll` of `equalTo`), the cases found matched back to their keys, a key that
matched nothing searched once more after a delay (the index lags behind writes), and the final
word on each key: its case, no case, or several (ambiguous).

Pure: no I/O, no sleeping; the caller passes the time in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from bulkupdate.lookup.keys import canonical
from bulkupdate.models import FoundCase, KeyResolution, WireValue

BATCH_KEYS = 10  # SearchCases' orAll takes at most 10 filters


class LookupPlan:
    """The keys of one run: known (final), queued for a first search, in a search, or waiting
    for their one delayed retry."""

    __slots__ = (
        "_due",
        "_queued",
        "_retried",
        "_searching",
        "_values",
        "errors",
        "field_id",
        "known",
        "retry_after_s",
    )

    def __init__(
        self,
        field_id: str,
        known: Mapping[str, tuple[str, ...]] | None = None,
        *,
        retry_after_s: float = 0.0,
    ) -> None:
        self.field_id = field_id
        self.retry_after_s = retry_after_s  # 0: a key that matched nothing fails at once
        self.known: dict[str, tuple[str, ...]] = dict(known or {})  # key -> its case ids
        self.errors: dict[str, str] = {}  # key -> why its search was refused
        self._values: dict[str, WireValue] = {}  # what to send for keys not yet final
        self._queued: dict[str, None] = {}  # first searches, in the order keys were met
        self._searching: set[str] = set()
        self._due: list[tuple[float, str]] = []  # (due time, key): heap of delayed retries
        self._retried: set[str] = set()

    def want(self, key: str, value: WireValue) -> None:
        """A row names `key`: search it unless it is known or on its way."""
        if key in self.known or key in self.errors or key in self._values:
            return
        self._values[key] = value
        self._queued[key] = None

    def final(self, key: str) -> bool:
        return key in self.known or key in self.errors

    @property
    def queued(self) -> int:
        return len(self._queued)

    def next_due_s(self) -> float | None:
        """When the earliest delayed retry is due; None when none waits."""
        return self._due[0][0] if self._due else None

    def next_batch(self, now_s: float, *, partial: bool) -> list[tuple[str, WireValue]]:
        """Up to BATCH_KEYS keys to search now, due retries first. Fewer than that only when
        `partial` (no more keys are coming soon) or a retry is due; else none."""
        batch: list[str] = []
        while self._due and self._due[0][0] <= now_s and len(batch) < BATCH_KEYS:
            batch.append(heapq.heappop(self._due)[1])
        if not batch and not partial and len(self._queued) < BATCH_KEYS:
            return []
        for key in list(self._queued)[: BATCH_KEYS - len(batch)]:
            del self._queued[key]
            batch.append(key)
        self._searching.update(batch)
        return [(key, self._values[key]) for key in batch]

    def again(self, keys: Iterable[str]) -> None:
        """The search of `keys` did not answer (throttled, stopped): search them again first."""
        keys = [k for k in keys if k in self._searching]
        self._searching.difference_update(keys)
        self._queued = {**dict.fromkeys(keys), **self._queued}

    def refused(self, keys: Iterable[str], reason: str) -> None:
        """The service refused the search of `keys` for good: their rows fail with `reason`."""
        for key in keys:
            self._searching.discard(key)
            self._values.pop(key, None)
            self.errors[key] = reason

    def found(
        self, keys: Sequence[str], cases: Iterable[FoundCase], now_s: float
    ) -> list[KeyResolution]:
        """What the search of `keys` returned (every page): the keys it settles, each with its
        cases. A key that matched nothing waits for its one retry when retries are on."""
        matched = match_back(keys, cases)
        settled: list[KeyResolution] = []
        for key in keys:
            self._searching.discard(key)
            case_ids = matched.get(key, ())
            if not case_ids and self.retry_after_s > 0 and key not in self._retried:
                self._retried.add(key)
                heapq.heappush(self._due, (now_s + self.retry_after_s, key))
                continue
            self._values.pop(key, None)
            self.known[key] = case_ids
            settled.append(KeyResolution(self.field_id, key, case_ids))
        return settled


def match_back(keys: Sequence[str], cases: Iterable[FoundCase]) -> dict[str, tuple[str, ...]]:
    """Each key's cases, by the value each case holds: exactly, or when no key is exactly it,
    the one key equal to it in any case (should the service compare text without case)."""
    exact = set(keys)
    folded: dict[str, list[str]] = {}
    for key in keys:
        folded.setdefault(key.casefold(), []).append(key)
    matched: dict[str, list[str]] = {}
    for case in cases:
        value = canonical(case.value)
        if value is None:
            continue
        near = folded.get(value.casefold(), [])
        owner = value if value in exact else near[0] if len(near) == 1 else None
        if owner is not None and case.case_id not in matched.setdefault(owner, []):
            matched[owner].append(case.case_id)
    return {key: tuple(ids) for key, ids in matched.items()}
