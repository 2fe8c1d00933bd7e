"""Issue 11, "checked before anything is sent": a job that cannot run is refused at start-up with
exit 2, no UpdateCase call and no file written (checkpoint, failures file, summary); and what a
run writes goes where it was told, folders included. The real command in a subprocess, the real
aiobotocore client over HTTP, an in-process emulator counting every call.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bulkupdate.checkpoint.lock import RunLock
from bulkupdate.emulator import Emulator
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_USAGE
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.test_run_inputs import emu, update_calls, write_csv
from tests.motoserver import free_port
from tests.readonly import read_only, tree

__all__ = ["emu"]  # the emulator fixture: 80 demo cases, no quotas

# Start-up reads give up on a service they cannot reach after 10 s (STARTUP_RETRY_BUDGET_S),
# plus at most one connect timeout (5 s); the bound leaves a wide margin over that.
GIVES_UP_WITHIN_S = 30.0


@contextmanager
def held(lock_path: Path) -> Iterator[None]:
    """The checkpoint's run lock, held as a live run holds it (flock on CHECKPOINT.lock)."""
    lock = RunLock(lock_path)
    assert lock.try_acquire()
    try:
        yield
    finally:
        lock.release()


@dataclass
class Invocation:
    """`bulkupdate run ARGS`, with stdin, while `during` is entered (a folder made read-only, a
    lock held), and what its message must name."""

    args: list[str]
    names: str
    stdin: bytes | None = None
    during: AbstractContextManager[None] = field(default_factory=nullcontext)


def fix_csv(folder: Path, name: str = "fix.csv") -> Path:
    path = folder / name
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"], ["case-0000002", "low"]])
    return path


def read_only_folder(folder: Path) -> Path:
    locked = folder / "locked"
    locked.mkdir()
    return locked


# --- the cases: (work folder, emulator) -> the invocation ------------------------------------


def failures_folder_cannot_be_made(work: Path, emu: Emulator) -> Invocation:
    locked = read_only_folder(work)
    failures = locked / "out" / "x.csv"
    args = ["--input", str(fix_csv(work)), *fast_run_flags(emu.url), "--failures", str(failures)]
    return Invocation(args, "--failures", during=read_only(locked))


def summary_folder_is_a_file(work: Path, emu: Emulator) -> Invocation:
    (work / "nodir").write_text("a file where the folder would go\n")
    summary = work / "nodir" / "s.json"
    args = ["--input", str(fix_csv(work)), *fast_run_flags(emu.url), "--summary", str(summary)]
    return Invocation(args, "--summary")


def endpoint_without_scheme(work: Path, emu: Emulator) -> Invocation:
    hostport = emu.url.removeprefix("http://")
    args = ["--input", str(fix_csv(work)), *fast_run_flags(emu.url), "--endpoint-url", hostport]
    return Invocation(args, f"http://{hostport}")


def endpoint_nobody_listens_on(work: Path, emu: Emulator) -> Invocation:
    nobody = f"http://127.0.0.1:{free_port()}"
    args = ["--input", str(fix_csv(work)), *fast_run_flags(emu.url), "--endpoint-url", nobody]
    return Invocation(args, nobody)


def misspelt_region(work: Path, emu: Emulator) -> Invocation:
    args = ["--input", str(fix_csv(work)), "--domain-id", "demo", "--region", "us-esat-1"]
    return Invocation([*args, "--no-progress"], "us-esat-1")


def read_only_state_folder(work: Path, emu: Emulator) -> Invocation:
    locked = read_only_folder(work)
    args = ["--input", str(fix_csv(work)), *fast_run_flags(emu.url), "--state-dir", str(locked)]
    return Invocation(args, "--state-dir", during=read_only(locked))


def restart_on_a_held_checkpoint(work: Path, emu: Emulator) -> Invocation:
    path = fix_csv(work)
    lock = work / "fix.checkpoint.sqlite.lock"
    lock.touch()  # the live run's, there before this one starts
    args = ["--input", str(path), *fast_run_flags(emu.url), "--restart"]
    return Invocation(args, "--restart", during=held(lock))


