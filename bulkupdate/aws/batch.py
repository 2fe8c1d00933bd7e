"""BatchUpdateCase on the wire: the request one group makes, its answer as a BatchOutcome, and
what its codes mean (the per-case errorCodes and the whole-call refusals).

Pure: no I/O, no botocore. `client.BotocoreCases.batch_update_case` sends what this builds.

    per case (failedCases)                  kind        whole call (CallError)
    CASE_NOT_FOUND, VALIDATION_ERROR        ROW         429 / throttling codes  THROTTLED
    THROTTLED, SERVICE_QUOTA_EXCEEDED       THROTTLED   5xx, timeouts           TRANSIENT
    CONFLICT, INTERNAL_ERROR, unknown code  TRANSIENT   ROW (validation, ...)   ROW, INVALID
    ACCESS_DENIED, DOMAIN_NOT_FOUND         SYSTEMIC    ConflictException       ROW, TOKEN_REUSED
                                                        unknown operation       ROW, UNSUPPORTED
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bulkupdate.errors import BatchRefusal, CallError, ErrorKind
from bulkupdate.models import (
    MAX_CASES_PER_BATCH,
    BatchOutcome,
    CaseFailure,
    CaseFailureKind,
)

CASE_ERROR_KINDS: Mapping[str, CaseFailureKind] = {
    "CASE_NOT_FOUND": CaseFailureKind.ROW,
    "VALIDATION_ERROR": CaseFailureKind.ROW,
    "THROTTLED": CaseFailureKind.THROTTLED,
    "SERVICE_QUOTA_EXCEEDED": CaseFailureKind.THROTTLED,
    "CONFLICT": CaseFailureKind.TRANSIENT,
    "INTERNAL_ERROR": CaseFailureKind.TRANSIENT,
    "ACCESS_DENIED": CaseFailureKind.SYSTEMIC,
    "DOMAIN_NOT_FOUND": CaseFailureKind.SYSTEMIC,
}
# A listed case the answer does not mention: its fate is unknown, so it is retried.
MISSING_FROM_ANSWER = "CASE_MISSING_FROM_RESPONSE"
# UpdateCase field ids that BatchUpdateCase takes only as top-level members (in `fields` they
# fail the whole call).
TOP_LEVEL_FIELD_IDS: Mapping[str, str] = {
    "title": "title",
    "status": "status",
    "customer_id": "customerId",
}


def case_failure(case_id: str, code: str, message: str) -> CaseFailure:
    """One failedCases entry, classified; a code this release does not know is retried."""
    kind = CASE_ERROR_KINDS.get(code, CaseFailureKind.TRANSIENT)
    return CaseFailure(case_id, code, message, kind)


def batch_request(
    domain_id: str,
    case_ids: Sequence[str],
    fields: Sequence[Mapping[str, Any]],
    *,
    title: str | None,
    status: str | None,
    customer_id: str | None,
    performed_by: Mapping[str, str] | None,
    client_token: str,
) -> dict[str, Any]:
    """The request's parameters. Raises ValueError on what is a caller's bug, not a row's: no
    case, more than MAX_CASES_PER_BATCH, a case twice, a top-level field inside `fields`."""
    if not case_ids:
        raise ValueError("BatchUpdateCase needs at least one case")
    if len(case_ids) > MAX_CASES_PER_BATCH:
        raise ValueError(
            f"BatchUpdateCase takes at most {MAX_CASES_PER_BATCH} cases, got {len(case_ids)}"
        )
    if len(set(case_ids)) != len(case_ids):
        raise ValueError("BatchUpdateCase lists a case more than once")
    top_level = [f["id"] for f in fields if f["id"] in TOP_LEVEL_FIELD_IDS]
    if top_level:
        raise ValueError(f"give {', '.join(top_level)} as keyword arguments, not in fields")
    if not client_token:
        raise ValueError("BatchUpdateCase needs a client token")
    params: dict[str, Any] = {
        "domainId": domain_id,
        "cases": [{"caseIdentifier": {"caseId": case_id}} for case_id in case_ids],
        "fields": [{"fieldIdentifier": {"id": f["id"]}, "value": f["value"]} for f in fields],
        "clientToken": client_token,
    }
    for member, value in (("title", title), ("status", status), ("customerId", customer_id)):
        if value is not None:
            params[member] = value
    if performed_by:
        params["performedBy"] = dict(performed_by)
    return params


def batch_outcome(case_ids: Sequence[str], answer: Mapping[str, Any]) -> BatchOutcome:
    """The answer per listed case. Entries naming a case that was not listed are ignored."""
    listed = set(case_ids)
    failed: dict[str, CaseFailure] = {}
    for entry in answer.get("failedCases") or ():
        case_id = _case_id(entry)
        if case_id in listed and case_id not in failed:
            failed[case_id] = case_failure(
                case_id, str(entry.get("errorCode", "")), str(entry.get("errorMessage", ""))
            )
    applied = {_case_id(entry) for entry in answer.get("successfulCases") or ()}
    succeeded = tuple(c for c in case_ids if c in applied and c not in failed)
    for case_id in case_ids:
        if case_id not in failed and case_id not in applied:
            failed[case_id] = case_failure(
                case_id, MISSING_FROM_ANSWER, "the answer named this case in neither list"
            )
    return BatchOutcome(succeeded, failed)


def _case_id(entry: Mapping[str, Any]) -> str:
    identifier = entry.get("caseIdentifier") or {}
    return str(identifier.get("caseId", ""))


def refused(error: CallError) -> CallError:
    """A whole BatchUpdateCase call's error, as `classify` made it, with `batch_refusal` set on
    ROW errors so the engine can tell a bad group from a bad row."""
    if error.kind is not ErrorKind.ROW:
        return error
    if error.code == "ConflictException":
        reason = BatchRefusal.TOKEN_REUSED
    elif error.code == "UnknownOperationException":
        reason = BatchRefusal.UNSUPPORTED
    else:
        reason = BatchRefusal.INVALID
    return CallError(
        error.kind,
        error.code,
        error.message,
        retry_after_s=error.retry_after_s,
        outcome_unknown=error.outcome_unknown,
        unreachable=error.unreachable,
        batch_refusal=reason,
    )


__all__ = [
    "CASE_ERROR_KINDS",
    "MAX_CASES_PER_BATCH",
    "TOP_LEVEL_FIELD_IDS",
    "batch_outcome",
    "batch_request",
    "case_failure",
    "refused",
]
