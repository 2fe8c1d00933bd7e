"""`bulkupdate undo`: puts back, for every case and field a job changed, the value it held before
the job. A plan first reads each case (paced at GetCase's quota): a field still holding what the
job wrote is restored; one changed since (by a person or another process) is left alone and
reported, unless --force. The restores are then a job of their own, an input in the API's
shape run by the engine: paced, resumable, with its own checkpoint and failures file.

Orchestration: the plan is written case by case, so a killed undo goes on where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from bulkupdate.checkpoint.images import EMPTY, FieldImage
from bulkupdate.checkpoint.store import DYNAMODB
from bulkupdate.config import RunConfig, resolve
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK
from bulkupdate.fields.compare import holds
from bulkupdate.models import FieldType, WireValue
from bulkupdate.report.progress import ProgressSink
from bulkupdate.run import job, signals
from bulkupdate.undo.jobimages import Target, cases_of, connect
from bulkupdate.undo.verify import DRIFT_COLUMNS, report_file

__all__ = ["UndoFiles", "plan_case", "undo"]

RESTORE, ALREADY, CHANGED, FAILED = "restore", "already", "changed_since_job", "failed"


@dataclass(frozen=True, slots=True)
class UndoFiles:
    """Where an undo keeps its plan, its input, its checkpoint, failures and report."""

    base: str  # e.g. out/orders.undo

    @classmethod
    def of(cls, target: Target, state_dir: str | None) -> UndoFiles:
        if target.checkpoint.startswith(DYNAMODB):
            folder, stem = Path(state_dir or "."), str(target.job)
        else:
            path = Path(target.checkpoint)
            folder, stem = Path(state_dir) if state_dir else path.parent, path.name.split(".")[0]
        return cls(str(folder / f"{stem}.undo"))

    @property
    def plan(self) -> str:
        return f"{self.base}.plan.jsonl"

    @property
    def input(self) -> str:
        return f"{self.base}.jsonl"

    @property
    def changed(self) -> str:
        return f"{self.base}.changed.csv"


def plan_case(
    case_id: str,
    images: list[FieldImage],
    values: Mapping[str, WireValue],
    types: Mapping[str, FieldType],
    *,
    force: bool,
) -> dict[str, Any]:
    """What undo does to one case: per field old (before the job), new (what it wrote), current
    and the action (restore, already, changed_since_job; forced changes are restored)."""
    fields = []
    for image in images:
        kind = types.get(image.field_id)
        current = values.get(image.field_id)
        if holds(kind, current, image.before):
            action = ALREADY
        elif any(holds(kind, current, written) for written in image.written()) or force:
            action = RESTORE
        else:
            action = CHANGED
        new = image.after if image.after is not None else image.pending
        field = {"id": image.field_id, "old": image.before, "new": new}
        field.update(current=current or EMPTY, action=action)
        fields.append(field)
    return {"caseId": case_id, "fields": fields}


async def make_plan(
    target: Target,
    path: str,
    *,
    force: bool,
    resume: bool,
    stopped: Callable[[], bool] = lambda: False,
) -> bool:
    """Read every changed case and write the plan, one line per case. With `resume`, cases a
    killed undo planned already (the file's complete lines) are not read again. False when
    `stopped()` turned true first: the lines so far stay for the next undo."""
    partial = f"{path}.partial"
    done = _planned(partial) if resume else set()
    Path(partial).parent.mkdir(parents=True, exist_ok=True)
    async with connect(target) as connection, aclosing(cases_of(target)) as cases:
        with open(partial, "a" if resume else "w", encoding="utf-8") as out:  # noqa: ASYNC230 - a line per GetCase (4/s)
            async for case_id, images in cases:
                images = [image for image in images if image.written()]
                if not images or case_id in done:
                    continue
                ids = [i.field_id for i in images]
                values = await connection.reads.read(case_id, ids, stopped)
                if values is None:
                    return False
                if isinstance(values, CallError):
                    if values.kind is ErrorKind.SYSTEMIC:
                        raise values
                    line = _failed_case(case_id, images, values)
                else:
                    line = plan_case(case_id, images, values, connection.types, force=force)
                out.write(json.dumps(line, sort_keys=True) + "\n")
                out.flush()
    os.replace(partial, path)
    return True


async def _plan_until_signal(target: Target, path: str, *, force: bool, resume: bool) -> bool:
    """make_plan, stopped between reads by SIGINT/SIGTERM (held by the caller): False then."""
    stop = anyio.Event()

    async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with signals.received() as received:
            task_status.started()
            async for _ in received:
                stop.set()
                return

    async with anyio.create_task_group() as group:
        await group.start(watch)
        complete = await make_plan(target, path, force=force, resume=resume, stopped=stop.is_set)
        group.cancel_scope.cancel()
    return complete


def _failed_case(case_id: str, images: list[FieldImage], error: CallError) -> dict[str, Any]:
    fields = [
        {"id": i.field_id, "old": i.before, "new": i.after, "current": None, "action": FAILED}
        for i in images
    ]
    return {"caseId": case_id, "fields": fields, "error": f"GetCase: {error}"}


def _planned(partial: str) -> set[str]:
    """Case ids of the complete lines of a plan a killed undo left; the torn last line is cut."""
    if not os.path.exists(partial):
        return set()
    done, good = set(), 0
    with open(partial, "rb") as handle:
        for line in handle:
            try:
                done.add(json.loads(line)["caseId"])
            except (ValueError, KeyError):
                break
            good += len(line)
    os.truncate(partial, good)
    return done


def write_restores(plan: str, files: UndoFiles) -> tuple[int, int, int]:
    """The undo's input (API shape, one line per case with fields to restore) and the report of
    fields left alone. Returns (cases to restore, fields left alone, cases that failed)."""
    cases = left = failed = 0
    with (
        open(plan, encoding="utf-8") as lines,
        open(files.input, "w", encoding="utf-8") as out,
        report_file(files.changed, DRIFT_COLUMNS) as report,
    ):
        for line in lines:
            planned = json.loads(line)
            failed += "error" in planned
            restores = [f for f in planned["fields"] if f["action"] == RESTORE]
            for field in planned["fields"]:
                if field["action"] in (CHANGED, FAILED):
                    left += 1
                    report.write(_left_alone(planned, field))
            if restores:
                cases += 1
                fields = [{"id": f["id"], "value": f["old"]} for f in restores]
                out.write(json.dumps({"caseId": planned["caseId"], "fields": fields}) + "\n")
    return cases, left, failed


def _left_alone(planned: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    note = planned.get("error") or field["action"]
    return {
        "case_id": planned["caseId"],
        "field_id": field["id"],
        "written": field["new"],
        "current": field["current"],
        "note": note,
    }


def restore_config(target: Target, files: UndoFiles, flags: Mapping[str, Any]) -> RunConfig:
    """The run that applies the restores: its own checkpoint and failures file."""
    dynamodb = target.checkpoint.startswith(DYNAMODB)
    settings = {
        "input": files.input,
        "format": "jsonl",
        "domain_id": target.domain_id,
        "endpoint_url": target.endpoint_url,
        "region": target.region,
        "profile": target.profile,
        "job_name": f"{target.job}.undo" if dynamodb else None,
        "checkpoint": target.checkpoint if dynamodb else f"{files.base}.checkpoint.sqlite",
        "failures": f"{files.base}.failures.jsonl",
        "summary": f"{files.base}.summary.json",
        "headroom": target.headroom,
        **flags,
    }
    return resolve(env=os.environ, flags=settings)


async def undo(
    target: Target,
    *,
    state_dir: str | None,
    dry_run: bool,
    force: bool,
    run_flags: Mapping[str, Any],
    hold_signals: bool = False,
) -> int:
    """The undo's exit code, as `run`'s: 1 also when fields were left alone. `hold_signals`:
    this process is the command, whose SIGINT/SIGTERM the restore run takes over."""
    files = UndoFiles.of(target, state_dir)
    if hold_signals:
        signals.hold()  # a signal while reading stops the plan between cases; then as `run`
    plan = _plan_until_signal if hold_signals else make_plan
    path = f"{files.base}.dry-run.jsonl" if dry_run else files.plan
    unplanned = dry_run or not os.path.exists(files.plan)  # noqa: ASYNC240 - once, before sends
    try:
        if unplanned and not await plan(target, path, force=force, resume=not dry_run):
            print(
                "bulkupdate: undo stopped while reading cases; the cases read so far are kept: "
                "run the same command to go on",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
    except CallError as error:
        print(f"bulkupdate: undo stopped while reading cases: {error}", file=sys.stderr)
        return EXIT_ABORTED
    if dry_run:
        print(f"undo (dry run): what it would do, per case: {path}", file=sys.stderr)
        return EXIT_OK
    cases, left, failed = write_restores(files.plan, files)
    print(
        f"undo: {cases} cases to restore; {left} fields left alone (changed since the job, "
        f"or unreadable): {files.changed}",
        file=sys.stderr,
    )
    # A new plan starts its restores over: a checkpoint of an earlier undo of this job (kept in
    # the DynamoDB table when its files were deleted) holds another plan's input.
    flags = {**run_flags, "restart": True} if unplanned else run_flags
    code = await job.run(restore_config(target, files, flags), progress=ProgressSink(bar=False))
    if code == EXIT_OK and (left or failed):
        return EXIT_FAILED_ROWS
    return code
