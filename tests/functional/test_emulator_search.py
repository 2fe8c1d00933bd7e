"""SearchCases on the emulator as the service filters, pages and lags, driven through the real
aiobotocore client over real HTTP: every field operator, not, andAll/orAll (at most 10 each),
maxResults and nextToken, the fields returned, totalCount, its quota and the indexing lag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkupdate.emulator import EmulatorConfig, Quota, no_quotas, running_emulator
from bulkupdate.emulator.server import Emulator
from tests.conftest import ClientFactory

DOMAIN = "demo"
CASES = 12


def case_id(index: int) -> str:
    return f"case-{index:07d}"


def equal_to(field_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"field": {"equalTo": {"id": field_id, "value": value}}}


def number(field_id: str, operator: str, value: float) -> dict[str, Any]:
    return {"field": {operator: {"id": field_id, "value": {"doubleValue": value}}}}


async def found(client: Any, case_filter: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
    """Every case id the filter selects, through all pages, in the order served."""
    params: dict[str, Any] = {"domainId": DOMAIN, **kwargs}
    if case_filter is not None:
        params["filter"] = case_filter
    ids: list[str] = []
    while True:
        page = await client.search_cases(**params)
        ids += [item["caseId"] for item in page["cases"]]
        if "nextToken" not in page:
            return ids
        params["nextToken"] = page["nextToken"]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(
        EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES)
    ) as emulator:
        yield emulator


@pytest.fixture
async def cases(emu: Emulator, make_client: ClientFactory) -> AsyncIterator[Any]:
    """A client whose cases have order_total = 10 x their number and account_code ACME-<n>;
    it skips botocore's parameter checks, so the emulator's own answer."""
    async with make_client(emu.url, parameter_validation=False) as client:
        for index in range(1, CASES + 1):
            fields = [
                {"id": "order_total", "value": {"doubleValue": 10.0 * index}},
                {"id": "account_code", "value": {"stringValue": f"ACME-{index}"}},
            ]
            await client.update_case(domainId=DOMAIN, caseId=case_id(index), fields=fields)
        yield client


OPERATORS = [
    pytest.param("greaterThan", 50.0, [6, 7, 8, 9, 10, 11, 12], id="greaterThan"),
    pytest.param(
        "greaterThanOrEqualTo", 50.0, [5, 6, 7, 8, 9, 10, 11, 12], id="greaterThanOrEqual"
    ),
    pytest.param("lessThan", 30.0, [1, 2], id="lessThan"),
    pytest.param("lessThanOrEqualTo", 30.0, [1, 2, 3], id="lessThanOrEqualTo"),
    pytest.param("equalTo", 70.0, [7], id="equalTo"),
]


@pytest.mark.parametrize(("operator", "value", "expected"), OPERATORS)
async def test_a_number_field_filters_with_each_comparison(
    cases: Any, operator: str, value: float, expected: list[int]
) -> None:
    assert sorted(await found(cases, number("order_total", operator, value))) == [
        case_id(i) for i in expected
    ]


async def test_contains_selects_text_values_holding_the_part(cases: Any) -> None:
    selected = await found(
        cases, {"field": {"contains": {"id": "account_code", "value": {"stringValue": "ME-1"}}}}
    )

    assert sorted(selected) == [case_id(1), case_id(10), case_id(11), case_id(12)]


async def test_not_and_all_and_or_all_combine_filters(cases: Any) -> None:
    between = {
        "andAll": [
            number("order_total", "greaterThan", 20.0),
            number("order_total", "lessThan", 60.0),
        ]
    }
    either = {"orAll": [equal_to("account_code", {"stringValue": f"ACME-{i}"}) for i in (2, 9)]}

    assert sorted(await found(cases, between)) == [case_id(i) for i in (3, 4, 5)]
    assert sorted(await found(cases, either)) == [case_id(2), case_id(9)]
    assert sorted(await found(cases, {"not": between})) == sorted(
        case_id(i) for i in range(1, CASES + 1) if i not in (3, 4, 5)
    )


async def test_or_all_takes_ten_filters_and_refuses_eleven(cases: Any) -> None:
    ten = [equal_to("account_code", {"stringValue": f"ACME-{i}"}) for i in range(1, 11)]
    eleven = [*ten, equal_to("account_code", {"stringValue": "ACME-11"})]

    assert len(await found(cases, {"orAll": ten})) == 10
    for combinator in ("orAll", "andAll"):
        with pytest.raises(cases.exceptions.ValidationException):
            await cases.search_cases(domainId=DOMAIN, filter={combinator: eleven})


async def test_max_results_pages_with_next_token_and_total_count(cases: Any) -> None:
    first = await cases.search_cases(domainId=DOMAIN, maxResults=5)
    everything = await found(cases, maxResults=5)
    default = await cases.search_cases(domainId=DOMAIN)

    assert len(first["cases"]) == 5
    assert "nextToken" in first
    assert first["totalCount"] == CASES
    assert sorted(everything) == [case_id(i) for i in range(1, CASES + 1)]
    assert len(default["cases"]) == CASES  # under the default page of 25: one page
    assert "nextToken" not in default


@pytest.mark.parametrize("size", [0, 101])
async def test_max_results_outside_1_to_100_is_refused(cases: Any, size: int) -> None:
    with pytest.raises(cases.exceptions.ValidationException):
        await cases.search_cases(domainId=DOMAIN, maxResults=size)


async def test_only_the_fields_asked_for_are_returned(cases: Any) -> None:
    page = await cases.search_cases(
        domainId=DOMAIN,
        filter=equal_to("account_code", {"stringValue": "ACME-3"}),
        fields=[{"id": "order_total"}, {"id": "account_code"}],
    )
    bare = await cases.search_cases(
        domainId=DOMAIN, filter=equal_to("account_code", {"stringValue": "ACME-3"})
    )

    assert page["cases"][0]["fields"] == [
        {"id": "order_total", "value": {"doubleValue": 30.0}},
        {"id": "account_code", "value": {"stringValue": "ACME-3"}},
    ]
    assert bare["cases"][0]["fields"] == []


async def test_search_cases_has_its_own_quota(make_client: ClientFactory) -> None:
    quotas = {**no_quotas(), "SearchCases": Quota(2, 10)}
    async with (
        running_emulator(EmulatorConfig(port=0, quotas=quotas, demo_cases=1)) as emu,
        make_client(emu.url) as client,
    ):
        outcomes = await asyncio.gather(
            *(client.search_cases(domainId=DOMAIN) for _ in range(14)), return_exceptions=True
        )
        await client.update_case(  # UpdateCase is not limited by it
            domainId=DOMAIN,
            caseId=case_id(1),
            fields=[{"id": "account_code", "value": {"stringValue": "X"}}],
        )
    refused = [o for o in outcomes if isinstance(o, client.exceptions.ThrottlingException)]
    assert 2 <= len(refused) <= 4  # a burst of 10, refilling at 2/s while the calls arrive
    assert emu.counters["SearchCases"]["ThrottlingException"] == len(refused)


async def test_a_lagging_index_finds_a_changed_case_by_its_old_values_until_it_catches_up(
    cases: Any, emu: Emulator
) -> None:
    async with aiohttp.ClientSession() as session:
        change = {"search_lag_ms": 400}
        async with session.post(emu.url + "/_emulator/config", json=change) as response:
            assert response.status == 200
    await cases.update_case(
        domainId=DOMAIN,
        caseId=case_id(4),
        fields=[{"id": "account_code", "value": {"stringValue": "ACME-NEW"}}],
    )
    created = await cases.create_case(
        domainId=DOMAIN,
        templateId="demo-template",
        fields=[
            {"id": "title", "value": {"stringValue": "Fresh"}},
            {"id": "account_code", "value": {"stringValue": "ACME-NEW"}},
        ],
    )

    old = await found(cases, equal_to("account_code", {"stringValue": "ACME-4"}))
    new = await found(cases, equal_to("account_code", {"stringValue": "ACME-NEW"}))
    shown = await cases.search_cases(
        domainId=DOMAIN,
        filter=equal_to("account_code", {"stringValue": "ACME-4"}),
        fields=[{"id": "account_code"}],
    )
    await asyncio.sleep(0.5)
    later_old = await found(cases, equal_to("account_code", {"stringValue": "ACME-4"}))
    later_new = await found(cases, equal_to("account_code", {"stringValue": "ACME-NEW"}))

    assert old == [case_id(4)]
    assert new == []
    assert shown["cases"][0]["fields"] == [
        {"id": "account_code", "value": {"stringValue": "ACME-4"}}
    ]
    assert later_old == []
    assert sorted(later_new) == sorted([case_id(4), created["caseId"]])
