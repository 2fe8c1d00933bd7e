"""`bulkupdate run` with its input, failures file and summary in S3: moto's server mode for S3
(a real implementation of the protocol on a loopback port), the emulator for Connect Cases, the
real command in a subprocess. Endpoints come from AWS_ENDPOINT_URL_S3, as users set them."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.emulator import EmulatorConfig, Quota, no_quotas, running_emulator
from bulkupdate.emulator.server import Emulator
from bulkupdate.exits import EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.test_run_resume import Job as LocalJob
from tests.functional.test_run_resume import applied_rows, child, make_rows, wait_until
from tests.motoserver import running_moto, s3_client

BUCKET = "exports"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    with running_moto() as url:
        yield url


@pytest.fixture
def s3(moto_s3: str) -> Iterator[Any]:
    client = s3_client(moto_s3)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with running_emulator(
        EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=20)
    ) as emulator:
        yield emulator


def rows_csv(rows: int, bad: int = 0) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["case_id", "order_total", "notes"])
    for i in range(rows):
        total = "lots" if i < bad else str(1000 + i)
        writer.writerow([f"case-{i % 20 + 1:07d}", total, f"line one\nline {i}"])  # multi-line
    return out.getvalue().encode()


def get(s3: Any, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


async def test_an_s3_input_is_applied_and_the_failures_file_and_summary_go_to_s3(
    s3: Any, moto_s3: str, emu: Emulator, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="crm/orders.csv", Body=rows_csv(60, bad=3))
    result = await run_cli(
        "run",
        *("--input", f"s3://{BUCKET}/crm/orders.csv"),
        *fast_run_flags(emu.url),
        *("--summary", f"s3://{BUCKET}/runs/summary.json"),
        env={"AWS_ENDPOINT_URL_S3": moto_s3},
        cwd=tmp_path,  # the derived checkpoint of an S3 input goes to the working folder
    )
    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    assert len(emu.service.updates) == 57
    failures = list(csv.DictReader(io.StringIO(get(s3, "crm/orders.failures.csv").decode())))
    # Later rows of those cases set order_total and notes: left blank for a re-run.
    assert [row["order_total"] for row in failures] == [""] * 3
    assert {row["error_code"] for row in failures} == {"invalid_number"}
    assert all("left blank" in row["error_message"] for row in failures)
    summary = json.loads(get(s3, "runs/summary.json"))
    assert (summary["applied"], summary["failed"], summary["end"]) == (57, 3, "finished")
    assert (tmp_path / "orders.checkpoint.sqlite").is_file()


async def test_a_gzipped_s3_input_is_read_transparently(
    s3: Any, moto_s3: str, emu: Emulator, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="orders.csv.gz", Body=gzip.compress(rows_csv(40)))
    result = await run_cli(
        "run",
        *("--input", f"s3://{BUCKET}/orders.csv.gz"),
        *fast_run_flags(emu.url),
        *("--state-dir", str(tmp_path)),
        env={"AWS_ENDPOINT_URL_S3": moto_s3},
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert len(emu.service.updates) == 40
    assert (tmp_path / "orders.checkpoint.sqlite").is_file()
    assert (tmp_path / "orders.failures.csv").read_text().startswith("case_id,")


async def test_an_s3_input_in_cp1252_is_read_with_encoding_and_its_failures_go_back_in_cp1252(
    s3: Any, moto_s3: str, emu: Emulator, tmp_path: Path
) -> None:
    rows = "case_id,notes,order_total\r\ncase-0000001,Café — “vu”,\r\ncase-0000002,déjà,douze €\r\n"
    s3.put_object(Bucket=BUCKET, Key="legacy.csv", Body=rows.encode("cp1252"))
    result = await run_cli(
        "run",
        *("--input", f"s3://{BUCKET}/legacy.csv", "--encoding", "cp1252"),
        *fast_run_flags(emu.url),
        *("--state-dir", str(tmp_path)),
        env={"AWS_ENDPOINT_URL_S3": moto_s3},
    )
    assert result.returncode == EXIT_FAILED_ROWS, result.stderr
    [applied] = emu.service.updates
    assert applied["fields"] == [{"id": "notes", "value": {"stringValue": "Café — “vu”"}}]
    failures = (tmp_path / "legacy.failures.csv").read_bytes()
    assert "case-0000002,déjà,douze €,invalid_number,".encode("cp1252") in failures


async def test_an_interrupted_s3_run_resumes_where_it_stopped(
    s3: Any, moto_s3: str, tmp_path: Path
) -> None:
    rows = make_rows(300, 20, seed=9)
    local = LocalJob(tmp_path, "http://unused", rows)  # writes orders.csv
    s3.put_object(Bucket=BUCKET, Key="orders.csv", Body=local.input.read_bytes())
    quota = {**no_quotas(), "UpdateCase": Quota(100.0, 10)}
    async with running_emulator(EmulatorConfig(port=0, quotas=quota, demo_cases=20)) as emu:
        job = LocalJob(tmp_path, emu.url, rows)
        job.env["AWS_ENDPOINT_URL_S3"] = moto_s3
        argv = job.argv("--rate", "100", "--burst", "10")
        argv[argv.index("--input") + 1] = f"s3://{BUCKET}/orders.csv"
        async with child(argv, job.environment(), tmp_path) as first:
            await wait_until(lambda: len(emu.service.updates) >= 100, "a third of the rows")
            first.send(2)  # SIGINT
            stopped = await first.wait()
        assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr
        resume_offset = job.read_summary()["resume_offset"]
        assert resume_offset > 0
        async with child(argv, job.environment(), tmp_path) as second:
            finished = await second.wait()
        assert finished.returncode == EXIT_OK, finished.stderr
        log = applied_rows(emu)
        assert sorted(set(log)) == list(range(300))
        assert len(log) == 300, "an interrupt drains: nothing is sent twice"
        events = [json.loads(line) for line in finished.stdout.splitlines()]
        started = next(e for e in events if e["event"] == "run_started")
        assert started["resume_offset"] == resume_offset  # seeked there, not re-read


async def test_a_missing_s3_object_stops_before_any_write(
    s3: Any, moto_s3: str, emu: Emulator, tmp_path: Path
) -> None:
    result = await run_cli(
        "run",
        *("--input", f"s3://{BUCKET}/nope.csv"),
        *fast_run_flags(emu.url),
        *("--state-dir", str(tmp_path)),
        env={"AWS_ENDPOINT_URL_S3": moto_s3},
    )
    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"s3://{BUCKET}/nope.csv" in result.stderr
    assert "404" in result.stderr or "Not Found" in result.stderr
    assert emu.service.updates == []
    assert not list(tmp_path.iterdir())
