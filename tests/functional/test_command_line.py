"""What a person sees of `bulkupdate run`: its help and usage errors, the bar and the summary in a
terminal (a pseudo-terminal), the summary's rate, and what a dry run counts once a job has a
checkpoint. The real command in a subprocess against an in-process emulator.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkupdate.emulator import Emulator, EmulatorConfig, FaultConfig, no_quotas, running_emulator
from bulkupdate.exits import EXIT_ABORTED, EXIT_OK, EXIT_USAGE
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.terminal import run_cli_in_terminal, screen_lines

CASES = 20


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(
        EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES)
    ) as emulator:
        yield emulator


def write_rows(path: Path, count: int) -> Path:
    lines = ["case_id,priority"] + [f"case-{n:07d},high" for n in range(1, count + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def terminal_flags(url: str) -> list[str]:
    """`run` flags for a terminal: the bar stays on; an odd rate shows how it is rounded."""
    flags = ["--endpoint-url", url, "--domain-id", "demo", "--rate", "12.345", "--burst", "5"]
    return [*flags, "--headroom", "0"]  # the bar shows --rate itself, rounded


# --- help and usage ------------------------------------------------------------------------------


async def test_run_help_shows_examples_and_says_what_the_domain_region_and_profile_flags_are() -> (
    None
):
    result = await run_cli("run", "--help")

    assert result.returncode == EXIT_OK, result.stderr
    examples = result.stdout.partition("\nexamples:\n")[2]
    assert "bulkupdate run job.toml --dry-run" in examples
    assert "bulkupdate run --input export.csv --domain-id" in examples
    lines = result.stdout.splitlines()
    for flag in ("--domain-id DOMAIN_ID", "--region REGION", "--profile PROFILE"):
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(flag))
        # argparse puts the help beside the flag, or on the next line when the flag is long.
        text = lines[at].strip().removeprefix(flag).strip() or lines[at + 1].strip()
        assert text, f"{flag} has no help text"
        assert not text.startswith("-"), f"{flag} has no help text"


async def test_an_unknown_flag_after_run_shows_the_usage_of_run() -> None:
    result = await run_cli("run", "--input", "rows.csv", "--domain-id", "demo", "--nope")

    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("usage: bulkupdate run ")
    assert "bulkupdate run: error: unrecognized arguments: --nope" in result.stderr


async def test_an_abbreviated_flag_is_refused_rather_than_taken_for_the_flag_it_starts(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 2)
    flags = ["--endpoint-url", emu.url, "--domain-id", "demo", "--no-progress"]

    result = await run_cli("run", "--input", str(source), *flags, "--rat", "5")

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "unrecognized arguments: --rat" in result.stderr
    assert emu.service.updates == []


# --- the bar and the summary in a terminal ------------------------------------------------------


async def test_in_a_terminal_the_bar_ends_on_every_row_done_before_the_summary(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 2)

    result = await run_cli_in_terminal("run", "--input", str(source), *terminal_flags(emu.url))

    assert result.returncode == EXIT_OK, result.stderr
    lines = screen_lines(result.stderr)
    summary_at = next(i for i, line in enumerate(lines) if line.startswith("finished:"))
    last_bar = [line for line in lines[:summary_at] if line.startswith("bulkupdate:")][-1]
    assert "2/2" in last_bar, last_bar
    assert "100%" in last_bar, last_bar


async def test_in_a_terminal_the_bar_shows_the_adaptive_rate_rounded(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 2)

    result = await run_cli_in_terminal("run", "--input", str(source), *terminal_flags(emu.url))

    assert result.returncode == EXIT_OK, result.stderr
    bars = [line for line in screen_lines(result.stderr) if line.startswith("bulkupdate:")]
    assert "rate=12/s" in bars[-1], bars[-1]
    assert not any("12.345" in bar for bar in bars)  # (the start's pacing_regime log gives it)


async def test_in_a_terminal_the_summary_is_printed_once_not_logged_again_before_it(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 2)

    result = await run_cli_in_terminal("run", "--input", str(source), *terminal_flags(emu.url))

    assert result.returncode == EXIT_OK, result.stderr
    assert "run_starting" in result.stderr, "the console log is on the terminal"
    assert "run_finished" not in result.stderr
    assert result.stderr.count("2 applied") == 1


async def test_the_summary_of_a_two_row_job_gives_no_rate_it_could_not_measure(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 2)
    summary = tmp_path / "summary.json"

    result = await run_cli(
        "run", "--input", str(source), *fast_run_flags(emu.url), "--summary", str(summary)
    )

    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(summary.read_text())["achieved_rate_per_s"] is None
    assert "rows/s not measured (under 1 s of accepts)" in result.stderr


# --- a dry run counts what the next run would send -----------------------------------------------


async def test_a_dry_run_of_a_finished_job_has_nothing_to_send_and_records_no_run(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 2)
    checkpoint = tmp_path / "rows.checkpoint.sqlite"
    assert (await run_cli("run", "--input", str(source), *fast_run_flags(emu.url))).returncode == 0

    result = await run_cli("run", "--input", str(source), "--dry-run", *fast_run_flags(emu.url))

    assert result.returncode == EXIT_OK, result.stderr
    assert "dry run: 0 rows to send, 0 would fail" in result.stderr
    assert "2 applied or failed by earlier runs (a resume skips them)" in result.stderr
    status = await run_cli("status", "--checkpoint", str(checkpoint), "--json")
    assert json.loads(status.stdout)["runs"] == 1, "the dry run started no run"


async def test_a_dry_run_after_a_stopped_run_counts_only_the_rows_a_resume_would_send(
    tmp_path: Path,
) -> None:
    source = write_rows(tmp_path / "rows.csv", 5)
    denied = FaultConfig(access_denied_after_calls=2)
    config = EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=CASES, faults=denied)
    async with running_emulator(config) as emu:
        flags = [*fast_run_flags(emu.url), "--concurrency", "1", "--burst", "1"]
        stopped = await run_cli("run", "--input", str(source), *flags)
        assert stopped.returncode == EXIT_ABORTED, stopped.stderr
        assert len(emu.service.updates) == 2

        result = await run_cli("run", "--input", str(source), "--dry-run", *flags)

    assert result.returncode == EXIT_OK, result.stderr
    assert "dry run: 3 rows to send" in result.stderr
    assert "2 applied or failed by earlier runs" in result.stderr


async def test_a_dry_run_estimates_a_long_run_in_minutes_and_seconds(
    emu: Emulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "rows.csv", 3)
    flags = ["--endpoint-url", emu.url, "--domain-id", "demo", "--rate", "0.01", "--burst", "1"]
    flags += ["--headroom", "0"]

    result = await run_cli("run", "--input", str(source), "--dry-run", *flags)

    assert result.returncode == EXIT_OK, result.stderr
    assert re.search(r"; about 3 min 20 s at 0\.01/s burst 1\.", result.stderr), result.stderr
