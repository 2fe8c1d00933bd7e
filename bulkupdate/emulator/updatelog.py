"""The ordered log of applied updates, kept compact: one tuple of atoms and JSON bytes per
update, so a long rehearsal's millions of entries cost little memory and no GC time.

Pure: no I/O. Reads give back plain dicts, decoded on demand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, overload

# domainId, caseId, JSON {"fields", "performedBy"[, "clientToken"]}, time. An entry with a
# clientToken came from a BatchUpdateCase call (its "operation"), one entry per case applied.
Entry = tuple[str, str, bytes, float]
UPDATE_CASE, BATCH_UPDATE_CASE = "UpdateCase", "BatchUpdateCase"


class UpdateLog(Sequence[dict[str, Any]]):
    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def append(
        self,
        domain_id: str,
        case_id: str,
        fields: list[dict[str, Any]],
        performed_by: dict[str, Any] | None,
        time_s: float,
        client_token: str | None = None,
    ) -> None:
        """One case's update; `client_token` when a BatchUpdateCase call applied it."""
        body: dict[str, Any] = {"fields": fields, "performedBy": performed_by}
        if client_token is not None:
            body["clientToken"] = client_token
        self._entries.append((domain_id, case_id, json.dumps(body).encode(), time_s))

    def extend(self, updates: Sequence[dict[str, Any]]) -> None:
        for update in updates:
            self.append(
                update["domainId"],
                update["caseId"],
                update["fields"],
                update.get("performedBy"),
                update["time"],
                update.get("clientToken"),
            )

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _decode(self, index: int) -> dict[str, Any]:
        domain_id, case_id, payload, time_s = self._entries[index]
        body = json.loads(payload)
        token = body.get("clientToken")
        return {
            "seq": index + 1,
            "domainId": domain_id,
            "caseId": case_id,
            "fields": body["fields"],
            "performedBy": body["performedBy"],
            "time": time_s,
            "operation": UPDATE_CASE if token is None else BATCH_UPDATE_CASE,
            "clientToken": token,
        }

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._decode(i) for i in range(*index.indices(len(self._entries)))]
        if index < 0:
            index += len(self._entries)
        if not 0 <= index < len(self._entries):
            raise IndexError("update log index out of range")
        return self._decode(index)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._decode(i) for i in range(len(self._entries)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UpdateLog | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
