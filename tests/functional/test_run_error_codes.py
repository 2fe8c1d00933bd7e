"""Error codes and transport errors AWS services send besides Connect Cases' own, through the
real command and the real aiobotocore client against the emulator: another service's throttle
code throttles, a request-timeout code is retried, a reply cut short is retried (the emulator
answers the first few UpdateCase calls with the fault, then none), and a credential process
that fails once is retried.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from bulkupdate.emulator import FaultConfig
from tests.functional.runner import cli_env
from tests.functional.test_run_resume import (
    Job,
    assert_final_state_is_last_row_per_case,
    child,
    emulator,
    make_rows,
    run,
)

CASES = 6
FAULTED_CALLS = 3
FAST = ("--rate", "1000", "--burst", "100")


async def test_another_services_throttle_code_throttles_the_row_instead_of_failing_it(
    tmp_path: Path,
) -> None:
    # ThrottledException at 400, as botocore's retry config lists it.
    faults = FaultConfig(
        internal_error_probability=1.0,
        error_code="ThrottledException",
        error_status=400,
        fault_calls=FAULTED_CALLS,
    )
    async with emulator(CASES, faults=faults) as emu:
        job = Job(tmp_path, emu.url, make_rows(CASES, CASES, seed=1))
        done = await run(job, *FAST, "--max-attempts", "1")

        assert done.returncode == 0, done.stderr
        assert emu.counters["UpdateCase"]["ThrottledException"] == FAULTED_CALLS
        assert_final_state_is_last_row_per_case(emu, job)
    summary = job.read_summary()
    assert (summary["throttles"], summary["failed"]) == (FAULTED_CALLS, 0)


async def test_a_request_timeout_code_is_retried_and_the_row_applied(tmp_path: Path) -> None:
    faults = FaultConfig(
        internal_error_probability=1.0,
        error_code="RequestTimeout",
        error_status=400,
        fault_calls=FAULTED_CALLS,
    )
    async with emulator(CASES, faults=faults) as emu:
        job = Job(tmp_path, emu.url, make_rows(CASES, CASES, seed=2))
        done = await run(job, *FAST)

        assert done.returncode == 0, done.stderr
        assert emu.counters["UpdateCase"]["RequestTimeout"] == FAULTED_CALLS
        assert_final_state_is_last_row_per_case(emu, job)
    summary = job.read_summary()
    assert (summary["throttles"], summary["failed"]) == (0, 0)
    assert summary["retried"] >= FAULTED_CALLS


async def test_a_reply_cut_short_is_retried_and_the_row_applied(tmp_path: Path) -> None:
    faults = FaultConfig(cut_short_probability=1.0, fault_calls=FAULTED_CALLS)
    async with emulator(CASES, faults=faults) as emu:
        job = Job(tmp_path, emu.url, make_rows(CASES, CASES, seed=3))
        done = await run(job, *FAST)

        assert done.returncode == 0, done.stderr
        assert emu.counters["UpdateCase"]["cut_short"] == FAULTED_CALLS
        assert_final_state_is_last_row_per_case(emu, job)
    summary = job.read_summary()
    assert (summary["throttles"], summary["failed"]) == (0, 0)
    assert summary["retried"] >= FAULTED_CALLS


# A credential_process that counts its runs and fails the ones listed: short-lived credentials
# (5 minutes, inside botocore's mandatory refresh window), so every signed call runs it again.
CREDENTIAL_PROCESS = """
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
run = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(run))
if run in {int(n) for n in sys.argv[2].split(",")}:
    sys.exit("the credential endpoint did not answer")
expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
print(json.dumps({"Version": 1, "AccessKeyId": "AKIDEMULATOR", "SecretAccessKey": "secret",
                  "SessionToken": "token", "Expiration": expiry.isoformat()}))
"""


async def test_a_credential_process_that_fails_once_mid_run_is_retried(tmp_path: Path) -> None:
    script, counter = tmp_path / "credentials.py", tmp_path / "credential-runs"
    script.write_text(CREDENTIAL_PROCESS, encoding="utf-8")
    # Runs 3 and 4 fail: the run has read the domain and is sending rows by then.
    command = shlex.join([sys.executable, str(script), str(counter), "3,4"])
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\ncredential_process = {command}\n", encoding="utf-8")
    env = cli_env({"AWS_CONFIG_FILE": str(config)})
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    async with emulator(CASES) as emu:
        job = Job(tmp_path, emu.url, make_rows(CASES, CASES, seed=4))
        async with child(job.argv(*FAST), env, tmp_path) as process:
            done = await process.wait()

        assert done.returncode == 0, done.stderr
        assert int(counter.read_text()) > 4, "the failing runs happened"
        assert_final_state_is_last_row_per_case(emu, job)
    summary = job.read_summary()
    assert (summary["failed"], summary["throttles"]) == (0, 0)
    assert summary["retried"] >= 1
