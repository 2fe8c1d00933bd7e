"""The tuned client the engine sends with, over real HTTP to the emulator."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.useragent import UserAgentString

from bulkupdate.aws.client import USER_AGENT, open_cases
from bulkupdate.emulator.server import Emulator
from tests.conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

FIELDS = [{"id": "priority", "value": {"stringValue": "high"}}]


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


async def test_user_agent_is_built_once_not_per_call(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = 0
    build = UserAgentString.to_string

    def counting_build(self: UserAgentString) -> str:
        nonlocal builds
        builds += 1
        return build(self)

    async with open_cases(domain_id="demo", endpoint_url=emulator.url, region=REGION) as cases:
        sent: list[str] = []

        def capture(request: Any, **_: Any) -> None:
            sent.append(request.headers["User-Agent"].decode())

        cases._client.meta.events.register("before-send.connectcases", capture)
        monkeypatch.setattr(UserAgentString, "to_string", counting_build)
        for case_id in ("case-0000001", "case-0000002", "case-0000003"):
            await cases.update_case(case_id, FIELDS, None)

    assert builds == 0
    assert len(sent) == 3
    assert len(set(sent)) == 1
    assert f"app/{USER_AGENT}" in sent[0]


async def test_search_cases_finds_the_cases_of_up_to_ten_values_with_the_fields_value(
    emulator: Emulator,
) -> None:
    async with open_cases(domain_id="demo", endpoint_url=emulator.url, region=REGION) as cases:
        for index in (1, 2, 3):
            code = [{"id": "account_code", "value": {"stringValue": f"ACME-{index % 2}"}}]
            await cases.update_case(f"case-000000{index}", code, None)
        wanted = [{"stringValue": "ACME-1"}, {"stringValue": "ACME-0"}, {"stringValue": "nope"}]
        page = await cases.search_cases("account_code", wanted)
        one = await cases.search_cases("account_code", [{"stringValue": "ACME-0"}])

    assert sorted((c.case_id, c.value["stringValue"]) for c in page.cases if c.value) == [
        ("case-0000001", "ACME-1"),
        ("case-0000002", "ACME-0"),
        ("case-0000003", "ACME-1"),
    ]
    assert (page.total_count, page.next_token) == (3, None)
    assert [c.case_id for c in one.cases] == ["case-0000002"]


async def test_search_cases_pages_with_the_token_it_returns(emulator: Emulator) -> None:
    async with open_cases(domain_id="demo", endpoint_url=emulator.url, region=REGION) as cases:
        low = [{"stringValue": "low"}]  # every demo case's priority
        first = await cases.search_cases("priority", low, max_results=2)
        seen = [c.case_id for c in first.cases]
        token = first.next_token
        while token:
            page = await cases.search_cases("priority", low, max_results=2, next_token=token)
            seen += [c.case_id for c in page.cases]
            token = page.next_token

    assert first.total_count == 5
    assert sorted(seen) == [f"case-000000{i}" for i in range(1, 6)]
