"""Sending one group: record it in the checkpoint, call BatchUpdateCase (again with the same
token after a throttle or a 5xx), and act on each case's answer; a group the service refuses as
a whole is split in two until the row that made it refuse goes alone, as UpdateCase.

Orchestration: sleeps only through the injected Clock; never imports the engine.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from bulkupdate.checkpoint.store import CheckpointStore
from bulkupdate.clock import Clock
from bulkupdate.errors import BatchRefusal, CallError, ErrorKind
from bulkupdate.fields.rows import Row
from bulkupdate.models import BatchOutcome, RowStatus
from bulkupdate.pacing.gate import SLOT_CHECK_S
from bulkupdate.pacing.retry import GiveUp, RetryPolicy
from bulkupdate.report.stats import RunStats
from bulkupdate.run.batch.batcher import Batcher, Hooks
from bulkupdate.run.batch.calls import GroupCall, group_call, new_token, recorded
from bulkupdate.run.batch.verdicts import Next, case_verdict, halves
from bulkupdate.run.cases import CasesApi
from bulkupdate.run.settings import EngineSettings


def batching(
    settings: EngineSettings,
    hooks: Hooks,
    api: CasesApi,
    store: CheckpointStore,
    clock: Clock,
    stats: RunStats,
) -> Batcher:
    """The batching stage of a run set to `--batch auto`, with its sender."""
    assert settings.batch is not None
    batcher = Batcher(settings, settings.batch, clock, hooks)
    batcher.sender = GroupSender(
        batcher,
        api=api,
        store=store,
        clock=clock,
        stats=stats,
        policy=RetryPolicy(max_attempts=settings.max_attempts),
        performed_by=settings.performed_by,
        rng=random.Random(),
    )
    return batcher


class GroupSender:
    __slots__ = (
        "_api",
        "_batcher",
        "_clock",
        "_hooks",
        "_performed_by",
        "_policy",
        "_random",
        "_stats",
        "_store",
    )

    def __init__(
        self,
        batcher: Batcher,
        *,
        api: CasesApi,
        store: CheckpointStore,
        clock: Clock,
        stats: RunStats,
        policy: RetryPolicy,
        performed_by: Mapping[str, str] | None,
        rng: random.Random,
    ) -> None:
        self._batcher = batcher
        self._hooks: Hooks = batcher.hooks
        self._api = api
        self._store = store
        self._clock = clock
        self._stats = stats
        self._policy = policy
        self._performed_by = performed_by
        self._random = rng

    async def send(self, rows: list[Row], sent_s: float) -> None:
        """Send `rows` (their slot granted at `sent_s`) until each row is resolved, back in the
        planner, or the run stops (then they stay pending)."""
        call, token = group_call(rows, self._performed_by), new_token()
        try:
            await self._store.record_group(recorded(token, call, rows))
        except Exception as error:  # noqa: BLE001 - not recorded: not sent; the rows wait
            self._hooks.tell("batch_not_recorded", {"cases": len(rows), "error": str(error)})
            for row in rows:
                self._batcher.add(row)
            return
        await self._until_answered(rows, call, token, sent_s)

    async def _until_answered(
        self, rows: list[Row], call: GroupCall, token: str, sent_s: float | None
    ) -> None:
        gate, hooks, stats = self._batcher.gate, self._hooks, self._stats
        failures = 0
        while not hooks.stopped():
            if sent_s is None:
                if not hooks.may_send():
                    await self._clock.sleep(SLOT_CHECK_S)
                    continue
                sent_s = await gate.pass_(hooks.stopped)
                if sent_s is None:
                    return
            stats.batch_calls += 1
            stats.batch_cases += len(rows)
            for row in rows:
                row.attempts += 1
            try:
                outcome = await call.send(self._api, token)
            except CallError as error:
                stats.record_latency(self._clock.now_s() - sent_s)
                if error.kind is ErrorKind.THROTTLED:
                    stats.batch_throttles += 1
                    gate.throttled(sent_s)
                    sent_s = None  # the same call, same token, at the next slot
                    continue
                if error.kind is ErrorKind.TRANSIENT:
                    failures += 1
                    decision = self._policy.decide(
                        error.kind, failures, error.retry_after_s, self._random.random()
                    )
                    if not isinstance(decision, GiveUp):
                        await self._clock.sleep(decision.delay_s)
                        sent_s = None
                        continue
                self._refused(rows, token, error)
                return
            stats.record_latency(self._clock.now_s() - sent_s)
            gate.accepted(sent_s)
            self._answered(rows, token, outcome)
            return

    def _answered(self, rows: list[Row], token: str, outcome: BatchOutcome) -> None:
        hooks, stats, now_s = self._hooks, self._stats, self._clock.now_s()
        stopping: CallError | None = None
        for row in rows:
            failure = outcome.failure(row.case_id)
            verdict = case_verdict(row, failure, self._policy, self._random.random())
            if verdict.next is Next.RESOLVED:
                assert verdict.outcome is not None
                if verdict.outcome.status is RowStatus.DONE:
                    stats.record_accept(now_s)
                    hooks.accepted(row)  # its before-images, with the outcome
                else:
                    stats.batch_cases_failed += 1
                hooks.resolve(verdict.outcome)
                self._batcher.advance(row.case_id)
            elif verdict.next is Next.AGAIN:
                assert failure is not None
                if failure.kind.value == ErrorKind.THROTTLED.value:
                    stats.case_throttles += 1
                else:
                    stats.case_retries += 1
                self._again(row, verdict.delay_s)
            else:  # systemic: the row stays pending
                assert failure is not None
                stopping = CallError(ErrorKind.SYSTEMIC, failure.code, failure.message)
        hooks.group_done(token)  # with the outcomes just resolved, in one commit
        if stopping is not None:
            hooks.stop_for(stopping)

    def _refused(self, rows: list[Row], token: str, error: CallError) -> None:
        """The whole call failed: nothing of it was applied (or 5xx until the attempts ran
        out, then the rows fail as UpdateCase rows would)."""
        hooks = self._hooks
        if error.kind is ErrorKind.SYSTEMIC:
            hooks.group_done(token)
            hooks.stop_for(error)
            return
        if error.kind is ErrorKind.TRANSIENT:  # every attempt failed: the rows fail
            message = f"{error.code}: {error.message}"
            for row in rows:
                hooks.resolve(row.outcome(RowStatus.FAILED, "retries_exhausted", message))
                self._batcher.advance(row.case_id)
            hooks.group_done(token)
            return
        hooks.group_done(token)
        reason = error.batch_refusal
        if reason is BatchRefusal.UNSUPPORTED:
            hooks.tell("batch_unsupported", {"code": error.code, "message": error.message})
            for row in rows:
                self._batcher.add(row, alone=True)
            self._batcher.unsupported()
            return
        # INVALID (or a token clash): one row, or the patch, is wrong. Split until it is found.
        self._stats.groups_split += 1
        hooks.tell(
            "batch_refused", {"cases": len(rows), "code": error.code, "message": error.message}
        )
        for half in halves(rows):
            if len(half) == 1:
                self._batcher.add(half[0], alone=True)
            elif half:
                self._batcher.sender_task(self._split, half)

    async def _split(self, rows: list[Row]) -> None:
        """Half of a refused group, sent on its own (never merged with other rows)."""
        call = group_call(rows, self._performed_by)
        token = new_token()
        try:
            await self._store.record_group(recorded(token, call, rows))
        except Exception:  # noqa: BLE001 - not recorded: its rows go alone
            for row in rows:
                self._batcher.add(row, alone=True)
            return
        await self._until_answered(rows, call, token, None)

    def _again(self, row: Row, delay_s: float) -> None:
        if delay_s <= 0:
            self._batcher.add(row)
        else:
            self._batcher.sender_task(self._later, row, delay_s)

    async def _later(self, row: Row, delay_s: float) -> None:
        await self._clock.sleep(delay_s)
        if not self._hooks.stopped():
            self._batcher.add(row)
