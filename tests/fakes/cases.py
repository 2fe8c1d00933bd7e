"""A working in-memory Connect Cases domain behind the `CasesApi` Protocol, for engine tests."""

from __future__ import annotations

from collections.abc import Sequence

from bulkupdate.errors import CallError, ErrorKind
from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.models import CasePage, Field, FieldOption, FoundCase, WireValue


class FakeCasesApi:
    """An in-memory Cases domain for unit tests of the engine: applies updates, scripts errors."""

    def __init__(self, fields: Sequence[Field], cases: Sequence[str]) -> None:
        self.fields = list(fields)
        self.cases: dict[str, dict[str, WireValue]] = {case_id: {} for case_id in cases}
        self.applied: list[tuple[str, list[FieldUpdate]]] = []
        # Errors to raise on the next update_case calls, in order (None = succeed).
        self.script: list[CallError | None] = []
        self.searches: list[tuple[str, list[WireValue]]] = []  # every search_cases call
        self.search_script: list[CallError | None] = []  # as `script`, for search_cases

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

    async def get_case(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        if case_id not in self.cases:
            raise CallError(ErrorKind.ROW, "ResourceNotFoundException", f"Case {case_id}")
        values = {"created_datetime": {"stringValue": "2024-01-01T00:00:00.000Z"}}
        values.update(self.cases[case_id])
        return {k: v for k, v in values.items() if k in field_ids}

    async def search_cases(
        self,
        field_id: str,
        values: Sequence[WireValue],
        *,
        next_token: str | None = None,
        max_results: int = 100,
    ) -> CasePage:
        """Cases whose `field_id` equals one of `values`, a page of `max_results` at a time."""
        self.searches.append((field_id, list(values)))
        if self.search_script:
            error = self.search_script.pop(0)
            if error is not None:
                raise error
        hits = [
            FoundCase(case_id, fields[field_id])
            for case_id, fields in self.cases.items()
            if fields.get(field_id) in values
        ]
        start = int(next_token or 0)
        more = start + max_results < len(hits)
        page = tuple(hits[start : start + max_results])
        return CasePage(page, str(start + max_results) if more else None, len(hits))
