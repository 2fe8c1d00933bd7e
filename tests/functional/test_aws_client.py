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
