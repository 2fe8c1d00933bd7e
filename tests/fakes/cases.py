"""A working in-memory Connect Cases domain behind the `CasesApi` Protocol, for engine tests."""

from __future__ import annotations

from collections.abc import Sequence

from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.models import Field, FieldOption, WireValue


class FakeCasesApi:
    """An in-memory Cases domain for unit tests of the engine: applies updates, scripts errors."""

    def __init__(self, fields: Sequence[Field], cases: Sequence[str]) -> None:
        self.fields = list(fields)
        self.cases: dict[str, dict[str, WireValue]] = {case_id: {} for case_id in cases}
        self.applied: list[tuple[str, list[FieldUpdate]]] = []
        self.reads: list[str] = []  # read_fields calls, by case id
        # Errors to raise on the next update_case calls, in order (None = succeed).
        self.script: list[CallError | None] = []

    async def update_case(
        self, case_id: str, fields: Sequence[FieldUpdate], performed_by: dict[str, str] | None
    ) -> None:
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error
        if case_id not in self.cases:
            raise CallError(ErrorKind.ROW, "ResourceNotFoundException", f"Case {case_id}")
        for update in fields:
            if "emptyValue" in update["value"]:
                self.cases[case_id].pop(update["id"], None)
            else:
                self.cases[case_id][update["id"]] = update["value"]
        self.applied.append((case_id, list(fields)))

    async def list_fields(self) -> list[Field]:
        return [Field(f.field_id, f.name, f.type, f.namespace, f.is_multiline) for f in self.fields]

    async def list_field_options(self, field_id: str) -> tuple[FieldOption, ...]:
        return next(f.options for f in self.fields if f.field_id == field_id)

    async def read_fields(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        self.reads.append(case_id)
        return await self.get_case(case_id, field_ids)

    async def get_case(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        if case_id not in self.cases:
            raise CallError(ErrorKind.ROW, "ResourceNotFoundException", f"Case {case_id}")
        values = {"created_datetime": {"stringValue": "2024-01-01T00:00:00.000Z"}}
        values.update(self.cases[case_id])
        return {k: v for k, v in values.items() if k in field_ids}
