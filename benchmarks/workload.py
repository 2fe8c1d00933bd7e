"""Benchmark inputs: CSV files of UpdateCase rows for the emulator's demo domain, the byte offset
of chosen rows while writing them, and the same rows as the UpdateCase calls they stand for.

Writes files and parses them; starts nothing and sends nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkupdate.emulator.seed import demo_case_id

HEADER = ("case_id", "priority", "order_total", "vip")
PRIORITY_VALUES = ("low", "medium", "high", "urgent")


@dataclass(frozen=True, slots=True)
class RowPosition:
    """Where a data row's record starts: byte offset, and 1-based line (the header is line 1)."""

    offset: int
    line: int


def row_cells(row: int, cases: int) -> tuple[str, str, str, str]:
    """Cells of data row `row` (1-based): cases in turn, a new priority on each pass."""
    case_index, passes = (row - 1) % cases + 1, (row - 1) // cases
    priority = PRIORITY_VALUES[passes % len(PRIORITY_VALUES)]
    return (
        demo_case_id(case_index),
        priority,
        f"{row % 100_000 / 100:.2f}",
        "yes" if row % 2 else "no",
    )


def write_rows_csv(
    path: Path, rows: int, cases: int, mark_rows: Collection[int] = ()
) -> dict[int, RowPosition]:
    """Write a header and `rows` data rows; return the positions of the rows in `mark_rows`."""
    marks: dict[int, RowPosition] = {}
    header = (",".join(HEADER) + "\n").encode()
    offset = len(header)
    with path.open("wb") as handle:
        handle.write(header)
        chunk: list[bytes] = []
        for row in range(1, rows + 1):
            if row in mark_rows:
                marks[row] = RowPosition(offset, row + 1)
            record = (",".join(row_cells(row, cases)) + "\n").encode()
            offset += len(record)
            chunk.append(record)
            if len(chunk) >= 10_000:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))
    return marks


def update_calls(path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(case id, UpdateCase fields) per row of a file from write_rows_csv, typed as the demo
    domain wants them: priority a SingleSelect value, order_total a Number, vip a Boolean."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        if next(reader) != list(HEADER):
            raise ValueError(f"{path}: not a file written by write_rows_csv")
        for case_id, priority, order_total, vip in reader:
            yield (
                case_id,
                [
                    {"id": "priority", "value": {"stringValue": priority}},
                    {"id": "order_total", "value": {"doubleValue": float(order_total)}},
                    {"id": "vip", "value": {"booleanValue": vip == "yes"}},
                ],
            )
