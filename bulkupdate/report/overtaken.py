"""Failed rows that later rows of their case overtook: re-running such a row as it stands would
put back values the job has since replaced, moving its case behind a later applied row. So the
failures file leaves those cells out: a CSV cell left blank (or, when a blank cell clears a
field, given the value the later row set), a JSONL key left out, with a note in error_message.

Pure over the records it is given: no opening of files, no checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bulkupdate.fields.rows import CSV_ERROR_COLUMNS, JSON_ERROR_MEMBER, case_id_of
from bulkupdate.input.sources import Record
from bulkupdate.models import Outcome

_NOT_CELLS = CSV_ERROR_COLUMNS | {JSON_ERROR_MEMBER}


@dataclass(slots=True)
class Overtaken:
    """What later applied rows of one failed row's case set: each cell with the text it last
    held there (None when a blank cell left the field alone), and those rows' lines."""

    cells: dict[str, str | None] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)


def find_overtaken(
    records: Iterable[Record],
    failed: Sequence[tuple[int, str]],
    *,
    applied: Callable[[int], bool],
    case_id_column: str,
    ignored: frozenset[str],
    blank_clears: bool,
) -> dict[int, Overtaken]:
    """For each failed row (offset, case id), what the applied rows after it in its case set.

    `records` is the input from its start (or from before the first failed row); `applied` says
    whether the row at an offset was applied. Only records of cases with failed rows are
    looked at, so memory follows the number of failed rows."""
    by_case: dict[str, list[int]] = {}
    for offset, case_id in failed:
        if case_id:
            by_case.setdefault(case_id, []).append(offset)
    if not by_case:
        return {}
    first = min(offset for offsets in by_case.values() for offset in offsets)
    found: dict[int, Overtaken] = {}
    skip = ignored | {case_id_column} | _NOT_CELLS
    for record in records:
        if record.offset <= first or record.values is None:
            continue
        earlier = by_case.get(case_id_of(record.values, case_id_column))
        if not earlier or not applied(record.offset) or "fields" in record.values:
            continue  # (an API-shaped record names fields, not cells: left as it is)
        cells = {
            name: _text(value)
            for name, value in record.values.items()
            if name not in skip and (blank_clears or not _blank(value))
        }
        if not cells:
            continue
        for offset in earlier:
            if offset < record.offset:
                overtaken = found.setdefault(offset, Overtaken())
                overtaken.cells.update(cells)
                overtaken.lines.append(record.line)
    return found


def rewrite(
    outcome: Outcome,
    overtaken: Overtaken,
    *,
    fmt: str,
    header: Sequence[str] | None,
    delimiter: str,
    blank_clears: bool,
    encoding: str = "utf-8",
) -> Outcome:
    """The failed row as a re-run may take it: overtaken cells blank or left out, and why.
    `encoding` is the input's: the row's bytes are read and written back in it."""
    text = (outcome.raw or b"").decode(encoding, errors="surrogateescape")
    names = sorted(overtaken.cells)
    lines = ", ".join(str(line) for line in sorted(set(overtaken.lines)))
    if fmt == "csv":
        raw, how = _rewrite_csv(text, overtaken.cells, header or (), delimiter, blank_clears)
    else:
        raw, how = _rewrite_jsonl(text, overtaken.cells)
    if raw is None:
        return outcome
    note = f" [{', '.join(names)} {how}: line {lines} of this case, applied later, set them]"
    message = (outcome.error_message or "") + note
    return replace(
        outcome, raw=raw.encode(encoding, errors="surrogateescape"), error_message=message
    )


def _rewrite_csv(
    text: str,
    cells: Mapping[str, str | None],
    header: Sequence[str],
    delimiter: str,
    blank_clears: bool,
) -> tuple[str | None, str]:
    try:
        parsed = next(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True), [])
    except csv.Error:
        return None, ""
    if len(parsed) != len(header):
        return None, ""  # a ragged row stays as it is: fed back it fails again anyway
    for index, name in enumerate(header):
        if name in cells:
            # A blank cell leaves the field alone, unless blanks clear: then the later value.
            parsed[index] = (cells[name] or "") if blank_clears else ""
    out = io.StringIO()
    ending = "\r\n" if text.endswith("\r\n") else "\n"
    csv.writer(out, delimiter=delimiter, lineterminator=ending).writerow(parsed)
    return out.getvalue(), "carry the later values" if blank_clears else "left blank"


def _rewrite_jsonl(text: str, cells: Mapping[str, str | None]) -> tuple[str | None, str]:
    try:
        original: Any = json.loads(text)
    except (ValueError, RecursionError):
        return None, ""
    if not isinstance(original, dict):
        return None, ""
    kept = {key: value for key, value in original.items() if key not in cells}
    return json.dumps(kept, ensure_ascii=False) + "\n", "left out"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)
