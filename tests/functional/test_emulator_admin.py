"""The emulator's test views under /_emulator/ (counters, update log, case state, reset, live
config), read with a plain aiohttp session while the real aiobotocore client makes the calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkupdate.emulator.server import Emulator

DOMAIN = "demo"
CASE = "case-0000001"
HIGH = [{"id": "priority", "value": {"stringValue": "high"}}]


@pytest.fixture
async def admin(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


async def get_json(admin: aiohttp.ClientSession, path: str) -> Any:
    async with admin.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def post_json(admin: aiohttp.ClientSession, path: str, body: Any = None) -> Any:
    async with admin.post(path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def update(client: Any, case_id: str, fields: list[dict[str, Any]]) -> None:
    await client.update_case(domainId=DOMAIN, caseId=case_id, fields=fields)


async def test_health_reports_the_emulator_url(
    admin: aiohttp.ClientSession, emulator: Emulator
) -> None:
    assert await get_json(admin, "/_emulator/health") == {"ok": True, "url": emulator.url}


async def test_counters_count_each_operation_by_outcome_including_errors(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await client.get_case(domainId=DOMAIN, caseId=CASE, fields=[{"id": "title"}])
    await client.get_case(domainId=DOMAIN, caseId="case-0000002", fields=[{"id": "title"}])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await client.get_case(domainId=DOMAIN, caseId="no-such-case", fields=[{"id": "title"}])
    await update(client, CASE, HIGH)
    await update(client, "case-0000002", HIGH)
    with pytest.raises(client.exceptions.ValidationException):
        await update(client, CASE, [{"id": "priority", "value": {"stringValue": "nope"}}])

    counters = await get_json(admin, "/_emulator/counters")

    assert counters["operations"] == {
        "GetCase": {"ok": 2, "ResourceNotFoundException": 1},
        "UpdateCase": {"ok": 2, "ValidationException": 1},
    }
    assert counters["update_case"]["accepted"] == 2
    assert counters["update_case"]["first_to_last_accept_s"] >= 0.0


async def test_counters_report_no_accept_span_before_any_update(
    admin: aiohttp.ClientSession,
) -> None:
    counters = await get_json(admin, "/_emulator/counters")

    assert counters["update_case"] == {"accepted": 0, "first_to_last_accept_s": None}
    assert not any(counters["operations"].values())


async def test_counters_list_only_operations_that_were_called(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await client.get_case(domainId=DOMAIN, caseId=CASE, fields=[{"id": "title"}])

    await get_json(admin, "/_emulator/counters")
    counters = await get_json(admin, "/_emulator/counters")

    assert counters["operations"] == {"GetCase": {"ok": 1}}


async def test_updates_log_lists_applied_updates_in_order(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    vip = [{"id": "vip", "value": {"booleanValue": True}}]
    total = [{"id": "order_total", "value": {"doubleValue": 99.5}}]
    await update(client, "case-0000003", HIGH)
    with pytest.raises(client.exceptions.ValidationException):
        await update(client, CASE, [{"id": "vip", "value": {"stringValue": "yes"}}])
    await update(client, CASE, vip)
    await update(client, "case-0000003", total)

    log = (await get_json(admin, "/_emulator/updates"))["updates"]

    assert [(u["seq"], u["domainId"], u["caseId"], u["fields"]) for u in log] == [
        (1, DOMAIN, "case-0000003", HIGH),
        (2, DOMAIN, CASE, vip),
        (3, DOMAIN, "case-0000003", total),
    ]
    times = [u["time"] for u in log]
    assert times == sorted(times)


async def test_updates_log_after_n_returns_only_later_entries(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    for index in range(1, 5):
        await update(client, f"case-{index:07d}", HIGH)

    after_two = (await get_json(admin, "/_emulator/updates?after=2"))["updates"]
    after_all = (await get_json(admin, "/_emulator/updates?after=4"))["updates"]

    assert [(u["seq"], u["caseId"]) for u in after_two] == [
        (3, "case-0000003"),
        (4, "case-0000004"),
    ]
    assert after_all == []


async def test_update_log_records_performed_by(client: Any, admin: aiohttp.ClientSession) -> None:
    user = {"userArn": "arn:aws:connect:us-east-1:123456789012:instance/abc/agent/def"}

    await client.update_case(domainId=DOMAIN, caseId=CASE, fields=HIGH, performedBy=user)

    (entry,) = (await get_json(admin, "/_emulator/updates"))["updates"]
    assert entry["performedBy"] == user


async def test_state_shows_every_case_with_its_current_values(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await update(client, CASE, [*HIGH, {"id": "order_total", "value": {"doubleValue": 12.0}}])

    state = (await get_json(admin, "/_emulator/state"))["domains"]

    assert list(state) == [DOMAIN]
    assert sorted(state[DOMAIN]) == [f"case-{index:07d}" for index in range(1, 6)]
    case = state[DOMAIN][CASE]
    assert case["priority"] == {"stringValue": "high"}
    assert case["order_total"] == {"doubleValue": 12.0}
    assert state[DOMAIN]["case-0000002"]["priority"] == {"stringValue": "low"}
    # The state view agrees with GetCase, system DateTime fields included.
    got = await client.get_case(domainId=DOMAIN, caseId=CASE, fields=[{"id": f} for f in case])
    assert {item["id"]: item["value"] for item in got["fields"]} == case
    assert {"title", "status", "created_datetime", "last_updated_datetime"} <= set(case)


async def test_reset_zeroes_counters_but_keeps_cases_and_the_update_log(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await update(client, CASE, HIGH)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await update(client, "no-such-case", HIGH)

    assert await post_json(admin, "/_emulator/reset") == {"ok": True}

    counters = await get_json(admin, "/_emulator/counters")
    assert not any(counters["operations"].values())
    assert counters["update_case"] == {"accepted": 0, "first_to_last_accept_s": None}
    assert len((await get_json(admin, "/_emulator/updates"))["updates"]) == 1
    state = (await get_json(admin, "/_emulator/state"))["domains"]
    assert state[DOMAIN][CASE]["priority"] == {"stringValue": "high"}
    # Counting starts again from zero.
    await update(client, CASE, HIGH)
    counters = await get_json(admin, "/_emulator/counters")
    assert counters["operations"]["UpdateCase"] == {"ok": 1}


async def test_config_quota_throttles_the_second_immediate_update(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await post_json(admin, "/_emulator/config", {"quotas": {"UpdateCase": "1/1"}})

    await update(client, CASE, HIGH)
    with pytest.raises(client.exceptions.ThrottlingException):
        await update(client, CASE, HIGH)

    counters = await get_json(admin, "/_emulator/counters")
    assert counters["operations"]["UpdateCase"] == {"ok": 1, "ThrottlingException": 1}
    assert len((await get_json(admin, "/_emulator/updates"))["updates"]) == 1
    # Other operations keep their own (unlimited) quota.
    for _ in range(3):
        await client.get_case(domainId=DOMAIN, caseId=CASE, fields=[{"id": "title"}])


async def test_config_quota_none_lifts_the_limit_again(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await post_json(admin, "/_emulator/config", {"quotas": {"UpdateCase": "1/1"}})
    await update(client, CASE, HIGH)
    with pytest.raises(client.exceptions.ThrottlingException):
        await update(client, CASE, HIGH)

    await post_json(admin, "/_emulator/config", {"quotas": {"UpdateCase": None}})

    for _ in range(5):
        await update(client, CASE, HIGH)


async def test_config_fault_makes_update_case_raise_internal_server_exception(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await post_json(admin, "/_emulator/config", {"faults": {"internal_error_probability": 1.0}})

    with pytest.raises(client.exceptions.InternalServerException) as raised:
        await update(client, CASE, HIGH)

    headers = raised.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["retry-after"] == "1"
    # Faults hit UpdateCase only by default, and the failed update was not applied.
    got = await client.get_case(domainId=DOMAIN, caseId=CASE, fields=[{"id": "priority"}])
    assert got["fields"] == [{"id": "priority", "value": {"stringValue": "low"}}]
    assert (await get_json(admin, "/_emulator/updates"))["updates"] == []
    counters = await get_json(admin, "/_emulator/counters")
    assert counters["operations"]["UpdateCase"] == {"InternalServerException": 1}

    await post_json(admin, "/_emulator/config", {"faults": {}})
    await update(client, CASE, HIGH)


@pytest.mark.parametrize(
    "body",
    [
        {"quotas": {"NoSuchOperation": "1/1"}},
        {"quotas": {"UpdateCase": "fast"}},
        {"faults": {"no_such_fault": 1.0}},
        {"faults": {"internal_error_probability": 2.0}},
    ],
)
async def test_config_refuses_bad_settings_with_400_and_a_message(
    admin: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    async with admin.post("/_emulator/config", json=body) as response:
        assert response.status == 400
        assert (await response.json())["message"]


async def test_refused_config_changes_nothing(client: Any, admin: aiohttp.ClientSession) -> None:
    body = {"quotas": {"UpdateCase": "1/1"}, "faults": {"no_such_fault": 1.0}}
    async with admin.post("/_emulator/config", json=body) as response:
        assert response.status == 400

    for _ in range(3):
        await update(client, CASE, HIGH)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/_emulator/updates?after=abc", None, id="after-not-a-number"),
        pytest.param("GET", "/_emulator/updates?after=-1", None, id="after-negative"),
        pytest.param("POST", "/_emulator/config", [], id="config-not-an-object"),
    ],
)
async def test_admin_answers_malformed_input_with_400_json(
    admin: aiohttp.ClientSession, method: str, path: str, body: Any
) -> None:
    async with admin.request(method, path, json=body) as response:
        assert response.status == 400
        assert response.content_type == "application/json"


async def test_an_agents_edit_changes_the_case_without_counting_as_an_update(
    client: Any, admin: aiohttp.ClientSession
) -> None:
    await update(client, CASE, HIGH)
    low = [{"id": "priority", "value": {"stringValue": "low"}}]

    assert await post_json(admin, f"/_emulator/cases/{DOMAIN}/{CASE}", {"fields": low}) == {
        "ok": True
    }

    read = await client.get_case(domainId=DOMAIN, caseId=CASE, fields=[{"id": "priority"}])
    assert read["fields"] == low
    updates = (await get_json(admin, "/_emulator/updates"))["updates"]
    assert [u["fields"] for u in updates] == [HIGH]  # the job's update only
    counters = await get_json(admin, "/_emulator/counters")
    assert counters["operations"]["UpdateCase"] == {"ok": 1}
    assert counters["operations"]["GetCase"] == {"ok": 1}


async def test_an_agents_edit_is_checked_as_an_update_is(admin: aiohttp.ClientSession) -> None:
    bad = [{"id": "priority", "value": {"stringValue": "nope"}}]
    async with admin.post(f"/_emulator/cases/{DOMAIN}/{CASE}", json={"fields": bad}) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "ValidationException"
    async with admin.post(f"/_emulator/cases/{DOMAIN}/no-such-case", json={"fields": HIGH}) as r:
        assert r.status == 404
