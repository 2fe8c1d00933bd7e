"""Every error the emulator sends, as the real aiobotocore client sees it: the modeled exception
class, the status code, the x-amzn-ErrorType header and the parsed extra members."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from bulkupdate.emulator import EmulatorConfig, FaultConfig, Quota, no_quotas, running_emulator
from bulkupdate.emulator.server import Emulator
from tests.conftest import ClientFactory

CASE = "case-0000001"
HIGH = [{"id": "priority", "value": {"stringValue": "high"}}]


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, dict[str, Any]]:
    response = raised.value.response
    metadata = response["ResponseMetadata"]
    assert metadata["RequestId"], "every error carries x-amzn-RequestId"
    assert metadata["HTTPHeaders"]["content-type"] == "application/json"
    assert metadata["HTTPHeaders"]["x-amzn-errortype"] == response["Error"]["Code"]
    return response["Error"]["Code"], metadata["HTTPStatusCode"], response


def config(**overrides: Any) -> EmulatorConfig:
    options: dict[str, Any] = {"port": 0, "quotas": no_quotas(), "demo_cases": 2}
    options.update(overrides)
    return EmulatorConfig(**options)


async def test_unknown_field_raises_validation_exception_with_status_400(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException) as raised:
        await client.update_case(
            domainId="demo", caseId=CASE, fields=[{"id": "nope", "value": {"stringValue": "x"}}]
        )
    code, status, _ = error_of(raised)
    assert (code, status) == ("ValidationException", 400)
    assert "nope" in raised.value.response["Error"]["Message"]


async def test_unknown_case_raises_resource_not_found_naming_the_case(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        await client.update_case(domainId="demo", caseId="no-such-case", fields=HIGH)
    code, status, response = error_of(raised)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert (response["resourceId"], response["resourceType"]) == ("no-such-case", "Case")


async def test_unknown_domain_raises_resource_not_found_naming_the_domain(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        await client.update_case(domainId="no-such-domain", caseId=CASE, fields=HIGH)
    _, status, response = error_of(raised)
    assert status == 404
    assert (response["resourceId"], response["resourceType"]) == ("no-such-domain", "Domain")


async def test_duplicate_domain_name_raises_conflict_with_status_409(client: Any) -> None:
    with pytest.raises(client.exceptions.ConflictException) as raised:
        await client.create_domain(name="demo")
    assert error_of(raised)[:2] == ("ConflictException", 409)


async def test_sixth_domain_raises_service_quota_exceeded_with_status_402(client: Any) -> None:
    for index in range(4):
        await client.create_domain(name=f"extra-{index}")
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as raised:
        await client.create_domain(name="one-too-many")
    assert error_of(raised)[:2] == ("ServiceQuotaExceededException", 402)


async def test_revoked_permission_raises_access_denied_after_n_updates(
    make_client: ClientFactory,
) -> None:
    async with (
        running_emulator(config(faults=FaultConfig(access_denied_after_calls=2))) as emu,
        make_client(emu.url) as client,
    ):
        await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        with pytest.raises(client.exceptions.AccessDeniedException) as raised:
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert error_of(raised)[:2] == ("AccessDeniedException", 403)
        assert len(emu.service.updates) == 2


async def test_exhausted_quota_raises_throttling_exception_with_status_429(
    make_client: ClientFactory,
) -> None:
    quotas = {**no_quotas(), "UpdateCase": Quota(0.001, 1)}
    async with running_emulator(config(quotas=quotas)) as emu, make_client(emu.url) as client:
        await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        with pytest.raises(client.exceptions.ThrottlingException) as raised:
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert error_of(raised)[:2] == ("ThrottlingException", 429)
        assert emu.counters["UpdateCase"] == {"ok": 1, "ThrottlingException": 1}


async def test_internal_error_raises_internal_server_exception_with_retry_after(
    make_client: ClientFactory,
) -> None:
    faults = FaultConfig(internal_error_probability=1.0, retry_after_s=7)
    async with running_emulator(config(faults=faults)) as emu, make_client(emu.url) as client:
        with pytest.raises(client.exceptions.InternalServerException) as raised:
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        code, status, response = error_of(raised)
        assert (code, status) == ("InternalServerException", 500)
        assert response["retryAfterSeconds"] == 7
        assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "7"
        assert emu.service.updates == []


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottledException", 400), ("RequestTimeoutException", 408)]
)
async def test_an_injected_error_code_arrives_with_its_status_in_aws_error_format(
    make_client: ClientFactory, code: str, status: int
) -> None:
    faults = FaultConfig(internal_error_probability=1.0, error_code=code, error_status=status)
    async with running_emulator(config(faults=faults)) as emu, make_client(emu.url) as client:
        with pytest.raises(ClientError) as raised:
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        got_code, got_status, response = error_of(raised)
        assert (got_code, got_status) == (code, status)
        assert response["Error"]["Message"]
        assert "retry-after" not in response["ResponseMetadata"]["HTTPHeaders"]
        assert emu.service.updates == []
        assert emu.counters["UpdateCase"] == {code: 1}


async def test_only_the_first_fault_calls_meet_faults(make_client: ClientFactory) -> None:
    faults = FaultConfig(internal_error_probability=1.0, fault_calls=2)
    async with running_emulator(config(faults=faults)) as emu, make_client(emu.url) as client:
        for _ in range(2):
            with pytest.raises(client.exceptions.InternalServerException):
                await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert emu.counters["UpdateCase"] == {"InternalServerException": 2, "ok": 1}


async def test_a_reply_cut_short_surfaces_as_connection_closed_after_the_update_applied(
    make_client: ClientFactory,
) -> None:
    faults = FaultConfig(cut_short_probability=1.0)
    async with running_emulator(config(faults=faults)) as emu, make_client(emu.url) as client:
        with pytest.raises(ConnectionClosedError) as raised:
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert isinstance(raised.value.kwargs["error"], aiohttp.ClientPayloadError)
        assert emu.service.updates[0]["caseId"] == CASE
        assert emu.counters["UpdateCase"] == {"cut_short": 1}


async def test_dropped_connection_surfaces_as_connection_closed_and_applies_nothing(
    make_client: ClientFactory,
) -> None:
    async with (
        running_emulator(config(faults=FaultConfig(drop_probability=1.0))) as emu,
        make_client(emu.url) as client,
    ):
        with pytest.raises(ConnectionClosedError):
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert emu.service.updates == []
        assert emu.counters["UpdateCase"]["dropped"] >= 1


async def test_drop_after_apply_applies_the_update_but_sends_no_reply(
    make_client: ClientFactory,
) -> None:
    faults = FaultConfig(drop_after_apply_probability=1.0)
    async with running_emulator(config(faults=faults)) as emu, make_client(emu.url) as client:
        with pytest.raises(ConnectionClosedError):
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert emu.service.updates[0]["caseId"] == CASE


async def test_slow_response_trips_the_client_read_timeout(make_client: ClientFactory) -> None:
    faults = FaultConfig(slow_probability=1.0, slow_s=1.0)
    async with (
        running_emulator(config(faults=faults)) as emu,
        make_client(emu.url, read_timeout=0.2) as client,
    ):
        started_s = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert time.monotonic() - started_s < 1.0


async def test_faults_leave_operations_outside_their_list_alone(
    make_client: ClientFactory,
) -> None:
    faults = FaultConfig(internal_error_probability=1.0)
    async with running_emulator(config(faults=faults)) as emu, make_client(emu.url) as client:
        listed = await client.list_fields(domainId="demo")
        assert listed["fields"]


async def test_request_without_authorization_gets_403_json_not_html(emulator: Emulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.url}/domains-list", json={}) as response,
    ):
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert "message" in await response.json()


async def test_signature_scoped_to_another_service_is_refused(emulator: Emulator) -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emulator.url}/domains-list", json={}, headers={"Authorization": header}
        ) as response,
    ):
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("access_key", "secret", "expected"),
    [
        ("AKIDEMULATOR", "emulator-secret", None),
        ("AKIDEMULATOR", "wrong-secret", "InvalidSignatureException"),
        ("AKIDUNKNOWN", "emulator-secret", "UnrecognizedClientException"),
    ],
)
async def test_signature_verification_accepts_only_the_configured_secret(
    make_client: ClientFactory, access_key: str, secret: str, expected: str | None
) -> None:
    async with (
        running_emulator(config(verify_signatures=True)) as emu,
        make_client(emu.url, access_key=access_key, secret=secret) as client,
    ):
        if expected is None:
            result = await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
            assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
            return
        with pytest.raises(ClientError) as raised:
            await client.update_case(domainId="demo", caseId=CASE, fields=HIGH)
        assert error_of(raised)[:2] == (expected, 403)
        assert emu.service.updates == []


async def test_signed_request_with_escaped_path_characters_verifies(
    make_client: ClientFactory,
) -> None:
    async with (
        running_emulator(config(verify_signatures=True)) as emu,
        make_client(emu.url) as client,
    ):
        with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
            await client.update_case(domainId="demo", caseId="a case/with:odd chars", fields=HIGH)
        assert raised.value.response["resourceId"] == "a case/with:odd chars"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("PUT", "/domains/demo/cases/case-0000001", b"{not json", 400, "SerializationException"),
        ("PUT", "/domains/demo/cases/case-0000001", b"[1, 2]", 400, "SerializationException"),
        ("GET", "/no/such/operation", b"", 404, "UnknownOperationException"),
        ("DELETE", "/domains/demo", b"", 404, "UnknownOperationException"),
    ],
)
async def test_malformed_requests_get_aws_shaped_json_errors(
    emulator: Emulator, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cases/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, emulator.url + path, data=body, headers={"Authorization": header}
        ) as response,
    ):
        assert response.status == status
        assert response.headers["x-amzn-ErrorType"] == code
        assert response.headers["Content-Type"].startswith("application/json")
        assert (await response.json())["message"]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ([{"id": "priority", "value": {}}], "exactly one"),
        (
            [{"id": "priority", "value": {"stringValue": "high", "doubleValue": 1.0}}],
            "exactly one",
        ),
        ([{"id": "x" * 501, "value": {"stringValue": "a"}}], "less than or equal to 500"),
        ([{"id": f"f{n}", "value": {"emptyValue": {}}} for n in range(221)], "220"),
        ([{"id": "notes", "value": {"stringValue": "n" * 4101}}], "4100"),
        ([{"id": "summary", "value": {"stringValue": "s" * 3001}}], "3000"),
        ([{"id": "account_code", "value": {"stringValue": "a" * 501}}], "500"),
        ([{"id": "order_total", "value": {"stringValue": "12"}}], "doubleValue"),
        ([{"id": "vip", "value": {"stringValue": "true"}}], "booleanValue"),
        ([{"id": "owner", "value": {"stringValue": "arn:x"}}], "userArnValue"),
        ([{"id": "owner", "value": {"userArnValue": "not-an-arn"}}], "user ARN"),
        ([{"id": "priority", "value": {"stringValue": "High"}}], "not a valid option"),
        ([{"id": "priority", "value": {"stringValue": "legacy"}}], "inactive"),
        ([{"id": "due_date", "value": {"doubleValue": 1.7e12}}], "stringValue"),
        ([{"id": "due_date", "value": {"stringValue": "yesterday"}}], "ISO-8601"),
        ([{"id": "created_datetime", "value": {"stringValue": "2024-01-01T00:00:00Z"}}], "read"),
        (
            [
                {"id": "vip", "value": {"booleanValue": True}},
                {"id": "vip", "value": {"booleanValue": False}},
            ],
            "more than once",
        ),
    ],
)
async def test_update_case_rejects_what_the_service_rejects(
    raw_client: Any, emulator: Emulator, fields: list[dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(raw_client.exceptions.ValidationException) as raised:
        await raw_client.update_case(domainId="demo", caseId=CASE, fields=fields)
    assert fragment in raised.value.response["Error"]["Message"]
    assert emulator.service.updates == []


async def test_an_oversized_body_gets_a_json_error_not_an_html_page(emulator: Emulator) -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/cases/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )

    async def body() -> AsyncIterator[bytes]:  # streamed: 17 MiB, over the 16 MiB limit
        yield b'{"fields": ['
        for _ in range(17):
            yield b" " * (1024 * 1024)
        yield b"]}"

    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{emulator.url}/domains/demo/cases/{CASE}",
            data=body(),
            headers={"Authorization": header},
        ) as response,
    ):
        assert response.status == 413
        assert response.headers["x-amzn-ErrorType"] == "SerializationException"
        assert (await response.json())["message"]