def case_id_column_under_another_name(work: Path, emu: Emulator) -> Invocation:
    path = work / "ids.csv"
    write_csv(path, ["Case ID", "Priority"], [["case-0000001", "high"]])
    return Invocation(["--input", str(path), *fast_run_flags(emu.url)], "Case ID")


def semicolon_csv(work: Path, emu: Emulator) -> Invocation:
    path = work / "semi.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"]], delimiter=";")
    return Invocation(["--input", str(path), *fast_run_flags(emu.url)], "semi.csv")


def stdin_jsonl_without_format(work: Path, emu: Emulator) -> Invocation:
    stdin = b'{"case_id": "case-0000001", "Priority": "high"}\n'
    return Invocation(["--input", "-", *fast_run_flags(emu.url)], "-:1", stdin=stdin)


def csv_given_where_a_job_file_goes(work: Path, emu: Emulator) -> Invocation:
    path = fix_csv(work)
    return Invocation([str(path), "--input", str(path), *fast_run_flags(emu.url)], str(path))


def unknown_column(work: Path, emu: Emulator) -> Invocation:
    path = work / "unknown.csv"
    write_csv(path, ["case_id", "Prioirty"], [["case-0000001", "high"]])
    return Invocation(["--input", str(path), *fast_run_flags(emu.url)], "Prioirty")


def non_utf8_input(work: Path, emu: Emulator) -> Invocation:
    path = work / "export.csv"  # a Windows-1252 export: its case-id column's name is not UTF-8
    rows = "".join(f"case-{i:07d},Zoë, café n°{i}\r\n" for i in range(1, 6))
    path.write_bytes(("Numéro,notes\r\n" + rows).encode("cp1252"))
    args = ["--input", str(path), *fast_run_flags(emu.url), "--case-id-column", "Numéro"]
    return Invocation(args, "export.csv")


def binary_file(work: Path, emu: Emulator) -> Invocation:
    path = work / "export.csv"  # a spreadsheet saved under a .csv name
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet/>" * 50)
    return Invocation(["--input", str(path), *fast_run_flags(emu.url)], "export.csv")


def jsonl_without_case_ids(work: Path, emu: Emulator) -> Invocation:
    path = work / "fix.jsonl"
    path.write_text('{"Priority": "high"}\n{"Priority": "low"}\n', encoding="utf-8")
    args = ["--input", str(path), *fast_run_flags(emu.url), "--datetime-encoding", "iso8601"]
    return Invocation(args, "fix.jsonl")


Setup = Callable[[Path, Emulator], Invocation]
BEFORE_ANYTHING_IS_SENT: list[Setup] = [
    failures_folder_cannot_be_made,
    summary_folder_is_a_file,
    endpoint_without_scheme,
    endpoint_nobody_listens_on,
    misspelt_region,
    read_only_state_folder,
    restart_on_a_held_checkpoint,
    case_id_column_under_another_name,
    semicolon_csv,
    stdin_jsonl_without_format,
    csv_given_where_a_job_file_goes,
    unknown_column,
    non_utf8_input,
    binary_file,
    jsonl_without_case_ids,
]


