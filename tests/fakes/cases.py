"""A working in-memory Connect Cases domain behind the `CasesApi` Protocol, for engine tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bulkupdate.aws.batch import batch_outcome, batch_request, refused
from bulkupdate.errors import BatchRefusal, CallError, ErrorKind
from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.models import BatchOutcome, CasePage, Field, FieldOption, FoundCase, WireValue


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One batch_update_case call the fake answered (not the ones its script refused)."""

    case_ids: tuple[str, ...]
    fields: tuple[FieldUpdate, ...]
    top_level: dict[str, str]  # title/status/customer_id given, by field id
    client_token: str
    replayed: bool  # answered from the token's first call; nothing applied


class FakeCasesApi:
    """An in-memory Cases domain for unit tests of the engine: applies updates, scripts errors."""

    def __init__(self, fields: Sequence[Field], cases: Sequence[str]) -> None:
        self.fields = list(fields)
        self.cases: dict[str, dict[str, WireValue]] = {case_id: {} for case_id in cases}
        self.applied: list[tuple[str, list[FieldUpdate]]] = []
        self.reads: list[str] = []  # read_fields calls, by case id
        # Errors to raise on the next update_case calls, in order (None = succeed).
        self.script: list[CallError | None] = []
        # Errors to raise on the next batch_update_case calls, in order (None = answer); ROW
        # errors get their batch_refusal as the real client sets it.
        self.batch_script: list[CallError | None] = []
        # Per case id, the errorCodes its next batch calls answer for it (None = apply).
        self.case_script: dict[str, list[str | None]] = {}
        self.batches: list[BatchCall] = []
        self.tokens: dict[str, tuple[str, BatchOutcome]] = {}  # forget with .tokens.clear()
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

    async def batch_update_case(
        self,
        case_ids: Sequence[str],
        fields: Sequence[FieldUpdate],
        *,
        title: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        performed_by: dict[str, str] | None,
        client_token: str,
    ) -> BatchOutcome:
        request = batch_request(
            "fake",
            case_ids,
            fields,
            title=title,
            status=status,
            customer_id=customer_id,
            performed_by=performed_by,
            client_token=client_token,
        )  # ValueError as the real client
        if self.batch_script:
            error = self.batch_script.pop(0)
            if error is not None:
                raise refused(error)
        top_level = {
            field_id: value
            for field_id, value in (
                ("title", title),
                ("status", status),
                ("customer_id", customer_id),
            )
            if value is not None
        }
        call = BatchCall(tuple(case_ids), tuple(fields), top_level, client_token, False)
        key = json.dumps(request, sort_keys=True)
        if client_token in self.tokens:
            first_key, first = self.tokens[client_token]
            if first_key != key:
                raise CallError(
                    ErrorKind.ROW,
                    "ConflictException",
                    "client token reused with other parameters",
                    batch_refusal=BatchRefusal.TOKEN_REUSED,
                )
            self.batches.append(replace(call, replayed=True))
            return first
        patch = [*fields, *({"id": k, "value": {"stringValue": v}} for k, v in top_level.items())]
        answer = self._apply_batch(case_ids, patch)
        outcome = batch_outcome(case_ids, answer)
        self.tokens[client_token] = (key, outcome)
        self.batches.append(call)
        return outcome

    def _apply_batch(self, case_ids: Sequence[str], patch: list[Any]) -> dict[str, Any]:
        succeeded, failed = [], []
        for case_id in case_ids:
            scripted = self.case_script.get(case_id)
            code = scripted.pop(0) if scripted else None
            if code is None and case_id not in self.cases:
                code = "CASE_NOT_FOUND"
            if code is not None:
                failed.append(
                    {"caseIdentifier": {"caseId": case_id}, "errorCode": code, "errorMessage": code}
                )
                continue
            for update in patch:
                if "emptyValue" in update["value"]:
                    self.cases[case_id].pop(update["id"], None)
                else:
                    self.cases[case_id][update["id"]] = update["value"]
            self.applied.append((case_id, list(patch)))
            succeeded.append({"caseIdentifier": {"caseId": case_id}})
        return {"successfulCases": succeeded, "failedCases": failed}

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
