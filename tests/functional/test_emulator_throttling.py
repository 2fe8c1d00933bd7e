"""The emulator's UpdateCase quota, measured through the real client: never more than
burst + rate x elapsed calls accepted, and excess calls answered with ThrottlingException."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bulkupdate.emulator import EmulatorConfig, Quota, no_quotas, running_emulator
from tests.conftest import ClientFactory

RATE_PER_S = 20.0
BURST = 5
DURATION_S = 1.5


async def hammer(client: Any, stop_at_s: float) -> tuple[int, int]:
    accepted = throttled = 0
    fields = [{"id": "vip", "value": {"booleanValue": True}}]
    while time.monotonic() < stop_at_s:
        try:
            await client.update_case(domainId="demo", caseId="case-0000001", fields=fields)
            accepted += 1
        except client.exceptions.ThrottlingException:
            throttled += 1
    return accepted, throttled


async def test_update_case_accepts_at_most_burst_plus_rate_times_elapsed(
    make_client: ClientFactory,
) -> None:
    quotas = {**no_quotas(), "UpdateCase": Quota(RATE_PER_S, BURST)}
    config = EmulatorConfig(port=0, quotas=quotas, demo_cases=1)
    async with running_emulator(config) as emu, make_client(emu.url) as client:
        # The bucket starts full when the emulator starts, so elapsed is counted from there.
        started_s = time.monotonic()
        results = await asyncio.gather(*(hammer(client, started_s + DURATION_S) for _ in range(8)))
        elapsed_s = time.monotonic() - started_s
    accepted = sum(a for a, _ in results)
    throttled = sum(t for _, t in results)
    ceiling = BURST + RATE_PER_S * elapsed_s
    assert accepted <= ceiling
    # ...and the bucket really refills: close to the ceiling, not merely below it.
    assert accepted >= 0.8 * (BURST + RATE_PER_S * DURATION_S)
    assert throttled > accepted  # eight eager workers overrun a 20/s quota
    assert emu.counters["UpdateCase"]["ok"] == accepted == len(emu.service.updates)
    assert emu.counters["UpdateCase"]["ThrottlingException"] == throttled


async def test_default_quotas_are_aws_defaults(make_client: ClientFactory) -> None:
    async with running_emulator(EmulatorConfig(port=0, demo_cases=1)) as emu:
        limits = emu.quotas.limits
        async with make_client(emu.url) as client:
            outcomes = []
            for _ in range(3):
                try:
                    await client.update_case(
                        domainId="demo",
                        caseId="case-0000001",
                        fields=[{"id": "vip", "value": {"booleanValue": True}}],
                    )
                    outcomes.append("ok")
                except client.exceptions.ThrottlingException:
                    outcomes.append("throttled")
    assert limits["UpdateCase"] == Quota(2, 2)
    assert limits["GetCase"] == Quota(4, 10)
    assert limits["BatchGetField"] == Quota(8, 25)
    # burst 2: two back-to-back calls pass, the third (well within 0.5 s) is refused
    assert outcomes == ["ok", "ok", "throttled"]
