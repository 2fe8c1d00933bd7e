"""BatchUpdateCase's wire: the request a group makes, the answer per case, what codes mean; and
the fake that engine tests use keeps the same contract."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from bulkupdate.aws.batch import batch_outcome, batch_request, case_failure, refused
from bulkupdate.aws.client import classify
from bulkupdate.errors import BatchRefusal, CallError, ErrorKind
from bulkupdate.models import MAX_CASES_PER_BATCH, CaseFailureKind, Field, FieldType
from tests.fakes.cases import FakeCasesApi

PRIORITY = [{"id": "priority", "value": {"stringValue": "high"}}]


def request(case_ids: list[str], fields: list[Any] = PRIORITY, **top: Any) -> dict[str, Any]:
    return batch_request(
        "dom",
        case_ids,
        fields,
        title=top.get("title"),
        status=top.get("status"),
        customer_id=top.get("customer_id"),
        performed_by=top.get("performed_by"),
        client_token="tok-1",
    )


def test_the_request_names_fields_by_id_and_puts_status_title_and_customer_top_level() -> None:
    params = request(
        ["c1", "c2"], status="closed", title="T", customer_id="arn:x", performed_by={"userArn": "u"}
    )
    assert params == {
        "domainId": "dom",
        "cases": [{"caseIdentifier": {"caseId": "c1"}}, {"caseIdentifier": {"caseId": "c2"}}],
        "fields": [{"fieldIdentifier": {"id": "priority"}, "value": {"stringValue": "high"}}],
        "clientToken": "tok-1",
        "title": "T",
        "status": "closed",
        "customerId": "arn:x",
        "performedBy": {"userArn": "u"},
    }


def test_a_request_without_top_level_members_leaves_them_out() -> None:
    assert set(request(["c1"])) == {"domainId", "cases", "fields", "clientToken"}


@pytest.mark.parametrize(
    ("case_ids", "fields", "says"),
    [
        ([f"c{i}" for i in range(MAX_CASES_PER_BATCH + 1)], PRIORITY, "at most 100"),
        ([], PRIORITY, "at least one"),
        (["c1", "c1"], PRIORITY, "more than once"),
        (["c1"], [{"id": "status", "value": {"stringValue": "open"}}], "status"),
        (["c1"], [{"id": "customer_id", "value": {"stringValue": "arn"}}], "customer_id"),
    ],
)
def test_a_callers_bug_is_refused_before_anything_is_sent(
    case_ids: list[str], fields: list[Any], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        request(case_ids, fields)


def test_a_full_group_of_100_is_accepted() -> None:
    assert len(request([f"c{i}" for i in range(MAX_CASES_PER_BATCH)])["cases"]) == 100


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("CASE_NOT_FOUND", CaseFailureKind.ROW),
        ("VALIDATION_ERROR", CaseFailureKind.ROW),
        ("THROTTLED", CaseFailureKind.THROTTLED),
        ("SERVICE_QUOTA_EXCEEDED", CaseFailureKind.THROTTLED),
        ("CONFLICT", CaseFailureKind.TRANSIENT),
        ("INTERNAL_ERROR", CaseFailureKind.TRANSIENT),
        ("ACCESS_DENIED", CaseFailureKind.SYSTEMIC),
        ("DOMAIN_NOT_FOUND", CaseFailureKind.SYSTEMIC),
        ("A_CODE_FROM_THE_FUTURE", CaseFailureKind.TRANSIENT),
    ],
)
def test_each_per_case_code_has_its_kind(code: str, kind: CaseFailureKind) -> None:
    failure = case_failure("c1", code, "why")
    assert (failure.kind, failure.code, failure.message) == (kind, code, "why")
    assert ErrorKind(failure.kind.value)  # the engine converts with ErrorKind(kind.value)


def test_case_failure_kinds_are_the_error_kinds() -> None:
    assert {k.value for k in CaseFailureKind} == {k.value for k in ErrorKind}


def test_the_outcome_places_every_listed_case_once() -> None:
    answer = {
        "successfulCases": [{"caseIdentifier": {"caseId": "c1"}}],
        "failedCases": [
            {"caseIdentifier": {"caseId": "c2"}, "errorCode": "THROTTLED", "errorMessage": "slow"},
            {"caseIdentifier": {"caseId": "zz"}, "errorCode": "CONFLICT", "errorMessage": "?"},
        ],
    }
    outcome = batch_outcome(["c1", "c2", "c3"], answer)
    assert outcome.succeeded == ("c1",)
    assert set(outcome.failed) == {"c2", "c3"}
    assert outcome.failure("c2") == case_failure("c2", "THROTTLED", "slow")
    missing = outcome.failure("c3")
    assert missing is not None
    assert missing.kind is CaseFailureKind.TRANSIENT
    assert [f.case_id for f in outcome.of_kind(CaseFailureKind.THROTTLED)] == ["c2"]


def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "BatchUpdateCase")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "kind", "refusal"),
    [
        ("ValidationException", 400, ErrorKind.ROW, BatchRefusal.INVALID),
        ("ServiceQuotaExceededException", 402, ErrorKind.ROW, BatchRefusal.INVALID),
        ("ConflictException", 409, ErrorKind.ROW, BatchRefusal.TOKEN_REUSED),
        ("UnknownOperationException", 404, ErrorKind.ROW, BatchRefusal.UNSUPPORTED),
        ("ThrottlingException", 429, ErrorKind.THROTTLED, None),
        ("InternalServerException", 500, ErrorKind.TRANSIENT, None),
        ("AccessDeniedException", 403, ErrorKind.SYSTEMIC, None),
    ],
)
def test_a_whole_call_error_is_classified_as_update_cases_and_says_why_it_was_refused(
    code: str, status: int, kind: ErrorKind, refusal: BatchRefusal | None
) -> None:
    error = refused(classify(client_error(code, status)))
    assert (error.kind, error.code, error.batch_refusal) == (kind, code, refusal)


def test_update_case_errors_carry_no_batch_refusal() -> None:
    assert classify(client_error("ValidationException", 400)).batch_refusal is None


def fake() -> FakeCasesApi:
    return FakeCasesApi([Field("priority", "Priority", FieldType.TEXT)], ["c1", "c2", "c3"])


async def test_the_fake_applies_per_case_and_answers_scripted_codes() -> None:
    api = fake()
    api.case_script["c2"] = ["THROTTLED"]
    outcome = await api.batch_update_case(
        ["c1", "c2", "nope"], PRIORITY, status="closed", performed_by=None, client_token="t1"
    )
    assert outcome.succeeded == ("c1",)
    assert {c: f.code for c, f in outcome.failed.items()} == {
        "c2": "THROTTLED",
        "nope": "CASE_NOT_FOUND",
    }
    assert api.cases["c1"] == {
        "priority": {"stringValue": "high"},
        "status": {"stringValue": "closed"},
    }
    assert api.cases["c2"] == {}


async def test_the_fake_replays_a_token_and_refuses_it_with_other_parameters() -> None:
    api = fake()
    first = await api.batch_update_case(["c1"], PRIORITY, performed_by=None, client_token="t1")
    again = await api.batch_update_case(["c1"], PRIORITY, performed_by=None, client_token="t1")
    assert again == first
    assert [c.replayed for c in api.batches] == [False, True]
    assert len(api.applied) == 1
    with pytest.raises(CallError) as caught:
        await api.batch_update_case(["c1", "c2"], PRIORITY, performed_by=None, client_token="t1")
    assert caught.value.batch_refusal is BatchRefusal.TOKEN_REUSED


async def test_the_fakes_scripted_whole_call_errors_carry_the_refusal() -> None:
    api = fake()
    api.batch_script = [CallError(ErrorKind.ROW, "ValidationException", "bad")]
    with pytest.raises(CallError) as caught:
        await api.batch_update_case(["c1"], PRIORITY, performed_by=None, client_token="t1")
    assert caught.value.batch_refusal is BatchRefusal.INVALID
    assert api.applied == []
