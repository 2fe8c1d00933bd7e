"""`python -m bulkupdate emulator` as a real subprocess: the listening line, a clean SIGTERM exit,
state that survives a restart, seeding from a file, and bad flags refused with exit code 2."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkupdate.emulator.cli import add_parser, config_from_args
from bulkupdate.emulator.quotas import Quota
from tests.conftest import ClientFactory

STARTUP_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 5.0
LISTENING = re.compile(r"emulator listening on (http://127\.0\.0\.1:(\d+))")
HIGH = [{"id": "priority", "value": {"stringValue": "high"}}]
USER_ARN = "arn:aws:connect:us-east-1:123456789012:instance/abc/agent/def"


class EmulatorProcess:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    async def stop(self) -> tuple[int, str]:
        """SIGTERM, then wait (bounded) for the exit; returns (exit code, stderr)."""
        self.process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(self.process.communicate(), EXIT_TIMEOUT_S)
        assert self.process.returncode is not None
        return self.process.returncode, stderr.decode()


async def run_command(*args: str) -> tuple[int, str, str]:
    """Run `bulkupdate emulator ARGS` to completion (bounded); returns (code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkupdate",
        "emulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@asynccontextmanager
async def emulator_process(*args: str) -> AsyncIterator[EmulatorProcess]:
    """Start the emulator on a free port and wait for its listening line; always reaped."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkupdate",
        "emulator",
        "--port",
        "0",
        "--no-quotas",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first_line = (await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)).decode()
        match = LISTENING.fullmatch(first_line.rstrip("\n"))
        if match is None:
            process.kill()
            _, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)
            pytest.fail(f"unexpected first line {first_line!r}; stderr: {stderr.decode()}")
        yield EmulatorProcess(process, match.group(1))
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)


async def admin_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url + path) as response:
        assert response.status == 200
        return await response.json()


async def test_emulator_prints_its_url_serves_calls_and_exits_cleanly_on_sigterm(
    make_client: ClientFactory,
) -> None:
    async with emulator_process("--demo-cases", "3") as emu:
        assert int(emu.url.rsplit(":", 1)[1]) > 0
        async with make_client(emu.url) as client:
            found = await client.search_cases(domainId="demo")
            await client.update_case(domainId="demo", caseId="case-0000003", fields=HIGH)

        code, stderr = await emu.stop()

    assert sorted(case["caseId"] for case in found["cases"]) == [
        "case-0000001",
        "case-0000002",
        "case-0000003",
    ]
    assert code == 0, stderr
    assert "Traceback" not in stderr


async def test_state_file_keeps_cases_and_the_update_log_across_a_restart(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    async with emulator_process("--state-file", str(state_file), "--demo-cases", "2") as emu:
        async with make_client(emu.url) as client:
            await client.update_case(domainId="demo", caseId="case-0000002", fields=HIGH)
        code, stderr = await emu.stop()
    assert code == 0, stderr
    assert state_file.exists()

    async with emulator_process("--state-file", str(state_file)) as emu:
        async with make_client(emu.url) as client:
            got = await client.get_case(
                domainId="demo", caseId="case-0000002", fields=[{"id": "priority"}]
            )
            found = await client.search_cases(domainId="demo")
        updates = (await admin_get(emu.url, "/_emulator/updates"))["updates"]
        code, stderr = await emu.stop()

    assert got["fields"] == [{"id": "priority", "value": {"stringValue": "high"}}]
    assert found["totalCount"] == 2
    assert [(u["seq"], u["caseId"], u["fields"]) for u in updates] == [(1, "case-0000002", HIGH)]
    assert code == 0, stderr


SEED = {
    "domains": [
        {
            "domainId": "crm",
            "name": "CRM migration",
            "fields": [
                {
                    "id": "tier",
                    "name": "Tier",
                    "type": "SingleSelect",
                    "options": [
                        {"name": "Gold", "value": "gold", "active": True},
                        {"name": "Tin", "value": "tin", "active": False},
                    ],
                },
                {"id": "notes", "name": "Notes", "type": "Text", "multiline": True},
                {"id": "amount", "name": "Amount", "type": "Number"},
                {"id": "vip", "name": "VIP", "type": "Boolean"},
                {"id": "due", "name": "Due", "type": "DateTime"},
                {"id": "link", "name": "Link", "type": "Url"},
                {"id": "agent", "name": "Agent", "type": "User"},
            ],
            "templates": [
                {"id": "default", "name": "Default", "requiredFields": ["title", "tier"]}
            ],
            "cases": [
                {
                    "id": "C-1",
                    "template": "default",
                    "fields": {
                        "title": "First",
                        "tier": "gold",
                        "notes": "line one\nline two",
                        "amount": 12,
                        "vip": True,
                        "due": "2024-05-01T12:00:00.000Z",
                        "link": "https://crm.example.com/C-1",
                        "agent": USER_ARN,
                    },
                },
                {
                    "id": "C-2",
                    "template": "default",
                    "fields": {"title": "Second", "tier": {"stringValue": "gold"}},
                },
            ],
        }
    ]
}


async def test_seed_file_creates_its_domain_fields_templates_and_cases(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(SEED), encoding="utf-8")

    async with emulator_process("--seed", str(seed_file)) as emu, make_client(emu.url) as client:
        domain = await client.get_domain(domainId="crm")
        domains = await client.list_domains()
        fields = await client.list_fields(domainId="crm")
        options = await client.list_field_options(domainId="crm", fieldId="tier")
        got = await client.get_case(
            domainId="crm",
            caseId="C-1",
            fields=[{"id": f} for f in ("title", "tier", "notes", "amount", "vip", "due", "link")]
            + [{"id": "agent"}, {"id": "status"}],
        )
        found = await client.search_cases(domainId="crm", fields=[{"id": "tier"}])
        with pytest.raises(client.exceptions.ValidationException, match="tier"):
            await client.create_case(
                domainId="crm",
                templateId="default",
                fields=[{"id": "title", "value": {"stringValue": "No tier"}}],
            )

    assert domain["name"] == "CRM migration"
    assert [d["domainId"] for d in domains["domains"]] == ["crm"]  # no demo domain unasked
    custom = {f["fieldId"]: f for f in fields["fields"] if f["namespace"] == "Custom"}
    assert {fid: f["type"] for fid, f in custom.items()} == {
        "tier": "SingleSelect",
        "notes": "Text",
        "amount": "Number",
        "vip": "Boolean",
        "due": "DateTime",
        "link": "Url",
        "agent": "User",
    }
    assert custom["notes"]["attributes"] == {"text": {"isMultiline": True}}
    assert [(o["value"], o["active"]) for o in options["options"]] == [
        ("gold", True),
        ("tin", False),
    ]
    assert {item["id"]: item["value"] for item in got["fields"]} == {
        "title": {"stringValue": "First"},
        "tier": {"stringValue": "gold"},
        "notes": {"stringValue": "line one\nline two"},
        "amount": {"doubleValue": 12.0},
        "vip": {"booleanValue": True},
        "due": {"stringValue": "2024-05-01T12:00:00.000Z"},
        "link": {"stringValue": "https://crm.example.com/C-1"},
        "agent": {"userArnValue": USER_ARN},
        "status": {"stringValue": "open"},
    }
    assert got["templateId"] == "default"
    assert {c["caseId"]: c["fields"] for c in found["cases"]} == {
        "C-1": [{"id": "tier", "value": {"stringValue": "gold"}}],
        "C-2": [{"id": "tier", "value": {"stringValue": "gold"}}],
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--quota", "Nope=1"], "--quota", id="unknown-quota-operation"),
        pytest.param(["--error-rate", "2"], "fault probabilities", id="probability-above-one"),
        pytest.param(["--error-status", "200"], "4xx or 5xx", id="error-status-not-an-error"),
        pytest.param(["--datetime-encoding", "unix"], "--datetime-encoding", id="bad-choice"),
        pytest.param(["--token-window", "-1"], "--token-window", id="negative-token-window"),
        pytest.param(
            ["--case-throttle-rate", "0.7", "--case-conflict-rate", "0.7"],
            "per-case fault probabilities",
            id="per-case-probabilities-above-one",
        ),
    ],
)
async def test_bad_flags_exit_2_with_a_message_on_stderr(flags: list[str], message: str) -> None:
    code, stdout, stderr = await run_command("--port", "0", *flags)

    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert "listening" not in stdout


def test_fault_flags_set_the_injected_error_its_status_cut_replies_and_the_faulted_calls() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "emulator",
            *("--error-rate", "0.5", "--error-code", "ThrottledException"),
            *("--error-status", "400", "--cut-short-rate", "0.25", "--fault-calls", "3"),
        ]
    )

    faults = config_from_args(args).faults

    assert (faults.internal_error_probability, faults.cut_short_probability) == (0.5, 0.25)
    assert (faults.error_code, faults.error_status, faults.fault_calls) == (
        "ThrottledException",
        400,
        3,
    )


def test_batch_flags_set_its_quota_token_window_and_per_case_faults() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "emulator",
            *("--quota", "BatchUpdateCase=5/10", "--token-window", "60"),
            *("--case-throttle-rate", "0.1", "--case-conflict-rate", "0.2"),
            *("--case-error-rate", "0.3", "--fault-case", "c1", "--fault-case", "c2"),
        ]
    )

    config = config_from_args(args)

    assert config.quotas["BatchUpdateCase"] == Quota(5, 10)
    assert config.quotas["UpdateCase"] == Quota(2, 2)
    assert config.token_window_s == 60
    faults = config.faults
    assert (
        faults.case_throttle_probability,
        faults.case_conflict_probability,
        faults.case_internal_error_probability,
    ) == (0.1, 0.2, 0.3)
    assert faults.fault_case_ids == {"c1", "c2"}


def test_batch_update_case_defaults_to_2_per_s_burst_2_and_an_8_hour_token_window() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    config = config_from_args(parser.parse_args(["emulator"]))
    assert config.quotas["BatchUpdateCase"] == Quota(2, 2)
    assert config.token_window_s == 8 * 3600


async def test_missing_seed_file_exits_2_with_a_message(tmp_path: Path) -> None:
    code, stdout, stderr = await run_command(
        "--port", "0", "--seed", str(tmp_path / "no-such-seed.json")
    )

    assert code == 2
    assert "no-such-seed.json" in stderr
    assert "Traceback" not in stderr
    assert "listening" not in stdout
