"""The in-memory `CheckpointStore`: the Protocol's semantics in a few dicts, for engine tests.

Holds state in this process only: no files, no network, no sleeping.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import Any

import anyio.lowlevel

from bulkupdate.checkpoint.images import FieldImage, ImageChange
from bulkupdate.checkpoint.store import (
    CheckpointError,
    FingerprintMismatchError,
    JobIdentity,
    JobStatus,
    RecordedGroup,
    ResumeState,
    RunRecord,
    RunState,
    all_totals,
    check_end_state,
    check_resume_point,
    fresh_outcomes,
    summary_json,
    utc_now,
)
from bulkupdate.models import KeyResolution, Outcome, ResumePoint, RowStatus

__all__ = ["MemoryCheckpointStore", "Outage"]


class Outage(Enum):
    """How commits fail while a test sets `MemoryCheckpointStore.outage`, as a remote store's
    would: the write is lost on the way, or it is recorded and its answer is lost."""

    UNSENT = "the commit did not reach the store; nothing was recorded"
    UNANSWERED = "the commit was recorded, but its answer was lost"


class MemoryCheckpointStore:
    """The Protocol's semantics in a few dicts, for engine tests. State survives close/open of
    the same instance; a run left open at close() shows as crashed, like a killed process."""

    __slots__ = (
        "_counters",
        "_created_at",
        "_groups",
        "_images",
        "_is_open",
        "_job",
        "_keys",
        "_now",
        "_outcomes",
        "_resume_point",
        "_runs",
        "_totals",
        "_updated_at",
        "outage",
    )

    def __init__(self, *, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self._is_open = False
        self._job: JobIdentity | None = None
        self._resume_point = ResumePoint()
        self._outcomes: dict[
            int, Outcome
        ] = {}  # failed rows, and done rows at/after the resume point
        self._totals: dict[RowStatus, int] = all_totals({})
        self._counters: dict[str, int] = {}
        self._groups: dict[str, RecordedGroup] = {}  # by token, in recording order
        self._keys: dict[tuple[str, str], tuple[str, ...]] = {}  # (field id, key) -> case ids
        self._runs: list[RunRecord] = []
        self._images: dict[tuple[str, str], FieldImage] = {}
        self._created_at = self._updated_at = now()
        self.outage: Outage | None = None  # set by a test: every commit fails until cleared

    def hold_left_s(self) -> float:
        return math.inf if self._is_open else 0.0

    async def open(self, job: JobIdentity, *, restart: bool) -> ResumeState:
        await anyio.lowlevel.checkpoint()
        if self._is_open:
            raise RuntimeError("checkpoint store is already open")
        if self._job is not None and self._job != job and not restart:
            raise FingerprintMismatchError("memory", self._job, job)
        if self._job is None or restart:
            self._job = job
            self._resume_point = ResumePoint()
            self._outcomes = {}
            self._totals = all_totals({})
            self._counters = {}
            self._groups = {}
            self._keys = {}
            self._runs = []
            self._images = {}
            self._created_at = self._updated_at = self._now()
        self._runs = [
            replace(run, state=RunState.CRASHED) if run.state is RunState.RUNNING else run
            for run in self._runs
        ]
        run = RunRecord(len(self._runs) + 1, RunState.RUNNING, os.getpid(), self._now(), None, {})
        self._runs.append(run)
        self._is_open = True
        return ResumeState(
            resume_point=self._resume_point,
            resolved_offsets=frozenset(o for o in self._outcomes if o >= self._resume_point.offset),
            totals=dict(self._totals),
            counters=dict(self._counters),
            runs=len(self._runs),
        )

    async def commit(
        self,
        outcomes: Sequence[Outcome],
        resume_point: ResumePoint,
        counters: Mapping[str, int],
        images: Sequence[ImageChange] = (),
        *,
        groups_done: Sequence[str] = (),
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_running()
        if self.outage is Outage.UNSENT:
            raise CheckpointError("memory", self.outage.value)
        check_resume_point(self._resume_point, resume_point)
        for outcome in fresh_outcomes(outcomes, self._resume_point.offset):
            if outcome.offset not in self._outcomes:
                self._outcomes[outcome.offset] = outcome
                self._totals[outcome.status] += 1
        self._outcomes = {
            offset: outcome
            for offset, outcome in self._outcomes.items()
            if outcome.status != RowStatus.DONE or offset >= resume_point.offset
        }
        self._resume_point = resume_point
        self._counters.update(counters)
        for change in images:
            key = (change.case_id, change.field_id)
            image = self._images.get(key)
            self._images[key] = image.merged(change) if image else FieldImage.first(change)
        for token in groups_done:
            self._groups.pop(token, None)
        self._updated_at = self._now()
        if self.outage is Outage.UNANSWERED:
            raise CheckpointError("memory", self.outage.value)

    async def record_group(self, group: RecordedGroup) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_running()
        if self.outage is Outage.UNSENT:
            raise CheckpointError("memory", self.outage.value)
        self._groups[group.token] = RecordedGroup.from_json(json.loads(json.dumps(group.to_json())))
        if self.outage is Outage.UNANSWERED:
            raise CheckpointError("memory", self.outage.value)

    async def recorded_groups(self) -> list[RecordedGroup]:
        await anyio.lowlevel.checkpoint()
        return list(self._groups.values())

    async def failed_rows(self) -> AsyncIterator[Outcome]:
        await anyio.lowlevel.checkpoint()
        if self._job is None:
            raise CheckpointError("memory", "holds no job yet")
        failed = [o for o in self._outcomes.values() if o.status == RowStatus.FAILED]
        for outcome in sorted(failed, key=lambda o: o.offset):
            yield outcome

    async def record_keys(self, resolutions: Sequence[KeyResolution]) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_running()
        for found in resolutions:
            self._keys.setdefault((found.field_id, found.key), found.case_ids)

    async def resolved_keys(self, field_id: str) -> Mapping[str, tuple[str, ...]]:
        await anyio.lowlevel.checkpoint()
        self._check_running()
        return {key: ids for (field, key), ids in self._keys.items() if field == field_id}

    async def status(self) -> JobStatus:
        await anyio.lowlevel.checkpoint()
        if self._job is None:
            raise CheckpointError("memory", "holds no job yet")
        last_run = self._runs[-1] if self._runs else None
        if last_run is not None and last_run.state is RunState.RUNNING and not self._is_open:
            last_run = replace(last_run, state=RunState.CRASHED)
        return JobStatus(
            job=self._job,
            resume_point=self._resume_point,
            totals=dict(self._totals),
            counters=dict(self._counters),
            runs=len(self._runs),
            last_run=last_run,
            created_at=self._created_at,
            updated_at=self._updated_at,
            resolved_offsets=frozenset(o for o in self._outcomes if o >= self._resume_point.offset),
        )

    async def images(self) -> AsyncIterator[FieldImage]:
        await anyio.lowlevel.checkpoint()
        if self._job is None:
            raise CheckpointError("memory", "holds no job yet")
        for key in sorted(self._images):
            yield self._images[key]

    async def finish_run(self, end_state: str, summary: Mapping[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()
        state = check_end_state(end_state)
        self._check_running()
        run = self._runs[-1]
        self._runs[-1] = replace(
            run, state=state, ended_at=self._now(), summary=json.loads(summary_json(summary))
        )

    async def close(self) -> None:
        await anyio.lowlevel.checkpoint()
        self._is_open = False

    def _check_running(self) -> None:
        if not self._is_open:
            raise RuntimeError("checkpoint store is not open")
        if self._runs[-1].state is not RunState.RUNNING:
            raise RuntimeError(f"run already ended as {self._runs[-1].state}")
