"""The checkpoint seam: what a job has resolved, committed in whole batches so a killed run resumes.

Owns the `CheckpointStore` Protocol, its plain types and errors, and the helpers both stores share.
Knows outcomes and byte offsets only: no reading of input, no network, no sleeping.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from bulkupdate.checkpoint.images import FieldImage, ImageChange
from bulkupdate.errors import BulkUpdateError
from bulkupdate.models import KeyResolution, Outcome, ResumePoint, RowStatus

__all__ = [
    "DYNAMODB",
    "END_STATES",
    "CheckpointBusyError",
    "CheckpointError",
    "CheckpointStore",
    "FingerprintMismatchError",
    "GroupMember",
    "JobIdentity",
    "JobStatus",
    "RecordedGroup",
    "ResumeState",
    "RunRecord",
    "RunState",
]


DYNAMODB = "dynamodb://"  # the --checkpoint scheme of the DynamoDB store (bulkupdate.aws)
UTF8 = "utf-8"
_ENCODING_MARK = ";encoding="


class RunState(StrEnum):
    RUNNING = "running"  # open, or its process died without saying (see CRASHED)
    FINISHED = "finished"  # read the whole input
    INTERRUPTED = "interrupted"  # stopped on a signal; resumable
    ABORTED = "aborted"  # stopped by a fatal error (e.g. access denied); resumable once fixed
    CRASHED = "crashed"  # stored as running, but no live process holds the store


END_STATES = frozenset({RunState.FINISHED, RunState.INTERRUPTED, RunState.ABORTED})


@dataclass(frozen=True, slots=True)
class JobIdentity:
    """Which job a checkpoint belongs to. Equal when name, fingerprint, format and encoding are.

    The fingerprint names the input's bytes, whatever their encoding; the encoding is apart:
    the same bytes decoded otherwise are other values, so a job resumes only with its own.
    """

    name: str
    input_path: str = field(compare=False)  # display only: the same input may move
    fingerprint: str  # opaque, computed by the caller from the input's content
    format: str  # "csv" or "jsonl": the same bytes framed differently are different records
    encoding: str = UTF8  # the input's text encoding, as Python names it ("cp1252")

    @property
    def stored_format(self) -> str:
        """`format` and `encoding` as a checkpoint keeps them: "csv" for UTF-8 (as every
        checkpoint made before --encoding holds it), else "csv;encoding=cp1252"."""
        if self.encoding == UTF8:
            return self.format
        return f"{self.format}{_ENCODING_MARK}{self.encoding}"

    @classmethod
    def from_stored(
        cls, name: str, input_path: str, fingerprint: str, stored_format: str
    ) -> JobIdentity:
        """The identity a checkpoint keeps, its `stored_format` split again."""
        fmt, _, encoding = stored_format.partition(_ENCODING_MARK)
        return cls(name, input_path, fingerprint, fmt, encoding or UTF8)

    def differences(self, other: JobIdentity) -> tuple[str, ...]:
        """What differs from `other` (this one's value first), in words. Empty when equal."""
        pairs = [
            ("job name", self.name, other.name),
            ("input fingerprint", self.fingerprint, other.fingerprint),
            ("input format", self.format, other.format),
            ("input encoding", self.encoding, other.encoding),
        ]
        return tuple(f"{what} differs ({a!r}, now {b!r})" for what, a, b in pairs if a != b)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What `open` hands the engine: start reading at `resume_point` and skip `resolved_offsets`."""

    resume_point: ResumePoint
    resolved_offsets: frozenset[int]  # resolved records at or after resume_point.offset
    totals: Mapping[RowStatus, int]  # rows resolved per status over the whole job; exact
    counters: Mapping[str, int]  # the engine's own counters as last committed
    runs: int  # runs of this job so far, counting the one `open` just started


@dataclass(frozen=True, slots=True)
class RunRecord:
    number: int  # 1 for a job's first run
    state: RunState
    pid: int
    started_at: datetime
    ended_at: datetime | None
    summary: Mapping[str, Any]  # what finish_run was given, as JSON gave it back


@dataclass(frozen=True, slots=True)
class JobStatus:
    job: JobIdentity
    resume_point: ResumePoint
    totals: Mapping[RowStatus, int]
    counters: Mapping[str, int]
    runs: int
    last_run: RunRecord | None
    created_at: datetime
    updated_at: datetime  # the last commit, or when the job was created
    # Resolved records at or after resume_point.offset: with it, what a resume would pass over.
    resolved_offsets: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A row in a recorded BatchUpdateCase call."""

    offset: int
    line: int
    case_id: str


@dataclass(frozen=True, slots=True)
class RecordedGroup:
    """A BatchUpdateCase call recorded before it was sent, so that a run that follows a crash
    sends it again first, with the same token and the same request: while the service still
    knows the token it answers the first call's outcome and applies nothing twice."""

    token: str  # the call's clientToken
    call: Mapping[str, Any]  # its parameters as the engine passed them (JSON-able)
    members: tuple[GroupMember, ...]

    def to_json(self) -> dict[str, Any]:
        members = [[m.offset, m.line, m.case_id] for m in self.members]
        return {"token": self.token, "call": dict(self.call), "members": members}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedGroup:
        members = tuple(GroupMember(int(o), int(n), str(c)) for o, n, c in data["members"])
        return cls(str(data["token"]), dict(data["call"]), members)


class CheckpointError(BulkUpdateError):
    """A checkpoint that cannot be used: not a checkpoint, from a newer version, unreadable."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"checkpoint {location}: {message}")
        self.location = location
        self.message = message


class FingerprintMismatchError(CheckpointError):
    """The checkpoint belongs to another job or another input: what differs, and what to do."""

    def __init__(self, location: str, stored: JobIdentity, given: JobIdentity) -> None:
        self.stored = stored
        self.given = given
        self.differences = stored.differences(given)
        held = f"holds job {stored.name!r} for {stored.input_path}"
        if (stored.name, stored.input_path) != (given.name, given.input_path):
            held += f", not job {given.name!r} for {given.input_path}"
        elif stored.fingerprint != given.fingerprint:  # say so: the names alone look the same
            held += " with other data than this run reads"
        super().__init__(
            location,
            f"{held}: {'; '.join(self.differences)}. {_mismatch_fix(location, stored, given)}",
        )


def _mismatch_fix(location: str, stored: JobIdentity, given: JobIdentity) -> str:
    restart = (
        f"pass --restart to discard job {stored.name!r} and start over (every row is sent again)"
    )
    if (stored.name, stored.fingerprint) == (given.name, given.fingerprint):  # how it is read
        flags = []
        if stored.format != given.format:
            flags.append(f"--format {stored.format}")
        if stored.encoding != given.encoding:
            flags.append(f"--encoding {stored.encoding}")
        return f"To resume the job, run it with {' '.join(flags)}; or {restart}."
    own = "a job_name of its own" if location.startswith(DYNAMODB) else "--checkpoint PATH"
    what = "this input" if stored.name == given.name else f"job {given.name!r}"
    return (
        f"To run {what} as a job of its own, give it its own checkpoint ({own}); "
        f"to run it in place of job {stored.name!r}, {restart}."
    )


class CheckpointBusyError(CheckpointError):
    """Another live run holds the checkpoint; two runs of one job would send rows twice."""


class CheckpointStore(Protocol):
    """Where a job's progress lives. One open run at a time; every write is one transaction."""

    async def open(self, job: JobIdentity, *, restart: bool) -> ResumeState:
        """Create the store if missing, start a run, return where to resume.

        Raises FingerprintMismatchError if it holds another job, unless `restart`: then
        everything is wiped (even for the same job) and the job starts from the beginning.
        """
        ...

    async def commit(
        self,
        outcomes: Sequence[Outcome],
        resume_point: ResumePoint,
        counters: Mapping[str, int],
        images: Sequence[ImageChange] = (),
        *,
        groups_done: Sequence[str] = (),
    ) -> None:
        """Record a batch atomically, and forget the recorded groups named in `groups_done`
        (tokens; unknown ones are ignored) in the same write. An offset's first committed
        outcome is final: later ones, and any below the committed resume point, are ignored and
        not counted. `resume_point` may not move backwards. `counters` replace the stored
        values of the names they hold. `images` are merged into the before-images in their
        order (`FieldImage.merged`): a field's first `before` stays; re-recording the same
        changes leaves the same images.

        A commit that raised CheckpointError may have been recorded or not (a remote store can
        lose the answer to a write that landed). The caller keeps the batch and commits it
        again, with the outcomes resolved since appended and its current resume point, as often
        as it takes: once one succeeds, every outcome of the batch is recorded exactly once. A
        store refuses such a retry only when this run can no longer be sure it alone writes the
        checkpoint (another run took it over)."""
        ...

    async def record_group(self, group: RecordedGroup) -> None:
        """Record a BatchUpdateCase call before it is sent (one write). Raises CheckpointError
        when that failed: the call must then not be sent."""
        ...

    async def recorded_groups(self) -> list[RecordedGroup]:
        """The groups recorded and not yet forgotten, in the order they were recorded. `open`
        first; --restart forgets them all."""
        ...

    def failed_rows(self) -> AsyncIterator[Outcome]:
        """Every failed row of the job, by offset, with its raw bytes, code and message."""
        ...

    async def record_keys(self, resolutions: Sequence[KeyResolution]) -> None:
        """Keep what searches found for keys of the match field (`--match-field`), so a resumed
        run does not search them again. A key recorded before keeps its first answer. Needs an
        open run; `--restart` forgets them with the rest of the job."""
        ...

    async def resolved_keys(self, field_id: str) -> Mapping[str, tuple[str, ...]]:
        """Every key of `field_id` recorded for the job, with its case ids (none: no case matched;
        several: ambiguous). Needs an open run."""
        ...

    async def status(self) -> JobStatus:
        """The job's progress; works without `open` and never starts a run."""
        ...

    def images(self) -> AsyncIterator[FieldImage]:
        """Every before-image of the job, by case id then field id; works without `open`."""
        ...

    def hold_left_s(self) -> float:
        """How long this run surely still holds the checkpoint, in seconds: `math.inf` for a
        store held as long as its process lives, 0.0 once the hold may have lapsed (a shared
        store's lease not renewed in time). The engine sends nothing while it is 0: another
        run may have taken the job over."""
        ...

    async def finish_run(self, end_state: str, summary: Mapping[str, Any]) -> None:
        """End the open run as one of END_STATES with a JSON-able summary."""
        ...

    async def close(self) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def fresh_outcomes(outcomes: Iterable[Outcome], floor_offset: int) -> list[Outcome]:
    """The batch's first outcome per offset, dropping offsets below the stored resume point:
    those are resolved already, and may no longer be stored individually to compare against."""
    seen: set[int] = set()
    fresh: list[Outcome] = []
    for outcome in outcomes:
        if outcome.offset >= floor_offset and outcome.offset not in seen:
            seen.add(outcome.offset)
            fresh.append(outcome)
    return fresh


def check_resume_point(stored: ResumePoint, new: ResumePoint) -> None:
    if new.offset < 0 or new.line < 1:
        raise ValueError(f"bad resume point: offset {new.offset}, line {new.line}")
    if new.offset < stored.offset:
        raise ValueError(
            f"resume point moved backwards: offset {new.offset} < committed {stored.offset}"
        )


def check_end_state(end_state: str) -> RunState:
    if end_state not in END_STATES:
        raise ValueError(f"end state must be one of {sorted(END_STATES)}, not {end_state!r}")
    return RunState(end_state)


def summary_json(summary: Mapping[str, Any]) -> str:
    # default=str so datetimes, paths and enums in a summary never lose a run's ending.
    return json.dumps(dict(summary), sort_keys=True, default=str)


def all_totals(stored: Mapping[str, int]) -> dict[RowStatus, int]:
    totals = dict.fromkeys(RowStatus, 0)
    totals.update((RowStatus(status), rows) for status, rows in stored.items())
    return totals
