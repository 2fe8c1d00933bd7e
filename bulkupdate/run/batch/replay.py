"""Groups a killed run recorded and may have sent: sent again first, with the same token and
the same request, so the service answers the first call's outcome instead of applying it twice
(while it still knows the token). Then, as the input is read again, a member it applied counts
as done without a call, unless an earlier row of its case goes out again in this run: that one
lands after it, so the member is sent again too, and its case ends on its last row.

Orchestration: sleeps only through the injected Clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bulkupdate.checkpoint.store import RecordedGroup
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.rows import Row
from bulkupdate.models import Outcome, RowStatus
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.report.stats import RunStats
from bulkupdate.run.batch.batcher import Batcher
from bulkupdate.run.batch.calls import GroupCall
from bulkupdate.run.cases import CasesApi


@dataclass(slots=True)
class Replayed:
    """What the re-sent groups applied: member offsets by case, and the groups' tokens."""

    done: dict[int, str] = field(default_factory=dict)  # offset -> case id
    tokens: list[str] = field(default_factory=list)
    _cases: set[str] = field(default_factory=set)
    _resent: set[str] = field(default_factory=set)  # cases with a row going out this run

    def applied(self, group: RecordedGroup, case_ids: tuple[str, ...]) -> None:
        ok = set(case_ids)
        for member in group.members:
            if member.case_id in ok:
                self.done[member.offset] = member.case_id
                self._cases.add(member.case_id)

    def sort(self, item: Row | Outcome) -> Row | Outcome:
        """`item` as this run must treat it, read in input order: a member applied by the
        re-sent group is DONE without a call, unless an earlier row of its case was read."""
        case_id = item.case_id
        if case_id not in self._cases:
            return item
        if isinstance(item, Row) and item.offset in self.done and case_id not in self._resent:
            item.attempts = 1
            return item.outcome(RowStatus.DONE)
        self._resent.add(case_id)
        return item


async def replay(
    groups: list[RecordedGroup], batcher: Batcher, api: CasesApi, stats: RunStats
) -> tuple[Replayed, CallError | None]:
    """Send each recorded group again, in the order recorded, through the batch gate. A
    systemic error stops it (and is returned); a group that cannot be sent leaves its rows to
    be sent as any other."""
    replayed = Replayed()
    if groups:
        batcher.hooks.tell("batch_replaying", {"groups": len(groups)})
    gate, clock, stopped = batcher.gate, batcher.clock, batcher.hooks.stopped
    policy, rng = RetryPolicy(), random.Random()
    for group in groups:
        replayed.tokens.append(group.token)
        call = GroupCall.from_json(group.call)
        failures = 0
        while not stopped():
            sent_s = await gate.pass_(stopped)
            if sent_s is None:
                break
            stats.batch_calls += 1
            stats.batch_cases += len(call.case_ids)
            stats.groups_replayed += 1
            try:
                outcome = await call.send(api, group.token)
            except CallError as error:
                if error.kind is ErrorKind.SYSTEMIC:
                    return replayed, error
                if error.kind is ErrorKind.THROTTLED:
                    gate.throttled(sent_s)
                    continue
                failures += 1
                decision = policy.decide(error.kind, failures, error.retry_after_s, rng.random())
                if isinstance(decision, GiveUp):
                    break
                await clock.sleep(decision.delay_s)
                continue
            gate.accepted(sent_s)
            replayed.applied(group, outcome.succeeded)
            for _ in outcome.succeeded:
                stats.record_accept(clock.now_s())
            break
    return replayed, None
