"""Every operation the emulator serves, driven through the real aiobotocore client over real HTTP:
domains, fields, field options, templates, cases, search and updates of every field type."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bulkupdate.emulator import DateTimeEncoding, EmulatorConfig, no_quotas, running_emulator
from bulkupdate.emulator.seed import DEMO_FIELDS
from tests.conftest import ClientFactory

DOMAIN = "demo"
CASE = "case-0000001"
DEMO_CASE_IDS = [f"case-{index:07d}" for index in range(1, 6)]
SYSTEM_FIELD_IDS = [
    "title",
    "status",
    "summary",
    "reference_number",
    "customer_id",
    "created_datetime",
    "last_updated_datetime",
]
DEMO_FIELD_IDS = [field_id for field_id, *_ in DEMO_FIELDS]
FIELD_TYPES = ["Text", "Number", "Boolean", "DateTime", "SingleSelect", "Url", "User"]
USER_ARN = "arn:aws:connect:us-east-1:123456789012:instance/abc/agent/def"
DATETIME_FIELDS = [{"id": "created_datetime"}, {"id": "last_updated_datetime"}]


async def case_fields(client: Any, case_id: str, field_ids: list[str]) -> dict[str, Any]:
    """GetCase as {field id: union}; fields the case has no value for are absent."""
    response = await client.get_case(
        domainId=DOMAIN, caseId=case_id, fields=[{"id": f} for f in field_ids]
    )
    return {item["id"]: item["value"] for item in response["fields"]}


def parse_iso(text: str) -> datetime:
    assert text.endswith("Z"), f"{text!r} is not in UTC"
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


# -- domains -------------------------------------------------------------------------------


async def test_created_domain_is_readable_with_get_domain(client: Any) -> None:
    created = await client.create_domain(name="support")

    domain = await client.get_domain(domainId=created["domainId"])

    assert domain["domainId"] == created["domainId"]
    assert domain["domainArn"] == created["domainArn"]
    assert domain["domainArn"].startswith("arn:aws:cases:us-east-1:123456789012:domain/")
    assert domain["domainArn"].endswith(created["domainId"])
    assert (domain["name"], domain["domainStatus"]) == ("support", "Active")
    assert isinstance(domain["createdTime"], datetime)
    assert abs(domain["createdTime"].timestamp() - time.time()) < 60


async def test_list_domains_pages_through_every_domain(client: Any) -> None:
    for name in ("alpha", "beta", "gamma"):
        await client.create_domain(name=name)

    names: list[str] = []
    pages = 0
    kwargs: dict[str, Any] = {"maxResults": 2}
    while True:
        page = await client.list_domains(**kwargs)
        pages += 1
        assert len(page["domains"]) <= 2
        names += [domain["name"] for domain in page["domains"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]

    assert sorted(names) == ["alpha", "beta", "demo", "gamma"]
    assert pages == 2


async def test_get_domain_of_unknown_id_raises_resource_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await client.get_domain(domainId="no-such-domain")


# -- fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("field_type", FIELD_TYPES)
async def test_create_field_makes_a_custom_field_of_every_type(
    client: Any, field_type: str
) -> None:
    created = await client.create_field(
        domainId=DOMAIN, name=f"New {field_type}", type=field_type, description="added"
    )

    got = await client.batch_get_field(domainId=DOMAIN, fields=[{"id": created["fieldId"]}])

    assert got["errors"] == []
    (detail,) = got["fields"]
    assert detail["fieldArn"] == created["fieldArn"]
    assert detail["fieldArn"].endswith(f"/field/{created['fieldId']}")
    assert (detail["name"], detail["type"], detail["namespace"]) == (
        f"New {field_type}",
        field_type,
        "Custom",
    )
    assert detail["description"] == "added"
    if field_type == "Text":
        assert detail["attributes"] == {"text": {"isMultiline": False}}
    else:
        assert "attributes" not in detail


async def test_multiline_text_field_reports_its_attribute_and_takes_long_text(
    client: Any,
) -> None:
    created = await client.create_field(
        domainId=DOMAIN, name="Long notes", type="Text", attributes={"text": {"isMultiline": True}}
    )
    field_id = created["fieldId"]
    long_text = "x" * 600  # over the single-line limit of 500

    listed = await client.list_fields(domainId=DOMAIN)
    (summary,) = [f for f in listed["fields"] if f["fieldId"] == field_id]
    await client.update_case(
        domainId=DOMAIN, caseId=CASE, fields=[{"id": field_id, "value": {"stringValue": long_text}}]
    )

    assert summary["attributes"] == {"text": {"isMultiline": True}}
    assert (await case_fields(client, CASE, [field_id]))[field_id] == {"stringValue": long_text}
    with pytest.raises(client.exceptions.ValidationException):
        await client.update_case(
            domainId=DOMAIN,
            caseId=CASE,
            fields=[{"id": "account_code", "value": {"stringValue": long_text}}],
        )


async def test_create_field_with_a_taken_name_raises_conflict(client: Any) -> None:
    await client.create_field(domainId=DOMAIN, name="Region", type="Text")

    with pytest.raises(client.exceptions.ConflictException):
        await client.create_field(domainId=DOMAIN, name="Region", type="Number")
    with pytest.raises(client.exceptions.ConflictException):
        await client.create_field(domainId=DOMAIN, name="Priority", type="SingleSelect")


async def test_list_fields_pages_through_every_field(client: Any) -> None:
    field_ids: list[str] = []
    page_sizes: list[int] = []
    kwargs: dict[str, Any] = {"domainId": DOMAIN, "maxResults": 2}
    while True:
        page = await client.list_fields(**kwargs)
        page_sizes.append(len(page["fields"]))
        field_ids += [f["fieldId"] for f in page["fields"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]

    expected = SYSTEM_FIELD_IDS + DEMO_FIELD_IDS
    assert sorted(field_ids) == sorted(expected)
    assert len(field_ids) == len(set(field_ids)) == 16
    assert page_sizes == [2] * 8


async def test_list_fields_reports_system_fields_in_the_system_namespace(client: Any) -> None:
    listed = {f["fieldId"]: f for f in (await client.list_fields(domainId=DOMAIN))["fields"]}

    for field_id in SYSTEM_FIELD_IDS:
        assert listed[field_id]["namespace"] == "System", field_id
    for field_id in DEMO_FIELD_IDS:
        assert listed[field_id]["namespace"] == "Custom", field_id
    assert listed["status"]["type"] == "SingleSelect"
    assert listed["created_datetime"]["type"] == "DateTime"
    assert listed["last_updated_datetime"]["type"] == "DateTime"
    assert listed["summary"]["attributes"] == {"text": {"isMultiline": True}}
    assert listed["title"]["attributes"] == {"text": {"isMultiline": False}}


async def test_batch_get_field_returns_known_fields_and_errors_for_unknown_ids(
    client: Any,
) -> None:
    got = await client.batch_get_field(
        domainId=DOMAIN, fields=[{"id": "title"}, {"id": "no-such-field"}, {"id": "priority"}]
    )

    assert [f["fieldId"] for f in got["fields"]] == ["title", "priority"]
    assert got["fields"][1]["type"] == "SingleSelect"
    assert got["fields"][0]["namespace"] == "System"
    (error,) = got["errors"]
    assert error["id"] == "no-such-field"
    assert error["errorCode"]


# -- field options -------------------------------------------------------------------------


async def test_list_field_options_pages_through_every_option(client: Any) -> None:
    field_id = (await client.create_field(domainId=DOMAIN, name="Channel", type="SingleSelect"))[
        "fieldId"
    ]
    options = [{"name": f"Channel {n}", "value": f"ch-{n}", "active": True} for n in range(5)]
    put = await client.batch_put_field_options(domainId=DOMAIN, fieldId=field_id, options=options)

    listed: list[dict[str, Any]] = []
    pages = 0
    kwargs: dict[str, Any] = {"domainId": DOMAIN, "fieldId": field_id, "maxResults": 2}
    while True:
        page = await client.list_field_options(**kwargs)
        pages += 1
        listed += page["options"]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]

    assert put["errors"] == []
    assert listed == options
    assert pages == 3


async def test_list_field_options_values_filter_selects_one_option(client: Any) -> None:
    listed = await client.list_field_options(domainId=DOMAIN, fieldId="priority", values=["high"])

    assert listed["options"] == [{"name": "High", "value": "high", "active": True}]
    assert "nextToken" not in listed


async def test_batch_put_field_options_can_deactivate_an_option_for_updates(
    client: Any,
) -> None:
    await client.batch_put_field_options(
        domainId=DOMAIN,
        fieldId="priority",
        options=[{"name": "Urgent", "value": "urgent", "active": False}],
    )

    listed = await client.list_field_options(domainId=DOMAIN, fieldId="priority")

    assert {o["value"]: o["active"] for o in listed["options"]} == {
        "low": True,
        "medium": True,
        "high": True,
        "urgent": False,
        "legacy": False,
    }
    with pytest.raises(client.exceptions.ValidationException, match="inactive"):
        await client.update_case(
            domainId=DOMAIN,
            caseId=CASE,
            fields=[{"id": "priority", "value": {"stringValue": "urgent"}}],
        )


# -- templates -----------------------------------------------------------------------------


async def test_list_templates_filters_by_status_and_pages(client: Any) -> None:
    active = await client.create_template(domainId=DOMAIN, name="Returns")
    retired = await client.create_template(domainId=DOMAIN, name="Old", status="Inactive")

    only_inactive = await client.list_templates(domainId=DOMAIN, status=["Inactive"])
    only_active = await client.list_templates(domainId=DOMAIN, status=["Active"])
    paged: list[str] = []
    kwargs: dict[str, Any] = {"domainId": DOMAIN, "maxResults": 1}
    while True:
        page = await client.list_templates(**kwargs)
        assert len(page["templates"]) <= 1
        paged += [t["templateId"] for t in page["templates"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]

    assert [(t["templateId"], t["status"]) for t in only_inactive["templates"]] == [
        (retired["templateId"], "Inactive")
    ]
    assert sorted(t["templateId"] for t in only_active["templates"]) == sorted(
        ["demo-template", active["templateId"]]
    )
    assert sorted(paged) == sorted(["demo-template", active["templateId"], retired["templateId"]])
    assert active["templateArn"].endswith(f"/template/{active['templateId']}")


# -- cases ---------------------------------------------------------------------------------


async def test_create_case_enforces_the_template_required_fields(client: Any) -> None:
    template = await client.create_template(
        domainId=DOMAIN,
        name="Strict",
        requiredFields=[{"fieldId": "title"}, {"fieldId": "priority"}],
    )
    title = {"id": "title", "value": {"stringValue": "Broken parcel"}}
    high = {"id": "priority", "value": {"stringValue": "high"}}

    with pytest.raises(client.exceptions.ValidationException, match="priority"):
        await client.create_case(domainId=DOMAIN, templateId=template["templateId"], fields=[title])
    created = await client.create_case(
        domainId=DOMAIN, templateId=template["templateId"], fields=[title, high]
    )

    values = await case_fields(
        client, created["caseId"], ["title", "priority", "status", "reference_number"]
    )
    assert values["title"] == {"stringValue": "Broken parcel"}
    assert values["priority"] == {"stringValue": "high"}
    assert values["status"] == {"stringValue": "open"}
    assert values["reference_number"]["stringValue"]
    assert created["caseArn"].endswith(f"/case/{created['caseId']}")
    with pytest.raises(client.exceptions.ValidationException, match="required"):
        await client.update_case(
            domainId=DOMAIN,
            caseId=created["caseId"],
            fields=[{"id": "priority", "value": {"emptyValue": {}}}],
        )


async def test_create_case_on_an_inactive_template_is_refused(client: Any) -> None:
    retired = await client.create_template(domainId=DOMAIN, name="Old", status="Inactive")

    with pytest.raises(client.exceptions.ValidationException, match="not active"):
        await client.create_case(domainId=DOMAIN, templateId=retired["templateId"], fields=[])


async def test_create_case_with_the_same_client_token_returns_the_same_case(client: Any) -> None:
    fields = [{"id": "title", "value": {"stringValue": "Once only"}}]

    first = await client.create_case(
        domainId=DOMAIN, templateId="demo-template", fields=fields, clientToken="token-1"
    )
    again = await client.create_case(
        domainId=DOMAIN, templateId="demo-template", fields=fields, clientToken="token-1"
    )
    other = await client.create_case(
        domainId=DOMAIN, templateId="demo-template", fields=fields, clientToken="token-2"
    )

    assert again["caseId"] == first["caseId"]
    assert other["caseId"] != first["caseId"]
    assert (await client.search_cases(domainId=DOMAIN))["totalCount"] == 5 + 2


async def test_get_case_renders_system_datetimes_as_iso_8601_by_default(client: Any) -> None:
    values = await case_fields(client, CASE, ["title", "created_datetime", "last_updated_datetime"])

    created = parse_iso(values["created_datetime"]["stringValue"])
    updated = parse_iso(values["last_updated_datetime"]["stringValue"])
    assert set(values["created_datetime"]) == {"stringValue"}
    assert abs(created.timestamp() - time.time()) < 60
    assert updated >= created
    assert values["title"] == {"stringValue": "Demo case 1"}


@pytest.fixture
async def epoch_client(make_client: ClientFactory) -> AsyncIterator[Any]:
    """A client of an emulator that carries DateTime values as epoch milliseconds."""
    config = EmulatorConfig(
        port=0,
        quotas=no_quotas(),
        demo_cases=2,
        datetime_encoding=DateTimeEncoding.EPOCH_MILLIS,
    )
    async with running_emulator(config) as emu, make_client(emu.url) as cases:
        yield cases


async def test_get_case_renders_system_datetimes_as_epoch_millis_when_configured(
    epoch_client: Any,
) -> None:
    values = await case_fields(epoch_client, CASE, ["created_datetime", "last_updated_datetime"])

    created_ms = values["created_datetime"]["doubleValue"]
    assert set(values["created_datetime"]) == {"doubleValue"}
    assert created_ms == int(created_ms), "whole milliseconds"
    assert abs(created_ms - time.time() * 1000) < 60_000
    assert values["last_updated_datetime"]["doubleValue"] >= created_ms


async def test_epoch_mode_updates_datetime_fields_with_double_values_only(
    epoch_client: Any,
) -> None:
    due_ms = 1_714_557_600_000.0  # 2024-05-01T10:00:00Z

    await epoch_client.update_case(
        domainId=DOMAIN, caseId=CASE, fields=[{"id": "due_date", "value": {"doubleValue": due_ms}}]
    )

    assert (await case_fields(epoch_client, CASE, ["due_date"]))["due_date"] == {
        "doubleValue": due_ms
    }
    with pytest.raises(epoch_client.exceptions.ValidationException, match="doubleValue"):
        await epoch_client.update_case(
            domainId=DOMAIN,
            caseId=CASE,
            fields=[{"id": "due_date", "value": {"stringValue": "2024-05-01T10:00:00Z"}}],
        )


async def test_search_cases_pages_through_every_case_exactly_once(client: Any) -> None:
    seen: list[str] = []
    totals: set[int] = set()
    kwargs: dict[str, Any] = {"domainId": DOMAIN, "maxResults": 2, "fields": [{"id": "title"}]}
    while True:
        page = await client.search_cases(**kwargs)
        totals.add(page["totalCount"])
        assert len(page["cases"]) <= 2
        for item in page["cases"]:
            seen.append(item["caseId"])
            assert item["templateId"] == "demo-template"
            assert item["fields"][0]["id"] == "title"
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]

    assert sorted(seen) == DEMO_CASE_IDS
    assert len(seen) == len(set(seen))
    assert totals == {5}


async def test_search_cases_paginator_yields_every_case_exactly_once(client: Any) -> None:
    assert client.can_paginate("search_cases")
    paginator = client.get_paginator("search_cases")

    seen = [
        item["caseId"]
        async for page in paginator.paginate(domainId=DOMAIN, PaginationConfig={"PageSize": 2})
        for item in page["cases"]
    ]

    assert sorted(seen) == DEMO_CASE_IDS
    assert len(seen) == len(set(seen))


async def test_search_cases_equal_to_filter_selects_matching_cases(client: Any) -> None:
    high = [{"id": "priority", "value": {"stringValue": "high"}}]
    for case_id in ("case-0000002", "case-0000004"):
        await client.update_case(domainId=DOMAIN, caseId=case_id, fields=high)

    found = await client.search_cases(
        domainId=DOMAIN,
        filter={"field": {"equalTo": {"id": "priority", "value": {"stringValue": "high"}}}},
        fields=[{"id": "priority"}],
    )

    assert sorted(item["caseId"] for item in found["cases"]) == ["case-0000002", "case-0000004"]
    assert found["totalCount"] == 2
    for item in found["cases"]:
        assert item["fields"] == [{"id": "priority", "value": {"stringValue": "high"}}]


# -- updates -------------------------------------------------------------------------------

UPDATES_BY_TYPE = [
    pytest.param("account_code", {"stringValue": "ACME-42"}, id="Text"),
    pytest.param("notes", {"stringValue": "line one\nline two"}, id="Text-multiline"),
    pytest.param("crm_url", {"stringValue": "https://crm.example.com/c/42"}, id="Url"),
    pytest.param("priority", {"stringValue": "urgent"}, id="SingleSelect"),
    pytest.param("status", {"stringValue": "closed"}, id="SingleSelect-system"),
    pytest.param("title", {"stringValue": "Renamed"}, id="Text-system"),
    pytest.param("order_total", {"doubleValue": 1234.5}, id="Number"),
    pytest.param("vip", {"booleanValue": True}, id="Boolean"),
    pytest.param("owner", {"userArnValue": USER_ARN}, id="User"),
    pytest.param("due_date", {"stringValue": "2024-05-01T10:00:00.000Z"}, id="DateTime"),
]


@pytest.mark.parametrize(("field_id", "value"), UPDATES_BY_TYPE)
async def test_update_case_stores_each_field_type_from_its_union_member(
    client: Any, field_id: str, value: dict[str, Any]
) -> None:
    await client.update_case(
        domainId=DOMAIN, caseId=CASE, fields=[{"id": field_id, "value": value}]
    )

    assert (await case_fields(client, CASE, [field_id]))[field_id] == value
    # The other cases are untouched.
    other = await case_fields(client, "case-0000002", [field_id])
    assert other.get(field_id) != value


WRONG_VALUES = [
    ("order_total", {"stringValue": "12"}),  # Number takes doubleValue
    ("vip", {"stringValue": "true"}),  # Boolean takes booleanValue
    ("owner", {"stringValue": USER_ARN}),  # User takes userArnValue
    ("due_date", {"doubleValue": 1.7e12}),  # DateTime takes stringValue in ISO mode
    ("account_code", {"doubleValue": 1.0}),  # Text takes stringValue
    ("priority", {"stringValue": "no-such-option"}),  # not an option of the field
    ("owner", {"userArnValue": "not-an-arn"}),
    ("due_date", {"stringValue": "2024-05-01T10:00:00"}),  # no zone
]


async def test_update_case_refuses_a_value_its_field_type_does_not_take(client: Any) -> None:
    field_ids = sorted({field_id for field_id, _ in WRONG_VALUES})
    before = await case_fields(client, CASE, field_ids)

    for field_id, value in WRONG_VALUES:
        with pytest.raises(
            client.exceptions.ValidationException, match=r"at 'fields\.1\.member\.value'"
        ):
            await client.update_case(
                domainId=DOMAIN, caseId=CASE, fields=[{"id": field_id, "value": value}]
            )

    assert await case_fields(client, CASE, field_ids) == before


async def test_update_case_with_several_fields_applies_them_together(client: Any) -> None:
    fields = [
        {"id": "order_total", "value": {"doubleValue": 10.0}},
        {"id": "vip", "value": {"booleanValue": False}},
        {"id": "owner", "value": {"userArnValue": USER_ARN}},
    ]

    await client.update_case(domainId=DOMAIN, caseId=CASE, fields=fields)

    got = await case_fields(client, CASE, ["order_total", "vip", "owner"])
    assert got == {f["id"]: f["value"] for f in fields}


async def test_empty_value_clears_a_field(client: Any) -> None:
    await client.update_case(
        domainId=DOMAIN, caseId=CASE, fields=[{"id": "notes", "value": {"stringValue": "temp"}}]
    )
    assert "notes" in await case_fields(client, CASE, ["notes"])

    await client.update_case(
        domainId=DOMAIN, caseId=CASE, fields=[{"id": "notes", "value": {"emptyValue": {}}}]
    )

    remaining = await case_fields(client, CASE, ["notes", "title"])
    assert "notes" not in remaining
    assert remaining["title"] == {"stringValue": "Demo case 1"}


async def test_last_updated_datetime_moves_forward_after_an_update(client: Any) -> None:
    before = await case_fields(client, CASE, ["created_datetime", "last_updated_datetime"])
    # The rendering has millisecond resolution: let the wall clock pass at least one tick.
    await asyncio.sleep(0.005)

    await client.update_case(
        domainId=DOMAIN, caseId=CASE, fields=[{"id": "vip", "value": {"booleanValue": True}}]
    )

    after = await case_fields(client, CASE, ["created_datetime", "last_updated_datetime"])
    assert parse_iso(after["last_updated_datetime"]["stringValue"]) > parse_iso(
        before["last_updated_datetime"]["stringValue"]
    )
    assert after["created_datetime"] == before["created_datetime"]
    assert parse_iso(after["last_updated_datetime"]["stringValue"]) <= datetime.now(UTC)


@pytest.mark.parametrize(
    "field_id", ["reference_number", "created_datetime", "last_updated_datetime"]
)
async def test_update_case_refuses_read_only_system_fields(client: Any, field_id: str) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="read-only"):
        await client.update_case(
            domainId=DOMAIN,
            caseId=CASE,
            fields=[{"id": field_id, "value": {"stringValue": "2024-05-01T10:00:00Z"}}],
        )


async def test_create_case_with_an_empty_value_leaves_the_field_unset(client: Any) -> None:
    created = await client.create_case(
        domainId=DOMAIN,
        templateId="demo-template",
        fields=[
            {"id": "title", "value": {"stringValue": "No notes"}},
            {"id": "notes", "value": {"emptyValue": {}}},
        ],
    )

    values = await case_fields(client, created["caseId"], ["title", "notes"])

    assert values == {"title": {"stringValue": "No notes"}}
