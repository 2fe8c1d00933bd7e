"""`bulkupdate verify`: reads every case a job changed (paced at GetCase's quota) and reports the
fields whose value is no longer what the job last wrote (drift since the job), as CSV or JSONL.

Reads only: sends no update, changes no checkpoint.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from bulkupdate.checkpoint.images import EMPTY, FieldImage
from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_OK
from bulkupdate.fields.compare import holds
from bulkupdate.models import FieldType, WireValue
from bulkupdate.undo.jobimages import Target, cases_of, connect

__all__ = ["DRIFT_COLUMNS", "Report", "display", "drifted", "report_file", "verify"]

DRIFT_COLUMNS = ("case_id", "field_id", "written", "current", "note")


def display(value: WireValue | None) -> str:
    """A union as a person reads it in a CSV cell: its value; "" for none."""
    if not value or "emptyValue" in value:
        return ""
    (member_value,) = value.values()
    if isinstance(member_value, bool):
        return "true" if member_value else "false"
    if isinstance(member_value, float) and member_value.is_integer():
        return str(int(member_value))
    return str(member_value)


class Report(Protocol):
    def write(self, row: dict[str, Any]) -> None: ...


@contextmanager
def report_file(path: str, columns: tuple[str, ...]) -> Iterator[Report]:
    """Rows to `path`: JSONL (values as unions) when it ends .jsonl, else CSV (values shown)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if path.endswith(".jsonl"):

            class Lines:
                def write(self, row: dict[str, Any]) -> None:
                    handle.write(json.dumps(row, sort_keys=True) + "\n")

            yield Lines()
            return
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()

        class Cells:
            def write(self, row: dict[str, Any]) -> None:
                shown = {k: display(v) if isinstance(v, dict) else v for k, v in row.items()}
                writer.writerow({k: "" if v is None else v for k, v in shown.items()})

        yield Cells()


def drifted(
    images: list[FieldImage], values: dict[str, WireValue], types: dict[str, FieldType]
) -> list[FieldImage]:
    """The images whose field holds none of the values the job wrote."""
    return [
        image
        for image in images
        if image.after is not None
        and not any(
            holds(types.get(image.field_id), values.get(image.field_id), written)
            for written in image.written()
        )
    ]


async def verify(target: Target, report_path: str) -> int:
    """Exit 0 when every field holds what the job wrote, 1 when some drifted, 3 on a stop."""
    cases = differ = 0
    async with connect(target) as connection:
        with report_file(report_path, DRIFT_COLUMNS) as report:
            async for case_id, images in cases_of(target):
                written = [image for image in images if image.after is not None]
                if not written:
                    continue
                cases += 1
                values = await connection.reads.read(case_id, [i.field_id for i in written])
                if isinstance(values, CallError):
                    if values.kind is ErrorKind.SYSTEMIC:
                        print(f"bulkupdate: verify stopped: {values}", file=sys.stderr)
                        return EXIT_ABORTED
                    for image in written:
                        note = f"GetCase: {values.code}: {values.message}"
                        report.write(_row(image, None, note))
                    differ += len(written)
                    continue
                assert values is not None
                for image in drifted(written, values, connection.types):
                    current = values.get(image.field_id) or EMPTY
                    report.write(_row(image, current, "changed_since_job"))
                    differ += 1
    print(
        f"verify: {cases} cases read, {differ} fields differ from what the job wrote; "
        f"report: {report_path}",
        file=sys.stderr,
    )
    return EXIT_FAILED_ROWS if differ else EXIT_OK


def _row(image: FieldImage, current: WireValue | None, note: str) -> dict[str, Any]:
    return {
        "case_id": image.case_id,
        "field_id": image.field_id,
        "written": image.after,
        "current": current,
        "note": note,
    }
