"""A run never writes over its input, nor one of its outputs over another: refused before
anything is sent or written, naming the flag, however the two paths are spelled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.config import resolve
from bulkupdate.errors import ConfigError
from bulkupdate.run.paths import refuse_overwrites


def config_in(folder: Path, *, job: dict[str, Any] | None = None, **flags: Any) -> Any:
    job_path = str(folder / "job.toml") if job is not None else None
    return resolve(job=job, job_path=job_path, env={}, flags={"domain_id": "d", **flags})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "orders.csv").write_text("case_id\nC-1\n")
    return tmp_path


def test_a_failures_file_spelled_another_way_that_is_the_input_is_refused(folder: Path) -> None:
    config = config_in(
        folder, input=str(folder / "orders.csv"), failures=f"{folder}/sub/../orders.csv"
    )
    with pytest.raises(ConfigError) as refused:
        refuse_overwrites(config)
    assert refused.value.key == "--failures"
    assert "is the input" in str(refused.value)


def test_a_summary_that_links_to_the_input_is_refused(folder: Path) -> None:
    os.symlink(folder / "orders.csv", folder / "summary.json")
    hard = folder / "hard.json"
    os.link(folder / "orders.csv", hard)
    for summary in (folder / "summary.json", hard):
        config = config_in(folder, input=str(folder / "orders.csv"), summary=str(summary))
        with pytest.raises(ConfigError, match=r"--summary: the summary .* is the input"):
            refuse_overwrites(config)


def test_a_job_files_checkpoint_relative_to_it_that_is_the_input_is_refused(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder.parent)  # the job's paths are relative to its folder, not here
    config = config_in(folder, job={"input": "orders.csv", "checkpoint": "./orders.csv"})
    with pytest.raises(ConfigError, match=r"^--checkpoint: the checkpoint .* is the input"):
        refuse_overwrites(config)


def test_a_file_sqlite_keeps_beside_the_checkpoint_may_not_be_the_input(folder: Path) -> None:
    (folder / "orders.csv").rename(folder / "orders-wal")
    config = config_in(folder, input=str(folder / "orders-wal"), checkpoint=str(folder / "orders"))
    with pytest.raises(ConfigError, match="--checkpoint: the file beside the checkpoint"):
        refuse_overwrites(config)


def test_an_output_that_is_another_output_in_the_state_dir_is_refused(folder: Path) -> None:
    state = folder / "state"
    config = config_in(
        folder,
        input=str(folder / "orders.csv"),
        state_dir=str(state),
        summary=str(state / "orders.checkpoint.sqlite"),
    )
    with pytest.raises(ConfigError, match=r"--summary: .* is also the checkpoint \(--checkpoint\)"):
        refuse_overwrites(config)


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"failures": "out/orders.failures.csv", "summary": "out/summary.json"},
        {"checkpoint": "dynamodb://jobs", "summary": "s3://bucket/orders.summary.json"},
        {"input": "-", "failures": "-"},
    ],
)
def test_outputs_that_are_not_the_input_nor_each_other_pass(
    folder: Path, flags: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder)
    refuse_overwrites(config_in(folder, **{"input": "orders.csv", **flags}))


def test_an_s3_output_that_is_the_s3_input_is_refused(folder: Path) -> None:
    url = "s3://bucket/orders.csv"
    config = config_in(folder, input=url, failures=url, checkpoint=str(folder / "c.sqlite"))
    with pytest.raises(ConfigError, match=r"^--failures: .* is the input"):
        refuse_overwrites(config)