@pytest.mark.parametrize(
    "setup",
    BEFORE_ANYTHING_IS_SENT,
    ids=[setup.__name__ for setup in BEFORE_ANYTHING_IS_SENT],
)
async def test_a_job_that_cannot_run_exits_2_having_sent_and_written_nothing(
    emu: Emulator, tmp_path: Path, setup: Setup
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    invocation = setup(work, emu)
    before = tree(tmp_path)
    with invocation.during:
        result = await run_cli(
            "run", *invocation.args, stdin=invocation.stdin, cwd=work, timeout_s=60
        )
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert invocation.names in result.stderr, "the message names the flag, file or value"
    assert sum(emu.counters["UpdateCase"].values()) == 0, "no UpdateCase call"
    assert not list(tmp_path.rglob("*.checkpoint.sqlite")), "no checkpoint"
    assert tree(tmp_path) == before, "nothing written: no checkpoint, failures file or summary"


# --- outputs: missing folders are created, as --state-dir's always was ----------------------


async def test_outputs_in_folders_that_do_not_exist_yet_are_created_and_written(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "fix.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"], ["case-0000002", "nope"]])
    failures, summary = tmp_path / "out" / "x.csv", tmp_path / "nodir" / "deeper" / "s.json"
    result = await run_cli(
        "run",
        *("--input", str(path), *fast_run_flags(emu.url)),
        *("--failures", str(failures), "--summary", str(summary)),
        *("--state-dir", str(tmp_path / "state")),
    )
    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert "case-0000002" in failures.read_text(encoding="utf-8")
    assert json.loads(summary.read_text(encoding="utf-8"))["failed"] == 1
    assert (tmp_path / "state" / "fix.checkpoint.sqlite").is_file()
    assert f"failures: {failures}" in result.stderr


async def test_a_dry_run_creates_the_folder_of_its_failures_file(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "fix.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"], ["case-0000002", "nope"]])
    result = await run_cli(
        "run",
        *("--input", str(path), *fast_run_flags(emu.url)),
        *("--failures", str(tmp_path / "out" / "x.csv"), "--dry-run"),
    )
    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert "case-0000002" in (tmp_path / "out" / "x.dry-run.csv").read_text(encoding="utf-8")
    assert update_calls(emu) == 0


# --- the service cannot be reached: given up on soon, saying where it looked ----------------


async def test_an_endpoint_nobody_listens_on_is_given_up_on_soon_naming_it_and_each_retry(
    tmp_path: Path,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "fix.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"]])
    started_s = time.monotonic()
    result = await run_cli(
        "run",
        *("--input", str(path), "--domain-id", "demo", "--endpoint-url", nobody),
        *("--no-progress", "--log-format", "json"),
        timeout_s=60,
    )
    took_s = time.monotonic() - started_s
    assert result.returncode == EXIT_USAGE, result.stderr
    assert took_s < GIVES_UP_WITHIN_S
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("bulkupdate: --endpoint-url: cannot reach Connect Cases at ")
    assert f"{nobody} (Region us-east-1)" in message
    assert "Nothing was sent or recorded" in message
    assert "resume" not in message
    retries = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if json.loads(line)["event"] == "startup_read_retrying"
    ]
    assert retries, "every start-up retry is logged"
    assert [r["attempt"] for r in retries] == list(range(1, len(retries) + 1))
    assert all(r["delay_s"] >= 0 and "EndpointConnectionError" in r["error"] for r in retries)
    assert not (tmp_path / "fix.checkpoint.sqlite").exists()


# --- a start-up abort says what to fix and names only files that exist ----------------------


async def test_a_wrong_domain_says_what_to_fix_and_names_no_file_that_does_not_exist(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "fix.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"]])
    summary = tmp_path / "fix.summary.json"
    result = await run_cli(
        "run",
        *("--input", str(path), *fast_run_flags(emu.url, domain_id="no-such-domain")),
        *("--summary", str(summary)),
    )
    assert result.returncode == EXIT_ABORTED, result.stderr
    line = result.stderr[result.stderr.index("aborted:") :]
    assert "to fix: check --domain-id and --region" in line
    assert "resume" not in line, "the same command cannot work: it names the wrong domain"
    assert "pending" not in line, "nothing was read, so nothing is counted pending"
    assert "failures:" not in line, "no failures file exists"
    assert "checkpoint:" not in line, "no checkpoint exists"
    assert f"summary: {summary}" in line
    report = json.loads(summary.read_text(encoding="utf-8"))
    assert "pending" not in report
    assert "failures_file" not in report
    assert update_calls(emu) == 0
