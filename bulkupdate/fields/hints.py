"""The fix a bad header or key most likely needs, in words: the case-id column under another
name (`--case-id-column`), a file split by another delimiter (`--delimiter`), a column to leave
out (`ignore_columns`).

Pure: no I/O. Suggests; never decides what a column means.
"""

from __future__ import annotations

import csv
import difflib
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import NamedTuple

# Close enough to the case-id column's name to be offered for it: "Case ID" and "CaseNumber"
# are, "Priority" is not. Names are compared without case, spaces or punctuation.
CASE_ID_CUTOFF = 0.5
# The delimiters a header of one column is tried for (csv.Sniffer picks the likeliest).
LIKELY_DELIMITERS = ";\t|,"
IGNORE_HINT = "to leave the column out, list it in the job file's ignore_columns"
_NOT_NAME = re.compile(r"[\W_]+")


def case_id_candidates(names: Iterable[str], case_id_column: str) -> list[str]:
    """The names most like `case_id_column`, best first (at most 3)."""
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(_key(name), name)
    key = _key(case_id_column)
    matches = difflib.get_close_matches(key, list(by_key), n=3, cutoff=CASE_ID_CUTOFF)
    return [by_key[match] for match in matches]


def case_id_fix(candidates: list[str], where: str = "column") -> str:
    """What to pass when the case ids are not where `--case-id-column` says."""
    if len(candidates) == 1:
        return (
            f"if {where} {candidates[0]!r} holds the case ids, pass "
            f"--case-id-column {shlex.quote(candidates[0])} (case_id_column in a job file)"
        )
    named = f" (maybe {' or '.join(map(repr, candidates))})" if candidates else ""
    return (
        f"name the {where} that holds the case ids{named} with --case-id-column "
        "(case_id_column in a job file)"
    )


def delimiter_in(header_cell: str) -> str | None:
    """The delimiter a header read as one column was most likely split by; None if none is."""
    try:
        found = csv.Sniffer().sniff(header_cell, delimiters=LIKELY_DELIMITERS).delimiter
    except csv.Error:
        return None
    return found if found in header_cell else None


def delimiter_fix(delimiter: str) -> str:
    flag = "tab" if delimiter == "\t" else shlex.quote(delimiter)
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    return (
        f"the whole header is this one column: the file looks {shown}-separated; pass "
        f"--delimiter {flag} (delimiter in a job file)"
    )


class HeaderProblem(NamedTuple):
    """What `schema.ColumnError` is made of."""

    column: str
    reason_code: str
    message: str
    candidates: Sequence[str]  # the columns the message accounts for


def missing_case_id(columns: Sequence[str], case_id_column: str) -> HeaderProblem:
    """The case-id column is not in the header: the header split by another delimiter, or the
    ids in a column of another name."""
    delimiter = delimiter_in(columns[0]) if len(columns) == 1 else None
    if delimiter is not None:
        return HeaderProblem(columns[0], "wrong_delimiter", delimiter_fix(delimiter), columns)
    near = [c for c in case_id_candidates(columns, case_id_column) if c != case_id_column]
    message = f"is not in the header; {case_id_fix(near)}"
    return HeaderProblem(case_id_column, "missing_case_id_column", message, near)


def _key(name: str) -> str:
    return _NOT_NAME.sub("", name).casefold()
