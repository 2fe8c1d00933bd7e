"""Before-images: per case and field a job changes, the value it held before the job's first
change and the value the job last wrote, as a commit records them and a store gives them back.

Plain data and the rules of merging one change into a stored image. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from bulkupdate.models import WireValue

__all__ = ["EMPTY", "FieldImage", "ImageChange", "by_case", "decode_value", "encode_value"]

# How a field with no value is kept: the union that puts it back (UpdateCase clears with it).
EMPTY: WireValue = {"emptyValue": {}}


@dataclass(frozen=True, slots=True)
class ImageChange:
    """One field of one case, as a commit records it.

    Not `applied`: the row is about to be sent (a write-ahead): `before` is kept unless the
    field already has one, and `value` becomes the image's `pending` value (a send whose answer
    is not recorded yet). `applied`: the service accepted `value`: it becomes `after`, and
    `pending` is cleared. A crash between the two leaves `pending`: the value may be on the case.
    """

    case_id: str
    field_id: str
    before: WireValue  # as GetCase read it; EMPTY for a field without a value
    value: WireValue  # what the row sends
    applied: bool


@dataclass(frozen=True, slots=True)
class FieldImage:
    """A case's field as the job left it: what to put back, and what the job wrote."""

    case_id: str
    field_id: str
    before: WireValue  # the value before the job's first change; EMPTY: it had none
    after: WireValue | None  # the last value the job's accepted write set; None: none accepted
    pending: WireValue | None = None  # a value sent whose answer no commit recorded

    def written(self) -> list[WireValue]:
        """The values the case may hold from the job: its accepted write, its unsettled one."""
        return [value for value in (self.after, self.pending) if value is not None]

    def merged(self, change: ImageChange) -> FieldImage:
        """This image once `change` is recorded (the first `before` stays)."""
        if change.applied:
            return FieldImage(self.case_id, self.field_id, self.before, change.value, None)
        return FieldImage(self.case_id, self.field_id, self.before, self.after, change.value)

    @classmethod
    def first(cls, change: ImageChange) -> FieldImage:
        """The image a change makes of a field the job had not changed before."""
        if change.applied:
            return cls(change.case_id, change.field_id, change.before, change.value, None)
        return cls(change.case_id, change.field_id, change.before, None, change.value)


def encode_value(value: WireValue | None) -> str | None:
    """A union as the stores keep it: compact JSON with sorted keys (None stays None)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def decode_value(text: str | None) -> WireValue | None:
    if text is None:
        return None
    value: Any = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"not a field value union: {text!r}")
    return value


def by_case(images: Iterable[FieldImage]) -> Iterator[tuple[str, list[FieldImage]]]:
    """(case id, its images) for images already ordered by case."""
    for case_id, group in groupby(images, key=lambda image: image.case_id):
        yield case_id, list(group)
