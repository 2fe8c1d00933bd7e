"""One BatchUpdateCase call as data: the rows of a group -> the call's arguments (top-level
title/status/customer_id split out of the patch) and its client token, JSON-able so the
checkpoint can record it and a later run send exactly the same request again.

Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bulkupdate.aws.batch import TOP_LEVEL_FIELD_IDS
from bulkupdate.checkpoint.store import GroupMember, RecordedGroup
from bulkupdate.fields.rows import Row
from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.models import BatchOutcome
from bulkupdate.run.cases import CasesApi


def new_token() -> str:
    """A clientToken (<= 64 characters): unique per call, reused only to send it again."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class GroupCall:
    """The arguments of `CasesApi.batch_update_case` but the token, as sent."""

    case_ids: tuple[str, ...]
    fields: tuple[FieldUpdate, ...]  # field ids only; never title/status/customer_id
    top_level: Mapping[str, str]  # title/status/customer_id, by field id
    performed_by: Mapping[str, str] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "case_ids": list(self.case_ids),
            "fields": [dict(f) for f in self.fields],
            "top_level": dict(self.top_level),
            "performed_by": None if self.performed_by is None else dict(self.performed_by),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupCall:
        fields = tuple(FieldUpdate(id=f["id"], value=f["value"]) for f in data["fields"])
        performed_by = data.get("performed_by")
        return cls(tuple(data["case_ids"]), fields, dict(data["top_level"]), performed_by)

    async def send(self, api: CasesApi, token: str) -> BatchOutcome:
        top = self.top_level
        return await api.batch_update_case(
            self.case_ids,
            self.fields,
            title=top.get("title"),
            status=top.get("status"),
            customer_id=top.get("customer_id"),
            performed_by=None if self.performed_by is None else dict(self.performed_by),
            client_token=token,
        )


def group_call(rows: Sequence[Row], performed_by: Mapping[str, str] | None) -> GroupCall:
    """The call that applies the rows' common patch (the planner grouped equal patches only)."""
    patch = rows[0].fields
    top_level = {
        u["id"]: str(u["value"]["stringValue"]) for u in patch if u["id"] in TOP_LEVEL_FIELD_IDS
    }
    fields = tuple(u for u in patch if u["id"] not in TOP_LEVEL_FIELD_IDS)
    return GroupCall(tuple(row.case_id for row in rows), fields, top_level, performed_by)


def recorded(token: str, call: GroupCall, rows: Sequence[Row]) -> RecordedGroup:
    members = tuple(GroupMember(row.offset, row.line, row.case_id) for row in rows)
    return RecordedGroup(token, call.to_json(), members)
