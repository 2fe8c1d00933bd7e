"""What a run tells its operator: Prometheus metrics while it runs, JSON log lines bound to the
job and run, and no credentials (nor, with --redact, field values) in the logs. Real
subprocesses against the emulator."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bulkupdate.emulator import EmulatorConfig, no_quotas, running_emulator
from bulkupdate.emulator.config import parse_quota
from bulkupdate.emulator.server import Emulator
from tests.functional.runner import SECRET_ACCESS_KEY, cli_env, fast_run_flags, run_cli

CASES = 120


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(
        EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES)
    ) as emulator:
        yield emulator


def write_rows(path: Path, rows: int) -> Path:
    lines = ["case_id,priority,notes,due_date"]
    lines += [
        f"case-{i % CASES + 1:07d},high,secret-note-{i},2026-03-0{i % 9 + 1}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, list[Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(families: dict[str, list[Any]], name: str, **labels: str) -> float:
    for samples in families.values():
        for item in samples:
            if item.name == name and labels.items() <= item.labels.items():
                return float(item.value)
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_answer_during_a_run(tmp_path: Path) -> None:
    operation, quota = parse_quota("UpdateCase=40/5")  # a run of a few seconds
    config = EmulatorConfig(port=0, quotas={operation: quota}, demo_cases=CASES)
    async with running_emulator(config) as emu:
        source = write_rows(tmp_path / "rows.csv", 200)
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bulkupdate",
            "run",
            *("--input", str(source), "--endpoint-url", emu.url, "--domain-id", "demo"),
            *("--rate", "40", "--burst", "5", "--no-progress", "--metrics-port", str(port)),
            env=cli_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            families: dict[str, list[Any]] = {}
            for _ in range(200):
                await asyncio.sleep(0.1)
                try:
                    families = await asyncio.to_thread(scrape, port)
                except OSError:
                    continue  # not listening yet
                if "bulkupdate_rows" in families and sample(
                    families, "bulkupdate_rows_total", outcome="applied"
                ):
                    break
            assert process.returncode is None, "the run ended before it was scraped"
        finally:
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    applied = sample(families, "bulkupdate_rows_total", outcome="applied")
    assert 0 < applied < 200
    assert sample(families, "bulkupdate_up") == 1
    assert sample(families, "bulkupdate_rate_per_second") > 0
    # --rate 40 less the default 20% headroom left to agents.
    assert sample(families, "bulkupdate_share_per_second") == pytest.approx(32.0)
    assert sample(families, "bulkupdate_yielding") in (0, 1)
    assert sample(families, "bulkupdate_in_flight") >= 0
    assert sample(families, "bulkupdate_rows_held") == 0
    assert sample(families, "bulkupdate_outage") == 0
    assert sample(families, "bulkupdate_rows_left") == 200 - applied - sample(
        families, "bulkupdate_rows_total", outcome="failed"
    )
    assert sample(families, "bulkupdate_updatecase_calls_total") >= applied
    assert sample(families, "bulkupdate_throttles_total") >= 0
    assert sample(families, "bulkupdate_retries_total") >= 0
    count = sample(families, "bulkupdate_updatecase_latency_seconds_count")
    assert count == sample(families, "bulkupdate_updatecase_latency_seconds_bucket", le="+Inf")
    assert count >= applied


async def test_piped_logs_are_json_lines_with_the_job_and_one_run_id(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "tier.csv", 30)
    result = await run_cli("run", "--input", str(source), *fast_run_flags(emu.url))
    assert result.returncode == 0, result.stderr
    logged = events(result.stdout)
    assert {e["job"] for e in logged} == {"tier"}
    assert len({e["run_id"] for e in logged}) == 1
    assert {"run_starting", "run_started", "run_finished"} <= {e["event"] for e in logged}
    assert "finished: 30 applied" in result.stderr  # the human summary stays off stdout


async def test_redact_keeps_field_values_out_of_the_logs(emu: Emulator, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.csv", 10)
    flags = (*fast_run_flags(emu.url), "--log-level", "debug")
    plain = await run_cli("run", "--input", str(source), *flags, "--restart")
    redacted = await run_cli("run", "--input", str(source), *flags, "--restart", "--redact")
    assert plain.returncode == redacted.returncode == 0, redacted.stderr
    # The DateTime probe quotes a case's created_datetime value: shown plainly, not redacted.
    probe = next(e for e in events(plain.stdout) if e["event"] == "datetime_encoding_detected")
    value = re.search(r"'(\d{4}-[^']+)'", probe["evidence"])
    assert value is not None, probe
    assert value.group(1) not in redacted.stdout
    assert "[redacted]" in redacted.stdout
    assert "secret-note" not in plain.stdout + redacted.stdout


async def test_credentials_never_reach_the_output(emu: Emulator, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.csv", 5)
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,nope\ncase-0000001,x\n", encoding="utf-8")
    for path in (source, bad):
        result = await run_cli(
            "run", "--input", str(path), *fast_run_flags(emu.url), "--log-level", "debug"
        )
        assert SECRET_ACCESS_KEY not in result.stdout + result.stderr
