"""BatchUpdateCase in the emulator, driven over real HTTP by the project's client (`open_cases`,
SigV4-signed) and, for requests that client refuses to build, by a raw aiobotocore client: what
fails the whole call, per-case results, clientToken replay, quota, faults, log and counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkupdate.aws.client import BotocoreCases, open_cases
from bulkupdate.emulator import EmulatorConfig, FaultConfig, Quota, no_quotas, running_emulator
from bulkupdate.emulator.server import Emulator
from bulkupdate.errors import BatchRefusal, CallError, ErrorKind
from bulkupdate.models import CaseFailureKind
from tests.conftest import REGION, ClientFactory

DOMAIN = "demo"
CASES = [f"case-{index:07d}" for index in range(1, 6)]
HIGH = [{"id": "priority", "value": {"stringValue": "high"}}]


pytestmark = pytest.mark.usefixtures("aws_env")


def config(**overrides: Any) -> EmulatorConfig:
    options: dict[str, Any] = {
        "port": 0,
        "quotas": no_quotas(),
        "demo_cases": 5,
        "verify_signatures": True,
    }
    options.update(overrides)
    return EmulatorConfig(**options)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(config()) as emulator:
        yield emulator


@pytest.fixture
async def cases(emu: Emulator) -> AsyncIterator[BotocoreCases]:
    async with open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api:
        yield api


@pytest.fixture
async def raw(emu: Emulator, make_client: ClientFactory) -> AsyncIterator[Any]:
    async with make_client(emu.url, parameter_validation=False) as client:
        yield client


async def batch(cases: BotocoreCases, case_ids: list[str], token: str = "t-1", **kw: Any) -> Any:
    kw.setdefault("performed_by", None)
    return await cases.batch_update_case(case_ids, kw.pop("fields", HIGH), client_token=token, **kw)


def value(emu: Emulator, case_id: str, field_id: str) -> Any:
    return emu.service.domains[DOMAIN].cases[case_id].values.get(field_id)


async def counters(emu: Emulator) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(base_url=emu.url) as admin,
        admin.get("/_emulator/counters") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def configure(emu: Emulator, change: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession(base_url=emu.url) as admin,
        admin.post("/_emulator/config", json=change) as response,
    ):
        assert response.status == 200, await response.text()


# -- the call applies the same values to every listed case -----------------------------------


async def test_one_call_applies_the_same_values_to_every_listed_case(
    emu: Emulator, cases: BotocoreCases
) -> None:
    outcome = await batch(cases, CASES[:3], status="closed", title="Fixed", token="tok-a")

    assert outcome.succeeded == tuple(CASES[:3])
    assert outcome.failed == {}
    for case_id in CASES[:3]:
        assert value(emu, case_id, "priority") == {"stringValue": "high"}
        assert value(emu, case_id, "status") == {"stringValue": "closed"}
        assert value(emu, case_id, "title") == {"stringValue": "Fixed"}
    assert value(emu, CASES[3], "priority") == {"stringValue": "low"}


async def test_the_update_log_has_one_entry_per_case_marked_with_the_batch_token(
    emu: Emulator, cases: BotocoreCases
) -> None:
    await cases.update_case(CASES[4], HIGH, None)
    await batch(cases, CASES[:2], status="closed", token="tok-b", performed_by={"userArn": "u"})

    log = list(emu.service.updates)
    assert [(u["caseId"], u["operation"], u["clientToken"]) for u in log] == [
        (CASES[4], "UpdateCase", None),
        (CASES[0], "BatchUpdateCase", "tok-b"),
        (CASES[1], "BatchUpdateCase", "tok-b"),
    ]
    assert log[1]["fields"] == [*HIGH, {"id": "status", "value": {"stringValue": "closed"}}]
    assert log[1]["performedBy"] == {"userArn": "u"}


async def test_counters_show_calls_cases_per_call_and_per_case_outcomes(
    emu: Emulator, cases: BotocoreCases
) -> None:
    await batch(cases, CASES[:3], token="c-1")
    await batch(cases, [CASES[0], "case-missing"], token="c-2")
    await batch(cases, [CASES[0], "case-missing"], token="c-2")  # a replay

    seen = await counters(emu)

    assert seen["operations"]["BatchUpdateCase"] == {"ok": 3}
    assert seen["batch_update_case"] == {
        "calls": 3,
        "replayed": 1,
        "cases": 5,
        "applied": 4,
        "failed": {"CASE_NOT_FOUND": 1},
        "cases_per_call": {"2": 1, "3": 1},
    }


async def test_a_case_named_by_reference_id_is_applied_and_answered_with_both_ids(
    emu: Emulator, raw: Any
) -> None:
    answer = await raw.batch_update_case(
        domainId=DOMAIN,
        cases=[{"caseIdentifier": {"referenceId": "00000002"}}],
        fields=[{"fieldIdentifier": {"name": "Priority"}, "value": {"stringValue": "urgent"}}],
    )

    assert answer["successfulCases"] == [
        {"caseIdentifier": {"caseId": CASES[1], "referenceId": "00000002"}}
    ]
    assert value(emu, CASES[1], "priority") == {"stringValue": "urgent"}


# -- per-case results -------------------------------------------------------------------------


async def test_an_unknown_case_fails_alone_with_case_not_found(
    emu: Emulator, cases: BotocoreCases
) -> None:
    outcome = await batch(cases, [CASES[0], "case-9999999", CASES[1]])

    assert outcome.succeeded == (CASES[0], CASES[1])
    failure = outcome.failure("case-9999999")
    assert failure is not None
    assert (failure.code, failure.kind) == ("CASE_NOT_FOUND", CaseFailureKind.ROW)
    assert "case-9999999" in failure.message


async def test_a_value_invalid_for_one_case_fails_that_case_with_validation_error(
    emu: Emulator, cases: BotocoreCases
) -> None:
    service = emu.service
    domain = service.domains[DOMAIN]
    service.add_template(domain, "Strict", template_id="strict", required_fields=["account_code"])
    strict = service.add_case(
        domain, "strict", [{"id": "account_code", "value": {"stringValue": "A1"}}]
    )
    clear = [{"id": "account_code", "value": {"emptyValue": {}}}]

    outcome = await batch(cases, [CASES[0], strict.case_id], fields=clear)

    assert outcome.succeeded == (CASES[0],)
    failure = outcome.failure(strict.case_id)
    assert failure is not None
    assert (failure.code, failure.kind) == ("VALIDATION_ERROR", CaseFailureKind.ROW)
    assert "required" in failure.message
    assert value(emu, strict.case_id, "account_code") == {"stringValue": "A1"}


async def test_a_value_no_case_can_take_fails_every_case_and_applies_nothing(
    emu: Emulator, cases: BotocoreCases
) -> None:
    inactive = [{"id": "priority", "value": {"stringValue": "legacy"}}]

    outcome = await batch(cases, CASES[:2], fields=inactive)

    assert outcome.succeeded == ()
    assert {f.code for f in outcome.failed.values()} == {"VALIDATION_ERROR"}
    assert len(emu.service.updates) == 0


# -- whole-call refusals ----------------------------------------------------------------------


def body(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "domainId": DOMAIN,
        "cases": [{"caseIdentifier": {"caseId": CASES[0]}}],
        "fields": [{"fieldIdentifier": {"id": "priority"}, "value": {"stringValue": "high"}}],
    }
    request.update(overrides)
    return request


def one_field(identifier: dict[str, str], union: dict[str, Any] | None = None) -> list[Any]:
    return [{"fieldIdentifier": identifier, "value": union or {"stringValue": "x"}}]


REFUSED = {
    "duplicate case ids": body(
        cases=[{"caseIdentifier": {"caseId": CASES[0]}}, {"caseIdentifier": {"caseId": CASES[0]}}]
    ),
    "the same case by id and by reference": body(
        cases=[
            {"caseIdentifier": {"caseId": CASES[0]}},
            {"caseIdentifier": {"referenceId": "00000001"}},
        ]
    ),
    "no update": body(fields=[]),
    "an unknown field id": body(fields=one_field({"id": "no_such_field"})),
    "an unknown field name": body(fields=one_field({"name": "No such field"})),
    "a field name with a pipe": body(fields=one_field({"name": "Priority|x"})),
    "a field name with a comma": body(fields=one_field({"name": "Priority,x"})),
    "title in fields": body(fields=one_field({"id": "title"})),
    "status in fields by name": body(fields=one_field({"name": "Status"}, {"stringValue": "open"})),
    "customer_id in fields": body(fields=one_field({"id": "customer_id"})),
    "a read-only field": body(fields=one_field({"id": "reference_number"})),
    "a field twice": body(fields=one_field({"id": "notes"}) + one_field({"name": "Notes"})),
    "a reference id that matches no case": body(
        cases=[{"caseIdentifier": {"referenceId": "99999999"}}]
    ),
    "101 cases": body(
        cases=[{"caseIdentifier": {"caseId": f"case-{i:07d}"}} for i in range(1, 102)]
    ),
    "a bad status": body(status="no/slashes"),
    "a token over 64 characters": body(clientToken="t" * 65),
    "a case id over 500 characters": body(cases=[{"caseIdentifier": {"caseId": "c" * 501}}]),
}


@pytest.mark.parametrize("request_body", REFUSED.values(), ids=REFUSED.keys())
async def test_a_bad_request_is_refused_whole_with_validation_exception_and_applies_nothing(
    emu: Emulator, raw: Any, request_body: dict[str, Any]
) -> None:
    with pytest.raises(raw.exceptions.ValidationException) as raised:
        await raw.batch_update_case(**request_body)

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(emu.service.updates) == 0
    assert emu.batch_counters.calls == 0


async def test_an_unknown_domain_is_refused_whole_and_stops_the_run(emu: Emulator) -> None:
    async with open_cases(domain_id="nope", endpoint_url=emu.url, region=REGION) as api:
        with pytest.raises(CallError) as raised:
            await batch(api, CASES[:2])

    assert (raised.value.kind, raised.value.code) == (
        ErrorKind.SYSTEMIC,
        "ResourceNotFoundException",
    )
    assert len(emu.service.updates) == 0


async def test_the_clients_view_of_a_whole_call_refusal_says_isolate_the_cause(
    emu: Emulator, cases: BotocoreCases
) -> None:
    with pytest.raises(CallError) as raised:
        await batch(cases, [CASES[0], "c" * 501])

    error = raised.value
    assert (error.kind, error.code) == (ErrorKind.ROW, "ValidationException")
    assert error.batch_refusal is BatchRefusal.INVALID
    assert len(emu.service.updates) == 0


# -- clientToken ------------------------------------------------------------------------------


async def test_the_same_token_and_request_answer_the_first_response_and_apply_nothing_again(
    emu: Emulator, cases: BotocoreCases
) -> None:
    first = await batch(cases, [CASES[0], "case-missing", CASES[1]], token="same")
    await cases.update_case(CASES[0], [{"id": "priority", "value": {"stringValue": "low"}}], None)

    again = await batch(cases, [CASES[0], "case-missing", CASES[1]], token="same")

    assert again == first
    assert [u["clientToken"] for u in emu.service.updates] == ["same", "same", None]
    assert value(emu, CASES[0], "priority") == {"stringValue": "low"}  # not applied again


async def test_the_same_token_with_other_parameters_is_a_409_conflict(
    emu: Emulator, cases: BotocoreCases
) -> None:
    await batch(cases, CASES[:2], token="tok")

    with pytest.raises(CallError) as raised:
        await batch(cases, CASES[:3], token="tok")

    error = raised.value
    assert (error.code, error.kind) == ("ConflictException", ErrorKind.ROW)
    assert error.batch_refusal is BatchRefusal.TOKEN_REUSED
    assert emu.counters["BatchUpdateCase"]["ConflictException"] == 1
    assert len(emu.service.updates) == 2


async def test_a_refused_call_does_not_use_up_its_token(
    emu: Emulator, cases: BotocoreCases
) -> None:
    with pytest.raises(CallError):
        await batch(cases, [CASES[0], "c" * 501], token="tok")

    outcome = await batch(cases, [CASES[0]], token="tok")

    assert outcome.succeeded == (CASES[0],)


async def test_after_the_token_window_the_same_token_applies_again(
    emu: Emulator, cases: BotocoreCases
) -> None:
    await batch(cases, CASES[:2], token="old")
    await configure(emu, {"token_window_s": 0})

    await batch(cases, CASES[:2], token="old")

    assert len(emu.service.updates) == 4


async def test_the_default_token_window_is_eight_hours() -> None:
    assert EmulatorConfig().token_window_s == 8 * 3600


async def test_remembered_tokens_survive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    for _ in range(2):
        async with (
            running_emulator(config(state_path=state)) as emu,
            open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
        ):
            outcome = await batch(api, CASES[:2], token="kept")
            assert outcome.succeeded == tuple(CASES[:2])
    assert len(emu.service.updates) == 2
    assert emu.batch_counters.replayed == 1


# -- quota and faults -------------------------------------------------------------------------


async def test_batch_update_case_has_its_own_default_quota_of_2_per_s_burst_2() -> None:
    async with (
        running_emulator(config(quotas=EmulatorConfig().quotas)) as emu,
        open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
    ):
        outcomes = []
        for index in range(3):
            try:
                await batch(api, CASES[:2], token=f"q-{index}")
                outcomes.append("ok")
            except CallError as error:
                outcomes.append(error.kind)
        await api.update_case(CASES[0], HIGH, None)  # UpdateCase's bucket is its own
    assert emu.quotas.limits["BatchUpdateCase"] == Quota(2, 2)
    assert outcomes == ["ok", "ok", ErrorKind.THROTTLED]
    assert emu.counters["BatchUpdateCase"]["ThrottlingException"] == 1


async def test_per_case_throttles_fail_only_the_chosen_cases_and_only_in_the_first_calls() -> None:
    faults = FaultConfig(
        case_throttle_probability=1.0, fault_case_ids=frozenset({CASES[1]}), fault_calls=1
    )
    async with (
        running_emulator(config(faults=faults)) as emu,
        open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
    ):
        first = await batch(api, CASES[:3], token="f-1")
        retry = await batch(api, [CASES[1]], token="f-2")
    assert first.succeeded == (CASES[0], CASES[2])
    throttled = first.failure(CASES[1])
    assert throttled is not None
    assert (throttled.code, throttled.kind) == ("THROTTLED", CaseFailureKind.THROTTLED)
    assert retry.succeeded == (CASES[1],)


@pytest.mark.parametrize(
    ("option", "code", "kind"),
    [
        ("case_conflict_probability", "CONFLICT", CaseFailureKind.TRANSIENT),
        ("case_internal_error_probability", "INTERNAL_ERROR", CaseFailureKind.TRANSIENT),
    ],
)
async def test_per_case_conflicts_and_internal_errors_are_retryable_failures(
    option: str, code: str, kind: CaseFailureKind
) -> None:
    async with (
        running_emulator(config(faults=FaultConfig(**{option: 1.0}))) as emu,
        open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
    ):
        outcome = await batch(api, CASES[:2])
    assert outcome.succeeded == ()
    assert {(f.code, f.kind) for f in outcome.failed.values()} == {(code, kind)}
    assert len(emu.service.updates) == 0


async def test_whole_call_faults_apply_to_batch_update_case_like_to_update_case() -> None:
    async with (
        running_emulator(config(faults=FaultConfig(internal_error_probability=1.0))) as emu,
        open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
    ):
        with pytest.raises(CallError) as raised:
            await batch(api, CASES[:2])
    assert (raised.value.kind, raised.value.code) == (
        ErrorKind.TRANSIENT,
        "InternalServerException",
    )
    assert raised.value.batch_refusal is None
    assert len(emu.service.updates) == 0


async def test_a_reply_lost_after_apply_then_a_retry_with_the_token_applies_each_case_once() -> (
    None
):
    faults = FaultConfig(drop_after_apply_probability=1.0, fault_calls=1)
    async with (
        running_emulator(config(faults=faults)) as emu,
        open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
    ):
        with pytest.raises(CallError) as raised:
            await batch(api, CASES[:3], token="lost")
        assert raised.value.outcome_unknown
        outcome = await batch(api, CASES[:3], token="lost")
    assert outcome.succeeded == tuple(CASES[:3])
    assert [u["caseId"] for u in emu.service.updates] == CASES[:3]
    assert emu.batch_counters.replayed == 1


async def test_revoked_permission_counts_batch_calls_as_writes() -> None:
    faults = FaultConfig(access_denied_after_calls=1)
    async with (
        running_emulator(config(faults=faults)) as emu,
        open_cases(domain_id=DOMAIN, endpoint_url=emu.url, region=REGION) as api,
    ):
        await batch(api, CASES[:2], token="d-1")
        with pytest.raises(CallError) as raised:
            await api.update_case(CASES[2], HIGH, None)
    assert (raised.value.kind, raised.value.code) == (ErrorKind.SYSTEMIC, "AccessDeniedException")


async def test_faults_configured_live_may_pick_cases(emu: Emulator, cases: BotocoreCases) -> None:
    change = {"faults": {"case_conflict_probability": 1.0, "fault_case_ids": [CASES[0]]}}
    await configure(emu, change)

    outcome = await batch(cases, CASES[:2])

    assert outcome.succeeded == (CASES[1],)
    assert set(outcome.failed) == {CASES[0]}
