"""BatchUpdateCase's rules: what refuses the whole call, each case checked and applied as
UpdateCase would, per-case failures in the answer, and clientToken replay.

Pure: no I/O, no sleeping. Shapes (1..100 cases, 0..220 fields, token length) are checked by
`shapes` before this runs; per-case faults come in as a function from the server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bulkupdate.emulator.account import CasesAccount
from bulkupdate.emulator.errors import ValidationError
from bulkupdate.emulator.records import READ_ONLY_FIELDS, DomainRecord

Params = dict[str, Any]
CaseFault = Callable[[str], str | None]  # case id -> injected errorCode, or None
# Top-level member -> the field it sets; these may not appear in `fields`.
TOP_LEVEL = {"title": "title", "status": "status", "customerId": "customer_id"}


def no_case_fault(_: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    response: Params
    replayed: bool  # the token's first answer, given again; nothing applied


def batch_update_case(
    account: CasesAccount, p: Params, case_fault: CaseFault = no_case_fault
) -> BatchAnswer:
    token = p.get("clientToken") or ""
    now_s = account.wall_s()
    if token:
        first = account.batch_tokens.replay(token, p, now_s)
        if first is not None:
            return BatchAnswer(first, replayed=True)
    domain = account.domain(p["domainId"])
    patch = _patch(domain, p)
    cases = _cases(domain, p["cases"])
    succeeded: list[Params] = []
    failed: list[Params] = []
    for case_id, identifier in cases:
        case = domain.cases.get(case_id)
        code = "CASE_NOT_FOUND" if case is None else case_fault(case_id)
        message = f"Case {case_id} does not exist." if case is None else f"{code} (injected)"
        if case is not None and code is None:
            template = domain.templates.get(case.template_id)
            try:
                checked = account.checked_values(domain, patch, template)
            except ValidationError as error:
                code, message = "VALIDATION_ERROR", error.message
            else:
                account.apply_update(
                    domain, case, checked, patch, p.get("performedBy"), client_token=token
                )
                succeeded.append({"caseIdentifier": identifier})
                continue
        failed.append({"caseIdentifier": identifier, "errorCode": code, "errorMessage": message})
    response = {"successfulCases": succeeded, "failedCases": failed}
    if token:
        account.batch_tokens.remember(token, p, response, now_s)
    return BatchAnswer(response, replayed=False)


def _patch(domain: DomainRecord, p: Params) -> list[Params]:
    """The request's updates as UpdateCase's {"id", "value"} items, top-level members last.
    ValidationError (the whole call) for what no case could take."""
    patch: list[Params] = []
    for index, item in enumerate(p["fields"], start=1):
        field_id = _field_id(domain, item["fieldIdentifier"], index)
        if field_id in TOP_LEVEL.values():
            raise ValidationError(
                f"fields.{index}: set {field_id} with the top-level title, status or customerId"
                " parameters, not in fields."
            )
        if field_id in READ_ONLY_FIELDS:
            raise ValidationError(f"fields.{index}: field {field_id} is read-only.")
        if any(f["id"] == field_id for f in patch):
            raise ValidationError(f"Field {field_id} appears more than once in the request.")
        patch.append({"id": field_id, "value": item["value"]})
    patch.extend(
        {"id": field_id, "value": {"stringValue": p[member]}}
        for member, field_id in TOP_LEVEL.items()
        if p.get(member) is not None
    )
    if not patch:
        raise ValidationError(
            "The request specifies no update: give fields, or title, status or customerId."
        )
    return patch


def _field_id(domain: DomainRecord, identifier: Params, index: int) -> str:
    if "id" in identifier:
        field_id = str(identifier["id"])
        if field_id not in domain.fields:
            raise ValidationError(
                f"fields.{index}: field {field_id} does not exist in domain {domain.domain_id}."
            )
        return field_id
    name = str(identifier["name"])
    if "|" in name or "," in name:
        raise ValidationError(f"fields.{index}: a field name may not contain '|' or ','.")
    for record in domain.fields.values():
        if record.name == name:
            return record.field_id
    raise ValidationError(
        f"fields.{index}: no field is named {name!r} in domain {domain.domain_id}."
    )


def _cases(domain: DomainRecord, listed: list[Params]) -> list[tuple[str, Params]]:
    """(case id, the identifier to answer with) per listed case; ValidationError for a
    referenceId that matches no case or a case listed twice."""
    found: list[tuple[str, Params]] = []
    seen: set[str] = set()
    for index, item in enumerate(listed, start=1):
        identifier = item["caseIdentifier"]
        if "caseId" in identifier:
            case_id = str(identifier["caseId"])
            answer: Params = {"caseId": case_id}
        else:
            reference = str(identifier["referenceId"])
            case_id = _by_reference(domain, reference, index)
            answer = {"caseId": case_id, "referenceId": reference}
        if case_id in seen:
            raise ValidationError(f"cases.{index}: case {case_id} is listed more than once.")
        seen.add(case_id)
        found.append((case_id, answer))
    return found


def _by_reference(domain: DomainRecord, reference: str, index: int) -> str:
    for case in domain.cases.values():
        if case.values.get("reference_number") == {"stringValue": reference}:
            return case.case_id
    raise ValidationError(f"cases.{index}: reference {reference} matches no case.")


@dataclass(slots=True)
class BatchCounters:
    """What BatchUpdateCase calls did, for the admin view: answered calls, replays, cases listed
    in fresh calls, applied and failed (by errorCode), and calls per number of cases."""

    calls: int = 0
    replayed: int = 0
    cases: int = 0
    applied: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    cases_per_call: Counter[int] = field(default_factory=Counter)

    def count(self, answer: BatchAnswer) -> None:
        self.calls += 1
        if answer.replayed:
            self.replayed += 1
            return
        applied = len(answer.response["successfulCases"])
        failures = answer.response["failedCases"]
        self.applied += applied
        self.cases += applied + len(failures)
        self.failed.update(f["errorCode"] for f in failures)
        self.cases_per_call[applied + len(failures)] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "replayed": self.replayed,
            "cases": self.cases,
            "applied": self.applied,
            "failed": dict(self.failed),
            "cases_per_call": {str(n): calls for n, calls in sorted(self.cases_per_call.items())},
        }
